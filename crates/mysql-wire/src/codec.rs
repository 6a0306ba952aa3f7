//! The pure part of the protocol: the greeting, capabilities, the SSLRequest, the
//! authentication computations of each plugin and when a password may be released, and
//! the small encodings they share. Bytes in, values out; no I/O.

pub const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
const CLIENT_LONG_FLAG: u32 = 0x0000_0004;
pub(crate) const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
pub const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
pub const CLIENT_SSL: u32 = 0x0000_0800;
const CLIENT_TRANSACTIONS: u32 = 0x0000_2000;
pub const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
const CLIENT_MULTI_RESULTS: u32 = 0x0002_0000;
pub(crate) const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
pub(crate) const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x0020_0000;
/// utf8mb4_general_ci, understood by MySQL 5.5.3+ and every MariaDB.
const CHARSET: u8 = 45;
pub(crate) const MAX_PACKET: u32 = 16 * 1024 * 1024;
/// The largest column definition or status packet of a query's answer that is read.
pub(crate) const QUERY_PACKET_CAP: usize = 1024 * 1024;
/// MySQL's own limit on the columns of a table.
pub(crate) const MAX_COLUMNS: u64 = 4096;
/// The largest greeting a server sends; anything claiming more is not a MySQL server.
pub(crate) const GREETING_MAX: usize = 16 * 1024;
/// A status flag of EOF and OK packets: another result set follows.
pub(crate) const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

/// Why an exchange failed, for the probe to classify. Its texts are the server's as sent:
/// the caller scrubs them before they are shown.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// An ERR packet: the server's error number and message.
    #[error("server error {code}: {message}")]
    Server { code: u16, message: String },
    /// Bytes that are not the MySQL protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The first bytes are no MySQL greeting: another service listens on the port.
    #[error("{0}")]
    NotMysql(String),
    /// As `NotMysql`, with the first bytes the server sent (at most 64), for the caller to
    /// tell which service it is.
    #[error("the server did not greet like MySQL or MariaDB ({} bytes seen)", .0.len())]
    OtherService(Vec<u8>),
    /// The account uses an authentication plugin authprobe does not implement.
    #[error("unsupported authentication plugin {0}")]
    UnsupportedPlugin(String),
    /// The server wants the password in a recoverable form (clear text, or encrypted to an
    /// RSA key it sends itself) and its identity is not verified: nothing was sent.
    #[error("{plugin} wants the password {how} from an unverified server: not sent")]
    Unverified { plugin: String, how: Exposure },
    /// The caller's GSS-API initiator failed; its own error, to be taken back by the caller.
    #[error("GSS-API: {0}")]
    Gss(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The recoverable form a server asked for the password in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// In clear text (inside an unverified TLS session, or without TLS).
    ClearText,
    /// Encrypted to an RSA public key the server would send itself.
    ServerKey,
    /// Encrypted to an RSA public key the server sent without being asked.
    UnsolicitedKey,
}

impl Exposure {
    /// Whether configuring the server's public key (`server_public_key`) avoids the
    /// exposure: the RSA path with a key nobody has to take from the server.
    pub fn avoided_by_a_configured_key(self) -> bool {
        matches!(self, Exposure::ServerKey | Exposure::UnsolicitedKey)
    }
}

impl std::fmt::Display for Exposure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Exposure::ClearText => "in clear text",
            Exposure::ServerKey => "encrypted to an RSA public key the server would send itself",
            Exposure::UnsolicitedKey => "encrypted to an RSA public key it sent without being asked",
        })
    }
}

pub(crate) fn protocol(what: impl Into<String>) -> WireError {
    WireError::Protocol(what.into())
}

/// What the server's greeting says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub version: String,
    pub connection_id: u32,
    pub capabilities: u32,
    /// The 20 bytes the authentication plugins hash the password with.
    pub scramble: Vec<u8>,
    /// The server's default authentication plugin.
    pub plugin: String,
}

impl Greeting {
    pub fn supports_tls(&self) -> bool {
        self.capabilities & CLIENT_SSL != 0
    }
}

pub(crate) fn cstring(bytes: &[u8], at: usize) -> Option<(String, usize)> {
    let rest = bytes.get(at..)?;
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    Some((String::from_utf8_lossy(&rest[..end]).into_owned(), at + end + 1))
}

