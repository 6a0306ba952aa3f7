//! The exchanges pumped over any `AsyncRead + AsyncWrite` stream (a TCP socket, a TLS
//! session, an SSH channel): packet framing, and nothing else to decide.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::{GREETING_MAX, Greeting, Login, WireError, parse_greeting, protocol};
use crate::exchange::{
    GSSAPI_PLUGIN, GssInitiator, LOGIN_PACKET_CAP, LoginExchange, LoginStep, QueryExchange, query_packet,
};

/// Packets over a byte stream: 3-byte length, sequence number, payload.
pub struct Packets<S> {
    stream: S,
    seq: u8,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Packets<S> {
    pub fn new(stream: S) -> Self {
        Packets { stream, seq: 0 }
    }

    /// The connection itself, for a caller that must speak outside the protocol (to find
    /// out what a silent server is).
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The stream and the next sequence number, to carry on over a TLS session on the
    /// same connection with [`Packets::resume`].
    pub fn into_parts(self) -> (S, u8) {
        (self.stream, self.seq)
    }

    pub fn resume(stream: S, seq: u8) -> Self {
        Packets { stream, seq }
    }

    /// A new command starts a new sequence.
    pub fn reset(&mut self) {
        self.seq = 0;
    }

    /// Reads one logical packet (joining the 16 MiB pieces of a larger one), refusing one
    /// longer than `cap`.
    pub async fn read(&mut self, cap: usize) -> Result<Vec<u8>, WireError> {
        let mut payload = Vec::new();
        loop {
            let mut header = [0u8; 4];
            self.stream.read_exact(&mut header).await?;
            let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
            if header[3] != self.seq {
                return Err(protocol(format!("packet out of order (sequence {}, expected {})", header[3], self.seq)));
            }
            self.seq = self.seq.wrapping_add(1);
            if payload.len() + len > cap {
                return Err(protocol(format!("the server sent a packet larger than {} KiB", cap / 1024)));
            }
            let start = payload.len();
            payload.resize(start + len, 0);
            self.stream.read_exact(&mut payload[start..]).await?;
            if len < 0xff_ffff {
                return Ok(payload);
            }
        }
    }

    pub async fn write(&mut self, payload: &[u8]) -> Result<(), WireError> {
        let mut packet = Vec::with_capacity(4 + payload.len());
        frame(&mut packet, self.seq, payload)?;
        self.seq = self.seq.wrapping_add(1);
        self.stream.write_all(&packet).await?;
        self.stream.flush().await?;
        Ok(())
    }
}

/// Appends `payload` as one packet with sequence number `seq`.
fn frame(out: &mut Vec<u8>, seq: u8, payload: &[u8]) -> Result<(), WireError> {
    let len =
        u32::try_from(payload.len()).ok().filter(|l| *l < 0xff_ffff).ok_or_else(|| protocol("packet too long"))?;
    out.extend_from_slice(&len.to_le_bytes()[..3]);
    out.push(seq);
    out.extend_from_slice(payload);
    Ok(())
}

/// The future's result if it is ready at its first poll (no waiting).
fn futures_poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

/// Reads the greeting, refusing a header that cannot be one before waiting for a payload
/// that will not come (a server speaking another protocol).
pub async fn read_greeting<S: AsyncRead + AsyncWrite + Unpin>(packets: &mut Packets<S>) -> Result<Greeting, WireError> {
    let mut header = [0u8; 4];
    packets.stream.read_exact(&mut header).await?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if header[3] != 0 || len == 0 || len > GREETING_MAX {
        // Whatever else the server already sent tells which service it is.
        let mut first = header.to_vec();
        let mut more = [0u8; 60];
        if let Some(Ok(n)) = futures_poll_once(packets.stream.read(&mut more)) {
            first.extend_from_slice(&more[..n]);
        }
        return Err(WireError::OtherService(first));
    }
    let mut payload = vec![0u8; len];
    packets.stream.read_exact(&mut payload).await?;
    packets.seq = 1;
    parse_greeting(&payload)
}

/// Logs in; returns the plugin the server settled on.
pub async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    packets: &mut Packets<S>,
    greeting: &Greeting,
    caps: u32,
    login: &Login<'_>,
    mut gss: Option<&mut dyn GssProvider>,
) -> Result<String, WireError> {
    let (mut exchange, response) = LoginExchange::start(greeting, caps, login)?;
    packets.write(&response).await?;
    loop {
        let packet = packets.read(LOGIN_PACKET_CAP).await?;
        let mut step = exchange.on_packet(&packet)?;
        if let LoginStep::GssStart { service_principal } = &step {
            let provider = gss.as_deref_mut().ok_or_else(|| WireError::UnsupportedPlugin(GSSAPI_PLUGIN.into()))?;
            let initiator = provider.initiator(service_principal).await.map_err(WireError::Gss)?;
            step = exchange.begin_gss(initiator)?;
        }
        match step {
            LoginStep::Send(answer) => packets.write(&answer).await?,
            LoginStep::Read => {}
            LoginStep::Done(plugin) => return Ok(plugin),
            LoginStep::GssStart { .. } => return Err(crate::codec::protocol("Kerberos login started twice")),
        }
    }
}

