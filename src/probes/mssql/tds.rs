//! TDS 7.4 (SQL Server's protocol), as much of it as a probe needs: PRELOGIN, the TLS
//! handshake carried inside PRELOGIN packets, LOGIN7 with a SQL login, one SQL batch whose
//! result tokens are walked to the end (rows skipped without being kept), and the server's
//! ERROR, INFO, ENVCHANGE, LOGINACK and DONE tokens. Speaking it here lets the probe log in
//! over the one connection whose TLS handshake it recorded, as sqlcmd does.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

pub const PRELOGIN: u8 = 0x12;
const TABULAR_RESULT: u8 = 0x04;
const LOGIN7: u8 = 0x10;
const SQL_BATCH: u8 = 0x01;
const HEADER: usize = 8;
const STATUS_EOM: u8 = 0x01;
/// The packet size asked for in LOGIN7, and used until the server says otherwise.
const PACKET_SIZE: usize = 4096;
/// TDS 7.4, as LOGIN7 carries it.
const TDS_74: u32 = 0x7400_0004;
/// The largest token whose bytes are kept (messages, environment changes, LOGINACK).
const TOKEN_MAX: usize = 64 * 1024;

/// The ENCRYPTION option of PRELOGIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// Only the login packet is encrypted.
    Off = 0,
    On = 1,
    NotSupported = 2,
    Required = 3,
}

impl Encryption {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Encryption::Off),
            1 => Some(Encryption::On),
            2 => Some(Encryption::NotSupported),
            3 => Some(Encryption::Required),
            _ => None,
        }
    }
}

/// Why an exchange failed, for the probe to classify.
#[derive(Debug)]
pub enum TdsError {
    Io(std::io::Error),
    /// An ERROR token: the message number, state and text.
    Server {
        number: u32,
        state: u8,
        message: String,
    },
    /// Bytes that are not TDS.
    Protocol(String),
    /// The first answer is no TDS: another service listens on the port.
    NotTds(String),
    /// A gateway redirects the login elsewhere (host:port).
    Routed(String),
}

impl From<std::io::Error> for TdsError {
    fn from(err: std::io::Error) -> Self {
        TdsError::Io(err)
    }
}

fn protocol(what: impl Into<String>) -> TdsError {
    TdsError::Protocol(what.into())
}

fn header(kind: u8, status: u8, len: usize, id: u8) -> [u8; HEADER] {
    let len = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
    [kind, status, len[0], len[1], 0, 0, id, 0]
}

/// One message as TDS packets of at most `packet_size` bytes.
fn packets(kind: u8, payload: &[u8], packet_size: usize) -> Vec<u8> {
    let chunk = packet_size - HEADER;
    let mut out = Vec::with_capacity(payload.len() + HEADER * (payload.len() / chunk + 1));
    let pieces: Vec<&[u8]> = if payload.is_empty() { vec![&[]] } else { payload.chunks(chunk).collect() };
    let last = pieces.len() - 1;
    for (i, piece) in pieces.iter().enumerate() {
        let status = if i == last { STATUS_EOM } else { 0 };
        out.extend_from_slice(&header(kind, status, piece.len() + HEADER, (i + 1) as u8));
        out.extend_from_slice(piece);
    }
    out
}

/// The PRELOGIN request: VERSION and ENCRYPTION.
pub fn prelogin_request(encryption: Encryption) -> Vec<u8> {
    let options_len = 2 * 5 + 1;
    let mut payload = Vec::new();
    payload.extend_from_slice(&[0x00, 0x00, options_len as u8, 0x00, 0x06]); // VERSION, 6 bytes
    payload.extend_from_slice(&[0x01, 0x00, (options_len + 6) as u8, 0x00, 0x01]); // ENCRYPTION, 1 byte
    payload.push(0xff);
    payload.extend_from_slice(&[0x10, 0x00, 0x00, 0x00, 0x00, 0x00]);
    payload.push(encryption as u8);
    packets(PRELOGIN, &payload, PACKET_SIZE)
}

/// What the server's PRELOGIN answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreloginAnswer {
    pub encryption: Encryption,
    /// The server's version, as SQL Server numbers its builds.
    pub version: Option<String>,
}