pub fn parse_greeting(payload: &[u8]) -> Result<Greeting, WireError> {
    match payload.first() {
        Some(0x0a) => {}
        Some(0xff) => return Err(server_error(payload)),
        _ => return Err(WireError::NotMysql("the server did not greet like MySQL or MariaDB".into())),
    }
    let truncated = || WireError::NotMysql("the server's greeting is truncated".into());
    let (version, mut at) = cstring(payload, 1).ok_or_else(truncated)?;
    let connection_id =
        u32::from_le_bytes(payload.get(at..at + 4).ok_or_else(truncated)?.try_into().map_err(|_| truncated())?);
    at += 4;
    let mut scramble = payload.get(at..at + 8).ok_or_else(truncated)?.to_vec();
    at += 9;
    let lower = payload.get(at..at + 2).ok_or_else(truncated)?;
    let mut capabilities = u32::from(u16::from_le_bytes([lower[0], lower[1]]));
    at += 2;
    let mut plugin = "mysql_native_password".to_string();
    if let Some(rest) = payload.get(at..at + 6) {
        // charset (1), status (2), upper capabilities (2), auth data length (1), 10 reserved
        capabilities |= u32::from(u16::from_le_bytes([rest[3], rest[4]])) << 16;
        let auth_len = usize::from(rest[5]);
        at += 6 + 10;
        if capabilities & CLIENT_SECURE_CONNECTION != 0 {
            let part = auth_len.saturating_sub(8).max(13);
            // Lenient, as clients are: a short second part leaves a short scramble, which
            // the login's answer then tells apart from a wrong password.
            let second = payload.get(at..(at + part).min(payload.len())).unwrap_or_default();
            scramble.extend(second.iter().take_while(|b| **b != 0));
            at += part;
        }
        if capabilities & CLIENT_PLUGIN_AUTH != 0
            && let Some((name, _)) = cstring(payload, at)
            && !name.is_empty()
        {
            plugin = name;
        }
    }
    Ok(Greeting { version, connection_id, capabilities, scramble, plugin })
}

/// The capabilities this client asks for, within what the server offers.
pub fn client_capabilities(server: u32, tls: bool, with_database: bool) -> u32 {
    let mut caps = CLIENT_LONG_PASSWORD
        | CLIENT_LONG_FLAG
        | CLIENT_PROTOCOL_41
        | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION
        | CLIENT_MULTI_RESULTS
        | CLIENT_PLUGIN_AUTH
        | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
    if with_database {
        caps |= CLIENT_CONNECT_WITH_DB;
    }
    if tls {
        caps |= CLIENT_SSL;
    }
    caps & (server | CLIENT_SSL)
}

/// The SSLRequest: the start of the login packet, after which TLS begins.
pub fn ssl_request(caps: u32) -> Vec<u8> {
    let mut payload = Vec::with_capacity(32);
    payload.extend_from_slice(&caps.to_le_bytes());
    payload.extend_from_slice(&MAX_PACKET.to_le_bytes());
    payload.push(CHARSET);
    payload.extend_from_slice(&[0u8; 23]);
    payload
}

/// Who logs in, and how the session is protected.
pub struct Login<'a> {
    pub user: &'a str,
    pub password: Password<'a>,
    pub database: Option<&'a str>,
    /// Whether the session is encrypted.
    pub encrypted: bool,
    /// The server's RSA public key (PEM), configured: the password is encrypted to it
    /// without asking the server, as the mysql client's --server-public-key-path does.
    pub server_public_key: Option<&'a [u8]>,
}

/// The password, and whether it may go to this server in recoverable form. The caller
/// decides with the credential release rule; the exchange sends it in clear text (or
/// encrypted to a key the server supplies) only when it was released.
#[derive(Clone, Copy)]
pub enum Password<'a> {
    /// For the scrambles only (native, caching_sha2's fast path, ed25519), or sealed to a
    /// public key the probe configured.
    ChallengeOnly(&'a str),
    /// Released for a server whose certificate was verified: in clear text inside TLS.
    ToVerifiedServer(&'a str),
    /// Released by the probe's consent to an unverified server.
    Consented(&'a str),
}

impl<'a> Password<'a> {
    /// The value, for a scramble or a seal to a configured key.
    pub(crate) fn for_challenge(self) -> &'a str {
        match self {
            Password::ChallengeOnly(p) | Password::ToVerifiedServer(p) | Password::Consented(p) => p,
        }
    }

    /// The value, to send in recoverable form, if the caller released it.
    fn released(self) -> Option<&'a str> {
        match self {
            Password::ChallengeOnly(_) => None,
            Password::ToVerifiedServer(p) | Password::Consented(p) => Some(p),
        }
    }
}

