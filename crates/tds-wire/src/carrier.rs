//! PRELOGIN over a stream, and the TLS carrier: TLS records inside TDS PRELOGIN packets
//! while the handshake runs, bare once it is done, as TDS 7.x does.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::codec::*;

/// Sends PRELOGIN and reads the answer, refusing a first header that is not SQL Server's
/// before waiting for a payload that will not come.
pub async fn prelogin<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    encryption: Encryption,
) -> Result<PreloginAnswer, TdsError> {
    stream.write_all(&prelogin_request(encryption)).await?;
    stream.flush().await?;
    let mut message = Vec::new();
    loop {
        let mut head = [0u8; HEADER];
        stream.read_exact(&mut head).await?;
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        if head[0] != TABULAR_RESULT || len < HEADER || message.len() + len > TOKEN_MAX {
            if message.is_empty() {
                // The first bytes of the answer, and what came with them, tell who answered.
                let mut first = head.to_vec();
                let mut more = [0u8; 56];
                let ready = {
                    let mut read = std::pin::pin!(stream.read(&mut more));
                    let mut cx = Context::from_waker(std::task::Waker::noop());
                    read.as_mut().poll(&mut cx)
                };
                if let Poll::Ready(Ok(n)) = ready {
                    first.extend_from_slice(&more[..n]);
                }
                return Err(TdsError::OtherService(first));
            }
            return Err(TdsError::NotTds("the server did not answer the PRELOGIN like SQL Server".into()));
        }
        let start = message.len();
        message.resize(start + len - HEADER, 0);
        stream.read_exact(&mut message[start..]).await?;
        if head[1] & STATUS_EOM != 0 {
            return parse_prelogin(&message);
        }
    }
}

/// Carries TLS records inside TDS PRELOGIN packets while the handshake runs, and passes
/// them through bare once it is done, as TDS 7.x does.
pub struct TdsTls<S> {
    inner: S,
    handshaking: bool,
    out: Vec<u8>,
    header: [u8; HEADER],
    header_filled: usize,
    payload_left: usize,
}

impl<S> TdsTls<S> {
    pub fn new(inner: S) -> Self {
        TdsTls { inner, handshaking: true, out: Vec::new(), header: [0; HEADER], header_filled: 0, payload_left: 0 }
    }

    /// From now on TLS records travel bare.
    pub fn handshake_done(&mut self) {
        self.handshaking = false;
    }

    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncWrite + Unpin> TdsTls<S> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.out.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TdsTls<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        // The rest of a packet begun during the handshake comes first.
        if !this.handshaking && this.payload_left == 0 && this.header_filled == 0 {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        while this.payload_left == 0 {
            let mut header = ReadBuf::new(&mut this.header[this.header_filled..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut header))?;
            let n = header.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(())); // EOF
            }
            this.header_filled += n;
            if this.header_filled == HEADER {
                this.payload_left =
                    usize::from(u16::from_be_bytes([this.header[2], this.header[3]])).saturating_sub(HEADER);
                this.header_filled = 0;
            }
        }
        let want = buf.remaining().min(this.payload_left);
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let n = limited.filled().len();
        buf.advance(n);
        this.payload_left -= n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TdsTls<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[std::io::IoSlice::new(data)])
    }

    /// During the handshake each write becomes one PRELOGIN packet, so a flight of several
    /// TLS records given at once leaves in one packet and one segment.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if !this.out.is_empty() {
            ready!(this.drain(cx))?;
        }
        if !this.handshaking {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        let mut joined = Vec::new();
        for buf in bufs {
            let room = PACKET_SIZE - HEADER - joined.len();
            joined.extend_from_slice(&buf[..buf.len().min(room)]);
            if joined.len() == PACKET_SIZE - HEADER {
                break;
            }
        }
        if joined.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.out = packets(PRELOGIN, &joined, PACKET_SIZE);
        // The bytes are ours now; they go out on this call or the next flush.
        let _ = this.drain(cx)?;
        Poll::Ready(Ok(joined.len()))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
