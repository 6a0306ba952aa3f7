//! Where `serve` may aim a probe (`allowed_targets`), decided on structure, not on text.
//!
//! A target (`host[:port]`, or `scheme://host[:port][/path]`) is parsed into its parts and
//! put in one canonical form before anything is matched; each pattern is parsed the same
//! way, and each part is matched on its own, `*` standing for any run of characters within
//! that part only. So no spelling of a target can move what a glob matches from one part to
//! another: userinfo, backslashes, queries, fragments, percent-encoding, control characters
//! and non-ASCII are refused outright, IPv4 must be written as four decimal octets (the
//! resolver would read `2130706433` or `0x7f.1` as 127.0.0.1), IPv6 literals are compared
//! as addresses, names are lower-cased and lose one trailing dot. The probe is then aimed at
//! the canonical form that was matched, never at the raw text.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A host, canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Lower case, without a trailing dot.
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host {
    fn render(&self) -> String {
        match self {
            Host::Name(name) => name.clone(),
            Host::V4(ip) => ip.to_string(),
            Host::V6(ip) => format!("[{ip}]"),
        }
    }

    fn text(&self) -> String {
        match self {
            Host::Name(name) => name.clone(),
            Host::V4(ip) => ip.to_string(),
            Host::V6(ip) => ip.to_string(),
        }
    }
}

/// A target, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    /// Only with a scheme; `/` when the URL has none.
    pub path: Option<String>,
}

impl Target {
    pub fn parse(raw: &str) -> Result<Target, String> {
        let parts = Parts::split(raw, false)?;
        let host = parse_host(parts.host, false)?.ok_or_else(|| format!("`{raw}` has no host"))?;
        let port = match parts.port {
            None => None,
            Some(p) => Some(parse_port(p)?),
        };
        Ok(Target { scheme: parts.scheme, host, port, path: parts.path })
    }

    /// The canonical form the probe is aimed at.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(scheme) = &self.scheme {
            out.push_str(scheme);
            out.push_str("://");
        }
        out.push_str(&self.host.render());
        if let Some(port) = self.port {
            out.push(':');
            out.push_str(&port.to_string());
        }
        if let Some(path) = &self.path {
            out.push_str(path);
        }
        out
    }
}

/// One `allowed_targets` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<PortPattern>,
    path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// A glob over the canonical host name or IPv4 text (`*` within the host only).
    Glob(String),
    V6(Ipv6Addr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Any,
    Exactly(u16),
}

impl Pattern {
    pub fn parse(raw: &str) -> Result<Pattern, String> {
        let parts = Parts::split(raw, true)?;
        if parts.scheme.as_deref().is_some_and(|s| s.contains('*')) {
            return Err(format!("`{raw}`: the scheme of a pattern cannot be a wildcard"));
        }
        let host = if parts.host.contains('*') {
            let glob = parts.host.to_ascii_lowercase();
            let glob = glob.strip_suffix('.').unwrap_or(&glob).to_string();
            if glob.is_empty() || !glob.bytes().all(|b| b == b'*' || name_byte(b) || b == b'.') {
                return Err(format!("`{raw}`: a host pattern may hold letters, digits, `-`, `_`, `.` and `*`"));
            }
            HostPattern::Glob(glob)
        } else {
            match parse_host(parts.host, true)?.ok_or_else(|| format!("`{raw}` has no host"))? {
                Host::V6(ip) => HostPattern::V6(ip),
                other => HostPattern::Glob(other.text()),
            }
        };
        let port = match parts.port {
            None => None,
            Some("*") => Some(PortPattern::Any),
            Some(p) => Some(PortPattern::Exactly(parse_port(p)?)),
        };
        Ok(Pattern { scheme: parts.scheme, host, port, path: parts.path })
    }

    /// Each part on its own: a part the pattern leaves out must be absent from the target
    /// too (a `host:port` pattern does not admit URLs, nor a port-less one other ports).
    pub fn matches(&self, target: &Target) -> bool {
        if self.scheme != target.scheme {
            return false;
        }
        let host = match (&self.host, &target.host) {
            (HostPattern::V6(want), Host::V6(got)) => want == got,
            (HostPattern::V6(_), _) | (HostPattern::Glob(_), Host::V6(_)) => false,
            // A pattern of digits, dots and stars (`10.0.0.*`) is about addresses: it must
            // not admit the name `10.0.0.7.evil.test`.
            (HostPattern::Glob(glob), Host::Name(_)) if address_glob(glob) => false,
            (HostPattern::Glob(glob), host) => {
                crate::model::glob::matches(glob, &host.text(), crate::model::glob::Wildcards::Star)
            }
        };
        let port = match (self.port, target.port) {
            (None, None) | (Some(PortPattern::Any), Some(_)) => true,
            (Some(PortPattern::Exactly(want)), Some(got)) => want == got,
            _ => false,
        };
        let path = match (&self.path, &target.path) {
            (None, None) => true,
            (Some(glob), Some(path)) => crate::model::glob::matches(glob, path, crate::model::glob::Wildcards::Star),
            _ => false,
        };
        host && port && path
    }
}

