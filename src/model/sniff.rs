//! Which service a port speaks, from the first bytes it sent: a probe aimed at the wrong
//! port says "this port speaks SSH, not PostgreSQL" instead of a timeout or a TLS error.
//! Only what is sure from the bytes is said; anything else is `None`.

/// The service whose first bytes these are, as a noun for a message ("SSH").
pub fn identify(first: &[u8]) -> Option<&'static str> {
    let text =
        |prefix: &str| first.len() >= prefix.len() && first[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes());
    if text("SSH-") {
        return Some("SSH");
    }
    if text("HTTP/") {
        return Some("HTTP");
    }
    // TLS records: an alert or a handshake, version 3.x.
    if first.len() >= 3 && matches!(first[0], 0x15 | 0x16) && first[1] == 0x03 && first[2] <= 0x04 {
        return Some("TLS (it expects a TLS handshake first)");
    }
    if first.starts_with(b"220") && first.get(3).is_some_and(|b| *b == b' ' || *b == b'-') {
        let greeting = String::from_utf8_lossy(&first[..first.len().min(200)]).to_ascii_uppercase();
        return Some(if greeting.contains("SMTP") || greeting.contains("MAIL") {
            "SMTP"
        } else if greeting.contains("FTP") {
            "FTP"
        } else {
            "FTP or SMTP (a 220 greeting)"
        });
    }
    if text("+OK") {
        return Some("POP3");
    }
    if text("* OK") {
        return Some("IMAP");
    }
    if text("RFB ") {
        return Some("VNC");
    }
    if text("-ERR") || text("+PONG") {
        return Some("Redis");
    }
    // MySQL's greeting: a 3-byte length, sequence 0, protocol version 10, a version string.
    if first.len() >= 6 && first[3] == 0 && first[4] == 0x0a && first[5].is_ascii_digit() {
        return Some("MySQL or MariaDB");
    }
    // PostgreSQL's error answer to a startup it cannot read: 'E', a length, then fields
    // ('S' severity …).
    if first.len() >= 6 && first[0] == b'E' && first[5] == b'S' {
        return Some("PostgreSQL");
    }
    // A TDS packet: type 4 (tabular result), status, big-endian length.
    if first.len() >= 8 && first[0] == 0x04 && first[1] <= 0x01 {
        let len = usize::from(first[2]) << 8 | usize::from(first[3]);
        if (8..=32_768).contains(&len) {
            return Some("SQL Server (TDS)");
        }
    }
    None
}

/// "this port speaks SSH, not PostgreSQL" when the bytes say which; else `None`.
pub fn wrong_service(first: &[u8], expected: &str) -> Option<String> {
    let found = identify(first)?;
    if found.starts_with(expected) {
        return None;
    }
    Some(format!("this port speaks {found}, not {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_services_are_recognised_from_their_first_bytes() {
        assert_eq!(identify(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"), Some("SSH"));
        assert_eq!(identify(b"HTTP/1.1 400 Bad Request\r\n"), Some("HTTP"));
        assert_eq!(
            identify(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]),
            Some("TLS (it expects a TLS handshake first)")
        );
        assert_eq!(identify(b"220 (vsFTPd 3.0.3)\r\n"), Some("FTP"));
        assert_eq!(identify(b"220 mail.example.com ESMTP Postfix\r\n"), Some("SMTP"));
        assert_eq!(identify(b"\x4a\x00\x00\x00\x0a8.0.36\x00"), Some("MySQL or MariaDB"));
        assert_eq!(identify(b"E\x00\x00\x00\x67SFATAL\x00"), Some("PostgreSQL"));
        assert_eq!(identify(b"\x04\x01\x00\x25\x00\x00\x01\x00"), Some("SQL Server (TDS)"));
        assert_eq!(identify(b"N"), None);
        assert_eq!(identify(b""), None);
    }

    #[test]
    fn the_message_names_both_services() {
        assert_eq!(wrong_service(b"SSH-2.0-x", "PostgreSQL").as_deref(), Some("this port speaks SSH, not PostgreSQL"));
        assert_eq!(wrong_service(b"\x4a\x00\x00\x00\x0a8.0", "MySQL or MariaDB"), None);
    }
}
