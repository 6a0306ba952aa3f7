//! One FTP conversation, stage by stage. Every reply is read through `ftp_wire::Control`
//! (budgets per line, reply and listing); the password is sent only under the release rule;
//! the data connection goes to the control connection's peer (never to an address the
//! server names) and resumes its TLS session.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use ftp_wire::{Control, ControlError, Limits, Reply, parse_epsv, parse_pasv};
use rustls::ClientConfig;
use tokio::io::AsyncReadExt;

use super::replies::{self, Seen, said};
use super::{FtpProbe, FtpTls, is_anonymous};
use crate::advice;
use crate::connect::context::ProbeContext;
use crate::connect::dial::{self, Route};
use crate::connect::net::{BoxIo, Record};
use crate::connect::proxy::Traffic;
use crate::connect::tls::{self, Handshake, Recorder, TlsOptions};
use crate::model::advice::Fix;
use crate::model::error::{ErrorClass, Failure, Stage};
use crate::model::release::Release;
use crate::probes::db::unverified_peer_refusal;

/// The first batch of a listing: what is read before the data connection is dropped.
const LISTING_BUDGET: usize = 64 * 1024;

type Ctl = Control<BoxIo>;

/// The control connection's TLS: the configuration (its session store resumes the session
/// on the data connection) and what the handshake recorded.
struct Session {
    config: Arc<ClientConfig>,
    recorder: Recorder,
}

pub async fn run(probe: &FtpProbe, ctx: &ProbeContext) -> Result<(), Failure> {
    let opts = &probe.tls;
    let (mut control, route, session) = match probe.mode {
        FtpTls::Implicit => {
            let (io, route) =
                dial::connect_then(ctx, &probe.host, probe.port, Traffic::Other, Record::Stages, |io| async { Ok(io) })
                    .await?;
            let (control, session) = ctx
                .stage(Stage::Tls, async {
                    let (hs, session) = handshake(ctx, io, opts, &probe.host, true).await?;
                    let mut control = Control::new(Box::new(hs.stream) as BoxIo, Limits::default());
                    greet(ctx, &mut control, Some(&session.recorder), opts).await?;
                    Ok((control, session))
                })
                .await?;
            (control, route, Some(session))
        }
        FtpTls::Explicit | FtpTls::Disable => {
            let (control, route) =
                dial::connect_then(ctx, &probe.host, probe.port, Traffic::Other, Record::Stages, |io| async {
                    let mut control = Control::new(io, Limits::default());
                    greet(ctx, &mut control, None, opts).await?;
                    Ok(control)
                })
                .await?;
            if probe.mode == FtpTls::Disable {
                (control, route, None)
            } else {
                let (hs, session) = ctx.stage(Stage::Tls, auth_tls_on(ctx, control, opts, &probe.host, true)).await?;
                (Control::new(Box::new(hs.stream) as BoxIo, Limits::default()), route, Some(session))
            }
        }
    };
    let recorder = session.as_ref().map(|s| &s.recorder);
    ctx.stage(Stage::Auth, login(probe, ctx, &mut control, recorder)).await?;
    let result = ctx.stage(Stage::Check, list(probe, ctx, &mut control, session.as_ref(), &route)).await;
    // Courtesy only: the answer is known, and waiting for 221 costs a round trip.
    let _ = control.send("QUIT", None).await;
    result
}

/// `inspect ftp://…`: the greeting, AUTH TLS and the handshake, not reported.
pub async fn auth_tls(
    ctx: &ProbeContext,
    io: BoxIo,
    opts: &TlsOptions,
    host: &str,
) -> Result<Handshake<BoxIo>, Failure> {
    let mut control = Control::new(io, Limits::default());
    greet(ctx, &mut control, None, opts).await?;
    Ok(auth_tls_on(ctx, control, opts, host, false).await?.0)
}

