//! `NO_PROXY`, as curl reads it: comma-separated host names (each matching itself and its
//! subdomains; a leading `.` or `*.` changes nothing), IP addresses, CIDR ranges, an
//! optional `:port` on any of them, and `*` for every host.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Everything,
    Domain(String),
    Ip(IpAddr),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    text: String,
    pattern: Pattern,
    port: Option<u16>,
}

/// A parsed `NO_PROXY` list. Entries that are none of the above are ignored, as curl does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<Entry>,
}

impl NoProxy {
    pub fn parse(raw: &str) -> NoProxy {
        let entries = raw
            .split([',', ' ', '\t'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .filter_map(|text| {
                let (pattern, port) = parse_entry(text)?;
                Some(Entry { text: text.to_string(), pattern, port })
            })
            .collect();
        NoProxy { entries }
    }

    /// The entry that exempts `host:port` from proxies, if one does.
    pub fn matches(&self, host: &str, port: u16) -> Option<&str> {
        let bare = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        let ip = bare.parse::<IpAddr>().ok();
        self.entries
            .iter()
            .find(|e| {
                e.port.is_none_or(|p| p == port)
                    && match (&e.pattern, ip) {
                        (Pattern::Everything, _) => true,
                        (Pattern::Ip(want), Some(ip)) => *want == ip,
                        (Pattern::Cidr(net, bits), Some(ip)) => in_cidr(ip, *net, *bits),
                        (Pattern::Domain(domain), None) => {
                            bare == *domain
                                || bare.strip_suffix(domain.as_str()).is_some_and(|rest| rest.ends_with('.'))
                        }
                        _ => false,
                    }
            })
            .map(|e| e.text.as_str())
    }
}

fn parse_entry(text: &str) -> Option<(Pattern, Option<u16>)> {
    if text == "*" {
        return Some((Pattern::Everything, None));
    }
    // [v6]:port, v4:port, name:port; a bare v6 address has several colons and no port.
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':').and_then(|p| p.parse().ok()))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port.parse().ok()?)),
            _ => (text, None),
        }
    };
    if let Some((net, bits)) = host.split_once('/') {
        let net: IpAddr = net.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        return (bits <= max).then_some((Pattern::Cidr(net, bits), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some((Pattern::Ip(ip), port));
    }
    let domain = host.trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some((Pattern::Domain(domain), port))
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let prefix = |bytes: &[u8]| -> u128 { bytes.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b)) };
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (prefix(&a.octets()), prefix(&b.octets()), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (prefix(&a.octets()), prefix(&b.octets()), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    if shift >= 128 {
        return true;
    }
    (ip >> shift) == (net >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_as_curl_matches_them() {
        let list =
            NoProxy::parse("localhost, .corp.example,*.svc, 10.0.0.0/8,192.168.1.7, [::1], db.example:5432, fd00::/8");
        let hit = |host: &str, port: u16| list.matches(host, port).map(str::to_string);
        assert_eq!(hit("localhost", 443).as_deref(), Some("localhost"));
        assert_eq!(hit("LOCALHOST.", 443).as_deref(), Some("localhost"));
        assert_eq!(hit("api.corp.example", 443).as_deref(), Some(".corp.example"));
        assert_eq!(hit("corp.example", 443).as_deref(), Some(".corp.example"));
        assert_eq!(hit("notcorp.example", 443), None);
        assert_eq!(hit("pg.ns.svc", 5432).as_deref(), Some("*.svc"));
        assert_eq!(hit("10.200.3.4", 1).as_deref(), Some("10.0.0.0/8"));
        assert_eq!(hit("11.0.0.1", 1), None);
        assert_eq!(hit("192.168.1.7", 1).as_deref(), Some("192.168.1.7"));
        assert_eq!(hit("[::1]", 1).as_deref(), Some("[::1]"));
        assert_eq!(hit("fd12::1", 1).as_deref(), Some("fd00::/8"));
        assert_eq!(hit("db.example", 5432).as_deref(), Some("db.example:5432"));
        assert_eq!(hit("db.example", 3306), None);
        assert_eq!(NoProxy::parse("*").matches("anything", 1), Some("*"));
        assert_eq!(NoProxy::parse("0.0.0.0/0").matches("8.8.8.8", 1), Some("0.0.0.0/0"));
        assert_eq!(NoProxy::parse("").matches("x", 1), None);
    }
}