/// The raw parts of `scheme://authority/path` or `authority`.
struct Parts<'a> {
    scheme: Option<String>,
    host: &'a str,
    port: Option<&'a str>,
    path: Option<String>,
}

fn address_glob(glob: &str) -> bool {
    glob.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'*') && glob.bytes().any(|b| b.is_ascii_digit())
}

fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl<'a> Parts<'a> {
    fn split(raw: &'a str, pattern: bool) -> Result<Parts<'a>, String> {
        if raw.is_empty() {
            return Err("the target is empty".into());
        }
        if let Some(bad) = raw.chars().find(|c| {
            !c.is_ascii()
                || c.is_ascii_control()
                || c.is_ascii_whitespace()
                || matches!(c, '\\' | '@' | '?' | '#' | '%')
        }) {
            let what = match bad {
                '@' => {
                    "userinfo (`user@`) is not allowed in a target; the probe's own credentials are used".to_string()
                }
                '?' | '#' => "a target cannot carry a query or a fragment".to_string(),
                '%' => "percent-encoding is not allowed in a target: write the characters themselves".to_string(),
                '\\' => "a backslash is not allowed in a target".to_string(),
                c if !c.is_ascii() => {
                    "non-ASCII characters are not allowed in a target (use the punycode form)".to_string()
                }
                _ => "whitespace and control characters are not allowed in a target".to_string(),
            };
            return Err(format!("`{}`: {what}", raw.escape_default()));
        }
        let (scheme, rest) = match raw.split_once("://") {
            Some((scheme, rest)) => {
                let valid = scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                    && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
                if !valid {
                    return Err(format!("`{raw}`: `{scheme}` is not a URL scheme"));
                }
                (Some(scheme.to_ascii_lowercase()), rest)
            }
            None if raw.contains('/') => {
                return Err(format!("`{raw}`: write host:port, or a URL with its scheme (https://host/path)"));
            }
            None => (None, raw),
        };
        let (authority, path) = match (scheme.is_some(), rest.find('/')) {
            (true, Some(at)) => (&rest[..at], Some(normalize_path(&rest[at..], pattern)?)),
            (true, None) => (rest, Some("/".to_string())),
            (false, _) => (rest, None),
        };
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (host, after) =
                inner.split_once(']').ok_or_else(|| format!("`{raw}`: an IPv6 address needs its closing `]`"))?;
            match after {
                "" => (host, None),
                _ => {
                    (host, Some(after.strip_prefix(':').ok_or_else(|| format!("`{raw}`: expected `:port` after `]`"))?))
                }
            }
        } else if authority.matches(':').count() > 1 {
            return Err(format!("`{raw}`: write an IPv6 address in brackets, e.g. [::1]:5432"));
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        Ok(Parts { scheme, host, port, path })
    }
}

/// A path without dot segments or empty segments: a server would normalize them away, so
/// they could walk out of what a path pattern admits.
fn normalize_path(path: &str, pattern: bool) -> Result<String, String> {
    for segment in path.split('/').skip(1) {
        if segment == "." || segment == ".." {
            return Err(format!("`{path}`: a target path cannot contain `.` or `..` segments"));
        }
    }
    if path.contains("//") {
        return Err(format!("`{path}`: a target path cannot contain empty segments (`//`)"));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"/-._~!$&'()+,;=:".contains(&b) || (pattern && b == b'*');
    if let Some(bad) = path.bytes().find(|b| !allowed(*b)) {
        return Err(format!("`{path}`: `{}` is not allowed in a target path", char::from(bad)));
    }
    Ok(path.to_string())
}

fn parse_port(raw: &str) -> Result<u16, String> {
    if raw.is_empty() || raw.len() > 5 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{raw}` is not a port number"));
    }
    match raw.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{raw}` is not a port number")),
    }
}

/// `Ok(None)` for an empty host.
fn parse_host(raw: &str, pattern: bool) -> Result<Option<Host>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.contains(':') {
        return raw
            .parse::<Ipv6Addr>()
            .map(|ip| Some(Host::V6(ip)))
            .map_err(|_| format!("`{raw}` is not an IPv6 address"));
    }
    let lower = raw.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.is_empty() || l.len() > 63) || name.len() > 253 {
        return Err(format!("`{raw}` is not a host name"));
    }
    if !name.bytes().all(|b| name_byte(b) || b == b'.') {
        return Err(format!("`{raw}` is not a host name"));
    }
    let numeric = |l: &str| {
        l.bytes().all(|b| b.is_ascii_digit())
            || l.strip_prefix("0x").is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    if labels.iter().all(|l| numeric(l)) || labels.last().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        // Only the canonical dotted quad: anything else a resolver may read as some address.
        let canonical = labels.len() == 4
            && labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit()) && (l.len() == 1 || !l.starts_with('0')));
        return match name.parse::<Ipv4Addr>() {
            Ok(ip) if canonical => Ok(Some(Host::V4(ip))),
            _ => Err(format!(
                "`{raw}` is not a canonical IPv4 address (write four decimal numbers, e.g. 10.0.0.7){}",
                if pattern { "" } else { "; resolvers read such spellings as addresses" }
            )),
        };
    }
    Ok(Some(Host::Name(name.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(pattern: &str, target: &str) -> bool {
        let pattern = Pattern::parse(pattern).unwrap();
        Target::parse(target).is_ok_and(|t| pattern.matches(&t))
    }

    #[test]
    fn plain_matches() {
        assert!(allowed("db-*.internal:5432", "db-1.internal:5432"));
        assert!(allowed("db-*.internal:*", "db-1.internal:6543"));
        assert!(allowed("db-*.internal", "db-1.internal"));
        assert!(allowed("DB-*.Internal", "db-1.INTERNAL."), "case and one trailing dot are canonicalized");
        assert!(allowed("http://*.internal.test/health", "http://a.internal.test/health"));
        assert!(allowed("https://api.test/*", "https://api.test/v1/health"));
        assert!(allowed("https://api.test", "https://api.test/"));
        assert!(allowed("[::1]:*", "[0:0:0:0:0:0:0:1]:5432"), "IPv6 compared as addresses");
        assert!(allowed("10.0.0.*:5432", "10.0.0.7:5432"));
    }

    #[test]
    fn the_audits_bypass_shapes_are_refused() {
        let p = "http://*.internal.test/health";
        for target in [
            "http://127.0.0.1:9000/?.internal.test/health",
            "http://127.0.0.1:9000/#.internal.test/health",
            "http://x.internal.test@127.0.0.1:9000/health",
            "http://127.0.0.1:9000/.internal.test/health",
            "http://127.0.0.1:9000\\.internal.test/health",
            "http://127.0.0.1%2f.internal.test/health",
            "http://127.0.0.1:9000%23.internal.test/health",
            "http://evil.test/.internal.test/health",
            "http://a.internal.test/health/../../admin",
            "http://a.internal.test//health",
            "http://a.internal.test:8080/health",
            "https://a.internal.test/health",
            "a.internal.test",
            "http://a.internal.test/health\n",
            "http://a.internal.te\u{0455}t/health",
        ] {
            assert!(!allowed(p, target), "{target} passed {p}");
        }
    }

    #[test]
    fn numeric_host_spellings_are_refused() {
        for target in
            ["2130706433:5432", "0x7f.1:5432", "127.1:5432", "0177.0.0.1:5432", "010.0.0.7:5432", "a.123:5432"]
        {
            assert!(Target::parse(target).is_err(), "{target}");
        }
        assert!(!allowed("*.internal:5432", "10.internal.7:5432"));
        assert!(!allowed("10.0.0.*:5432", "10.0.0.7.evil.test:5432"));
    }

    #[test]
    fn ports_and_schemes_must_be_what_the_pattern_says() {
        assert!(!allowed("db.internal", "db.internal:22"), "a port-less pattern admits no other port");
        assert!(!allowed("db.internal:5432", "db.internal"));
        assert!(!allowed("db.internal:5432", "db.internal:05432x"));
        assert!(!allowed("127.0.0.1:*", "http://127.0.0.1:80/"), "host:port patterns admit no URLs");
        assert!(!allowed("[::1]:*", "127.0.0.1:5432"));
        assert!(!allowed("*", "[::1]:5432"), "a glob does not match IPv6 literals");
        assert!(Target::parse("db.internal:0").is_err());
        assert!(Target::parse("db.internal:65536").is_err());
        assert!(Target::parse("::1:5432").is_err());
    }

    #[test]
    fn targets_are_rendered_canonically() {
        assert_eq!(Target::parse("DB.Internal.:5432").unwrap().render(), "db.internal:5432");
        assert_eq!(Target::parse("[0::1]:5432").unwrap().render(), "[::1]:5432");
        assert_eq!(Target::parse("HTTPS://Api.Test").unwrap().render(), "https://api.test/");
    }

    #[test]
    fn bad_patterns_are_reported() {
        assert!(Pattern::parse("http*://x").is_err());
        assert!(Pattern::parse("user@db.internal").is_err());
        assert!(Pattern::parse("db.internal:port").is_err());
    }
}