/// AUTH TLS on a greeted control connection, then the handshake on its stream.
async fn auth_tls_on(
    ctx: &ProbeContext,
    mut control: Ctl,
    opts: &TlsOptions,
    host: &str,
    report: bool,
) -> Result<(Handshake<BoxIo>, Session), Failure> {
    let reply = control
        .ask("AUTH", Some("TLS"))
        .await
        .map_err(|e| replies::control_failure(e, None, opts, "asking for TLS"))?;
    if reply.code != 234 {
        return Err(replies::auth_tls_refused(&reply));
    }
    if control.has_unread() {
        // Bytes the server sent before TLS, after agreeing to it, would be read as if they
        // had come through TLS: a man in the middle's injected replies.
        return Err(Failure::new(
            ErrorClass::Protocol,
            "the server sent more after agreeing to AUTH TLS; authprobe does not read unprotected bytes as protected ones",
        )
        .with_hint("something between here and the server injects FTP replies: check the network path"));
    }
    handshake(ctx, control.into_stream(), opts, host, report).await
}

async fn handshake(
    ctx: &ProbeContext,
    io: BoxIo,
    opts: &TlsOptions,
    host: &str,
    report: bool,
) -> Result<(Handshake<BoxIo>, Session), Failure> {
    let (config, recorder) = tls::client_config(opts, &ctx.shared.trust, &[], ctx.dialed().as_ref())?;
    let hs = tls::handshake_with(ctx, config.clone(), recorder, io, opts, host, report).await?;
    let recorder = hs.recorder.clone();
    Ok((hs, Session { config, recorder }))
}

/// Reads the greeting: 220, after any 120 ("ready in n minutes"). A server that sends
/// nothing at all for half the probe's time is most often implicit FTPS, waiting for TLS.
async fn greet(
    ctx: &ProbeContext,
    control: &mut Ctl,
    tls: Option<&Recorder>,
    opts: &TlsOptions,
) -> Result<Reply, Failure> {
    let patience = ctx.timeout / 2;
    for _ in 0..4 {
        let reply = match tokio::time::timeout(patience, control.reply()).await {
            Ok(reply) => reply.map_err(|e| replies::control_failure(e, tls, opts, "reading the greeting"))?,
            Err(_) => {
                let hint = match tls {
                    None => advice![
                        "the server accepted the connection but says nothing: if this port is implicit FTPS (990), use ",
                        Fix::FtpTls("implicit")
                    ],
                    Some(_) => {
                        "the server completed TLS but sends no FTP greeting: check that this port is FTPS".into()
                    }
                };
                return Err(Failure::new(
                    ErrorClass::Timeout,
                    format!("no FTP greeting within {}", humantime::format_duration(patience)),
                )
                .with_hint(hint));
            }
        };
        match reply.code {
            220 => {
                ctx.diagnostic(format!("ftp: greeting {}", said(&reply)));
                return Ok(reply);
            }
            120 => continue,
            421 => return Err(replies::turned_away(&reply)),
            _ => return Err(replies::unexpected(&reply, "reading the greeting")),
        }
    }
    Err(Failure::new(
        ErrorClass::UnexpectedResponse,
        "the server kept saying it will be ready later (120) instead of greeting",
    ))
}

async fn login(probe: &FtpProbe, ctx: &ProbeContext, control: &mut Ctl, tls: Option<&Recorder>) -> Result<(), Failure> {
    let opts = &probe.tls;
    let user = &probe.user;
    let anonymous = is_anonymous(user);
    let failed = |e: ControlError| replies::control_failure(e, tls, opts, "during the login");
    let reply = control.ask("USER", Some(user)).await.map_err(failed)?;
    match reply.code {
        230 => {
            ctx.detail(format!("ftp: `{user}` logged in without a password"));
            return Ok(());
        }
        331 => {}
        332 => return Err(replies::account_asked(&reply)),
        _ => return Err(replies::user_refused(&reply, user, anonymous)),
    }
    // A configured password is released under the rule even for an anonymous login: it was
    // given as a secret.
    let proof;
    let password = match &probe.password {
        Some(secret) => {
            proof = release(ctx, tls)?;
            secret.release(&proof)
        }
        // The convention for anonymous logins: an e-mail address, no secret.
        None => "anonymous@",
    };
    let reply = control.ask("PASS", Some(password)).await.map_err(failed)?;
    match reply.code {
        230 | 202 => {
            ctx.detail(format!("ftp: logged in as `{user}`"));
            Ok(())
        }
        332 => Err(replies::account_asked(&reply)),
        _ => Err(replies::password_refused(&reply, user, anonymous)),
    }
}

