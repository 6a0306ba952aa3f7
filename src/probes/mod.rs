//! One module per probe kind behind one small interface. A kind is a parse function (from
//! its config table to a [`Probe`]) registered in [`KINDS`]; adding a kind is one new file
//! and one line there.

pub mod azure_blob;
pub mod db;
pub mod db_token;
pub mod from_url;
pub mod ftp;
pub mod gcs;
pub mod http;
pub mod mssql;
pub mod mysql;
pub mod postgres;
pub mod s3;
pub mod sftp;
pub mod stored;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use url::Url;

use crate::config::TableReader;
use crate::connect::context::ProbeContext;
use crate::connect::net::BoxIo;
use crate::connect::tls::{Presented, TlsOptions};
use crate::model::error::{Failure, Stage};
use crate::probes::from_url::FromUrl;

pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>>;

/// A configured probe, ready to run any number of times.
pub trait Probe: Send + Sync {
    /// What is probed, for the report: never contains credentials.
    fn target(&self) -> String;
    /// The stages this probe goes through, in order; the ones it never reaches are
    /// reported as skipped so that columns and metrics stay stable.
    fn stages(&self) -> Vec<Stage>;
    /// One attempt. Stages are recorded through `ctx`; the runner owns the timeout.
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> ProbeFuture<'a>;
    /// This probe aimed at another server (`serve`'s blackbox-style `?module=…&target=…`),
    /// everything else kept: a URL for http and s3, `host[:port]` for every kind.
    fn retarget(&self, target: &str) -> Result<Arc<dyn Probe>, String>;
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
pub fn host_and_port(target: &str) -> Result<(String, Option<u16>), String> {
    let bad = || format!("`{target}` is not a host or host:port");
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match target.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, Some(port)),
            Some(_) => (target, None), // a bare IPv6 address
            None => (target, None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) {
        return Err(bad());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("`{p}` is not a port number")),
        },
    };
    Ok((host.to_string(), port))
}

/// A storage endpoint aimed elsewhere: `target` is an http(s) URL (without credentials), or
/// `host[:port]` keeping the current endpoint's scheme (https when there is none).
pub fn retarget_endpoint(current: Option<&str>, target: &str) -> Result<String, String> {
    if target.contains("://") {
        let url = url::Url::parse(target).map_err(|e| format!("`{target}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!("`{target}` is not an http:// or https:// endpoint"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the target URL must not carry credentials; the probe's `auth` supplies them".into());
        }
        return Ok(url.as_str().trim_end_matches('/').to_string());
    }
    let (host, port) = host_and_port(target)?;
    let scheme = match current {
        Some(e) if e.starts_with("http:") => "http",
        _ => "https",
    };
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    Ok(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// The stages of one request to a storage API at `endpoint`: `tls` for https, `token`
/// when credentials are fetched first.
pub fn endpoint_stages(endpoint: &str, token: bool) -> Vec<Stage> {
    let mut stages = vec![Stage::Dns, Stage::Connect];
    if endpoint.starts_with("https:") {
        stages.push(Stage::Tls);
    }
    if token {
        stages.push(Stage::Token);
    }
    stages.extend([Stage::Auth, Stage::Check]);
    stages
}

/// Reads a probe's kind-specific keys. Errors go to the reader; `None` means there were some.
pub type ParseFn = fn(&TableReader<'_, '_>) -> Option<Arc<dyn Probe>>;

/// What `inspect` found: the chain and TLS version, or `None` when the server does not
/// offer TLS.
pub type InspectFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<Presented>, Failure>> + Send + 'a>>;

/// The protocol's own way to TLS, up to (not including) the login: for `inspect`.
pub type TlsUpgrade = for<'a> fn(&'a ProbeContext, BoxIo, &'a TlsOptions, &'a str) -> InspectFuture<'a>;

/// How `inspect` reaches what a kind's server presents.
#[derive(Clone, Copy)]
pub enum InspectHow {
    /// Connect and upgrade to TLS the protocol's way.
    Tls(TlsUpgrade),
    /// Every SSH host key, one key exchange per key type.
    SshHostKeys,
    /// Requests go to another URL (an object store's endpoint), inspected in its place.
    Endpoint(fn(&Url) -> Result<Url, String>),
}

/// `inspect`'s view of a kind.
pub struct Inspect {
    pub schemes: &'static [&'static str],
    /// How the report names the protocol (`https`, `postgres`, `ssh`).
    pub label: &'static str,
    pub how: InspectHow,
    /// Schemes whose connections start with TLS before the protocol says anything (implicit
    /// FTPS), with their own default port: inspected with a bare handshake.
    pub tls_first: &'static [(&'static str, u16)],
}

/// `check`'s view of a kind: the URL schemes that become its probe, and how.
pub struct CheckUrl {
    pub schemes: &'static [&'static str],
    pub build: FromUrl,
}

/// A probe kind: everything config, `check`, `inspect`, the docs and the error messages
/// know about it.
pub struct Kind {
    pub name: &'static str,
    pub description: &'static str,
    /// The port when a probe names none; `None` for kinds addressed by URL.
    pub default_port: Option<u16>,
    pub parse: ParseFn,
    pub check: Option<CheckUrl>,
    pub inspect: Option<Inspect>,
}

