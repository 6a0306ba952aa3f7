//! Passive-mode answers: PASV's `227 … (h1,h2,h3,h4,p1,p2)` (RFC 959; servers word the
//! rest freely, so the six numbers are looked for anywhere) and EPSV's
//! `229 … (|||port|)` (RFC 2428: any printable delimiter, repeated).

use std::net::Ipv4Addr;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PassiveError {
    #[error("the passive-mode answer names no address and port: {0:?}")]
    Malformed(String),
    #[error("the passive-mode answer names port {0}, outside 1-65535")]
    BadPort(u32),
}

fn shown(text: &str) -> String {
    text.chars().take(80).collect()
}

/// The address and port of a PASV answer's text.
pub fn parse_pasv(text: &str) -> Result<(Ipv4Addr, u16), PassiveError> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if bytes[start].is_ascii_digit()
            && (start == 0 || !bytes[start - 1].is_ascii_digit())
            && let Some(found) = six_numbers(&text[start..])
        {
            {
                let [a, b, c, d, p1, p2] = found;
                if [a, b, c, d].iter().any(|&n| n > 255) || p1 > 255 || p2 > 255 {
                    return Err(PassiveError::Malformed(shown(text)));
                }
                let port = p1 * 256 + p2;
                if port == 0 {
                    return Err(PassiveError::BadPort(0));
                }
                let octets = [a as u8, b as u8, c as u8, d as u8];
                return Ok((Ipv4Addr::from(octets), port as u16));
            }
        }
        start += 1;
    }
    Err(PassiveError::Malformed(shown(text)))
}

/// `n,n,n,n,n,n` at the start of `text`, each number at most three digits.
fn six_numbers(text: &str) -> Option<[u32; 6]> {
    let mut out = [0u32; 6];
    let mut rest = text;
    for (i, slot) in out.iter_mut().enumerate() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 3 {
            return None;
        }
        *slot = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        if i < 5 {
            rest = rest.strip_prefix(',')?;
        }
    }
    Some(out)
}

/// The port of an EPSV answer's text.
pub fn parse_epsv(text: &str) -> Result<u16, PassiveError> {
    let open = text.find('(').ok_or_else(|| PassiveError::Malformed(shown(text)))?;
    let inner = &text[open + 1..];
    let close = inner.find(')').ok_or_else(|| PassiveError::Malformed(shown(text)))?;
    let inner = &inner[..close];
    let delimiter =
        inner.chars().next().filter(|c| c.is_ascii_graphic()).ok_or_else(|| PassiveError::Malformed(shown(text)))?;
    let fields: Vec<&str> = inner.split(delimiter).collect();
    // `|||port|` splits into "", "", "", "port", "".
    match fields.as_slice() {
        ["", "", "", port, ""] if !port.is_empty() && port.len() <= 10 && port.bytes().all(|b| b.is_ascii_digit()) => {
            let port: u32 = port.parse().map_err(|_| PassiveError::Malformed(shown(text)))?;
            match u16::try_from(port) {
                Ok(p) if p > 0 => Ok(p),
                _ => Err(PassiveError::BadPort(port)),
            }
        }
        _ => Err(PassiveError::Malformed(shown(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasv_answers_as_servers_word_them() {
        assert_eq!(parse_pasv("Entering Passive Mode (127,0,0,1,47,94).").unwrap(), (Ipv4Addr::LOCALHOST, 12126));
        assert_eq!(parse_pasv("Entering Passive Mode 10,0,0,5,4,1").unwrap(), (Ipv4Addr::new(10, 0, 0, 5), 1025));
        assert_eq!(parse_pasv("=169,254,169,254,0,80").unwrap().0, Ipv4Addr::new(169, 254, 169, 254));
        assert!(matches!(parse_pasv("Entering Passive Mode (1,2,3,4,5)"), Err(PassiveError::Malformed(_))));
        assert!(matches!(parse_pasv("(300,0,0,1,4,1)"), Err(PassiveError::Malformed(_))));
        assert_eq!(parse_pasv("(127,0,0,1,0,0)"), Err(PassiveError::BadPort(0)));
        assert!(parse_pasv("").is_err());
    }

    #[test]
    fn epsv_answers_any_delimiter() {
        assert_eq!(parse_epsv("Entering Extended Passive Mode (|||12137|)").unwrap(), 12137);
        assert_eq!(parse_epsv("ok (!!!2121!)").unwrap(), 2121);
        assert_eq!(parse_epsv("(|||70000|)"), Err(PassiveError::BadPort(70000)));
        assert_eq!(parse_epsv("(|||0|)"), Err(PassiveError::BadPort(0)));
        assert!(matches!(parse_epsv("(|1|127.0.0.1|2121|)"), Err(PassiveError::Malformed(_))));
        assert!(matches!(parse_epsv("(|||99999999999999|)"), Err(PassiveError::Malformed(_))));
        assert!(parse_epsv("no parentheses").is_err());
    }
}
