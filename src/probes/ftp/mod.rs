//! The `ftp` probe: an FTP or FTPS login and the first batch of a directory listing, as a
//! file-drop client does it. Stage `connect` covers TCP and the server's greeting (for
//! implicit FTPS, the greeting comes inside TLS, in stage `tls`); `tls` is `AUTH TLS` and
//! the handshake (explicit) or the handshake first (implicit); `auth` is USER/PASS under
//! the credential release rule; `check` protects the data channel (PBSZ 0, PROT P),
//! changes to `path`, opens a passive data connection (EPSV, else PASV) that resumes the
//! control connection's TLS session, and reads the first batch of `LIST`.

mod replies;
mod session;

use std::sync::Arc;

use crate::config::document::Value;
use url::Url;

use crate::config::TableReader;
use crate::connect::context::ProbeContext;
use crate::connect::net::BoxIo;
use crate::connect::tls::TlsOptions;
use crate::model::error::Stage;
use crate::model::redact::Secret;
use crate::probes::from_url::{UrlOptions, UrlProbe, insert_address, literal, reference};
use crate::probes::{InspectFuture, Probe, ProbeFuture};

pub const DEFAULT_PORT: u16 = 21;
/// Implicit FTPS's port (RFC 4217 calls it historical; servers still use it).
pub const IMPLICIT_PORT: u16 = 990;

/// How the session is protected: `AUTH TLS` after the greeting (explicit, the default),
/// TLS from the first byte (implicit), or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtpTls {
    Explicit,
    Implicit,
    Disable,
}

impl FtpTls {
    fn parse(raw: &str) -> Option<FtpTls> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "explicit" | "auth-tls" | "auth_tls" => Some(FtpTls::Explicit),
            "implicit" => Some(FtpTls::Implicit),
            "disable" | "disabled" | "off" | "none" => Some(FtpTls::Disable),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct FtpProbe {
    host: String,
    port: u16,
    user: String,
    password: Option<Arc<Secret>>,
    /// The directory to list; relative paths start in the login directory.
    path: String,
    mode: FtpTls,
    tls: TlsOptions,
}

/// The user names that mean an anonymous login, whose password is an e-mail address by
/// convention and no secret.
fn is_anonymous(user: &str) -> bool {
    user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp")
}

pub fn parse(t: &TableReader<'_, '_>) -> Option<Arc<dyn Probe>> {
    let host = t.required_string("host", "the FTP server's host name or address");
    let port = t.port("port");
    let port_ok = port.is_some() || !t.has("port");
    let user = t.string("user").unwrap_or_else(|| "anonymous".into());
    let password = t.secret("password");
    let password_ok = password.is_some() || !t.has("password");
    if password.is_none() && !t.has("password") && !is_anonymous(&user) {
        t.error_at(
            "user",
            format!(
                "`{user}` needs a password: set `password` (e.g. \"${{FTP_PASSWORD}}\"), or use user = \"anonymous\""
            ),
        );
    }
    let path = t.string("path").unwrap_or_else(|| ".".into());
    let mut path_ok = true;
    if path.is_empty() {
        t.error_at("path", "the directory must not be empty; use \".\" for the login directory");
        path_ok = false;
    } else if path.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        t.error_at("path", "the directory holds a line break or NUL, which would start another FTP command");
        path_ok = false;
    }
    let passive = t.bool("passive").unwrap_or(true);
    if !passive {
        t.error_at("passive", "active mode (PORT/EPRT) is not supported: the server would connect back to this machine, which firewalls and NAT rarely allow; leave passive = true");
    }
    let mut mode = FtpTls::Explicit;
    let tls = TlsOptions::read_with_own_mode(t, &mut |table| {
        let Some(raw) = table.string("mode") else { return !table.has("mode") };
        match FtpTls::parse(&raw) {
            Some(m) => {
                mode = m;
                true
            }
            None => {
                table.error_at("mode", format!("unknown FTP TLS mode `{raw}`; use explicit (AUTH TLS), implicit (TLS from the first byte, port 990) or disable"));
                false
            }
        }
    });
    let port = port.unwrap_or(if mode == FtpTls::Implicit { IMPLICIT_PORT } else { DEFAULT_PORT });
    if !(port_ok && password_ok && path_ok && passive) {
        return None;
    }
    Some(Arc::new(FtpProbe { host: host?, port, user, password: password.map(Arc::new), path, mode, tls: tls? }))
}

