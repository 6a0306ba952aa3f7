//! The `sftp` probe: SSH to the server (stage `connect` covers TCP, the key exchange and
//! the host-key check, which is never skipped), log in with the configured credentials
//! (stage `auth`), then start the SFTP subsystem and read the first batch of entries of
//! the directory `path` (stage `check`), without reading the rest of a large directory.

use std::sync::Arc;

use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::StatusCode;

use crate::config::TableReader;
use crate::config::document::{Table, Value};
use crate::connect::context::ProbeContext;
use crate::connect::dial;
use crate::connect::net::Record;
use crate::connect::proxy::Traffic;
use crate::connect::ssh::{self, Role, SshTarget};
use crate::identity::kerberos::{self, KerberosAuth};
use crate::model::error::{ErrorClass, Failure, Stage};
use crate::probes::from_url::{UrlOptions, UrlProbe, insert_address, literal, path_string, reference};
use crate::probes::{Probe, ProbeFuture};
use std::path::PathBuf;
use url::Url;

#[derive(Debug, Clone)]
pub struct SftpProbe {
    ssh: SshTarget,
    /// The directory to list; relative paths start in the user's login directory.
    path: String,
    /// `auth = { type = "kerberos", … }`: gssapi-with-mic with a ticket for host/HOST.
    kerberos: Option<Arc<KerberosAuth>>,
}

/// The Kerberos context as russh's gssapi-with-mic step (RFC 4462): the first token, the
/// server's answer (its proof), then a MIC over the session's data.
struct GssapiLogin(kerberos::Initiator);

/// A failure inside russh's GSS-API loop, taken back unchanged.
struct GssFailure(Failure);

impl From<russh::SendError> for GssFailure {
    fn from(_: russh::SendError) -> Self {
        GssFailure(Failure::new(ErrorClass::Network, "the SSH connection closed during the Kerberos login"))
    }
}

impl From<GssFailure> for Failure {
    fn from(failure: GssFailure) -> Self {
        failure.0
    }
}

impl russh::GssapiAuthenticator for GssapiLogin {
    type Error = GssFailure;

    async fn gssapi_step(
        &mut self,
        selected_mechanism: Option<Vec<u8>>,
        input_token: Option<Vec<u8>>,
        mic_data: Vec<u8>,
    ) -> Result<russh::GssapiStep, GssFailure> {
        if let Some(mechanism) = &selected_mechanism
            && !mechanism.ends_with(kerberos::ffi::KRB5_MECH)
        {
            return Err(GssFailure(Failure::new(
                ErrorClass::Protocol,
                "the SSH server selected a GSS-API mechanism authprobe did not offer (only Kerberos 5 was)",
            )));
        }
        let token = self.0.step(input_token.as_deref()).map_err(GssFailure)?;
        if !self.0.is_complete() {
            return Ok(russh::GssapiStep::Continue { token });
        }
        let mic = self.0.mic(&mic_data).map_err(GssFailure)?;
        Ok(russh::GssapiStep::Complete { token: (!token.is_empty()).then_some(token), mic: Some(mic) })
    }
}

pub fn parse(t: &TableReader<'_, '_>) -> Option<Arc<dyn Probe>> {
    let ssh = SshTarget::read(t);
    let kerberos = match (&ssh, t.table("auth")) {
        (Some(SshTarget { auth: ssh::SshAuth::Gssapi, .. }), Some(a)) => {
            // `type` was read by SshAuth; this reader reports the keys nobody read.
            let _ = a.string("type");
            let kerberos = KerberosAuth::read(&a);
            a.finish();
            Some(Arc::new(kerberos?))
        }
        _ => None,
    };
    let path = t.string("path").unwrap_or_else(|| ".".into());
    if path.is_empty() {
        t.error_at("path", "the directory must not be empty; use \".\" for the login directory");
        return None;
    }
    Some(Arc::new(SftpProbe { ssh: ssh?, path, kerberos }))
}

