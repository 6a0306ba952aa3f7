//! A KDC's KRB-ERROR (RFC 4120 §5.9.1), read only for what the failure message needs: the
//! error code and the KDC's clock (`stime`), from which a clock skew is measured. DER from
//! the network: every length is checked, nothing is trusted to be well formed.

/// What a KRB-ERROR says.
#[derive(Debug, PartialEq, Eq)]
pub struct KdcError {
    pub code: i32,
    /// The KDC's time, in seconds since the Unix epoch.
    pub server_time: i64,
}

/// One DER element: its tag and contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

fn integer(contents: &[u8]) -> Option<i64> {
    let (tag, value, _) = element(contents)?;
    if tag != 0x02 || value.is_empty() || value.len() > 8 {
        return None;
    }
    let negative = value[0] & 0x80 != 0;
    Some(value.iter().fold(if negative { -1i64 } else { 0 }, |acc, b| (acc << 8) | i64::from(*b)))
}

/// GeneralizedTime "YYYYMMDDHHMMSSZ" as seconds since the epoch.
fn time(contents: &[u8]) -> Option<i64> {
    let (tag, value, _) = element(contents)?;
    let text = std::str::from_utf8(value).ok()?;
    if tag != 0x18 || text.len() != 15 || !text.ends_with('Z') || !text[..14].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |range: std::ops::Range<usize>| text[range].parse::<i64>().ok();
    let (year, month, day) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hour, minute, second) = (n(8..10)?, n(10..12)?, n(12..14)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Reads a KDC reply; `None` unless it is a KRB-ERROR with a code and a time. A reply over
/// TCP may still carry its four-byte length.
pub fn parse(reply: &[u8]) -> Option<KdcError> {
    let reply = match reply.first() {
        Some(0x7e) => reply,
        _ => reply.get(4..)?,
    };
    let (tag, body, _) = element(reply)?;
    if tag != 0x7e {
        return None;
    }
    let (tag, mut fields, _) = element(body)?;
    if tag != 0x30 {
        return None;
    }
    let (mut code, mut server_time) = (None, None);
    while !fields.is_empty() {
        let (tag, contents, rest) = element(fields)?;
        match tag {
            0xa4 => server_time = time(contents),
            0xa6 => code = integer(contents).and_then(|c| i32::try_from(c).ok()),
            _ => {}
        }
        fields = rest;
    }
    Some(KdcError { code: code?, server_time: server_time? })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KRB-ERROR as MIT's KDC sends it for a clock skew (37) at 2026-11-24 20:00:00Z.
    fn skew_error() -> Vec<u8> {
        let mut fields = Vec::new();
        fields.extend_from_slice(&[0xa0, 0x03, 0x02, 0x01, 0x05]); // pvno 5
        fields.extend_from_slice(&[0xa1, 0x03, 0x02, 0x01, 0x1e]); // msg-type 30
        fields.extend_from_slice(&[0xa4, 0x11, 0x18, 0x0f]);
        fields.extend_from_slice(b"20261124200000Z");
        fields.extend_from_slice(&[0xa5, 0x03, 0x02, 0x01, 0x00]);
        fields.extend_from_slice(&[0xa6, 0x03, 0x02, 0x01, 0x25]); // error-code 37
        let mut seq = vec![0x30, fields.len() as u8];
        seq.extend(fields);
        let mut msg = vec![0x7e, seq.len() as u8];
        msg.extend(seq);
        msg
    }

    #[test]
    fn reads_the_code_and_the_kdc_clock() {
        let parsed = parse(&skew_error()).unwrap();
        assert_eq!(parsed, KdcError { code: 37, server_time: 1_795_550_400 });
        let mut framed = (skew_error().len() as u32).to_be_bytes().to_vec();
        framed.extend(skew_error());
        assert_eq!(parse(&framed), Some(parsed));
    }

    #[test]
    fn refuses_what_is_not_a_whole_krb_error() {
        let whole = skew_error();
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut]), None, "cut at {cut}");
        }
        assert_eq!(parse(&[0x7e, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(parse(b""), None);
    }
}
