//! What `authprobe check URL` asks of a kind: its URL and the check flags turned into the
//! same `[[probe]]` table a config file holds, as a document built in memory (no config
//! text: a flag's value or a URL's part is a literal string, a URL's password a secret
//! given in memory). Each kind that has URL schemes says how in its own file
//! (`from_url`), registered in [`crate::probes::KINDS`].

use std::path::PathBuf;

use url::Url;

use crate::config::document::{Table, Value};
pub use crate::config::document::{literal, path as path_string, reference};

/// The flags of `authprobe check` that shape the probe (clap reads them; the kinds read
/// the values).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct UrlOptions {
    /// Name of the probe in the report.
    #[arg(long, default_value = "check")]
    pub name: String,
    /// Send `Authorization: Bearer` with the token from this environment variable.
    #[arg(long, value_name = "ENV")]
    pub bearer_env: Option<String>,
    /// HTTP basic auth user (the password comes from --password-env or the URL).
    #[arg(long, value_name = "USER")]
    pub basic_user: Option<String>,
    /// Environment variable holding the password (HTTP basic, databases).
    #[arg(long, value_name = "ENV")]
    pub password_env: Option<String>,
    /// Extra HTTP header, `Name: value`; repeatable.
    #[arg(long = "header", short = 'H', value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Accepted HTTP status, or a class such as 2xx; repeatable [default: any 2xx].
    #[arg(long, value_name = "CODE", value_parser = parse_status)]
    pub expect_status: Vec<String>,
    /// Text the HTTP response body must contain.
    #[arg(long, value_name = "TEXT")]
    pub expect_body: Option<String>,
    /// Check query for databases [default: SELECT 1].
    #[arg(long, value_name = "SQL")]
    pub query: Option<String>,
    /// CA bundle to trust instead of the system store.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Client certificate (mTLS, PostgreSQL cert auth).
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Client key for --client-cert.
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Verify the certificate against this name (and send it as SNI) instead of the URL's host.
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Trust exactly this certificate (SHA-256 fingerprint); repeatable.
    #[arg(long, value_name = "FINGERPRINT")]
    pub pin_sha256: Vec<String>,
    /// Skip TLS verification (the probe then warns).
    #[arg(long)]
    pub insecure: bool,
    /// Send a password or token in recoverable form even to a server whose identity is not
    /// verified (plain http://, a database without verified TLS). Off by default.
    #[arg(long)]
    pub allow_unverified_password: bool,
    /// FTP's TLS for ftp:// URLs: explicit (AUTH TLS, the default), implicit, or disable
    /// (plain FTP; a password then also needs --allow-unverified-password).
    #[arg(long, value_name = "MODE")]
    pub tls: Option<String>,
    /// SSH private key for sftp:// (OpenSSH or PEM format).
    #[arg(long, short = 'i', value_name = "KEY")]
    pub identity: Option<PathBuf>,
    /// Environment variable holding the passphrase of --identity.
    #[arg(long, value_name = "ENV", requires = "identity")]
    pub passphrase_env: Option<String>,
    /// Approve exactly this SSH host key (SHA256:… as `ssh-keygen -lf` prints it).
    #[arg(long, value_name = "FINGERPRINT")]
    pub host_key: Option<String>,
    /// known_hosts file for sftp:// [default: ~/.ssh/known_hosts if it exists].
    #[arg(long, value_name = "PATH", conflicts_with = "host_key")]
    pub known_hosts: Option<PathBuf>,
    /// Kerberos with the ticket cache (KRB5CCNAME or the default), for http(s):// (Negotiate)
    /// and postgres://.
    #[arg(long, conflicts_with_all = ["keytab", "bearer_env", "basic_user"])]
    pub kerberos: bool,
    /// Kerberos with this keytab's key for --principal.
    #[arg(long, value_name = "PATH", requires = "principal", conflicts_with_all = ["bearer_env", "basic_user"])]
    pub keytab: Option<PathBuf>,
    /// The Kerberos client principal (name@REALM) for --keytab.
    #[arg(long, value_name = "NAME", requires = "keytab")]
    pub principal: Option<String>,
}

/// An HTTP status (`204`) or a class of them (`2xx`).
fn parse_status(raw: &str) -> Result<String, String> {
    let ok = crate::config::reader::hundred_class(raw).is_some_and(|c| (1..=5).contains(&c))
        || raw.trim().parse::<u16>().is_ok_and(|s| (100..=599).contains(&s));
    if ok {
        Ok(raw.trim().to_ascii_lowercase())
    } else {
        Err("expected an HTTP status (100-599) or a class such as 2xx".into())
    }
}

/// `auth = { type = "kerberos", … }` from --kerberos or --keytab/--principal, if given.
pub fn kerberos_auth(opts: &UrlOptions) -> Option<Table<'static>> {
    let mut auth = Table::new();
    match (&opts.keytab, &opts.principal) {
        (Some(keytab), Some(principal)) => {
            auth.insert("keytab", path_string(keytab));
            auth.insert("principal", literal(principal));
        }
        _ if opts.kerberos => {}
        _ => return None,
    }
    auth.insert("type", literal("kerberos"));
    Some(auth)
}

/// The probe table being built, the `tls` table beside it, and the password the flags or
/// the URL gave: a reference to the variable a flag names, or the URL's own password as
/// a secret given in memory.
#[derive(Debug, Default)]
pub struct UrlProbe {
    pub probe: Table<'static>,
    pub tls: Table<'static>,
    pub password: Option<Value<'static>>,
}

/// Builds a kind's part of the probe table from a URL, or says why it cannot.
pub type FromUrl = fn(&Url, &UrlOptions, &mut UrlProbe) -> Result<(), String>;

/// `host`, `port` and `user` from a URL; without a user in it, the first of `user_vars`
/// that is set (as the protocol's own client would take it).
pub fn insert_address(url: &Url, probe: &mut Table<'static>, user_vars: &[&str]) -> Result<(), String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    probe.insert("host", literal(host.trim_start_matches('[').trim_end_matches(']')));
    if let Some(port) = url.port() {
        probe.insert("port", Value::Integer(i64::from(port)));
    }
    let user = match url.username() {
        "" => user_vars.iter().find_map(|var| std::env::var(var).ok()).ok_or("the URL names no user")?,
        u => percent_encoding::percent_decode_str(u).decode_utf8_lossy().into_owned(),
    };
    probe.insert("user", literal(&user));
    Ok(())
}
