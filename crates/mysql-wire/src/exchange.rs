//! The login and the check query as state machines: each is fed the server's packets one
//! at a time and says what to send next, so that every decision (which plugin answer,
//! whether the password may be released, when to stop reading) is a pure function of the
//! bytes received. [`crate::client`] pumps them over a stream; tests and the fuzzer feed
//! them directly.

use crate::codec::{
    CLIENT_CONNECT_WITH_DB, CLIENT_PLUGIN_AUTH, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, Exposure, Greeting, Login,
    MAX_COLUMNS, MAX_PACKET, QUERY_PACKET_CAP, Release, SERVER_MORE_RESULTS_EXISTS, WireError, cstring, lenenc,
    ok_status, plugin_answer, protocol, read_lenenc, rsa_password, server_error, ssl_request,
};

/// MariaDB's Kerberos plugin (auth_gssapi), as the client names it.
pub const GSSAPI_PLUGIN: &str = "auth_gssapi_client";

/// The largest packet read during the login.
pub const LOGIN_PACKET_CAP: usize = 64 * 1024;

/// What to do after a packet of the login.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginStep {
    /// Send this payload, then read the next packet.
    Send(Vec<u8>),
    /// Read the next packet.
    Read,
    /// Logged in with this plugin.
    Done(String),
    /// The server asks for a Kerberos login (MariaDB's `auth_gssapi_client`) with a ticket
    /// for this service principal: give the exchange a GSS-API initiator for it
    /// ([`LoginExchange::begin_gss`]), which answers with the first token.
    GssStart { service_principal: String },
}

/// The GSS-API side of a Kerberos login, supplied by the caller (which owns the ticket):
/// `step(None)` makes the first token, `step(Some(token))` reads the server's next one;
/// each returns the token to send (empty: nothing to send).
pub trait GssInitiator: Send {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>;
    /// Whether the context is established (the server proved itself).
    fn is_complete(&self) -> bool;
}

/// One login, from the handshake response to OK or ERR.
pub struct LoginExchange<'a> {
    login: &'a Login<'a>,
    plugin: String,
    scramble: Vec<u8>,
    /// A public key from the server is used only when it was asked for (sha256_password's
    /// answer [1], or caching_sha2's [2], sent only where the probe allows it): an
    /// unsolicited one is an impostor's.
    asked_for_key: bool,
    /// The Kerberos login in progress (`auth_gssapi_client`).
    gss: Option<Box<dyn GssInitiator>>,
}

fn asks_for_key(plugin: &str, answer: &[u8]) -> bool {
    plugin == "sha256_password" && answer == [1]
}