fn prelogin_option(payload: &[u8], option: u8) -> Option<&[u8]> {
    let mut at = 0;
    while let Some(&token) = payload.get(at) {
        if token == 0xff {
            break;
        }
        let entry = payload.get(at..at + 5)?;
        let offset = usize::from(u16::from_be_bytes([entry[1], entry[2]]));
        let len = usize::from(u16::from_be_bytes([entry[3], entry[4]]));
        if token == option {
            return payload.get(offset..offset + len).filter(|v| !v.is_empty());
        }
        at += 5;
    }
    None
}

pub fn parse_prelogin(payload: &[u8]) -> Result<PreloginAnswer, TdsError> {
    let encryption = prelogin_option(payload, 0x01)
        .and_then(|v| Encryption::from_byte(v[0]))
        .ok_or_else(|| TdsError::NotTds("the server's PRELOGIN answer is malformed".into()))?;
    let version = prelogin_option(payload, 0x00).and_then(|v| {
        let build = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]);
        Some(format!("{}.{}.{build}", v.first()?, v.get(1)?))
    });
    Ok(PreloginAnswer { encryption, version })
}

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

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// LOGIN7's password obfuscation: each byte's nibbles swapped, then XOR 0xA5. Not
/// protection (TLS is), only the format.
fn obfuscate(password: &str) -> Vec<u8> {
    utf16(password).into_iter().map(|b| b.rotate_left(4) ^ 0xA5).collect()
}

/// Who logs in, to what.
pub struct Login<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub database: Option<&'a str>,
    /// The name of the server as the client knows it (used by gateways to route).
    pub server: &'a str,
    pub app: &'a str,
    pub workstation: &'a str,
}