impl std::fmt::Debug for Password<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Password::ChallengeOnly(_) => "Password::ChallengeOnly(********)",
            Password::ToVerifiedServer(_) => "Password::ToVerifiedServer(********)",
            Password::Consented(_) => "Password::Consented(********)",
        })
    }
}

/// How a plugin that needs the password itself (not a hash of it) gets it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// In clear text (inside TLS, or where explicitly allowed).
    Cleartext,
    /// Encrypted to the configured public key.
    PinnedKey,
    /// Ask the server for its key (only where explicitly allowed: an impostor's key
    /// decrypts as well as the real one).
    AskForKey,
}

impl Login<'_> {
    pub(crate) fn release(&self, plugin: &str) -> Result<Release, WireError> {
        let rsa_capable = plugin != "mysql_clear_password";
        if self.encrypted && matches!(self.password, Password::ToVerifiedServer(_)) {
            return Ok(Release::Cleartext);
        }
        if rsa_capable && self.server_public_key.is_some() {
            return Ok(Release::PinnedKey);
        }
        if matches!(self.password, Password::Consented(_)) {
            return Ok(if self.encrypted || !rsa_capable { Release::Cleartext } else { Release::AskForKey });
        }
        let how = if self.encrypted || !rsa_capable { Exposure::ClearText } else { Exposure::ServerKey };
        Err(WireError::Unverified { plugin: plugin.to_string(), how })
    }

    /// The password in clear text, once [`Login::release`] chose that: nothing without a
    /// released password.
    pub(crate) fn cleartext(&self) -> Vec<u8> {
        let mut out = self.password.released().unwrap_or_default().as_bytes().to_vec();
        out.push(0);
        out
    }

    /// The password for a server-supplied key, once [`Login::release`] chose that.
    pub(crate) fn released(&self) -> Option<&'_ str> {
        self.password.released()
    }

    pub(crate) fn sealed(&self, scramble: &[u8]) -> Result<Vec<u8>, WireError> {
        let key = self.server_public_key.ok_or_else(|| protocol("no server public key configured"))?;
        rsa_password(self.password.for_challenge(), scramble, key)
    }
}

fn sha1(parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    parts.iter().for_each(|p| ctx.update(p));
    ctx.finish().as_ref().to_vec()
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    parts.iter().for_each(|p| ctx.update(p));
    ctx.finish().as_ref().to_vec()
}

pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b.iter().cycle()).map(|(x, y)| x ^ y).collect()
}

/// mysql_native_password: SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))).
pub fn native_password(password: &str, scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = sha1(&[password.as_bytes()]);
    let stage2 = sha1(&[&stage1]);
    xor(&stage1, &sha1(&[&scramble[..scramble.len().min(20)], &stage2]))
}

/// caching_sha2_password's fast path: SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble).
pub fn caching_sha2(password: &str, scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = sha256(&[password.as_bytes()]);
    let stage2 = sha256(&[&stage1]);
    xor(&stage1, &sha256(&[&stage2, &scramble[..scramble.len().min(20)]]))
}

/// MariaDB's client_ed25519: an Ed25519 signature of the scramble whose secret key is
/// SHA-512 of the password.
pub fn ed25519(password: &str, scramble: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let hashed: [u8; 64] = sha2::Sha512::digest(password.as_bytes()).into();
    let secret = ed25519_dalek::hazmat::ExpandedSecretKey::from_bytes(&hashed);
    let public = ed25519_dalek::VerifyingKey::from(&secret);
    ed25519_dalek::hazmat::raw_sign::<sha2::Sha512>(&secret, scramble, &public).to_bytes().to_vec()
}

