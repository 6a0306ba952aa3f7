//! `check https://…`: the URL and the check flags as an `http` probe's table; and what
//! `inspect https://…` does (the TLS handshake with the ALPN a probe offers).

use crate::config::document::{Table, Value};
use url::Url;

use crate::connect::context::ProbeContext;
use crate::connect::net::BoxIo;
use crate::connect::tls::{self, TlsOptions};
use crate::probes::InspectFuture;
use crate::probes::from_url::{UrlOptions, UrlProbe, literal, reference};

/// `check https://…`: the URL, bearer or basic auth, headers and expectations from the flags.
pub fn from_url(url: &Url, opts: &UrlOptions, out: &mut UrlProbe) -> Result<(), String> {
    let UrlProbe { probe, password, .. } = out;
    let mut shown = url.clone();
    let url_user = (!url.username().is_empty()).then(|| url.username().to_string());
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    probe.insert("url", literal(shown.as_str()));
    let mut auth = Table::new();
    if let Some(kerberos) = crate::probes::from_url::kerberos_auth(opts) {
        auth = kerberos;
    } else if let Some(var) = &opts.bearer_env {
        auth.insert("type", literal("bearer"));
        auth.insert("token", reference(var));
    } else if let Some(user) = opts.basic_user.clone().or(url_user) {
        let Some(password) = password.take() else {
            return Err("basic auth needs a password: name its environment variable with --password-env".into());
        };
        auth.insert("type", literal("basic"));
        auth.insert("username", literal(&user));
        auth.insert("password", password);
    }
    if !auth.is_empty() {
        probe.insert("auth", Value::Table(auth));
    }
    if !opts.headers.is_empty() {
        let mut headers = Table::new();
        for h in &opts.headers {
            let (k, v) = h.split_once(':').ok_or_else(|| format!("header `{h}` is not `Name: value`"))?;
            // Not escaped: `${VAR}` and `${file:…}` expand as in the config, so that a key
            // never has to be written on the command line (where `ps` shows it).
            headers.insert(k.trim(), crate::config::document::written(v.trim()));
        }
        probe.insert("headers", Value::Table(headers));
    }
    let mut expect = Table::new();
    if !opts.expect_status.is_empty() {
        expect.insert(
            "status",
            crate::config::document::array(
                opts.expect_status.iter().map(|s| s.parse::<i64>().map(Value::Integer).unwrap_or_else(|_| literal(s))),
            ),
        );
    }
    if let Some(body) = &opts.expect_body {
        expect.insert("body_contains", literal(body));
    }
    if !expect.is_empty() {
        probe.insert("expect", Value::Table(expect));
    }
    Ok(())
}

/// `inspect https://…`: the handshake a probe makes, with the ALPN it offers.
pub fn inspect_tls<'a>(ctx: &'a ProbeContext, io: BoxIo, opts: &'a TlsOptions, host: &'a str) -> InspectFuture<'a> {
    Box::pin(async move {
        let hs = tls::handshake(ctx, &ctx.shared.trust, io, opts, host, &[b"h2", b"http/1.1"], false).await?;
        Ok(Some(hs.presented()))
    })
}