/// The LOGIN7 message (TDS 7.4, SQL authentication).
pub fn login7(login: &Login<'_>) -> Vec<u8> {
    const FIXED: usize = 94;
    // hostname, user, password, app, server, extension, library, language, database
    let fields: [Vec<u8>; 9] = [
        utf16(login.workstation),
        utf16(login.user),
        obfuscate(login.password),
        utf16(login.app),
        utf16(login.server),
        Vec::new(),
        utf16("authprobe"),
        Vec::new(),
        utf16(login.database.unwrap_or_default()),
    ];
    let data_len: usize = fields.iter().map(Vec::len).sum();
    let total = FIXED + data_len;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&TDS_74.to_le_bytes());
    out.extend_from_slice(&(PACKET_SIZE as u32).to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // client program version
    out.extend_from_slice(&std::process::id().to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // connection id
    // USE_DB_ON | INIT_DB_FATAL | SET_LANG_ON: a database that cannot be opened fails the login.
    out.push(0xE0);
    // INIT_LANG_FATAL | ODBC_ON
    out.push(0x03);
    out.push(0x00); // type flags
    out.push(0x00); // option flags 3
    out.extend_from_slice(&0i32.to_le_bytes()); // time zone
    out.extend_from_slice(&0x0409u32.to_le_bytes()); // LCID
    let mut offset = FIXED;
    for (i, field) in fields.iter().enumerate() {
        out.extend_from_slice(&(offset as u16).to_le_bytes());
        // Lengths count characters, except the extension's, which counts bytes.
        let len = if i == 5 { field.len() } else { field.len() / 2 };
        out.extend_from_slice(&(len as u16).to_le_bytes());
        offset += field.len();
    }
    out.extend_from_slice(&[0u8; 6]); // client id
    for _ in 0..3 {
        // SSPI, attach-database file, change password
        out.extend_from_slice(&(offset as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
    }
    out.extend_from_slice(&0u32.to_le_bytes()); // long SSPI length
    debug_assert_eq!(out.len(), FIXED);
    fields.iter().for_each(|f| out.extend_from_slice(f));
    out
}

/// A SQL batch with the transaction-descriptor header TDS 7.2+ requires.
fn sql_batch(sql: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(22 + sql.len() * 2);
    out.extend_from_slice(&22u32.to_le_bytes()); // all headers
    out.extend_from_slice(&18u32.to_le_bytes()); // this header
    out.extend_from_slice(&2u16.to_le_bytes()); // transaction descriptor
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // outstanding requests
    out.extend(utf16(sql));
    out
}

/// Messages over a byte stream (TLS or not).
pub struct Tds<S> {
    stream: S,
    packet_size: usize,
}

/// What the login established.
#[derive(Debug, Default)]
pub struct LoginAck {
    /// The server program and its version, e.g. "Microsoft SQL Server 16.0.4135".
    pub server: String,
    pub tds_version: String,
    pub database: Option<String>,
}

/// Where a server's answer stands while its tokens are walked.
struct Reader<'a, S> {
    stream: &'a mut S,
    buf: Vec<u8>,
    pos: usize,
    eom: bool,
    started: bool,
}

impl<S: AsyncRead + Unpin> Reader<'_, S> {
    /// Reads packets until `n` bytes are buffered.
    async fn fill(&mut self, n: usize) -> Result<(), TdsError> {
        while self.buf.len() - self.pos < n {
            if self.eom {
                return Err(protocol("the server's answer ended in the middle of a token"));
            }
            let mut head = [0u8; HEADER];
            self.stream.read_exact(&mut head).await?;
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            if head[0] != TABULAR_RESULT || len < HEADER {
                return Err(if self.started {
                    protocol("the server sent a packet that is not a TDS result")
                } else {
                    TdsError::NotTds("the server did not answer like SQL Server".into())
                });
            }
            self.started = true;
            self.eom = head[1] & STATUS_EOM != 0;
            self.buf.drain(..self.pos);
            self.pos = 0;
            let start = self.buf.len();
            self.buf.resize(start + len - HEADER, 0);
            self.stream.read_exact(&mut self.buf[start..]).await?;
        }
        Ok(())
    }

    async fn bytes(&mut self, n: usize) -> Result<&[u8], TdsError> {
        if n > TOKEN_MAX {
            return Err(protocol(format!("the server sent a token of {n} bytes")));
        }
        self.fill(n).await?;
        self.pos += n;
        Ok(&self.buf[self.pos - n..self.pos])
    }

    /// Skips `n` bytes without keeping them (row values can be large).
    async fn skip(&mut self, mut n: u64) -> Result<(), TdsError> {
        while n > 0 {
            if self.buf.len() == self.pos {
                self.fill(1).await?;
            }
            let step = n.min((self.buf.len() - self.pos) as u64);
            self.pos += step as usize;
            n -= step;
        }
        Ok(())
    }

    async fn u8(&mut self) -> Result<u8, TdsError> {
        Ok(self.bytes(1).await?[0])
    }

    async fn u16(&mut self) -> Result<u16, TdsError> {
        let b = self.bytes(2).await?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    async fn u32(&mut self) -> Result<u32, TdsError> {
        let b = self.bytes(4).await?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    async fn u64(&mut self) -> Result<u64, TdsError> {
        let b = self.bytes(8).await?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| protocol("short read"))?))
    }

    /// Whether the whole answer has been read.
    fn done(&self) -> bool {
        self.eom && self.pos == self.buf.len()
    }
}

/// How a column's values are laid out in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Fixed(u64),
    /// A one-byte length, then the bytes.
    ByteLen,
    /// A two-byte length (0xFFFF: NULL), then the bytes.
    UShortLen,
    /// A four-byte length, then the bytes.
    LongLen,
    /// text, ntext, image: a text pointer, a timestamp, a four-byte length, the bytes.
    Text,
    /// Partially length-prefixed: chunks after a total length.
    Plp,
}

fn utf16_text(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16_lossy(&units)
}

/// A B_VARCHAR at `at` in `bytes`: its text and where it ends.
fn b_varchar(bytes: &[u8], at: usize) -> Option<(String, usize)> {
    let chars = usize::from(*bytes.get(at)?);
    let text = bytes.get(at + 1..at + 1 + chars * 2)?;
    Some((utf16_text(text), at + 1 + chars * 2))
}

