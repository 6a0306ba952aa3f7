//! The pure part of TDS: packet headers, PRELOGIN (request and answer), LOGIN7, the SQL
//! batch, the ERROR/INFO token body and the column layouts of COLMETADATA. Bytes in,
//! values out; no I/O.

pub const PRELOGIN: u8 = 0x12;
pub(crate) const TABULAR_RESULT: u8 = 0x04;
pub(crate) const LOGIN7: u8 = 0x10;
pub(crate) const SQL_BATCH: u8 = 0x01;
pub(crate) const HEADER: usize = 8;
pub(crate) const STATUS_EOM: u8 = 0x01;
/// The packet size asked for in LOGIN7, and used until the server says otherwise.
pub(crate) const PACKET_SIZE: usize = 4096;
/// TDS 7.4, as LOGIN7 carries it.
pub(crate) const TDS_74: u32 = 0x7400_0004;
/// The largest token whose bytes are kept (messages, environment changes, LOGINACK).
pub(crate) const TOKEN_MAX: usize = 64 * 1024;

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
    pub(crate) fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Encryption::Off),
            1 => Some(Encryption::On),
            2 => Some(Encryption::NotSupported),
            3 => Some(Encryption::Required),
            _ => None,
        }
    }
}

/// Why an exchange failed, for the probe to classify. Its texts are the server's as sent:
/// the caller scrubs them before they are shown.
#[derive(Debug, thiserror::Error)]
pub enum TdsError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// An ERROR token: the message number, state and text.
    #[error("Msg {number}, state {state}: {message}")]
    Server { number: u32, state: u8, message: String },
    /// Bytes that are not TDS.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The first answer is no TDS: another service listens on the port.
    #[error("{0}")]
    NotTds(String),
    /// As `NotTds`, with the first bytes the server sent (at most 64), for the caller to
    /// tell which service it is.
    #[error("the server did not answer like SQL Server ({} bytes seen)", .0.len())]
    OtherService(Vec<u8>),
    /// A gateway redirects the login elsewhere (host:port).
    #[error("routed to {0}")]
    Routed(String),
}

pub(crate) fn protocol(what: impl Into<String>) -> TdsError {
    TdsError::Protocol(what.into())
}

pub(crate) fn header(kind: u8, status: u8, len: usize, id: u8) -> [u8; HEADER] {
    let len = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
    [kind, status, len[0], len[1], 0, 0, id, 0]
}

/// One message as TDS packets of at most `packet_size` bytes.
pub(crate) fn packets(kind: u8, payload: &[u8], packet_size: usize) -> Vec<u8> {
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

pub(crate) fn prelogin_option(payload: &[u8], option: u8) -> Option<&[u8]> {
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

pub(crate) fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// LOGIN7's password obfuscation: each byte's nibbles swapped, then XOR 0xA5. Not
/// protection (TLS is), only the format.
pub(crate) fn obfuscate(password: &str) -> Vec<u8> {
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
pub(crate) fn sql_batch(sql: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(22 + sql.len() * 2);
    out.extend_from_slice(&22u32.to_le_bytes()); // all headers
    out.extend_from_slice(&18u32.to_le_bytes()); // this header
    out.extend_from_slice(&2u16.to_le_bytes()); // transaction descriptor
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // outstanding requests
    out.extend(utf16(sql));
    out
}

/// How a column's values are laid out in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
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

pub(crate) fn utf16_text(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16_lossy(&units)
}

/// A B_VARCHAR at `at` in `bytes`: its text and where it ends.
pub(crate) fn b_varchar(bytes: &[u8], at: usize) -> Option<(String, usize)> {
    let chars = usize::from(*bytes.get(at)?);
    let text = bytes.get(at + 1..at + 1 + chars * 2)?;
    Some((utf16_text(text), at + 1 + chars * 2))
}

/// A US_VARCHAR at `at` in `bytes`.
pub(crate) fn us_varchar(bytes: &[u8], at: usize) -> Option<(String, usize)> {
    let chars = usize::from(u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
    let text = bytes.get(at + 2..at + 2 + chars * 2)?;
    Some((utf16_text(text), at + 2 + chars * 2))
}

/// An ERROR or INFO token's body: number, state, class, message.
pub(crate) fn parse_message(body: &[u8]) -> Option<(u32, u8, u8, String)> {
    let number = u32::from_le_bytes(body.get(0..4)?.try_into().ok()?);
    let state = *body.get(4)?;
    let class = *body.get(5)?;
    let (message, _) = us_varchar(body, 6)?;
    Some((number, state, class, message))
}

pub(crate) fn tds_name(hex: &str) -> String {
    match hex {
        "74000004" => "7.4".into(),
        "730b0003" => "7.3B".into(),
        "730a0003" => "7.3A".into(),
        "72090002" => "7.2".into(),
        "71000001" => "7.1".into(),
        other => other.into(),
    }
}
