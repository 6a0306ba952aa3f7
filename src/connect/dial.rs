//! A probe's connection to `host:port`, as the `dns` and `connect` stages: directly,
//! through the probe's SSH tunnel, or through a proxy (the `proxy` stage). Every kind
//! connects through here, so that timing, classification, tunnelling and proxies are the
//! same for all.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::connect::context::ProbeContext;
use crate::connect::net::{BoxIo, QuickAck, ReadBudget, Record, connect_any, maybe_stage, resolve};
use crate::connect::proxy::through::{self, Via};
use crate::connect::proxy::{ProxyScheme, ProxySource, ProxyUrl, Traffic};
use crate::connect::tunnel::Link;
use crate::model::error::{ErrorClass, Failure, Stage, classify_io, describe_io};

/// Where a probe's connection went: to an address, through its tunnel, or through a proxy.
#[derive(Clone)]
pub enum Route {
    Direct(SocketAddr),
    Tunnel(Arc<Link>),
    /// A tunnel through the proxy (CONNECT or SOCKS5) to the target.
    Proxy(ProxyUrl, ProxySource),
    /// To an HTTP proxy itself, which takes plain-http requests in absolute-form.
    Forward(ProxyUrl, ProxySource),
}

/// A probe's open connection.
pub struct Connection {
    pub stream: BoxIo,
    pub route: Route,
}

/// Opens the probe's connection to `host:port`: directly (stages `dns` and `connect`),
/// through the probe's tunnel (stage `connect`: the SSH server resolves and connects), or
/// through a proxy (stage `proxy`, then `connect`). `traffic` says which proxy variables
/// apply; plain http to an HTTP proxy returns the connection to the proxy itself
/// ([`Route::Forward`]).
pub async fn connect(
    ctx: &ProbeContext,
    host: &str,
    port: u16,
    traffic: Traffic,
    record: Record,
) -> Result<Connection, Failure> {
    let (stream, route) = connect_then(ctx, host, port, traffic, record, |stream| async { Ok(stream) }).await?;
    Ok(Connection { stream, route })
}

/// As [`connect`], and `then` runs on the new stream inside the `connect` stage: for
/// protocols whose connection setup is part of connecting (SSH's key exchange).
pub async fn connect_then<T, F, Fut>(
    ctx: &ProbeContext,
    host: &str,
    port: u16,
    traffic: Traffic,
    record: Record,
    then: F,
) -> Result<(T, Route), Failure>
where
    F: FnOnce(BoxIo) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    ctx.set_dialed(host, port);
    // The tunnel and proxy routes are boxed: a direct connection does not carry their room.
    if let Some(link) = Box::pin(ctx.tunnel()).await? {
        let work = async { then(Box::new(ReadBudget::new(link.open(host, port).await?))).await };
        let value = maybe_stage(ctx, record, Stage::Connect, Box::pin(work)).await?;
        return Ok((value, Route::Tunnel(link)));
    }
    let choice = ctx.proxy.choose(traffic, host, port).map_err(|why| {
        let failure = Failure::new(ErrorClass::Config, format!("the proxy setting {why}"))
            .with_hint("fix the proxy URL (http://, socks5:// or socks5h://), or unset the variable");
        match record {
            Record::Stages => ctx.fail_before(Stage::Proxy, failure),
            Record::Quietly => failure,
        }
    })?;
    if choice.proxy.is_some() || !choice.why.ends_with("(no proxy configured)") {
        ctx.detail(format!("proxy for {host}:{port}: {}", choice.why));
    }
    if let Some((proxy, source)) = choice.proxy {
        let via = Via { proxy: &proxy, source: &source };
        if proxy.scheme == ProxyScheme::Http && traffic == Traffic::Http {
            let stream = Box::pin(through::open_forward(ctx, &via, record)).await?;
            let value = maybe_stage(ctx, record, Stage::Connect, then(stream)).await?;
            return Ok((value, Route::Forward(proxy, source)));
        }
        let stream = Box::pin(through::open(ctx, &via, host, port, record)).await?;
        let value = maybe_stage(ctx, record, Stage::Connect, then(stream)).await?;
        return Ok((value, Route::Proxy(proxy, source)));
    }
    let addrs = maybe_stage(ctx, record, Stage::Dns, resolve(host, port)).await?;
    let work = async {
        let tcp = connect_any(host, port, &addrs).await?;
        let addr = tcp
            .peer_addr()
            .map_err(|e| Failure::new(classify_io(&e), format!("{host}:{port}: {}", describe_io(&e))))?;
        Ok((then(Box::new(ReadBudget::new(QuickAck::new(tcp)))).await?, addr))
    };
    let (value, addr) = maybe_stage(ctx, record, Stage::Connect, work).await?;
    if matches!(record, Record::Stages) {
        ctx.set_peer(addr);
    }
    Ok((value, Route::Direct(addr)))
}
