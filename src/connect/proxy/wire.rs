//! The proxy protocols' messages, sans I/O: an HTTP CONNECT request and the head of the
//! proxy's answer; SOCKS5's method negotiation, username/password sub-negotiation
//! (RFC 1929) and CONNECT request and reply (RFC 1928). Bytes in, values out.

use std::net::IpAddr;

/// The largest answer head a proxy may send before the tunnel starts.
pub const HEAD_MAX: usize = 16 * 1024;

/// The CONNECT request for `host:port`, with preemptive basic credentials (`authorization`
/// is the header value).
pub fn connect_request(host: &str, port: u16, authorization: Option<&str>) -> Vec<u8> {
    let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let mut out = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {}\r\n",
        crate::connect::net::USER_AGENT
    );
    if let Some(value) = authorization {
        out.push_str(&format!("Proxy-Authorization: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The head of a proxy's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectAnswer {
    pub status: u16,
    pub reason: String,
    /// The schemes of every `Proxy-Authenticate` header (`Basic`, `Negotiate`, `NTLM`).
    pub auth_schemes: Vec<String>,
    /// Squid names its refusals (`ERR_ACCESS_DENIED`, `ERR_CONNECT_FAIL`) in `X-Squid-Error`.
    pub proxy_error: Option<String>,
}

/// Why bytes from a proxy are not an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyProtocolError {
    NotHttp(String),
    TooLong,
    Socks(String),
}

impl std::fmt::Display for ProxyProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyProtocolError::NotHttp(first) => write!(f, "the proxy did not answer in HTTP (it sent {first:?})"),
            ProxyProtocolError::TooLong => write!(f, "the proxy's answer head is longer than {} KiB", HEAD_MAX / 1024),
            ProxyProtocolError::Socks(what) => write!(f, "{what}"),
        }
    }
}

/// Parses the answer head once `bytes` hold all of it: `Ok(None)` while it is incomplete;
/// otherwise the answer and how many bytes it took (what follows belongs to the tunnel).
pub fn parse_connect_answer(bytes: &[u8]) -> Result<Option<(ConnectAnswer, usize)>, ProxyProtocolError> {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        if bytes.len() > HEAD_MAX {
            return Err(ProxyProtocolError::TooLong);
        }
        if bytes.len() >= 5 && !bytes.starts_with(b"HTTP/") {
            return Err(not_http(bytes));
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let (true, Some(status)) = (version.starts_with("HTTP/1."), status) else {
        return Err(not_http(bytes));
    };
    let reason = parts.next().unwrap_or_default().chars().take(100).collect();
    let mut auth_schemes = Vec::new();
    let mut proxy_error = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("proxy-authenticate") {
            if let Some(scheme) = value.split_whitespace().next() {
                auth_schemes.push(scheme.chars().take(40).collect());
            }
        } else if name.eq_ignore_ascii_case("x-squid-error") {
            proxy_error = value.split_whitespace().next().map(|v| v.chars().take(60).collect());
        }
    }
    Ok(Some((ConnectAnswer { status, reason, auth_schemes, proxy_error }, end + 4)))
}

fn not_http(bytes: &[u8]) -> ProxyProtocolError {
    let first: String =
        String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).chars().filter(|c| !c.is_control()).collect();
    ProxyProtocolError::NotHttp(first)
}

/// SOCKS5 method negotiation: no authentication, or username/password when we have some.
pub fn socks_greeting(with_password: bool) -> Vec<u8> {
    if with_password { vec![5, 2, 0x00, 0x02] } else { vec![5, 1, 0x00] }
}

/// The method the server chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocksMethod {
    NoAuth,
    Password,
    /// 0xFF: none of ours is acceptable.
    NoneAcceptable,
}

pub fn parse_socks_method(answer: [u8; 2]) -> Result<SocksMethod, ProxyProtocolError> {
    match answer {
        [5, 0x00] => Ok(SocksMethod::NoAuth),
        [5, 0x02] => Ok(SocksMethod::Password),
        [5, 0xff] => Ok(SocksMethod::NoneAcceptable),
        [5, other] => Err(ProxyProtocolError::Socks(format!(
            "the SOCKS5 server chose method {other:#04x}, which was not offered"
        ))),
        [version, _] => {
            Err(ProxyProtocolError::Socks(format!("the proxy does not speak SOCKS5 (version byte {version})")))
        }
    }
}

/// RFC 1929's request; `None` when a field is longer than 255 bytes.
pub fn socks_password_request(user: &str, password: &str) -> Option<Vec<u8>> {
    let user_len = u8::try_from(user.len()).ok()?;
    let password_len = u8::try_from(password.len()).ok()?;
    let mut out = vec![1, user_len];
    out.extend_from_slice(user.as_bytes());
    out.push(password_len);
    out.extend_from_slice(password.as_bytes());
    Some(out)
}