/// A US_VARCHAR at `at` in `bytes`.
fn us_varchar(bytes: &[u8], at: usize) -> Option<(String, usize)> {
    let chars = usize::from(u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
    let text = bytes.get(at + 2..at + 2 + chars * 2)?;
    Some((utf16_text(text), at + 2 + chars * 2))
}

/// An ERROR or INFO token's body: number, state, class, message.
fn parse_message(body: &[u8]) -> Option<(u32, u8, u8, String)> {
    let number = u32::from_le_bytes(body.get(0..4)?.try_into().ok()?);
    let state = *body.get(4)?;
    let class = *body.get(5)?;
    let (message, _) = us_varchar(body, 6)?;
    Some((number, state, class, message))
}

/// What walking an answer found.
#[derive(Default)]
struct Outcome {
    error: Option<TdsError>,
    ack: Option<LoginAck>,
    database: Option<String>,
    packet_size: Option<usize>,
    rows: u64,
    /// A routing redirect (Azure SQL gateways): where to log in instead.
    routed_to: Option<String>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Tds<S> {
    pub fn new(stream: S) -> Self {
        Tds { stream, packet_size: PACKET_SIZE }
    }

    pub fn into_inner(self) -> S {
        self.stream
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    async fn send(&mut self, kind: u8, payload: &[u8]) -> Result<(), TdsError> {
        self.stream.write_all(&packets(kind, payload, self.packet_size)).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Sends LOGIN7 (for a login-only TLS session, through `stream` before the caller
    /// drops back to the bare connection).
    pub async fn send_login(&mut self, login: &Login<'_>) -> Result<(), TdsError> {
        self.send(LOGIN7, &login7(login)).await
    }

    /// Reads the login's answer.
    pub async fn login_answer(&mut self) -> Result<LoginAck, TdsError> {
        let outcome = self.walk().await?;
        if let Some(err) = outcome.error {
            return Err(err);
        }
        if let Some(target) = outcome.routed_to {
            return Err(TdsError::Routed(target));
        }
        if let Some(size) = outcome.packet_size {
            self.packet_size = size.clamp(512, 32767);
        }
        let mut ack = outcome.ack.ok_or_else(|| protocol("the login ended without LOGINACK"))?;
        ack.database = outcome.database;
        Ok(ack)
    }

    /// Runs one SQL batch and reads its answer to the end; returns the rows seen.
    pub async fn batch(&mut self, sql: &str) -> Result<u64, TdsError> {
        self.send(SQL_BATCH, &sql_batch(sql)).await?;
        let outcome = self.walk().await?;
        match outcome.error {
            Some(err) => Err(err),
            None => Ok(outcome.rows),
        }
    }

    /// Walks every token of one answer. The first ERROR is kept: SQL Server reports the
    /// cause first and its consequences after.
    async fn walk(&mut self) -> Result<Outcome, TdsError> {
        let mut r = Reader { stream: &mut self.stream, buf: Vec::new(), pos: 0, eom: false, started: false };
        let mut out = Outcome::default();
        let mut columns: Vec<Value> = Vec::new();
        loop {
            if r.done() {
                return Ok(out);
            }
            let token = r.u8().await?;
            match token {
                // ERROR, INFO
                0xAA | 0xAB => {
                    let len = usize::from(r.u16().await?);
                    let body = r.bytes(len).await?;
                    if token == 0xAA && out.error.is_none() {
                        let (number, state, _, message) =
                            parse_message(body).ok_or_else(|| protocol("a malformed ERROR token"))?;
                        out.error = Some(TdsError::Server { number, state, message });
                    }
                }
                // LOGINACK: interface, TDS version, program name, program version
                0xAD => {
                    let len = usize::from(r.u16().await?);
                    let body = r.bytes(len).await?;
                    let tds = body.get(1..5).map(|v| format!("{:02x}{:02x}{:02x}{:02x}", v[0], v[1], v[2], v[3]));
                    let (program, at) = b_varchar(body, 5).unwrap_or_default();
                    let version =
                        body.get(at..at + 4).map(|v| format!("{}.{}.{}", v[0], v[1], u16::from_be_bytes([v[2], v[3]])));
                    out.ack = Some(LoginAck {
                        server: format!("{} {}", program.trim_matches(['\0', ' ']), version.unwrap_or_default())
                            .trim()
                            .to_string(),
                        tds_version: tds.map(|v| tds_name(&v)).unwrap_or_default(),
                        database: None,
                    });
                }
                // ENVCHANGE
                0xE3 => {
                    let len = usize::from(r.u16().await?);
                    let body = r.bytes(len).await?;
                    match body.first() {
                        Some(1) => out.database = b_varchar(body, 1).map(|(v, _)| v),
                        Some(4) => out.packet_size = b_varchar(body, 1).and_then(|(v, _)| v.parse().ok()),
                        // routing: length, protocol, port, server name
                        Some(20) => {
                            let port = body.get(4..6).map(|p| u16::from_le_bytes([p[0], p[1]])).unwrap_or(0);
                            let host = us_varchar(body, 6).map(|(v, _)| v).unwrap_or_default();
                            out.routed_to = Some(format!("{host}:{port}"));
                        }
                        _ => {}
                    }
                }
                // COLMETADATA
                0x81 => columns = read_columns(&mut r).await?,
                // ROW
                0xD1 => {
                    for value in &columns {
                        skip_value(&mut r, *value).await?;
                    }
                    out.rows += 1;
                }
                // NBCROW: a bitmap of NULL columns, then the others
                0xD2 => {
                    let bitmap = r.bytes(columns.len().div_ceil(8)).await?.to_vec();
                    for (i, value) in columns.iter().enumerate() {
                        if bitmap[i / 8] & (1 << (i % 8)) == 0 {
                            skip_value(&mut r, *value).await?;
                        }
                    }
                    out.rows += 1;
                }
                // DONE, DONEPROC, DONEINPROC: status, command, row count
                0xFD..=0xFF => {
                    r.skip(12).await?;
                }
                // RETURNSTATUS
                0x79 => r.skip(4).await?,
                // ORDER, COLINFO, TABNAME, SSPI: two-byte length
                0xA9 | 0xA5 | 0xA4 | 0xED => {
                    let len = r.u16().await?;
                    r.skip(u64::from(len)).await?;
                }
                // SESSIONSTATE, FEDAUTHINFO: four-byte length
                0xE4 | 0xEE => {
                    let len = r.u32().await?;
                    r.skip(u64::from(len)).await?;
                }
                // FEATUREEXTACK: features until 0xFF
                0xAE => loop {
                    if r.u8().await? == 0xFF {
                        break;
                    }
                    let len = r.u32().await?;
                    r.skip(u64::from(len)).await?;
                },
                other => {
                    return Err(protocol(format!(
                        "the server sent TDS token 0x{other:02X}, which authprobe does not read"
                    )));
                }
            }
        }
    }
}

fn tds_name(hex: &str) -> String {
    match hex {
        "74000004" => "7.4".into(),
        "730b0003" => "7.3B".into(),
        "730a0003" => "7.3A".into(),
        "72090002" => "7.2".into(),
        "71000001" => "7.1".into(),
        other => other.into(),
    }
}

/// Reads COLMETADATA: how each column's values are laid out.
async fn read_columns<S: AsyncRead + Unpin>(r: &mut Reader<'_, S>) -> Result<Vec<Value>, TdsError> {
    let count = r.u16().await?;
    if count == 0xFFFF {
        return Ok(Vec::new());
    }
    let mut columns = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        r.skip(4 + 2).await?; // user type, flags
        let kind = r.u8().await?;
        let value = match kind {
            0x1F => Value::Fixed(0),
            0x30 | 0x32 => Value::Fixed(1),
            0x34 => Value::Fixed(2),
            0x38 | 0x3A | 0x3B | 0x7A => Value::Fixed(4),
            0x3C | 0x3D | 0x3E | 0x7F => Value::Fixed(8),
            // date
            0x28 => Value::ByteLen,
            // time, datetime2, datetimeoffset: scale
            0x29..=0x2B => {
                r.skip(1).await?;
                Value::ByteLen
            }
            // decimal, numeric: length, precision, scale
            0x37 | 0x3F | 0x6A | 0x6C => {
                r.skip(3).await?;
                Value::ByteLen
            }
            // guid, intn, bitn, floatn, moneyn, datetimen, legacy char/varchar/binary/varbinary
            0x24 | 0x26 | 0x68 | 0x6D | 0x6E | 0x6F | 0x2F | 0x27 | 0x2D | 0x25 => {
                r.skip(1).await?;
                Value::ByteLen
            }
            // varbinary, binary, varchar, char, nvarchar, nchar
            0xA5 | 0xAD | 0xA7 | 0xAF | 0xE7 | 0xEF => {
                let max = r.u16().await?;
                if matches!(kind, 0xA7 | 0xAF | 0xE7 | 0xEF) {
                    r.skip(5).await?; // collation
                }
                if max == 0xFFFF { Value::Plp } else { Value::UShortLen }
            }
            // image, text, ntext: length, collation, table name parts
            0x22 | 0x23 | 0x63 => {
                r.skip(4).await?;
                if kind != 0x22 {
                    r.skip(5).await?;
                }
                let parts = r.u8().await?;
                for _ in 0..parts {
                    let chars = r.u16().await?;
                    r.skip(u64::from(chars) * 2).await?;
                }
                Value::Text
            }
            // sql_variant
            0x62 => {
                r.skip(4).await?;
                Value::LongLen
            }
            // xml: an optional schema collection
            0xF1 => {
                if r.u8().await? == 1 {
                    skip_b_varchar(r).await?;
                    skip_b_varchar(r).await?;
                    let chars = r.u16().await?;
                    r.skip(u64::from(chars) * 2).await?;
                }
                Value::Plp
            }
            // CLR type: length, database, schema, type, assembly
            0xF0 => {
                r.skip(2).await?;
                for _ in 0..3 {
                    skip_b_varchar(r).await?;
                }
                let chars = r.u16().await?;
                r.skip(u64::from(chars) * 2).await?;
                Value::Plp
            }
            other => {
                return Err(protocol(format!(
                    "the check query returned a column of TDS type 0x{other:02X}, which authprobe does not read"
                )));
            }
        };
        skip_b_varchar(r).await?; // column name
        columns.push(value);
    }
    Ok(columns)
}

async fn skip_b_varchar<S: AsyncRead + Unpin>(r: &mut Reader<'_, S>) -> Result<(), TdsError> {
    let chars = r.u8().await?;
    r.skip(u64::from(chars) * 2).await
}

async fn skip_value<S: AsyncRead + Unpin>(r: &mut Reader<'_, S>, value: Value) -> Result<(), TdsError> {
    match value {
        Value::Fixed(n) => r.skip(n).await,
        Value::ByteLen => {
            let len = r.u8().await?;
            r.skip(u64::from(len)).await
        }
        Value::UShortLen => match r.u16().await? {
            0xFFFF => Ok(()),
            len => r.skip(u64::from(len)).await,
        },
        Value::LongLen => {
            let len = r.u32().await?;
            r.skip(u64::from(len)).await
        }
        Value::Text => {
            let pointer = r.u8().await?;
            if pointer == 0 {
                return Ok(());
            }
            r.skip(u64::from(pointer) + 8).await?;
            let len = r.u32().await?;
            r.skip(u64::from(len)).await
        }
        Value::Plp => {
            if r.u64().await? == u64::MAX {
                return Ok(());
            }
            loop {
                let chunk = r.u32().await?;
                if chunk == 0 {
                    return Ok(());
                }
                r.skip(u64::from(chunk)).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelogin_round_trip() {
        let request = prelogin_request(Encryption::On);
        assert_eq!(request[0], PRELOGIN);
        assert_eq!(usize::from(u16::from_be_bytes([request[2], request[3]])), request.len());
        let answer = parse_prelogin(&request[HEADER..]).unwrap();
        assert_eq!(answer.encryption, Encryption::On);
        assert_eq!(answer.version.as_deref(), Some("16.0.0"));
        assert!(parse_prelogin(&[0x00, 0x00]).is_err());
    }

    #[test]
    fn login7_lays_out_the_documented_fields() {
        let login = Login {
            user: "app",
            password: "pw",
            database: Some("appdb"),
            server: "db",
            app: "authprobe",
            workstation: "ws",
        };
        let packet = login7(&login);
        assert_eq!(u32::from_le_bytes(packet[0..4].try_into().unwrap()) as usize, packet.len());
        assert_eq!(&packet[4..8], &[0x04, 0x00, 0x00, 0x74]);
        // the user name's offset and length
        let at = usize::from(u16::from_le_bytes([packet[40], packet[41]]));
        assert_eq!(u16::from_le_bytes([packet[42], packet[43]]), 3);
        assert_eq!(utf16_text(&packet[at..at + 6]), "app");
        // the password, obfuscated: 'p' 0x70 -> 0x07 ^ 0xA5; 'w' 0x77 -> 0x77 ^ 0xA5; 0x00 -> 0xA5
        let at = usize::from(u16::from_le_bytes([packet[44], packet[45]]));
        assert_eq!(&packet[at..at + 4], &[0xA2, 0xA5, 0xD2, 0xA5]);
        let at = usize::from(u16::from_le_bytes([packet[68], packet[69]]));
        assert_eq!(utf16_text(&packet[at..at + 10]), "appdb");
        // the plain password appears nowhere
        assert!(!packet.windows(4).any(|w| w == utf16("pw").as_slice()));
    }

    #[test]
    fn large_messages_are_split_into_packets() {
        let out = packets(SQL_BATCH, &vec![7u8; 5000], 4096);
        assert_eq!(out[1], 0);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]), 4096);
        assert_eq!(out[4096], SQL_BATCH);
        assert_eq!(out[4097], STATUS_EOM);
        assert_eq!(out.len(), 5000 + 2 * HEADER);
    }

    fn answer(tokens: &[u8]) -> Vec<u8> {
        packets(TABULAR_RESULT, tokens, 512).into_iter().collect()
    }

    fn error_token(number: u32, state: u8, text: &str) -> Vec<u8> {
        let mut body = number.to_le_bytes().to_vec();
        body.extend_from_slice(&[state, 14]);
        body.extend_from_slice(&(text.len() as u16).to_le_bytes());
        body.extend(utf16(text));
        body.extend_from_slice(&[0, 0]); // server name, procedure
        body.extend_from_slice(&1u32.to_le_bytes());
        let mut token = vec![0xAA];
        token.extend_from_slice(&(body.len() as u16).to_le_bytes());
        token.extend(body);
        token
    }

    fn done(status: u16) -> Vec<u8> {
        let mut token = vec![0xFD];
        token.extend_from_slice(&status.to_le_bytes());
        token.extend_from_slice(&[0; 10]);
        token
    }

    #[tokio::test]
    async fn results_are_walked_and_errors_kept() {
        // An int column and a nvarchar(max) column; a ROW and an NBCROW with the second NULL.
        let mut tokens = vec![0x81, 2, 0];
        tokens.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x26, 4, 1, b'a', 0]);
        tokens.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0xE7, 0xFF, 0xFF, 9, 4, 0xD0, 0, 0x34, 1, b'b', 0]);
        tokens.extend_from_slice(&[0xD1, 4, 1, 0, 0, 0]);
        tokens.extend_from_slice(&6u64.to_le_bytes());
        tokens.extend_from_slice(&6u32.to_le_bytes());
        tokens.extend(utf16("abc"));
        tokens.extend_from_slice(&0u32.to_le_bytes());
        tokens.extend_from_slice(&[0xD2, 0b10, 4, 2, 0, 0, 0]);
        tokens.extend(done(0x10));
        let (client, mut server) = tokio::io::duplex(1 << 16);
        server.write_all(&answer(&tokens)).await.unwrap();
        let mut tds = Tds::new(client);
        assert_eq!(tds.walk().await.unwrap().rows, 2);

        let mut tokens = error_token(229, 5, "The SELECT permission was denied");
        tokens.extend(error_token(1, 1, "a consequence"));
        tokens.extend(done(0x02));
        server.write_all(&answer(&tokens)).await.unwrap();
        match tds.walk().await.unwrap().error {
            Some(TdsError::Server { number: 229, state: 5, message }) => assert!(message.contains("SELECT")),
            other => panic!("{other:?}"),
        }
    }
}