impl SftpProbe {
    async fn run_once(&self, ctx: &ProbeContext) -> Result<(), Failure> {
        let target = &self.ssh;
        // Held to the end: the server counts a login as finished only some time after it
        // told us, and a short SFTP session is over soon after that anyway.
        let _login = ctx.shared.ssh_logins.admit(&target.address()).await;
        let (mut session, _route) =
            dial::connect_then(ctx, &target.host, target.port, Traffic::Other, Record::Stages, |stream| {
                ssh::handshake(ctx, stream, target, Role::Probe)
            })
            .await?;
        match &self.kerberos {
            Some(kerberos) => {
                ctx.detail(format!("credentials: Kerberos, {}", kerberos.describe()));
                // OpenSSH's service principal: host/HOST@REALM
                let initiator = ctx
                    .stage(
                        Stage::Token,
                        kerberos::acquire::initiator(ctx, kerberos, "host", &target.host, kerberos::Mechanism::Krb5),
                    )
                    .await?;
                let mut login = GssapiLogin(initiator);
                ctx.stage(Stage::Auth, session.authenticate_gssapi(target, &mut login)).await?;
                login.0.report_proof(ctx);
            }
            None => ctx.stage(Stage::Auth, session.authenticate(ctx, target)).await?,
        }
        let result = ctx.stage(Stage::Check, self.list(ctx, &session)).await;
        session.close().await;
        result
    }

    async fn list(&self, ctx: &ProbeContext, session: &ssh::Session) -> Result<(), Failure> {
        let sftp = RawSftpSession::new(session.open_sftp().await?);
        // The runner owns the deadline; the session's own must never fire first.
        sftp.set_timeout(ctx.timeout.as_secs() + 1);
        // OPENDIR goes right behind INIT instead of a round trip later: a server takes its
        // requests in order, so it has answered INIT (VERSION) before it reads OPENDIR, and
        // nothing in either request is secret. An answer to OPENDIR before VERSION is a
        // protocol error for the session (russh-sftp refuses it).
        let (version, opened) = tokio::join!(sftp.init(), sftp.opendir(self.path.as_str()));
        let version = version.map_err(|e| self.classify(&e, "starting SFTP"))?;
        let mut extensions: Vec<&String> = version.extensions.keys().collect();
        extensions.sort();
        let extensions: Vec<&str> = extensions.into_iter().map(String::as_str).collect();
        ctx.diagnostic(format!("sftp: protocol version {}, extensions: {}", version.version, extensions.join(", ")));
        let dir = opened.map_err(|e| self.classify(&e, "opening the directory"))?;
        let batch = sftp.readdir(dir.handle.as_str()).await;
        // The answer is known; closing the handle is courtesy, not worth a round trip.
        drop(sftp);
        match batch {
            Ok(names) => {
                let entries = names.files.iter().filter(|f| f.filename != "." && f.filename != "..").count();
                ctx.detail(format!("sftp: {} lists (first batch: {entries} entries)", self.path));
                Ok(())
            }
            Err(SftpError::Status(status)) if status.status_code == StatusCode::Eof => {
                ctx.detail(format!("sftp: {} lists (empty)", self.path));
                Ok(())
            }
            Err(err) => Err(self.classify(&err, "listing the directory")),
        }
    }

    fn classify(&self, err: &SftpError, doing: &str) -> Failure {
        let user = &self.ssh.user;
        let path = &self.path;
        match err {
            SftpError::Status(status) => {
                let said = if status.error_message.is_empty() {
                    status.status_code.to_string()
                } else {
                    status.error_message.clone()
                };
                match status.status_code {
                    StatusCode::NoSuchFile => Failure::new(
                        ErrorClass::NotFound,
                        format!("`{path}` does not exist for `{user}` ({said})"),
                    )
                    .with_hint(if path.starts_with('/') {
                        "check the path: it is absolute (sftp://host/data is /data, as curl reads it); write ~/data for the user's login directory, and note that a chrooted account sees a different /"
                    } else {
                        "check the path: it starts in the user's login directory (~/ in a URL), and a chrooted account sees a different /"
                    }),
                    StatusCode::PermissionDenied => Failure::new(
                        ErrorClass::PermissionDenied,
                        format!("`{user}` logged in but may not list `{path}` ({said})"),
                    )
                    .with_hint("the credentials work: ask the server's owner to grant this account read access to the directory"),
                    _ => Failure::new(ErrorClass::UnexpectedResponse, format!("{doing} `{path}`: the server answered: {said}"))
                        .with_hint("`path` must be a directory the account can read"),
                }
            }
            SftpError::Timeout => {
                Failure::new(ErrorClass::Timeout, format!("the SFTP server did not answer while {doing}"))
            }
            SftpError::IO(why) => {
                Failure::new(ErrorClass::Network, format!("the SFTP channel broke while {doing}: {why}"))
            }
            other => Failure::new(ErrorClass::Protocol, format!("SFTP error while {doing}: {other}")),
        }
    }
}

