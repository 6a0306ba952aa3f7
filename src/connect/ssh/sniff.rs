//! What a connection's first bytes say when they are no SSH banner, and the class of a
//! failure before or during the key exchange.

use super::*;

/// Keeps the first bytes a server sends: SSH clients skip lines before the banner, so a
/// server speaking another protocol otherwise looks like one that hung up.
pub(super) struct FirstBytes<S> {
    pub(super) inner: S,
    pub(super) seen: Arc<Mutex<Vec<u8>>>,
}

impl<S> FirstBytes<S> {
    pub(super) const KEEP: usize = 256;

    pub(super) fn new(inner: S) -> (Self, Arc<Mutex<Vec<u8>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        (FirstBytes { inner, seen: seen.clone() }, seen)
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstBytes<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Ok(mut seen) = self.seen.lock()
            && seen.len() < Self::KEEP
        {
            let fresh = &buf.filled()[before..];
            let room = Self::KEEP - seen.len();
            seen.extend_from_slice(&fresh[..fresh.len().min(room)]);
            // SSH allows text lines before the banner, so a client keeps reading; a server
            // that answered in another protocol would keep it reading until the timeout.
            if foreign(&seen) {
                return std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the server speaks another protocol",
                )));
            }
        }
        result
    }
}

crate::connect::net::forward_async_write!(FirstBytes);

/// What the connection's first bytes say about the server, as the client reads them:
/// whether they are another protocol, and the failure to report if they are no banner.
/// For fuzzing the sniffer.
pub fn sniff_first_bytes(seen: &[u8]) -> (bool, Option<Failure>) {
    (foreign(seen), not_ssh(&Mutex::new(seen.to_vec())))
}

/// Bytes no SSH server sends before its banner: an HTTP status line, or binary data (a
/// TLS record, a database greeting). Lines before the banner are text.
pub(super) fn foreign(seen: &[u8]) -> bool {
    let before_banner = match seen.windows(4).position(|w| w == b"SSH-") {
        Some(at) => &seen[..at],
        None => seen,
    };
    before_banner.starts_with(b"HTTP/")
        || before_banner.iter().any(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n')) || b >= 0x80)
}

/// The server answered, but not with an SSH banner: quote its first line.
pub(super) fn not_ssh(first_bytes: &Mutex<Vec<u8>>) -> Option<Failure> {
    let seen = first_bytes.lock().ok()?.clone();
    if seen.is_empty() || seen.starts_with(b"SSH-") || String::from_utf8_lossy(&seen).contains("\nSSH-") {
        return None;
    }
    let first_line: String = String::from_utf8_lossy(&seen)
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(60)
        .collect();
    if first_line.contains("MaxStartups") {
        // OpenSSH's own words when it drops a connection because too many others have
        // not finished logging in yet.
        return Some(
            Failure::new(ErrorClass::Network, format!("the SSH server refused the connection: `{first_line}`"))
                .with_hint("too many connections to this SSH server are logging in at once (its MaxStartups): retry, lower --concurrency, or raise MaxStartups in sshd_config"),
        );
    }
    Some(
        Failure::new(
            ErrorClass::Protocol,
            format!("the server did not answer with an SSH banner; it said `{first_line}`"),
        )
        .with_hint("check the port: this is another protocol's server, not SSH"),
    )
}

/// A failure before or during key exchange.
pub(super) fn classify_transport(err: &russh::Error, address: &str) -> Failure {
    use russh::Error as E;
    match err {
        E::IO(io) => match io.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => Failure::new(
                ErrorClass::Network,
                format!("{address} closed the connection during the SSH handshake ({})", describe_io(io)),
            )
            .with_hint("the server dropped us before authentication: check its MaxStartups, TCP wrappers or fail2ban, and that this port speaks SSH"),
            _ => Failure::new(classify_io(io), format!("SSH handshake with {address}: {}", describe_io(io))),
        },
        E::Version => Failure::new(ErrorClass::Protocol, format!("{address} did not answer with an SSH banner"))
            .with_hint("check the port: this does not look like an SSH server"),
        E::Disconnect | E::HUP => Failure::new(
            ErrorClass::Network,
            format!("{address} closed the connection during the SSH handshake"),
        )
        .with_hint("the server dropped us before authentication: check its MaxStartups, TCP wrappers or fail2ban, and that this port speaks SSH"),
        E::NoCommonAlgo { kind, theirs, .. } => Failure::new(
            ErrorClass::Protocol,
            format!("{address} and authprobe share no {kind:?} algorithm (the server offers {})", theirs.join(", ")),
        )
        .with_hint("the server only offers algorithms authprobe considers unsafe or does not implement: update the server's SSH configuration"),
        E::UnknownKey => Failure::new(ErrorClass::HostKey, format!("{address} presented a host key authprobe cannot check")),
        other => {
            if let Some(io) = find_cause::<std::io::Error>(other) {
                return Failure::new(classify_io(io), format!("SSH handshake with {address}: {}", describe_io(io)));
            }
            Failure::new(ErrorClass::Protocol, format!("SSH handshake with {address} failed: {other}"))
        }
    }
}