/// The password for the RSA path (unencrypted sessions): XOR-ed with the scramble, then
/// RSA-OAEP encrypted with the server's public key (PEM).
pub fn rsa_password(password: &str, scramble: &[u8], public_key_pem: &[u8]) -> Result<Vec<u8>, WireError> {
    use rustls_pki_types::SubjectPublicKeyInfoDer;
    use rustls_pki_types::pem::PemObject;
    let der = SubjectPublicKeyInfoDer::from_pem_slice(public_key_pem)
        .map_err(|e| protocol(format!("the server's RSA public key is not PEM ({e})")))?;
    let key = aws_lc_rs::rsa::PublicEncryptingKey::from_der(der.as_ref())
        .map_err(|e| protocol(format!("the server's RSA public key is unusable ({e})")))?;
    let key = aws_lc_rs::rsa::OaepPublicEncryptingKey::new(key).map_err(|_| protocol("RSA-OAEP set-up failed"))?;
    let mut plain = password.as_bytes().to_vec();
    plain.push(0);
    let plain = xor(&plain, &scramble[..scramble.len().min(20)]);
    let mut out = vec![0u8; key.ciphertext_size()];
    let written = key
        .encrypt(&aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1, &plain, &mut out, None)
        .map_err(|_| protocol("the password does not fit the server's RSA key"))?;
    Ok(written.to_vec())
}

/// The first answer to `plugin`'s challenge.
pub(crate) fn plugin_answer(plugin: &str, login: &Login<'_>, scramble: &[u8]) -> Result<Vec<u8>, WireError> {
    match plugin {
        "mysql_native_password" => Ok(native_password(login.password.for_challenge(), scramble)),
        "caching_sha2_password" => Ok(caching_sha2(login.password.for_challenge(), scramble)),
        "client_ed25519" => Ok(ed25519(login.password.for_challenge(), scramble)),
        "sha256_password" if login.password.for_challenge().is_empty() => Ok(vec![0]),
        "sha256_password" | "mysql_clear_password" => match login.release(plugin)? {
            Release::Cleartext => Ok(login.cleartext()),
            Release::PinnedKey => login.sealed(scramble),
            // Asks for the server's public key.
            Release::AskForKey => Ok(vec![1]),
        },
        other => Err(WireError::UnsupportedPlugin(other.to_string())),
    }
}

pub(crate) fn lenenc(value: usize) -> Vec<u8> {
    match value {
        0..=250 => vec![value as u8],
        251..=0xffff => [&[0xfc][..], &(value as u16).to_le_bytes()].concat(),
        0x1_0000..=0xff_ffff => [&[0xfd][..], &(value as u32).to_le_bytes()[..3]].concat(),
        _ => [&[0xfe][..], &(value as u64).to_le_bytes()].concat(),
    }
}

pub(crate) fn read_lenenc(bytes: &[u8]) -> Option<(u64, usize)> {
    match *bytes.first()? {
        n @ 0..=250 => Some((u64::from(n), 1)),
        0xfc => Some((u64::from(u16::from_le_bytes(bytes.get(1..3)?.try_into().ok()?)), 3)),
        0xfd => {
            let b = bytes.get(1..4)?;
            Some((u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16, 4))
        }
        0xfe => Some((u64::from_le_bytes(bytes.get(1..9)?.try_into().ok()?), 9)),
        _ => None,
    }
}

/// An ERR packet's error number and message.
pub(crate) fn server_error(payload: &[u8]) -> WireError {
    let code = payload.get(1..3).map(|b| u16::from_le_bytes([b[0], b[1]])).unwrap_or(0);
    let mut message = payload.get(3..).unwrap_or_default();
    if message.first() == Some(&b'#') {
        // '#' and the five-character SQLSTATE
        message = message.get(6..).unwrap_or_default();
    }
    WireError::Server { code, message: String::from_utf8_lossy(message).into_owned() }
}

/// An OK packet's status flags: after the header byte, affected rows and insert id
/// (length-encoded each), then two bytes of status. A short packet has none set.
pub(crate) fn ok_status(packet: &[u8]) -> u16 {
    let rest = packet.get(1..).unwrap_or_default();
    let (_, a) = read_lenenc(rest).unwrap_or((0, 1));
    let (_, b) = read_lenenc(rest.get(a..).unwrap_or_default()).unwrap_or((0, 1));
    rest.get(a + b..a + b + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).unwrap_or(0)
}