impl Probe for SftpProbe {
    fn target(&self) -> String {
        let path = if self.path.starts_with('/') { self.path.clone() } else { format!("/~/{}", self.path) };
        format!("sftp://{}@{}{path}", self.ssh.user, self.ssh.address())
    }

    fn stages(&self) -> Vec<Stage> {
        match self.kerberos {
            Some(_) => vec![Stage::Dns, Stage::Connect, Stage::Token, Stage::Auth, Stage::Check],
            None => vec![Stage::Dns, Stage::Connect, Stage::Auth, Stage::Check],
        }
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> ProbeFuture<'a> {
        Box::pin(self.run_once(ctx))
    }

    fn retarget(&self, target: &str) -> Result<Arc<dyn Probe>, String> {
        let (host, port) = super::host_and_port(target)?;
        let ssh = SshTarget { host, port: port.unwrap_or(self.ssh.port), ..self.ssh.clone() };
        Ok(Arc::new(SftpProbe { ssh, ..self.clone() }))
    }
}

/// `check sftp://user@host/path`: a key, a password or the agent; the host key from the
/// flags or known_hosts.
pub fn from_url(url: &Url, opts: &UrlOptions, out: &mut UrlProbe) -> Result<(), String> {
    let UrlProbe { probe, tls, password } = out;
    insert_address(url, probe, &["USER"])?;
    probe.insert("path", literal(&sftp_path(url.path())));
    let mut auth = Table::new();
    let password = password.take().or_else(|| std::env::var_os("SSHPASS").map(|_| reference("SSHPASS")));
    if let Some(kerberos) = crate::probes::from_url::kerberos_auth(opts) {
        auth = kerberos;
    } else if let Some(key) = &opts.identity {
        auth.insert("type", literal("key"));
        auth.insert("private_key", path_string(key));
        if let Some(var) = &opts.passphrase_env {
            auth.insert("passphrase", reference(var));
        }
    } else if let Some(password) = password {
        auth.insert("type", literal("password"));
        auth.insert("password", password);
    } else if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        auth.insert("type", literal("agent"));
    } else {
        return Err(
            "no SSH credentials: pass --identity KEY, set SSHPASS (or --password-env NAME), or run an ssh-agent".into(),
        );
    }
    probe.insert("auth", Value::Table(auth));
    if let Some(fingerprint) = &opts.host_key {
        probe.insert("host_key", literal(fingerprint));
    } else if let Some(path) = opts.known_hosts.clone().or_else(default_known_hosts) {
        probe.insert("known_hosts", path_string(&path));
    }
    if !tls.is_empty() {
        return Err("TLS options (--ca, --client-cert, --pin-sha256, --insecure) do not apply to sftp://".into());
    }
    Ok(())
}

/// The directory an sftp:// URL names, as curl reads it: `/path` is absolute, `/~/path`
/// is relative to the login directory, and no path at all is the login directory.
fn sftp_path(url_path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(url_path).decode_utf8_lossy().into_owned();
    match decoded.as_str() {
        "" | "/~" | "/~/" => ".".into(),
        path => match path.strip_prefix("/~/") {
            Some(relative) => relative.to_string(),
            None => path.to_string(),
        },
    }
}

/// `~/.ssh/known_hosts`, where ssh looks, when it exists.
fn default_known_hosts() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("HOME")?).join(".ssh/known_hosts");
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sftp_paths_follow_curl() {
        assert_eq!(sftp_path(""), ".");
        assert_eq!(sftp_path("/~/"), ".");
        assert_eq!(sftp_path("/~/data/in"), "data/in");
        assert_eq!(sftp_path("/srv/data"), "/srv/data");
        assert_eq!(sftp_path("/"), "/");
        assert_eq!(sftp_path("/with%20space"), "/with space");
    }
}