/// Every probe kind authprobe knows: adding a kind is one file in `probes/` and one entry
/// here.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "http",
        description: "an HTTP(S) API: one request with bearer, basic, API key, OAuth2, cloud identity, SigV4 or Kerberos (Negotiate) credentials",
        default_port: None,
        parse: http::parse,
        check: Some(CheckUrl { schemes: &["http", "https"], build: http::from_url }),
        inspect: Some(Inspect {
            schemes: &["https"],
            label: "https",
            how: InspectHow::Tls(http::inspect_tls),
            tls_first: &[],
        }),
    },
    Kind {
        name: "postgres",
        description: "a PostgreSQL login (password, SCRAM, client certificate, RDS IAM, Kerberos) and a check query",
        default_port: Some(postgres::DEFAULT_PORT),
        parse: postgres::parse,
        check: Some(CheckUrl { schemes: &["postgres", "postgresql"], build: postgres::from_url }),
        inspect: Some(Inspect {
            schemes: &["postgres", "postgresql"],
            label: "postgres",
            how: InspectHow::Tls(postgres::inspect_tls),
            tls_first: &[],
        }),
    },
    Kind {
        name: "mysql",
        description: "a MySQL or MariaDB login (every common plugin, client certificate, RDS IAM, MariaDB Kerberos) and a check query",
        default_port: Some(mysql::DEFAULT_PORT),
        parse: mysql::parse,
        check: Some(CheckUrl { schemes: &["mysql", "mariadb"], build: mysql::from_url }),
        inspect: Some(Inspect {
            schemes: &["mysql", "mariadb"],
            label: "mysql",
            how: InspectHow::Tls(mysql::inspect_tls),
            tls_first: &[],
        }),
    },
    Kind {
        name: "mssql",
        description: "a SQL Server login (SQL authentication over TDS 7.4, or TDS 8 strict) and a check query",
        default_port: Some(mssql::DEFAULT_PORT),
        parse: mssql::parse,
        check: Some(CheckUrl { schemes: &["mssql", "sqlserver"], build: mssql::from_url }),
        inspect: Some(Inspect {
            schemes: &["mssql", "sqlserver"],
            label: "mssql",
            how: InspectHow::Tls(mssql::inspect_tls),
            tls_first: &[],
        }),
    },
    Kind {
        name: "s3",
        description: "an S3 bucket (AWS or compatible): list one object with any AWS credential source",
        default_port: None,
        parse: s3::parse,
        check: Some(CheckUrl { schemes: &["s3"], build: s3::from_url }),
        inspect: Some(Inspect {
            schemes: &["s3"],
            label: "https",
            how: InspectHow::Endpoint(s3::inspect_endpoint),
            tls_first: &[],
        }),
    },
    Kind {
        name: "sftp",
        description: "an SFTP login (password, key, agent, Kerberos) with the host key checked, and a directory listing",
        default_port: Some(crate::connect::ssh::DEFAULT_PORT),
        parse: sftp::parse,
        check: Some(CheckUrl { schemes: &["sftp"], build: sftp::from_url }),
        inspect: Some(Inspect {
            schemes: &["sftp", "ssh"],
            label: "ssh",
            how: InspectHow::SshHostKeys,
            tls_first: &[],
        }),
    },
    Kind {
        name: "ftp",
        description: "an FTP or FTPS login (explicit AUTH TLS, implicit, or plain with consent) and a directory listing",
        default_port: Some(ftp::DEFAULT_PORT),
        parse: ftp::parse,
        check: Some(CheckUrl { schemes: &["ftp", "ftps"], build: ftp::from_url }),
        inspect: Some(Inspect {
            schemes: &["ftp", "ftps"],
            label: "ftp",
            how: InspectHow::Tls(ftp::inspect_tls),
            tls_first: &[("ftps", ftp::IMPLICIT_PORT)],
        }),
    },
    Kind {
        name: "azure_blob",
        description: "an Azure Blob container: list with a SAS, a shared key or an Entra identity",
        default_port: None,
        parse: azure_blob::parse,
        check: None,
        inspect: None,
    },
    Kind {
        name: "gcs",
        description: "a Google Cloud Storage bucket: list with a service account, the metadata server or HMAC keys",
        default_port: None,
        parse: gcs::parse,
        check: None,
        inspect: None,
    },
];

/// The kind `check` builds for a URL scheme.
pub fn kind_for_check(scheme: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.check.as_ref().is_some_and(|c| c.schemes.contains(&scheme)))
}

/// The kind `inspect` uses for a URL scheme.
pub fn kind_for_inspect(scheme: &str) -> Option<(&'static Kind, &'static Inspect)> {
    KINDS.iter().find_map(|k| k.inspect.as_ref().filter(|i| i.schemes.contains(&scheme)).map(|i| (k, i)))
}

/// `a://, b:// and c://`, for messages.
pub fn scheme_list(schemes: impl Iterator<Item = &'static str>) -> String {
    let all: Vec<String> = schemes.map(|s| format!("{s}://")).collect();
    match all.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

pub fn find_kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}