impl<'a> LoginExchange<'a> {
    /// Starts the login: the exchange and the handshake response to send.
    pub fn start(greeting: &Greeting, caps: u32, login: &'a Login<'a>) -> Result<(Self, Vec<u8>), WireError> {
        let plugin = greeting.plugin.clone();
        let scramble = greeting.scramble.clone();
        // The server's default plugin may not be the account's; an unknown default is
        // answered with an empty response and the server switches to the account's plugin.
        let first = plugin_answer(&plugin, login, &scramble).unwrap_or_default();
        let asked_for_key = asks_for_key(&plugin, &first);
        let mut response = ssl_request(caps);
        response.extend_from_slice(login.user.as_bytes());
        response.push(0);
        if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            response.extend(lenenc(first.len()));
        } else {
            response.push(u8::try_from(first.len()).map_err(|_| protocol("authentication data too long"))?);
        }
        response.extend_from_slice(&first);
        if caps & CLIENT_CONNECT_WITH_DB != 0 {
            response.extend_from_slice(login.database.unwrap_or_default().as_bytes());
            response.push(0);
        }
        if caps & CLIENT_PLUGIN_AUTH != 0 {
            response.extend_from_slice(plugin.as_bytes());
            response.push(0);
        }
        Ok((LoginExchange { login, plugin, scramble, asked_for_key, gss: None }, response))
    }

    /// The plugin the exchange is at (the greeting's, or the one the server switched to).
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Answers [`LoginStep::GssStart`]: the initiator's first token, to send.
    pub fn begin_gss(&mut self, mut gss: Box<dyn GssInitiator>) -> Result<LoginStep, WireError> {
        let token = gss.step(None).map_err(WireError::Gss)?;
        self.gss = Some(gss);
        Ok(LoginStep::Send(token))
    }

    /// Whether a Kerberos login's server proved who it is.
    pub fn gss_complete(&self) -> bool {
        self.gss.as_ref().is_some_and(|gss| gss.is_complete())
    }

    /// The next packet of the server.
    pub fn on_packet(&mut self, packet: &[u8]) -> Result<LoginStep, WireError> {
        match packet.first() {
            Some(0x00) if self.plugin == GSSAPI_PLUGIN && !self.gss_complete() => {
                Err(protocol("the server accepted the Kerberos login before proving who it is (mutual authentication)"))
            }
            Some(0x00) => Ok(LoginStep::Done(self.plugin.clone())),
            Some(0xff) => Err(server_error(packet)),
            // AuthSwitchRequest: the account's plugin, with a fresh scramble.
            Some(0xfe) => {
                let (name, at) = cstring(packet, 1).ok_or_else(|| protocol("malformed authentication switch"))?;
                self.plugin = name;
                let data = packet.get(at..).unwrap_or_default();
                if self.plugin == GSSAPI_PLUGIN {
                    if self.gss.is_some() {
                        return Err(protocol("the server switched to Kerberos twice"));
                    }
                    // The plugin's data: the service principal, then the mechanism.
                    let (service_principal, _) =
                        cstring(data, 0).ok_or_else(|| protocol("malformed Kerberos plugin data"))?;
                    if service_principal.is_empty() {
                        return Err(protocol("the server named no service principal for its Kerberos login"));
                    }
                    return Ok(LoginStep::GssStart { service_principal });
                }
                self.scramble = data.strip_suffix(&[0]).unwrap_or(data).to_vec();
                let answer = plugin_answer(&self.plugin, self.login, &self.scramble)?;
                self.asked_for_key = asks_for_key(&self.plugin, &answer);
                Ok(LoginStep::Send(answer))
            }
            // AuthMoreData: the next step of a multi-step plugin.
            Some(0x01) => self.more_data(&packet[1..]),
            // A plugin's data sent as it is: MariaDB prefixes it with 0x01 only when it
            // begins with 0x01, 0xfe or 0xff (a GSS-API token begins with 0x60).
            Some(_) if self.plugin == GSSAPI_PLUGIN && self.gss.is_some() => self.more_data(packet),
            _ => Err(protocol("unexpected answer to the login")),
        }
    }

    fn more_data(&mut self, data: &[u8]) -> Result<LoginStep, WireError> {
        if self.plugin == GSSAPI_PLUGIN {
            // The server's next GSS-API token (its proof, with mutual authentication).
            let gss = self.gss.as_mut().ok_or_else(|| protocol("a Kerberos token before the Kerberos login began"))?;
            let token = gss.step(Some(data)).map_err(WireError::Gss)?;
            return Ok(if token.is_empty() { LoginStep::Read } else { LoginStep::Send(token) });
        }
        match (self.plugin.as_str(), data) {
            // caching_sha2_password: the fast path succeeded; OK follows.
            ("caching_sha2_password", [3]) => Ok(LoginStep::Read),
            // caching_sha2_password: full authentication, which needs the password itself
            // (the server's cache of it is cold).
            ("caching_sha2_password", [4]) => match self.login.release(&self.plugin)? {
                Release::Cleartext => Ok(LoginStep::Send(self.login.cleartext())),
                Release::PinnedKey => Ok(LoginStep::Send(self.login.sealed(&self.scramble)?)),
                Release::AskForKey => {
                    self.asked_for_key = true;
                    Ok(LoginStep::Send(vec![2]))
                }
            },
            // The server's public key, asked for above.
            ("caching_sha2_password" | "sha256_password", pem)
                if self.asked_for_key && pem.starts_with(b"-----BEGIN") =>
            {
                self.asked_for_key = false;
                // Asked for only when released (AskForKey needs the probe's consent).
                let password = self.login.released().ok_or_else(|| protocol("a key that was not asked for"))?;
                Ok(LoginStep::Send(rsa_password(password, &self.scramble, pem)?))
            }
            // A key nobody asked for: an impostor's offer to decrypt the password.
            ("caching_sha2_password" | "sha256_password", pem) if pem.starts_with(b"-----BEGIN") => {
                Err(WireError::Unverified { plugin: self.plugin.clone(), how: Exposure::UnsolicitedKey })
            }
            _ => Err(protocol(format!("unexpected step of the {} authentication", self.plugin))),
        }
    }
}

