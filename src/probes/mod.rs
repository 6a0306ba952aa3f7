//! One module per probe kind behind one small interface. A kind is a parse function (from
//! its config table to a [`Probe`]) registered in [`KINDS`]; adding a kind is one new file
//! and one line there.

pub mod azure_blob;
pub mod db;
pub mod gcs;
pub mod http;
pub mod mssql;
pub mod mysql;
pub mod postgres;
pub mod s3;
pub mod sftp;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::TableReader;
use crate::connect::context::ProbeContext;
use crate::model::error::{Failure, Stage};

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

pub struct Kind {
    pub name: &'static str,
    pub parse: ParseFn,
}

/// Every probe kind authprobe knows.
pub const KINDS: &[Kind] = &[
    Kind { name: "http", parse: http::parse },
    Kind { name: "postgres", parse: postgres::parse },
    Kind { name: "mysql", parse: mysql::parse },
    Kind { name: "mssql", parse: mssql::parse },
    Kind { name: "s3", parse: s3::parse },
    Kind { name: "sftp", parse: sftp::parse },
    Kind { name: "azure_blob", parse: azure_blob::parse },
    Kind { name: "gcs", parse: gcs::parse },
];

pub fn find_kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}