/// The credential release rule: the password goes only inside TLS whose server was
/// verified (CA, pin or approval), unless the probe allows otherwise.
fn release(ctx: &ProbeContext, tls: Option<&Recorder>) -> Result<Release, Failure> {
    if let Some(proof) = tls.and_then(Recorder::release_proof) {
        return Ok(proof);
    }
    if let Some(consent) = ctx.consent() {
        let over = if tls.is_some() { "TLS whose certificate is not verified" } else { "plain FTP" };
        ctx.detail(format!("release: the password was sent over {over} (allow_unverified_password = true)"));
        return Ok(consent);
    }
    match tls {
        Some(_) => Err(unverified_peer_refusal("the server asked for the password", tls)),
        None => Err(Failure::new(
            ErrorClass::TlsHandshake,
            "the server asked for the password over plain FTP, where anyone on the path can read it: authprobe did not send it",
        )
        .with_hint(advice![
            "use FTPS: ",
            Fix::FtpTls("explicit"),
            " or ",
            Fix::FtpTls("implicit"),
            "; or, to send it over plain FTP anyway, ",
            Fix::AllowUnverifiedPassword
        ])),
    }
}

async fn list(
    probe: &FtpProbe,
    ctx: &ProbeContext,
    control: &mut Ctl,
    session: Option<&Session>,
    route: &Route,
) -> Result<(), Failure> {
    let opts = &probe.tls;
    let recorder = session.map(|s| &s.recorder);
    let failed = |doing: &'static str| move |e: ControlError| replies::control_failure(e, recorder, opts, doing);
    if session.is_some() {
        let reply = control.ask("PBSZ", Some("0")).await.map_err(failed("protecting the data channel"))?;
        if reply.kind() != 2 {
            return Err(replies::protection_refused(&reply, "PBSZ 0"));
        }
        let reply = control.ask("PROT", Some("P")).await.map_err(failed("protecting the data channel"))?;
        if reply.kind() != 2 {
            return Err(replies::protection_refused(&reply, "PROT P"));
        }
    }
    let path = &probe.path;
    if path != "." {
        let reply = control.ask("CWD", Some(path)).await.map_err(failed("changing to the directory"))?;
        if reply.kind() != 2 {
            if reply.kind() != 5 && reply.kind() != 4 {
                return Err(replies::unexpected(&reply, &format!("changing to `{path}`")));
            }
            // One more round trip, only on failure: whether the entry exists tells a
            // missing directory from a forbidden one where the server's text does not.
            let seen = match control.ask("STAT", Some(path)).await {
                Ok(status) => replies::seen_in_status(&status),
                Err(_) => Seen::Unknown,
            };
            return Err(replies::path_refused(&reply, &probe.user, path, seen));
        }
    }
    let data = open_data(probe, ctx, control, recorder, route).await?;
    control.send("LIST", None).await.map_err(failed("asking for the listing"))?;
    let protect = async {
        match session {
            Some(s) => {
                let name = opts.verify_name(&probe.host)?;
                let stream = tokio_rustls::TlsConnector::from(s.config.clone())
                    .connect(name, data)
                    .await
                    .map_err(|e| Failure::new(ErrorClass::TlsHandshake, e.to_string()))?;
                Ok::<BoxIo, Failure>(Box::new(stream))
            }
            None => Ok(data),
        }
    };
    // The server answers 150 and then accepts TLS on the data connection (or the other way
    // round): both are awaited together, and a refusal ends the wait.
    let (preliminary, data) = {
        let mut reply = pin!(control.reply());
        let mut protect = pin!(protect);
        let mut preliminary: Option<Result<Reply, ControlError>> = None;
        let mut data: Option<Result<BoxIo, Failure>> = None;
        loop {
            tokio::select! {
                r = &mut reply, if preliminary.is_none() => {
                    let refused = !matches!(&r, Ok(r) if r.kind() == 1);
                    preliminary = Some(r);
                    if refused { break; }
                }
                d = &mut protect, if data.is_none() => { data = Some(d); }
            }
            if preliminary.is_some() && data.is_some() {
                break;
            }
        }
        (preliminary, data)
    };
    let preliminary = match preliminary {
        Some(reply) => reply.map_err(failed("asking for the listing"))?,
        None => return Err(Failure::internal("the listing's reply was never read")),
    };
    if preliminary.kind() != 1 {
        return Err(replies::listing_refused(&preliminary, &probe.user, path));
    }
    let mut data = match data {
        Some(Ok(data)) => data,
        Some(Err(failure)) => {
            let after = tokio::time::timeout(Duration::from_secs(2), control.reply()).await.ok().and_then(Result::ok);
            return Err(replies::data_tls_failed(&failure.message, after.as_ref()));
        }
        None => return Err(Failure::internal("the data connection was never opened")),
    };
    let (bytes, ended) = read_listing(&mut data).await?;
    drop(data);
    let entries = String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| {
            let name = l.split_whitespace().last().unwrap_or("");
            !l.trim().is_empty() && !l.starts_with("total ") && name != "." && name != ".."
        })
        .count();
    if !ended {
        ctx.detail(format!(
            "ftp: {path} lists (first {} KiB: {entries} entries; the rest was not read)",
            LISTING_BUDGET / 1024
        ));
        return Ok(());
    }
    let done = control.reply().await.map_err(failed("finishing the listing"))?;
    if done.kind() != 2 {
        return Err(replies::listing_refused(&done, &probe.user, path));
    }
    if replies::completed_without_listing(&done) {
        return Err(Failure::new(
            ErrorClass::PermissionDenied,
            format!("`{}` may enter `{path}` but not read it: {}", probe.user, said(&done)),
        )
        .with_hint("the credentials work: ask the server's owner to let this account read the directory"));
    }
    let shown = match entries {
        0 => "empty".to_string(),
        1 => "1 entry".to_string(),
        n => format!("{n} entries"),
    };
    ctx.detail(format!("ftp: {path} lists ({shown})"));
    Ok(())
}