/// The COM_QUERY payload for `sql`.
pub fn query_packet(sql: &str) -> Vec<u8> {
    [&[0x03][..], sql.as_bytes()].concat()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryState {
    /// Expecting a result set's header, OK or ERR.
    Header,
    /// Column definitions still to come.
    Columns(u64),
    /// The end of the column definitions.
    ColumnsEnd,
    /// The first row, or the end of an empty result set.
    FirstRow,
}

/// The answer to one text query, read up to its first row (or the end of a statement that
/// returns none): the probe needs to know that the query runs, not its result.
#[derive(Debug)]
pub struct QueryExchange {
    state: QueryState,
}

impl Default for QueryExchange {
    fn default() -> Self {
        QueryExchange { state: QueryState::Header }
    }
}

impl QueryExchange {
    /// The largest next packet that is accepted.
    pub fn packet_cap(&self) -> usize {
        match self.state {
            QueryState::FirstRow => MAX_PACKET as usize,
            _ => QUERY_PACKET_CAP,
        }
    }

    /// The next packet; `Some(rows)` (0 or 1) when the answer is known.
    pub fn on_packet(&mut self, packet: &[u8]) -> Result<Option<u64>, WireError> {
        match self.state {
            QueryState::Header => match packet.first() {
                Some(0xff) => Err(server_error(packet)),
                Some(0x00) if ok_status(packet) & SERVER_MORE_RESULTS_EXISTS == 0 => Ok(Some(0)),
                Some(0x00) => Ok(None),
                Some(0xfb) => Err(protocol("the server asked to read a local file; refused")),
                None => Err(protocol("empty answer to the query")),
                Some(_) => {
                    let (columns, _) = read_lenenc(packet).ok_or_else(|| protocol("malformed result set"))?;
                    if columns == 0 || columns > MAX_COLUMNS {
                        return Err(protocol(format!("a result set announced with {columns} columns")));
                    }
                    self.state = QueryState::Columns(columns);
                    Ok(None)
                }
            },
            QueryState::Columns(left) => {
                self.state = if left > 1 { QueryState::Columns(left - 1) } else { QueryState::ColumnsEnd };
                Ok(None)
            }
            QueryState::ColumnsEnd => {
                if packet.first() != Some(&0xfe) {
                    return Err(protocol("a result set without the end of its column definitions"));
                }
                self.state = QueryState::FirstRow;
                Ok(None)
            }
            QueryState::FirstRow => match packet.first() {
                Some(0xff) => Err(server_error(packet)),
                Some(0xfe) if packet.len() < 9 => {
                    let status = packet.get(3..5).map(|s| u16::from_le_bytes([s[0], s[1]])).unwrap_or(0);
                    if status & SERVER_MORE_RESULTS_EXISTS != 0 {
                        self.state = QueryState::Header;
                        Ok(None)
                    } else {
                        Ok(Some(0))
                    }
                }
                // The first row: enough.
                _ => Ok(Some(1)),
            },
        }
    }
}

/// Rows kept of one answer read by [`RowsExchange`]; more end the exchange as a protocol error.
pub const MAX_ROWS: usize = 256;

/// The answer to one text query read to its end, every row's columns as text (`None` for
/// NULL): for a question the probe asks of the server itself (`SHOW GRANTS`).
#[derive(Debug, Default)]
pub struct RowsExchange {
    head: QueryExchange,
    rows: Vec<Vec<Option<String>>>,
    in_rows: bool,
}

/// One text-protocol row: per column a length-encoded string, or 0xfb for NULL.
pub fn parse_text_row(mut packet: &[u8]) -> Result<Vec<Option<String>>, WireError> {
    let mut columns = Vec::new();
    while !packet.is_empty() {
        if columns.len() as u64 >= MAX_COLUMNS {
            return Err(protocol("a row with too many columns"));
        }
        if packet[0] == 0xfb {
            columns.push(None);
            packet = &packet[1..];
            continue;
        }
        let (len, used) = read_lenenc(packet).ok_or_else(|| protocol("malformed row"))?;
        let end =
            usize::try_from(len).ok().and_then(|l| used.checked_add(l)).ok_or_else(|| protocol("malformed row"))?;
        let value = packet.get(used..end).ok_or_else(|| protocol("a row shorter than its columns say"))?;
        columns.push(Some(String::from_utf8_lossy(value).into_owned()));
        packet = &packet[end..];
    }
    Ok(columns)
}

impl RowsExchange {
    pub fn packet_cap(&self) -> usize {
        QUERY_PACKET_CAP
    }

    /// The next packet; `Some(rows)` at the end of the answer.
    pub fn on_packet(&mut self, packet: &[u8]) -> Result<Option<Vec<Vec<Option<String>>>>, WireError> {
        if !self.in_rows {
            return match self.head.on_packet(packet)? {
                Some(0) => Ok(Some(std::mem::take(&mut self.rows))),
                Some(_) => {
                    // The head stops at the first row: that packet is it.
                    self.in_rows = true;
                    self.rows.push(parse_text_row(packet)?);
                    Ok(None)
                }
                None => Ok(None),
            };
        }
        match packet.first() {
            Some(0xff) => Err(server_error(packet)),
            Some(0xfe) if packet.len() < 9 => {
                let status = packet.get(3..5).map(|s| u16::from_le_bytes([s[0], s[1]])).unwrap_or(0);
                if status & SERVER_MORE_RESULTS_EXISTS != 0 {
                    return Err(protocol("more than one result set for a one-statement question"));
                }
                Ok(Some(std::mem::take(&mut self.rows)))
            }
            _ => {
                if self.rows.len() >= MAX_ROWS {
                    return Err(protocol(format!("more than {MAX_ROWS} rows for a question about grants")));
                }
                self.rows.push(parse_text_row(packet)?);
                Ok(None)
            }
        }
    }
}
