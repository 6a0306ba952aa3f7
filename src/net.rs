//! Name resolution and TCP connection, as the `dns` and `connect` stages. Every TCP-based
//! probe connects through here, so that timing and classification are the same for all.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::{ErrorClass, Failure, Stage, classify_io, describe_io};
use crate::stage::ProbeContext;

/// Whether the connection steps are recorded as stages of their own (the probe's main
/// connection) or are part of an enclosing stage (the connection to an OAuth2 token URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Stages,
    Quietly,
}

/// Runs `work` as its own stage, or inline when `record` is `Quietly`.
pub async fn maybe_stage<T, F>(ctx: &ProbeContext, record: Record, stage: Stage, work: F) -> Result<T, Failure>
where
    F: std::future::Future<Output = Result<T, Failure>>,
{
    match record {
        Record::Stages => ctx.stage(stage, work).await,
        Record::Quietly => work.await,
    }
}

/// Resolves `host` (stage `dns`) and connects to the first address that answers (stage
/// `connect`).
pub async fn connect(ctx: &ProbeContext, host: &str, port: u16, record: Record) -> Result<TcpStream, Failure> {
    connect_with_address(ctx, host, port, record).await.map(|(tcp, _)| tcp)
}

/// As [`connect`], also returning the address that answered: drivers that open their own
/// connection afterwards reuse it instead of resolving the name again.
pub async fn connect_with_address(
    ctx: &ProbeContext,
    host: &str,
    port: u16,
    record: Record,
) -> Result<(TcpStream, SocketAddr), Failure> {
    let addrs = maybe_stage(ctx, record, Stage::Dns, resolve(host, port)).await?;
    let tcp = maybe_stage(ctx, record, Stage::Connect, connect_any(host, port, &addrs)).await?;
    let addr =
        tcp.peer_addr().map_err(|e| Failure::new(classify_io(&e), format!("{host}:{port}: {}", describe_io(&e))))?;
    Ok((tcp, addr))
}

pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Failure> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::net::lookup_host((bare, port)).await {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(Failure::new(ErrorClass::Dns, format!("{bare} has no addresses")))
            } else {
                Ok(addrs)
            }
        }
        Err(err) => Err(Failure::new(ErrorClass::Dns, format!("cannot resolve {bare}: {}", dns_reason(&err)))),
    }
}

/// getaddrinfo's own words ("Name or service not known") are the most precise reason
/// available; the surrounding Rust text adds nothing.
fn dns_reason(err: &std::io::Error) -> String {
    let text = describe_io(err);
    text.strip_prefix("failed to lookup address information: ").map(str::to_string).unwrap_or(text)
}

/// Connects to the first of `addrs` that answers; failures name `host:port`.
pub async fn connect_any(host: &str, port: u16, addrs: &[SocketAddr]) -> Result<TcpStream, Failure> {
    let mut last: Option<std::io::Error> = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(err) => {
                // A refusal says more than "unreachable" on another address family.
                let keep_previous = last.as_ref().is_some_and(|l| l.kind() == std::io::ErrorKind::ConnectionRefused);
                if !keep_previous {
                    last = Some(err);
                }
            }
        }
    }
    let err = last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrNotAvailable));
    let class = classify_io(&err);
    let mut failure = Failure::new(class, format!("{host}:{port}: {}", describe_io(&err)));
    if err.raw_os_error() == Some(24) {
        // EMFILE is ours, not the target's.
        failure = Failure::new(ErrorClass::Internal, format!("{host}:{port}: out of file descriptors"))
            .with_hint("lower --concurrency or raise `ulimit -n`");
    }
    Err(failure)
}

/// Any byte stream a probe can talk over: a TCP socket, a TLS stream, later an SSH channel.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type BoxIo = Box<dyn Io>;
