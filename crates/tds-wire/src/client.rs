//! A login and a SQL batch over any stream: the server's answer is walked token by token
//! as its packets arrive (rows skipped without being kept), so that a large result costs
//! no memory. The token walker reads incrementally from the stream rather than from a
//! buffer the caller fills: rows may be megabytes and are never held.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::*;

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

/// What walking an answer found.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) error: Option<TdsError>,
    pub(crate) ack: Option<LoginAck>,
    pub(crate) database: Option<String>,
    pub(crate) packet_size: Option<usize>,
    pub(crate) rows: u64,
    /// A routing redirect (Azure SQL gateways): where to log in instead.
    pub(crate) routed_to: Option<String>,
    /// The integers of the answer's first row, when asked for (other types: `None`).
    pub(crate) first_row: Option<Vec<Option<i64>>>,
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

    /// The packet size requests are split at: 4096 until the login's ENVCHANGE agrees
    /// another.
    pub fn packet_size(&self) -> usize {
        self.packet_size
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
        let outcome = self.walk_keeping(false).await?;
        match outcome.error {
            Some(err) => Err(err),
            None => Ok(outcome.rows),
        }
    }

    /// Runs one SQL batch whose first statement answers one row of integers (flags such
    /// as `IS_SRVROLEMEMBER`), read to the end: that row (`None` for a column that is not an
    /// integer or is NULL; no row: `None`) and the rows of every statement after it. The
    /// first error, wherever it is, is the batch's.
    pub async fn batch_after_flags(&mut self, sql: &str) -> Result<(Option<Vec<Option<i64>>>, u64), TdsError> {
        self.send(SQL_BATCH, &sql_batch(sql)).await?;
        let outcome = self.walk_keeping(true).await?;
        match outcome.error {
            Some(err) => Err(err),
            None => {
                let after = outcome.rows.saturating_sub(u64::from(outcome.first_row.is_some()));
                Ok((outcome.first_row, after))
            }
        }
    }

    pub(crate) async fn walk(&mut self) -> Result<Outcome, TdsError> {
        self.walk_keeping(false).await
    }

    /// Walks every token of one answer. The first ERROR is kept: SQL Server reports the
    /// cause first and its consequences after.
    pub(crate) async fn walk_keeping(&mut self, keep_first_row: bool) -> Result<Outcome, TdsError> {
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
                // ROW; NBCROW: a bitmap of NULL columns, then the others
                0xD1 | 0xD2 => {
                    let bitmap =
                        if token == 0xD2 { r.bytes(columns.len().div_ceil(8)).await?.to_vec() } else { Vec::new() };
                    let keep = keep_first_row && out.rows == 0;
                    let mut kept = Vec::new();
                    for (i, value) in columns.iter().enumerate() {
                        let null = bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
                        match (null, keep) {
                            (true, _) => kept.push(None),
                            (false, true) => kept.push(read_integer(&mut r, *value).await?),
                            (false, false) => skip_value(&mut r, *value).await?,
                        }
                    }
                    if keep {
                        out.first_row = Some(kept);
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

/// A value read as a little-endian signed integer when it is one (int, bigint, smallint,
/// tinyint, bit, intn, bitn); anything else is skipped and `None`.
async fn read_integer<S: AsyncRead + Unpin>(r: &mut Reader<'_, S>, value: Value) -> Result<Option<i64>, TdsError> {
    let len = match value {
        Value::Fixed(n @ (1 | 2 | 4 | 8)) => n as usize,
        Value::ByteLen => usize::from(r.u8().await?),
        other => return skip_value(r, other).await.map(|()| None),
    };
    if !matches!(len, 1 | 2 | 4 | 8) {
        r.skip(len as u64).await?;
        return Ok(None);
    }
    let bytes = r.bytes(len).await?;
    let mut wide = [0u8; 8];
    wide[..len].copy_from_slice(bytes);
    // Sign-extend what is narrower than 8 bytes (tinyint and bit are unsigned, and 0 or 1).
    let shift = 64 - 8 * len as u32;
    Ok(Some(if len == 1 { i64::from(bytes[0]) } else { (i64::from_le_bytes(wide) << shift) >> shift }))
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