/// EPSV, else PASV; then a connection to the control connection's peer at the port named.
async fn open_data(
    probe: &FtpProbe,
    ctx: &ProbeContext,
    control: &mut Ctl,
    recorder: Option<&Recorder>,
    route: &Route,
) -> Result<BoxIo, Failure> {
    let failed = |e: ControlError| replies::control_failure(e, recorder, &probe.tls, "opening a data connection");
    let reply = control.ask("EPSV", None).await.map_err(failed)?;
    let peer_ip = match route {
        Route::Direct(addr) => Some(addr.ip()),
        _ => None,
    };
    let port = if reply.code == 229 {
        parse_epsv(&reply.text()).map_err(|e| Failure::new(ErrorClass::Protocol, format!("EPSV: {e}")))?
    } else if matches!(reply.code, 500 | 501 | 502 | 504) {
        let reply = control.ask("PASV", None).await.map_err(failed)?;
        if reply.code != 227 {
            return Err(replies::unexpected(&reply, "asking for a passive data connection"));
        }
        let (named, port) =
            parse_pasv(&reply.text()).map_err(|e| Failure::new(ErrorClass::Protocol, format!("PASV: {e}")))?;
        if peer_ip.is_none_or(|peer| peer != std::net::IpAddr::V4(named)) {
            let to = peer_ip.map(|p| p.to_string()).unwrap_or_else(|| probe.host.clone());
            ctx.detail(format!(
                "ftp: the server named {named} for the data connection; authprobe connects to {to}, the control connection's peer, instead (as curl's --ftp-skip-pasv-ip)"
            ));
        }
        port
    } else {
        return Err(replies::unexpected(&reply, "asking for a passive data connection"));
    };
    let host = peer_ip.map(|ip| ip.to_string()).unwrap_or_else(|| probe.host.clone());
    match dial::connect(ctx, &host, port, Traffic::Other, Record::Quietly).await {
        Ok(connection) => Ok(connection.stream),
        Err(failure) => Err(replies::data_connect_failed(&host, port, &failure)),
    }
}

/// Up to the budget of the listing; `true` when the server ended it within.
async fn read_listing(data: &mut BoxIo) -> Result<(Vec<u8>, bool), Failure> {
    let mut bytes = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        match data.read(&mut chunk).await {
            Ok(0) => return Ok((bytes, true)),
            Ok(n) => {
                bytes.extend_from_slice(&chunk[..n]);
                if bytes.len() >= LISTING_BUDGET {
                    bytes.truncate(LISTING_BUDGET);
                    return Ok((bytes, false));
                }
            }
            // A server that closes without TLS's close_notify has still sent the listing.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok((bytes, true)),
            Err(e) => return Err(replies::data_io_failed(&e)),
        }
    }
}
