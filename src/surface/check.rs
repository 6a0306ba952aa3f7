//! `authprobe check URL`: one ad-hoc probe without a config file. The URL and flags are
//! turned into the same probe table a config file holds, built as a document in memory
//! (no config text), and go through the same reader and checks, so `check` and `run`
//! cannot drift apart. Secrets are never taken from the command line: they come from
//! environment variables named by flags or by convention (PGPASSWORD), and a password
//! written into the URL is accepted with a warning, handed to the reader in memory.

use url::Url;

use crate::config::document::{self, Item, Table, Value};
use crate::connect::proxy::{EnvProxies, ProxyPolicy, ProxySource, Setting};
use crate::probes::from_url::{literal, path_string, reference};
use crate::probes::{self, from_url::UrlProbe};

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
pub use crate::probes::from_url::UrlOptions as CheckOptions;

/// A probe config synthesized from a URL: the document a config file would hold.
pub struct Synthesized {
    pub document: Item<'static>,
    /// Whether the URL carries a password (to warn about).
    pub url_password: bool,
}

/// A proxy for this command, over the environment's (HTTPS_PROXY, ALL_PROXY, NO_PROXY).
#[derive(clap::Args, Debug, Default)]
pub struct ProxyArgs {
    /// Connect through this proxy: http://[user:pass@]host:port, socks5://… or socks5h://… (the proxy resolves names).
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy")]
    pub proxy: Option<String>,
    /// Connect directly, whatever HTTPS_PROXY, HTTP_PROXY or ALL_PROXY say.
    #[arg(long)]
    pub no_proxy: bool,
}

impl ProxyArgs {
    /// The setting the flags make, if any.
    pub fn setting(&self) -> Result<Option<Setting>, String> {
        if self.no_proxy {
            return Ok(Some(Setting::Direct));
        }
        let Some(raw) = &self.proxy else { return Ok(None) };
        Setting::parse(raw).map(Some).map_err(|why| format!("--proxy: {why}"))
    }

    /// Whether the --proxy URL carries a password (shell history, process lists).
    pub fn has_password(&self) -> bool {
        matches!(self.setting(), Ok(Some(Setting::Through(url))) if url.password.is_some())
    }

    /// The policy for one command: the flags over the process environment.
    pub fn policy(&self) -> Result<ProxyPolicy, String> {
        Ok(ProxyPolicy {
            probe: self.setting()?.map(|s| (s, ProxySource::Flag)),
            defaults: None,
            env: std::sync::Arc::new(EnvProxies::process()),
        })
    }
}

/// Builds the `[[probe]]` table for a URL, or says why it cannot.
pub fn synthesize(raw_url: &str, opts: &CheckOptions) -> Result<Synthesized, String> {
    let url = parse_target_url(raw_url)?;
    // Registered for scrubbing as it is taken, used or not.
    let url_password =
        url.password().map(|p| document::given_secret(&percent_encoding::percent_decode_str(p).decode_utf8_lossy()));
    let mut probe = Table::new();
    probe.insert("name", literal(&opts.name));
    let mut tls = Table::new();
    if let Some(ca) = &opts.ca {
        tls.insert("ca", path_string(ca));
    }
    if let (Some(cert), Some(key)) = (&opts.client_cert, &opts.client_key) {
        tls.insert("client_cert", path_string(cert));
        tls.insert("client_key", path_string(key));
    }
    if let Some(name) = &opts.server_name {
        tls.insert("server_name", literal(name));
    }
    if !opts.pin_sha256.is_empty() {
        tls.insert("pin_sha256", document::array(opts.pin_sha256.iter().map(|p| literal(p))));
    }
    if opts.insecure {
        tls.insert("insecure", Value::Boolean(true));
    }
    if opts.allow_unverified_password {
        probe.insert("allow_unverified_password", Value::Boolean(true));
    }
    let has_url_password = url_password.is_some();
    let password = match (&opts.password_env, url_password) {
        (Some(var), _) => Some(reference(var)),
        (None, given) => given,
    };
    let Some(kind) = probes::kind_for_check(url.scheme()) else {
        let schemes = probes::KINDS.iter().filter_map(|k| k.check.as_ref()).flat_map(|c| c.schemes.iter().copied());
        return Err(format!("check supports {} URLs, not {}://", probes::scheme_list(schemes), url.scheme()));
    };
    probe.insert("kind", literal(kind.name));
    if (opts.kerberos || opts.keytab.is_some()) && !matches!(kind.name, "http" | "postgres" | "mysql" | "sftp") {
        return Err(format!(
            "--kerberos and --keytab work with http(s)://, postgres://, mysql:// (MariaDB) and sftp:// URLs, not {}://",
            url.scheme()
        ));
    }
    if let Some(mode) = &opts.tls
        && kind.name != "ftp"
    {
        return Err(format!(
            "--tls {mode} is for ftp:// URLs; {}:// takes its TLS mode in the URL (sslmode, ssl-mode, encrypt) or not at all",
            url.scheme()
        ));
    }
    let mut built = UrlProbe { probe, tls, password };
    if let Some(check) = &kind.check {
        (check.build)(&url, opts, &mut built)?;
    }
    let UrlProbe { mut probe, tls, .. } = built;
    if !tls.is_empty() {
        probe.insert("tls", Value::Table(tls));
    }
    let mut root = Table::new();
    root.insert("probe", document::array([Value::Table(probe)]));
    Ok(Synthesized { document: Item::new(Value::Table(root)), url_password: has_url_password })
}