/// A caller's error, carried through unchanged.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What [`GssProvider::initiator`] returns: the initiator, once the ticket is there.
pub type InitiatorFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Box<dyn GssInitiator>, BoxError>> + Send + 'a>>;

/// Makes the GSS-API initiator for a Kerberos login, once the server named its service
/// principal (getting the ticket may talk to the KDC, hence async).
pub trait GssProvider: Send {
    fn initiator<'a>(&'a mut self, service_principal: &'a str) -> InitiatorFuture<'a>;
}

/// Runs one text query and reads its answer up to the first row; returns the rows seen
/// (0 or 1).
pub async fn query<S: AsyncRead + AsyncWrite + Unpin>(packets: &mut Packets<S>, sql: &str) -> Result<u64, WireError> {
    packets.reset();
    packets.write(&query_packet(sql)).await?;
    let mut exchange = QueryExchange::default();
    loop {
        let packet = packets.read(exchange.packet_cap()).await?;
        if let Some(rows) = exchange.on_packet(&packet)? {
            return Ok(rows);
        }
    }
}

/// Runs one text query and reads its whole answer (at most [`crate::exchange::MAX_ROWS`]
/// rows), for a question the probe asks of the server itself.
pub async fn query_rows<S: AsyncRead + AsyncWrite + Unpin>(
    packets: &mut Packets<S>,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, WireError> {
    packets.reset();
    packets.write(&query_packet(sql)).await?;
    let mut exchange = crate::exchange::RowsExchange::default();
    loop {
        let packet = packets.read(exchange.packet_cap()).await?;
        if let Some(rows) = exchange.on_packet(&packet)? {
            return Ok(rows);
        }
    }
}

/// Two text queries in one write (the server reads the second when it has answered the
/// first, so the pair costs one round trip): `question`'s whole answer (at most
/// [`crate::exchange::MAX_ROWS`] rows), then `sql`'s up to its first row. A server error to
/// the question is the question's, and the check query is read either way; any error while
/// reading the question's answer otherwise is the outer one (the check query's answer is
/// then not read).
pub async fn rows_then_query<S: AsyncRead + AsyncWrite + Unpin>(
    packets: &mut Packets<S>,
    question: &str,
    sql: &str,
) -> Result<(Result<Vec<Vec<Option<String>>>, WireError>, Result<u64, WireError>), WireError> {
    let mut both = Vec::new();
    frame(&mut both, 0, &query_packet(question))?;
    frame(&mut both, 0, &query_packet(sql))?;
    packets.stream.write_all(&both).await?;
    packets.stream.flush().await?;
    // Each answer's packets are numbered from 1, after its command's 0.
    packets.seq = 1;
    let mut exchange = crate::exchange::RowsExchange::default();
    let answer = loop {
        let packet = packets.read(exchange.packet_cap()).await?;
        match exchange.on_packet(&packet) {
            Ok(Some(rows)) => break Ok(rows),
            Ok(None) => {}
            Err(err @ WireError::Server { .. }) => break Err(err),
            Err(err) => return Err(err),
        }
    };
    packets.seq = 1;
    let mut check = QueryExchange::default();
    let rows = async {
        loop {
            let packet = packets.read(check.packet_cap()).await?;
            if let Some(rows) = check.on_packet(&packet)? {
                return Ok(rows);
            }
        }
    };
    Ok((answer, rows.await))
}

/// COM_QUIT; the server closes without answering.
pub async fn quit<S: AsyncRead + AsyncWrite + Unpin>(packets: &mut Packets<S>) {
    packets.reset();
    let _ = packets.write(&[0x01]).await;
    let _ = packets.stream.shutdown().await;
}
