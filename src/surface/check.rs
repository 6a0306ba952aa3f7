//! `authprobe check URL`: one ad-hoc probe without a config file. The URL and flags are
//! turned into the same probe table a config file would hold and go through the same
//! checks, so `check` and `run` cannot drift apart. Secrets are never taken from the
//! command line: they come from environment variables named by flags or by convention
//! (PGPASSWORD), and a password written into the URL is accepted with a warning.

use std::path::PathBuf;

use toml::{Table, Value};
use url::Url;

/// A target given on the command line, with a message that shows the expected form when
/// it is not a URL (`example.com`, `localhost:5432`).
pub fn parse_target_url(raw: &str) -> Result<Url, String> {
    let example = |host: &str| {
        format!("write it as a URL with its scheme, e.g. https://{host}/health or postgres://user@{host}/db")
    };
    match Url::parse(raw) {
        // `localhost:5432` parses as the scheme `localhost`.
        Ok(url) if url.cannot_be_a_base() => Err(format!("`{raw}` has no scheme: {}", example(raw))),
        Ok(url) => Ok(url),
        Err(url::ParseError::RelativeUrlWithoutBase) => Err(format!("`{raw}` is not a URL: {}", example(raw))),
        Err(err) => Err(format!("`{raw}` is not a URL ({err}): {}", example(raw))),
    }
}

/// The flags of `authprobe check` that shape the probe.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CheckOptions {
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
    /// Accepted HTTP status; repeatable [default: any 2xx].
    #[arg(long, value_name = "CODE")]
    pub expect_status: Vec<u16>,
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
}

/// The environment variable a password found in the URL is handed over in: it never
/// becomes part of the synthesized config text.
pub const URL_PASSWORD_VAR: &str = "AUTHPROBE_CHECK_URL_PASSWORD";

/// A probe config synthesized from a URL.
pub struct Synthesized {
    pub toml: String,
    /// The password written into the URL, if any (to warn about and to resolve).
    pub url_password: Option<String>,
}

fn path_string(p: &std::path::Path) -> Value {
    // `$` would start a reference when the text is read back as config.
    Value::String(p.display().to_string().replace("${", "$${"))
}

fn literal(s: &str) -> Value {
    Value::String(s.replace("${", "$${"))
}

fn reference(var: &str) -> Value {
    Value::String(format!("${{{var}}}"))
}

/// Hints name config lines (`host_key = "…"`, `pin_sha256 = ["…"]`); for `check`, which
/// has no config file, they name the flags that do the same.
pub fn hints_in_flags(report: &mut crate::model::report::RunReport) {
    for probe in &mut report.probes {
        if let Some(error) = &mut probe.error {
            error.hint = flag_words(&error.hint);
        }
        for warning in &mut probe.warnings {
            *warning = flag_words(warning);
        }
    }
}

fn flag_words(hint: &str) -> String {
    let mut out = hint.to_string();
    for (open, close, flag) in [("host_key = \"", "\"", "--host-key "), ("pin_sha256 = [\"", "\"]", "--pin-sha256 ")] {
        while let Some(start) = out.find(open) {
            let value_at = start + open.len();
            let Some(len) = out[value_at..].find(close) else { break };
            let value = out[value_at..value_at + len].to_string();
            out.replace_range(start..value_at + len + close.len(), &format!("{flag}{value}"));
        }
    }
    out.replace("set allow_unverified_password = true in the probe", "rerun with --allow-unverified-password")
        .replace("set password (e.g. password = \"${PGPASSWORD}\")", "set PGPASSWORD (or --password-env NAME)")
        .replace("set password (e.g. password = \"${MYSQL_PWD}\")", "set MYSQL_PWD (or --password-env NAME)")
        .replace("(tls.client_cert, tls.client_key)", "(--client-cert, --client-key)")
        .replace("set tls.ca to the CA", "pass --ca with the CA")
        .replace("verify it with tls.ca", "verify it with --ca")
        .replace("approve this certificate: --", "approve this certificate with --")
        .replace("add to the probe: --", "rerun with --")
        .replace("in the probe's tls table: --", "with --")
        .replace("update the probe: --", "rerun with --")
}