impl Probe for FtpProbe {
    fn target(&self) -> String {
        let scheme = if self.mode == FtpTls::Implicit { "ftps" } else { "ftp" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let path = if self.path.starts_with('/') {
            format!("/%2F{}", &self.path[1..])
        } else if self.path == "." {
            "/".into()
        } else {
            format!("/{}", self.path)
        };
        format!("{scheme}://{}@{host}:{}{path}", self.user, self.port)
    }

    fn stages(&self) -> Vec<Stage> {
        match self.mode {
            FtpTls::Disable => vec![Stage::Dns, Stage::Connect, Stage::Auth, Stage::Check],
            _ => vec![Stage::Dns, Stage::Connect, Stage::Tls, Stage::Auth, Stage::Check],
        }
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> ProbeFuture<'a> {
        Box::pin(session::run(self, ctx))
    }

    fn retarget(&self, target: &str) -> Result<Arc<dyn Probe>, String> {
        let (host, port) = super::host_and_port(target)?;
        Ok(Arc::new(FtpProbe { host, port: port.unwrap_or(self.port), ..self.clone() }))
    }
}

/// `inspect ftp://…`: the greeting, `AUTH TLS`, and the handshake (`ftps://` starts with
/// the handshake: see the registry's `tls_first`).
pub fn inspect_tls<'a>(ctx: &'a ProbeContext, io: BoxIo, opts: &'a TlsOptions, host: &'a str) -> InspectFuture<'a> {
    Box::pin(async move { Ok(Some(session::auth_tls(ctx, io, opts, host).await?.presented())) })
}

/// `check ftp://user@host/path` (explicit TLS unless `--tls disable`) and
/// `check ftps://user@host/path` (implicit). As curl reads them: no user is anonymous;
/// `/dir` is `dir` in the login directory and `/%2Fdir` is the absolute `/dir`. The password
/// from --password-env, the URL, or FTP_PASSWORD.
pub fn from_url(url: &Url, opts: &UrlOptions, out: &mut UrlProbe) -> Result<(), String> {
    let UrlProbe { probe, tls, password } = out;
    let anonymous = url.username().is_empty();
    if anonymous {
        let host = url.host_str().ok_or("the URL has no host")?;
        probe.insert("host", literal(host.trim_start_matches('[').trim_end_matches(']')));
        if let Some(port) = url.port() {
            probe.insert("port", Value::Integer(i64::from(port)));
        }
        probe.insert("user", literal("anonymous"));
    } else {
        insert_address(url, probe, &[])?;
    }
    probe.insert("path", literal(&ftp_path(url.path())));
    let password = password.take().or_else(|| std::env::var_os("FTP_PASSWORD").map(|_| reference("FTP_PASSWORD")));
    match password {
        Some(password) => {
            probe.insert("password", password);
        }
        None if !anonymous => {
            return Err(format!(
                "no password for `{}`: set FTP_PASSWORD (or --password-env NAME), or leave the user out of the URL for an anonymous login",
                url.username()
            ));
        }
        None => {}
    }
    let mode = match (url.scheme(), opts.tls.as_deref()) {
        ("ftps", None | Some("implicit")) => "implicit",
        ("ftps", Some(other)) => {
            return Err(format!(
                "ftps:// is implicit FTPS; --tls {other} contradicts it (use ftp:// for explicit or disable)"
            ));
        }
        (_, None) => "explicit",
        (_, Some(mode)) => match FtpTls::parse(mode) {
            Some(_) => mode,
            None => return Err(format!("--tls {mode}: use explicit, implicit or disable")),
        },
    };
    tls.insert("mode", literal(mode));
    if opts.identity.is_some() || opts.host_key.is_some() || opts.known_hosts.is_some() {
        return Err(
            "SSH options (--identity, --host-key, --known-hosts) do not apply to ftp://; did you mean sftp://?".into(),
        );
    }
    Ok(())
}

/// The directory an ftp:// URL names, as curl reads it (RFC 1738): the path is relative
/// to the login directory, and `%2F` at its start makes it absolute.
fn ftp_path(url_path: &str) -> String {
    let trimmed = url_path.strip_prefix('/').unwrap_or(url_path);
    let decoded = percent_encoding::percent_decode_str(trimmed).decode_utf8_lossy().into_owned();
    let decoded = decoded.trim_end_matches('/');
    if decoded.is_empty() { ".".into() } else { decoded.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftp_paths_follow_curl() {
        assert_eq!(ftp_path(""), ".");
        assert_eq!(ftp_path("/"), ".");
        assert_eq!(ftp_path("/data/in/"), "data/in");
        assert_eq!(ftp_path("/%2Fsrv/drop"), "/srv/drop");
        assert_eq!(ftp_path("/with%20space"), "with space");
    }

    #[test]
    fn tls_modes_have_their_ftp_names() {
        assert_eq!(FtpTls::parse("explicit"), Some(FtpTls::Explicit));
        assert_eq!(FtpTls::parse(" Implicit "), Some(FtpTls::Implicit));
        assert_eq!(FtpTls::parse("disable"), Some(FtpTls::Disable));
        assert_eq!(FtpTls::parse("verify-full"), None);
    }
}