/// The CONNECT request: a name for the proxy to resolve (socks5h), or an address.
pub fn socks_connect_request(target: &SocksTarget, port: u16) -> Option<Vec<u8>> {
    let mut out = vec![5, 1, 0];
    match target {
        SocksTarget::Ip(IpAddr::V4(ip)) => {
            out.push(1);
            out.extend_from_slice(&ip.octets());
        }
        SocksTarget::Ip(IpAddr::V6(ip)) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        SocksTarget::Name(name) => {
            out.push(3);
            out.push(u8::try_from(name.len()).ok()?);
            out.extend_from_slice(name.as_bytes());
        }
    }
    out.extend_from_slice(&port.to_be_bytes());
    Some(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocksTarget {
    Ip(IpAddr),
    Name(String),
}

/// How many bytes the bound address of a reply takes, from its first 5 bytes (version,
/// reply, reserved, address type, and the first address byte).
pub fn socks_reply_len(head: [u8; 5]) -> Result<usize, ProxyProtocolError> {
    if head[0] != 5 {
        return Err(ProxyProtocolError::Socks(format!("the proxy answered CONNECT with version byte {}", head[0])));
    }
    // version, reply, reserved, type; then the address; then the port.
    match head[3] {
        1 => Ok(4 + 4 + 2),
        4 => Ok(4 + 16 + 2),
        3 => Ok(4 + 1 + usize::from(head[4]) + 2),
        other => Err(ProxyProtocolError::Socks(format!("the proxy answered with address type {other}"))),
    }
}

/// RFC 1928's reply codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocksReply {
    Succeeded,
    GeneralFailure,
    NotAllowedByRuleset,
    NetworkUnreachable,
    HostUnreachable,
    ConnectionRefused,
    TtlExpired,
    CommandNotSupported,
    AddressTypeNotSupported,
    Unassigned(u8),
}

impl SocksReply {
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            0 => SocksReply::Succeeded,
            1 => SocksReply::GeneralFailure,
            2 => SocksReply::NotAllowedByRuleset,
            3 => SocksReply::NetworkUnreachable,
            4 => SocksReply::HostUnreachable,
            5 => SocksReply::ConnectionRefused,
            6 => SocksReply::TtlExpired,
            7 => SocksReply::CommandNotSupported,
            8 => SocksReply::AddressTypeNotSupported,
            other => SocksReply::Unassigned(other),
        }
    }

    pub fn describe(self) -> String {
        match self {
            SocksReply::Succeeded => "succeeded".into(),
            SocksReply::GeneralFailure => "general SOCKS server failure".into(),
            SocksReply::NotAllowedByRuleset => "connection not allowed by ruleset".into(),
            SocksReply::NetworkUnreachable => "network unreachable".into(),
            SocksReply::HostUnreachable => "host unreachable".into(),
            SocksReply::ConnectionRefused => "connection refused".into(),
            SocksReply::TtlExpired => "TTL expired (timed out)".into(),
            SocksReply::CommandNotSupported => "command not supported".into(),
            SocksReply::AddressTypeNotSupported => "address type not supported".into(),
            SocksReply::Unassigned(code) => format!("reply code {code}"),
        }
    }
}

/// An address to hand a SOCKS5 proxy: literal IPs as addresses, everything else as a name.
pub fn socks_target(host: &str) -> SocksTarget {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => SocksTarget::Ip(ip),
        Err(_) => SocksTarget::Name(bare.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_answers_are_parsed_once_complete() {
        assert_eq!(parse_connect_answer(b"HTTP/1.1 200 Conn").unwrap(), None);
        let answer = b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nproxy-authenticate: Negotiate\r\nX-Squid-Error: ERR_CACHE_ACCESS_DENIED 0\r\n\r\nbody";
        let (head, used) = parse_connect_answer(answer).unwrap().unwrap();
        assert_eq!(head.status, 407);
        assert_eq!(head.auth_schemes, ["Basic", "Negotiate"]);
        assert_eq!(head.proxy_error.as_deref(), Some("ERR_CACHE_ACCESS_DENIED"));
        assert_eq!(&answer[used..], b"body");
        assert!(matches!(parse_connect_answer(b"SSH-2.0-OpenSSH\r\n"), Err(ProxyProtocolError::NotHttp(_))));
        assert_eq!(parse_connect_answer(&vec![b'H'; HEAD_MAX + 1]), Err(ProxyProtocolError::TooLong));
    }

    #[test]
    fn socks_messages_follow_the_rfcs() {
        assert_eq!(socks_greeting(true), [5, 2, 0, 2]);
        assert_eq!(parse_socks_method([5, 2]).unwrap(), SocksMethod::Password);
        assert_eq!(parse_socks_method([5, 0xff]).unwrap(), SocksMethod::NoneAcceptable);
        assert!(parse_socks_method([4, 0]).is_err());
        assert_eq!(socks_password_request("u", "pw").unwrap(), [1, 1, b'u', 2, b'p', b'w']);
        assert!(socks_password_request(&"x".repeat(256), "pw").is_none());
        let (v4, v6) = (std::net::Ipv4Addr::LOCALHOST, std::net::Ipv6Addr::LOCALHOST);
        assert_eq!(
            socks_connect_request(&SocksTarget::Ip(v4.into()), 443).unwrap(),
            [5, 1, 0, 1, 127, 0, 0, 1, 1, 187]
        );
        assert_eq!(socks_connect_request(&SocksTarget::Ip(v6.into()), 1).unwrap().len(), 4 + 16 + 2);
        assert_eq!(socks_connect_request(&socks_target("db.example"), 5432).unwrap()[3..5], [3, 10]);
        assert_eq!(socks_reply_len([5, 0, 0, 1, 127]).unwrap(), 10);
        assert_eq!(socks_reply_len([5, 0, 0, 3, 9]).unwrap(), 4 + 1 + 9 + 2);
        assert_eq!(SocksReply::from_byte(2), SocksReply::NotAllowedByRuleset);
    }
}