/// What on the command line set a key of the synthesized probe: the flag, the variable
/// the scheme reads by convention, or the URL part. `check` has no config file, so its
/// errors name these instead of a position in text the user never wrote.
pub fn origin_of(key: &str, opts: &CheckOptions, unset_var: Option<&str>) -> String {
    let flag_for_var = |var: &str| -> Option<String> {
        let named = |flag: &str, v: &Option<String>| (v.as_deref() == Some(var)).then(|| format!("{flag} {var}"));
        named("--bearer-env", &opts.bearer_env)
            .or_else(|| named("--password-env", &opts.password_env))
            .or_else(|| named("--passphrase-env", &opts.passphrase_env))
    };
    if let Some(header) = key.strip_prefix("headers.") {
        return format!("-H '{header}: …'");
    }
    if let Some(var) = unset_var {
        return match flag_for_var(var) {
            Some(flag) => flag,
            None => format!("{var} (the scheme's password variable; or pass --password-env NAME)"),
        };
    }
    let head = key.split('.').next().unwrap_or(key);
    let given = |flag: &str, set: bool, url_part: &str| if set { flag.to_string() } else { url_part.to_string() };
    match key {
        "tls.ca" => given("--ca", opts.ca.is_some(), "the URL's CA parameter (sslrootcert, ssl-ca)"),
        "tls.client_cert" | "tls.client_key" => given(
            "--client-cert/--client-key",
            opts.client_cert.is_some(),
            "the URL's client certificate parameters (sslcert/sslkey, ssl-cert/ssl-key)",
        ),
        "tls.pin_sha256" => "--pin-sha256".into(),
        "tls.server_name" => "--server-name".into(),
        "tls.mode" => "the URL's TLS mode parameter (sslmode, ssl-mode, encrypt)".into(),
        "auth.token" => "--bearer-env".into(),
        "auth.username" => "--basic-user".into(),
        "auth.private_key" => "--identity (-i)".into(),
        "auth.passphrase" => "--passphrase-env".into(),
        "auth.keytab" => "--keytab".into(),
        "auth.principal" => "--principal".into(),
        "password" | "auth.password" => match &opts.password_env {
            Some(var) => format!("--password-env {var}"),
            None => "the password".into(),
        },
        "host_key" => "--host-key".into(),
        "known_hosts" => "--known-hosts".into(),
        "query" => "--query".into(),
        _ if head == "expect" => "--expect-status/--expect-body".into(),
        _ => "the URL".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::document::Text;

    fn probe(s: &Synthesized) -> &Table<'static> {
        let probes = s.document.as_table().and_then(|root| root.get("probe")).and_then(|p| p.as_array()).unwrap();
        probes[0].as_table().unwrap()
    }

    #[test]
    fn a_postgres_url_becomes_a_probe_table_with_the_password_given_in_memory() {
        let s = synthesize(
            "postgres://app:s3cret-in-url@db.example.com:6432/orders?sslmode=verify-full",
            &CheckOptions { name: "check".into(), query: Some("SELECT '${HOME}'".into()), ..CheckOptions::default() },
        )
        .unwrap();
        assert!(s.url_password);
        let shown = format!("{:?}", s.document);
        assert!(!shown.contains("s3cret-in-url"), "{shown}");
        let probe = probe(&s);
        assert_eq!(probe.get("kind").and_then(|k| k.as_str()), Some("postgres"));
        assert!(matches!(probe.get("port").unwrap().value, Value::Integer(6432)));
        let tls = probe.get("tls").and_then(|t| t.as_table()).unwrap();
        assert_eq!(tls.get("mode").and_then(|m| m.as_str()), Some("verify-full"));
        assert!(matches!(&probe.get("password").unwrap().value, Value::Text(Text::Given(_))));
        // A flag's value is text, never a reference.
        assert!(matches!(&probe.get("query").unwrap().value, Value::Text(Text::Literal(q)) if q == "SELECT '${HOME}'"));
    }

    #[test]
    fn http_flags_become_auth_and_expectations() {
        let opts = CheckOptions {
            name: "check".into(),
            bearer_env: Some("TOKEN".into()),
            expect_status: vec!["200".into(), "2xx".into()],
            ..CheckOptions::default()
        };
        let s = synthesize("https://api.example.com/health", &opts).unwrap();
        let probe = probe(&s);
        let auth = probe.get("auth").and_then(|a| a.as_table()).unwrap();
        assert!(matches!(&auth.get("token").unwrap().value, Value::Text(Text::Written(t)) if t == "${TOKEN}"));
        let expect = probe.get("expect").and_then(|e| e.as_table()).unwrap();
        let status = expect.get("status").and_then(|s| s.as_array()).unwrap();
        assert!(matches!(status[0].value, Value::Integer(200)));
        assert_eq!(status[1].as_str(), Some("2xx"));
        assert!(synthesize("gopher://x/", &opts).is_err());
    }

    #[test]
    fn errors_name_the_flag_or_url_part_that_set_the_key() {
        let opts = CheckOptions {
            bearer_env: Some("NOT_SET_VAR".into()),
            ca: Some("ca.pem".into()),
            ..CheckOptions::default()
        };
        assert_eq!(origin_of("auth.token", &opts, Some("NOT_SET_VAR")), "--bearer-env NOT_SET_VAR");
        assert_eq!(origin_of("tls.ca", &opts, None), "--ca");
        assert!(origin_of("password", &opts, Some("PGPASSWORD")).starts_with("PGPASSWORD"));
        assert_eq!(origin_of("headers.X-Api-Key", &opts, None), "-H 'X-Api-Key: …'");
        assert_eq!(origin_of("host", &opts, None), "the URL");
    }
}