/// `host`, `port` and `user` from a URL; without a user in it, the first of `user_vars`
/// that is set (as the protocol's own client would take it).
fn insert_address(url: &Url, probe: &mut Table, user_vars: &[&str]) -> Result<(), String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    probe.insert("host".into(), literal(host.trim_start_matches('[').trim_end_matches(']')));
    if let Some(port) = url.port() {
        probe.insert("port".into(), Value::Integer(i64::from(port)));
    }
    let user = match url.username() {
        "" => user_vars.iter().find_map(|var| std::env::var(var).ok()).ok_or("the URL names no user")?,
        u => percent_encoding::percent_decode_str(u).decode_utf8_lossy().into_owned(),
    };
    probe.insert("user".into(), literal(&user));
    Ok(())
}

/// Builds the `[[probe]]` table for a URL, or says why it cannot.
pub fn synthesize(raw_url: &str, opts: &CheckOptions) -> Result<Synthesized, String> {
    let url = parse_target_url(raw_url)?;
    let url_password = url.password().map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned());
    if let Some(p) = &url_password {
        crate::model::redact::register(p);
    }
    let mut probe = Table::new();
    probe.insert("name".into(), literal(&opts.name));
    let mut tls = Table::new();
    if let Some(ca) = &opts.ca {
        tls.insert("ca".into(), path_string(ca));
    }
    if let (Some(cert), Some(key)) = (&opts.client_cert, &opts.client_key) {
        tls.insert("client_cert".into(), path_string(cert));
        tls.insert("client_key".into(), path_string(key));
    }
    if !opts.pin_sha256.is_empty() {
        tls.insert("pin_sha256".into(), Value::Array(opts.pin_sha256.iter().map(|p| literal(p)).collect()));
    }
    if opts.insecure {
        tls.insert("insecure".into(), Value::Boolean(true));
    }
    if opts.allow_unverified_password {
        probe.insert("allow_unverified_password".into(), Value::Boolean(true));
    }
    let password = match (&opts.password_env, &url_password) {
        (Some(var), _) => Some(reference(var)),
        (None, Some(_)) => Some(reference(URL_PASSWORD_VAR)),
        (None, None) => None,
    };
    match url.scheme() {
        "http" | "https" => {
            probe.insert("kind".into(), literal("http"));
            let mut shown = url.clone();
            let url_user = (!url.username().is_empty()).then(|| url.username().to_string());
            let _ = shown.set_password(None);
            let _ = shown.set_username("");
            probe.insert("url".into(), literal(shown.as_str()));
            let mut auth = Table::new();
            if let Some(var) = &opts.bearer_env {
                auth.insert("type".into(), literal("bearer"));
                auth.insert("token".into(), reference(var));
            } else if let Some(user) = opts.basic_user.clone().or(url_user) {
                let Some(password) = password else {
                    return Err("basic auth needs a password: name its environment variable with --password-env".into());
                };
                auth.insert("type".into(), literal("basic"));
                auth.insert("username".into(), literal(&user));
                auth.insert("password".into(), password);
            }
            if !auth.is_empty() {
                probe.insert("auth".into(), Value::Table(auth));
            }
            if !opts.headers.is_empty() {
                let mut headers = Table::new();
                for h in &opts.headers {
                    let (k, v) = h.split_once(':').ok_or_else(|| format!("header `{h}` is not `Name: value`"))?;
                    headers.insert(k.trim().into(), literal(v.trim()));
                }
                probe.insert("headers".into(), Value::Table(headers));
            }
            let mut expect = Table::new();
            if !opts.expect_status.is_empty() {
                expect.insert(
                    "status".into(),
                    Value::Array(opts.expect_status.iter().map(|s| Value::Integer(i64::from(*s))).collect()),
                );
            }
            if let Some(body) = &opts.expect_body {
                expect.insert("body_contains".into(), literal(body));
            }
            if !expect.is_empty() {
                probe.insert("expect".into(), Value::Table(expect));
            }
        }
        "postgres" | "postgresql" => {
            probe.insert("kind".into(), literal("postgres"));
            insert_address(&url, &mut probe, &["PGUSER", "USER"])?;
            let database = url.path().trim_start_matches('/');
            if !database.is_empty() {
                probe.insert("database".into(), literal(database));
            }
            let password = password.or_else(|| std::env::var_os("PGPASSWORD").map(|_| reference("PGPASSWORD")));
            if let Some(p) = password {
                probe.insert("password".into(), p);
            }
            if let Some(q) = &opts.query {
                probe.insert("query".into(), literal(q));
            }
            for (key, value) in url.query_pairs() {
                match key.as_ref() {
                    "sslmode" => drop(tls.insert("mode".into(), literal(&value))),
                    "sslrootcert" => drop(tls.insert("ca".into(), literal(&value))),
                    "sslcert" => drop(tls.insert("client_cert".into(), literal(&value))),
                    "sslkey" => drop(tls.insert("client_key".into(), literal(&value))),
                    other => {
                        return Err(format!(
                            "unsupported URL parameter `{other}` (supported: sslmode, sslrootcert, sslcert, sslkey)"
                        ));
                    }
                }
            }
        }
        scheme @ ("mysql" | "mariadb" | "mssql" | "sqlserver") => {
            let mssql = matches!(scheme, "mssql" | "sqlserver");
            probe.insert("kind".into(), literal(if mssql { "mssql" } else { "mysql" }));
            insert_address(&url, &mut probe, &["USER"])?;
            let database = url.path().trim_start_matches('/');
            if !database.is_empty() {
                probe.insert("database".into(), literal(database));
            }
            let conventional = if mssql { "MSSQL_PASSWORD" } else { "MYSQL_PWD" };
            let password = password.or_else(|| std::env::var_os(conventional).map(|_| reference(conventional)));
            match password {
                Some(p) => drop(probe.insert("password".into(), p)),
                // SQL Server has no passwordless SQL login: say which variable, not which key.
                None if mssql => {
                    return Err("mssql:// needs a password: set MSSQL_PASSWORD (or --password-env NAME)".into());
                }
                None => {}
            }
            if let Some(q) = &opts.query {
                probe.insert("query".into(), literal(q));
            }
            for (key, value) in url.query_pairs() {
                match key.replace('_', "-").to_ascii_lowercase().as_str() {
                    "ssl-mode" | "sslmode" | "encrypt" => drop(tls.insert("mode".into(), literal(&value))),
                    "ssl-ca" | "trustservercertificateca" => drop(tls.insert("ca".into(), literal(&value))),
                    "ssl-cert" => drop(tls.insert("client_cert".into(), literal(&value))),
                    "ssl-key" => drop(tls.insert("client_key".into(), literal(&value))),
                    other => {
                        return Err(format!(
                            "unsupported URL parameter `{other}` (supported: ssl-mode, ssl-ca, ssl-cert, ssl-key)"
                        ));
                    }
                }
            }
        }
        "s3" => {
            probe.insert("kind".into(), literal("s3"));
            probe.insert("bucket".into(), literal(url.host_str().ok_or("the URL names no bucket")?));
            let prefix = url.path().trim_start_matches('/');
            if !prefix.is_empty() {
                probe.insert("prefix".into(), literal(prefix));
            }
            for (key, value) in url.query_pairs() {
                match key.as_ref() {
                    "region" => drop(probe.insert("region".into(), literal(&value))),
                    "endpoint" => drop(probe.insert("endpoint".into(), literal(&value))),
                    "profile" => {
                        let mut auth = Table::new();
                        auth.insert("type".into(), literal("profile"));
                        auth.insert("profile".into(), literal(&value));
                        probe.insert("auth".into(), Value::Table(auth));
                    }
                    other => {
                        return Err(format!(
                            "unsupported URL parameter `{other}` (supported: region, endpoint, profile)"
                        ));
                    }
                }
            }
            if !probe.contains_key("auth") {
                // The AWS CLI's order: environment variables when set, else the default chain.
                let source = if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() { "env" } else { "default_chain" };
                let mut auth = Table::new();
                auth.insert("type".into(), literal(source));
                probe.insert("auth".into(), Value::Table(auth));
            }
        }
        "sftp" => {
            probe.insert("kind".into(), literal("sftp"));
            insert_address(&url, &mut probe, &["USER"])?;
            probe.insert("path".into(), literal(&sftp_path(url.path())));
            let mut auth = Table::new();
            let password = password.or_else(|| std::env::var_os("SSHPASS").map(|_| reference("SSHPASS")));
            if let Some(key) = &opts.identity {
                auth.insert("type".into(), literal("key"));
                auth.insert("private_key".into(), path_string(key));
                if let Some(var) = &opts.passphrase_env {
                    auth.insert("passphrase".into(), reference(var));
                }
            } else if let Some(password) = password {
                auth.insert("type".into(), literal("password"));
                auth.insert("password".into(), password);
            } else if std::env::var_os("SSH_AUTH_SOCK").is_some() {
                auth.insert("type".into(), literal("agent"));
            } else {
                return Err("no SSH credentials: pass --identity KEY, set SSHPASS (or --password-env NAME), or run an ssh-agent".into());
            }
            probe.insert("auth".into(), Value::Table(auth));
            if let Some(fingerprint) = &opts.host_key {
                probe.insert("host_key".into(), literal(fingerprint));
            } else if let Some(path) = opts.known_hosts.clone().or_else(default_known_hosts) {
                probe.insert("known_hosts".into(), path_string(&path));
            }
            if !tls.is_empty() {
                return Err(
                    "TLS options (--ca, --client-cert, --pin-sha256, --insecure) do not apply to sftp://".into()
                );
            }
        }
        other => {
            return Err(format!(
                "check supports http://, https://, postgres://, mysql://, mssql://, s3:// and sftp:// URLs, not {other}://"
            ));
        }
    }
    if !tls.is_empty() {
        probe.insert("tls".into(), Value::Table(tls));
    }
    let mut doc = Table::new();
    doc.insert("probe".into(), Value::Array(vec![Value::Table(probe)]));
    let text = toml::to_string(&doc).map_err(|e| format!("internal error building the probe: {e}"))?;
    Ok(Synthesized { toml: text, url_password })
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
    fn a_postgres_url_becomes_a_probe_table_without_the_password() {
        let s = synthesize(
            "postgres://app:s3cret-in-url@db.example.com:6432/orders?sslmode=verify-full",
            &CheckOptions { name: "check".into(), ..CheckOptions::default() },
        )
        .unwrap();
        assert!(!s.toml.contains("s3cret-in-url"), "{}", s.toml);
        assert!(s.toml.contains("kind = \"postgres\""), "{}", s.toml);
        assert!(s.toml.contains("port = 6432"), "{}", s.toml);
        assert!(s.toml.contains("mode = \"verify-full\""), "{}", s.toml);
        assert!(s.toml.contains(&format!("password = \"${{{URL_PASSWORD_VAR}}}\"")), "{}", s.toml);
        assert_eq!(s.url_password.as_deref(), Some("s3cret-in-url"));
    }

    #[test]
    fn hints_name_flags_instead_of_config_lines() {
        assert_eq!(
            flag_words("verify it, then add to the probe: host_key = \"SHA256:abc\""),
            "verify it, then rerun with --host-key SHA256:abc"
        );
        assert_eq!(
            flag_words(
                "set tls.ca, or approve this exact certificate in the probe's tls table: pin_sha256 = [\"AB:CD\"]"
            ),
            "set tls.ca, or approve this exact certificate with --pin-sha256 AB:CD"
        );
        assert_eq!(flag_words("no lines here"), "no lines here");
    }

    #[test]
    fn sftp_paths_follow_curl() {
        assert_eq!(sftp_path(""), ".");
        assert_eq!(sftp_path("/~/"), ".");
        assert_eq!(sftp_path("/~/data/in"), "data/in");
        assert_eq!(sftp_path("/srv/data"), "/srv/data");
        assert_eq!(sftp_path("/"), "/");
        assert_eq!(sftp_path("/with%20space"), "/with space");
    }

    #[test]
    fn http_flags_become_auth_and_expectations() {
        let opts = CheckOptions {
            name: "check".into(),
            bearer_env: Some("TOKEN".into()),
            expect_status: vec![200, 204],
            ..CheckOptions::default()
        };
        let s = synthesize("https://api.example.com/health", &opts).unwrap();
        assert!(s.toml.contains("token = \"${TOKEN}\""), "{}", s.toml);
        assert!(s.toml.contains("status = [200, 204]"), "{}", s.toml);
        assert!(synthesize("ftp://x/", &opts).is_err());
    }
}
