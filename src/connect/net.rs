//! Name resolution and TCP connection, and what every stream is wrapped in (a read budget,
//! quick ACKs). Choosing the route (direct or through a tunnel) is [`crate::connect::dial`]'s.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::model::error::{ErrorClass, Failure, ReadBudgetExceeded, Stage, classify_io, describe_io};
use crate::model::stages::StageLog;

/// How authprobe names itself to servers and proxies.
pub const USER_AGENT: &str = concat!("authprobe/", env!("CARGO_PKG_VERSION"));

/// Whether the connection steps are recorded as stages of their own (the probe's main
/// connection) or are part of an enclosing stage (the connection to an OAuth2 token URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Stages,
    Quietly,
}

/// Runs `work` as its own stage, or inline when `record` is `Quietly`.
pub async fn maybe_stage<T, F>(ctx: &StageLog, record: Record, stage: Stage, work: F) -> Result<T, Failure>
where
    F: std::future::Future<Output = Result<T, Failure>>,
{
    match record {
        Record::Stages => ctx.stage(stage, work).await,
        Record::Quietly => work.await,
    }
}

/// What the peer has already sent, up to `max` bytes, without waiting for more: one poll
/// of the read. For telling a server that spoke first (a greeting, a banner) from one that
/// answered exactly what was asked.
pub async fn read_already_sent(io: &mut (impl AsyncRead + Unpin), max: usize) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; max];
    // `timeout` polls the read once before it looks at the (already elapsed) deadline.
    match tokio::time::timeout(std::time::Duration::ZERO, io.read(&mut buf)).await {
        Ok(Ok(n)) => {
            buf.truncate(n);
            buf
        }
        _ => Vec::new(),
    }
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

/// A TCP stream that acknowledges what it receives at once. Linux delays ACKs (up to
/// 40 ms); when a server holds a small packet back until its previous one is acknowledged
/// (Nagle's algorithm, which e.g. sshd keeps on for non-interactive sessions) and the client
/// has nothing to send back, every such exchange waits for that delay. Quick-ACK mode does
/// not stick, so it is re-armed after every read.
/// Bytes one probe connection may receive. Authentication checks exchange kilobytes; a
/// server that streams without end is cut off here, long before the timeout, and its
/// flood costs neither memory nor CPU beyond this.
pub const READ_BUDGET: u64 = 64 * 1024 * 1024;

/// Counts what a connection reads and fails it past [`READ_BUDGET`].
pub struct ReadBudget<S> {
    inner: S,
    left: u64,
}

impl<S> ReadBudget<S> {
    pub fn new(inner: S) -> Self {
        ReadBudget { inner, left: READ_BUDGET }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadBudget<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.left == 0 && buf.remaining() > 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other(ReadBudgetExceeded { limit: READ_BUDGET })));
        }
        let before = buf.filled().len();
        let result = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.left = self.left.saturating_sub(read);
        result
    }
}

/// `AsyncWrite` for a wrapper (generic over `S`) whose writes go straight to its `inner`
/// field: the read side is where such wrappers do their work.
macro_rules! forward_async_write {
    ($wrapper:ident) => {
        impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<S> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}
pub(crate) use forward_async_write;

forward_async_write!(ReadBudget);

pub struct QuickAck(TcpStream);

impl QuickAck {
    pub fn new(tcp: TcpStream) -> Self {
        QuickAck(tcp)
    }

    fn rearm(&self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let on: libc::c_int = 1;
            // SAFETY: setsockopt reads `on` for the given length; the descriptor is ours.
            unsafe {
                libc::setsockopt(
                    self.0.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let result = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        if result.is_ready() {
            self.rearm();
        }
        result
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    // Vectored, so that a TLS flight of several records leaves in one segment.
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Any byte stream a probe can talk over: a TCP socket, a TLS stream, later an SSH channel.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type BoxIo = Box<dyn Io>;
