//! A probe's connection to `host:port`, as the `dns` and `connect` stages: directly, or
//! through the probe's SSH tunnel. Every kind connects through here, so that timing,
//! classification and tunnelling (and the proxies to come) are the same for all.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::connect::context::ProbeContext;
use crate::connect::net::{BoxIo, QuickAck, ReadBudget, Record, connect_any, maybe_stage, resolve};
use crate::connect::tunnel::Link;
use crate::model::error::{Failure, Stage, classify_io, describe_io};

/// Where a probe's connection went: to an address, or through its tunnel.
#[derive(Clone)]
pub enum Route {
    Direct(SocketAddr),
    Tunnel(Arc<Link>),
}

/// A probe's open connection.
pub struct Connection {
    pub stream: BoxIo,
    pub route: Route,
}

/// Opens the probe's connection to `host:port`: directly (stages `dns` and `connect`), or
/// through the probe's tunnel (stage `connect`: the SSH server resolves and connects).
pub async fn connect(ctx: &ProbeContext, host: &str, port: u16, record: Record) -> Result<Connection, Failure> {
    let (stream, route) = connect_then(ctx, host, port, record, |stream| async { Ok(stream) }).await?;
    Ok(Connection { stream, route })
}

/// As [`connect`], and `then` runs on the new stream inside the `connect` stage: for
/// protocols whose connection setup is part of connecting (SSH's key exchange).
pub async fn connect_then<T, F, Fut>(
    ctx: &ProbeContext,
    host: &str,
    port: u16,
    record: Record,
    then: F,
) -> Result<(T, Route), Failure>
where
    F: FnOnce(BoxIo) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    if let Some(link) = ctx.tunnel().await? {
        let work = async { then(Box::new(ReadBudget::new(link.open(host, port).await?))).await };
        let value = maybe_stage(ctx, record, Stage::Connect, work).await?;
        return Ok((value, Route::Tunnel(link)));
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
    Ok((value, Route::Direct(addr)))
}
