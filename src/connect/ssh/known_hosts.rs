//! OpenSSH `known_hosts` files: host patterns (wildcards, negation, `[host]:port` for
//! ports other than 22), hashed host names (`|1|salt|hash`), and the `@revoked` marker.
//! The verdict for one presented key follows `ssh`'s: a matching key is trusted, a
//! revoked one refused, a different key of the same algorithm is a changed key.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::model::glob::{Wildcards, matches};

/// One usable key line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    line: usize,
    revoked: bool,
    /// `@cert-authority`: the key is a CA's, trusted to certify these hosts' keys.
    authority: bool,
    hosts: HostMatcher,
    algorithm: String,
    blob: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatcher {
    /// Comma-separated patterns, lower-cased.
    Patterns(Vec<String>),
    /// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

/// A parsed `known_hosts` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHosts {
    pub path: PathBuf,
    entries: Vec<Entry>,
}

/// What the file says about a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key is listed for this host (line number).
    Trusted(usize),
    /// The key is marked `@revoked` (line number).
    Revoked(usize),
    /// The host is listed with another key of the same algorithm: the key changed (lines).
    Changed(Vec<usize>),
    /// The host is listed, but only with keys of other algorithms.
    OtherAlgorithms(Vec<String>),
    /// The host is not listed at all.
    Unknown,
}

/// The name a host is listed under: `host` on port 22, `[host]:port` elsewhere.
pub fn host_entry_name(host: &str, port: u16) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    if port == 22 { host } else { format!("[{host}]:{port}") }
}

impl KnownHosts {
    /// Parses file text. Malformed lines are skipped, as `ssh` does; a file without a single
    /// usable line is an error, since it can only be a mistake.
    pub fn parse(path: &Path, text: &str) -> Result<KnownHosts, String> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let (mut revoked, mut authority) = (false, false);
            match first {
                "@cert-authority" => {
                    authority = true;
                    first = fields.next().unwrap_or_default();
                }
                "@revoked" => {
                    revoked = true;
                    first = fields.next().unwrap_or_default();
                }
                marker if marker.starts_with('@') => continue,
                _ => {}
            }
            let (Some(algorithm), Some(encoded)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(blob) = STANDARD.decode(encoded) else {
                continue;
            };
            // The blob names its own algorithm; a line whose two disagree is corrupt.
            if blob_algorithm(&blob) != Some(algorithm) {
                continue;
            }
            let Some(hosts) = parse_hosts(first) else {
                continue;
            };
            entries.push(Entry { line: index + 1, revoked, authority, hosts, algorithm: algorithm.to_string(), blob });
        }
        if entries.is_empty() {
            return Err("no host key lines found (expected OpenSSH known_hosts format)".into());
        }
        Ok(KnownHosts { path: path.to_path_buf(), entries })
    }

    /// The host keys (not CAs) listed for `host:port`, revoked ones included.
    fn keys_for(&self, host: &str, port: u16) -> impl Iterator<Item = &Entry> {
        let name = host_entry_name(host, port);
        self.entries.iter().filter(move |e| !e.authority && e.hosts.matches(&name))
    }

    /// The certificate authorities listed for `host:port`: (line, the CA's key).
    pub fn authorities_for(&self, host: &str, port: u16) -> Vec<(usize, &[u8])> {
        let name = host_entry_name(host, port);
        self.entries
            .iter()
            .filter(|e| e.authority && e.hosts.matches(&name))
            .map(|e| (e.line, e.blob.as_slice()))
            .collect()
    }

    /// The line marking `blob` `@revoked` for `host:port`: a revoked key is refused also
    /// when it signed a certificate, as `ssh` does.
    pub fn revoked_line(&self, host: &str, port: u16, blob: &[u8]) -> Option<usize> {
        self.keys_for(host, port).find(|e| e.revoked && e.blob == blob).map(|e| e.line)
    }

    /// Judges `blob` (the key in SSH wire format) presented by `host:port`.
    pub fn verdict(&self, host: &str, port: u16, algorithm: &str, blob: &[u8]) -> Verdict {
        let listed: Vec<&Entry> = self.keys_for(host, port).collect();
        if let Some(revoked) = listed.iter().find(|e| e.revoked && e.blob == blob) {
            return Verdict::Revoked(revoked.line);
        }
        let valid: Vec<&&Entry> = listed.iter().filter(|e| !e.revoked).collect();
        if let Some(trusted) = valid.iter().find(|e| e.blob == blob) {
            return Verdict::Trusted(trusted.line);
        }
        let same_algorithm: Vec<usize> = valid.iter().filter(|e| e.algorithm == algorithm).map(|e| e.line).collect();
        if !same_algorithm.is_empty() {
            return Verdict::Changed(same_algorithm);
        }
        if valid.is_empty() {
            return Verdict::Unknown;
        }
        let mut others: Vec<String> = valid.iter().map(|e| e.algorithm.clone()).collect();
        others.dedup();
        Verdict::OtherAlgorithms(others)
    }

    /// The algorithms listed for a host, in file order: the ones to ask the server for
    /// first, as `ssh` does, so that a host with several keys presents a known one.
    pub fn algorithms_for(&self, host: &str, port: u16) -> Vec<String> {
        let mut algorithms: Vec<String> = Vec::new();
        for entry in self.keys_for(host, port).filter(|e| !e.revoked) {
            if !algorithms.contains(&entry.algorithm) {
                algorithms.push(entry.algorithm.clone());
            }
        }
        algorithms
    }
}

/// The algorithm name at the start of an SSH wire-format public key.
pub fn blob_algorithm(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4 + len)?).ok()
}

fn parse_hosts(field: &str) -> Option<HostMatcher> {
    if let Some(hashed) = field.strip_prefix("|1|") {
        let (salt, hash) = hashed.split_once('|')?;
        return Some(HostMatcher::Hashed { salt: STANDARD.decode(salt).ok()?, hash: STANDARD.decode(hash).ok()? });
    }
    let patterns: Vec<String> = field.split(',').filter(|p| !p.is_empty()).map(|p| p.to_ascii_lowercase()).collect();
    (!patterns.is_empty()).then_some(HostMatcher::Patterns(patterns))
}

impl HostMatcher {
    fn matches(&self, name: &str) -> bool {
        match self {
            HostMatcher::Hashed { salt, hash } => {
                let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
                aws_lc_rs::hmac::verify(&key, name.as_bytes(), hash).is_ok()
            }
            HostMatcher::Patterns(patterns) => {
                // A matching negated pattern excludes the host whatever else matches.
                let mut positive = false;
                for pattern in patterns {
                    match pattern.strip_prefix('!') {
                        Some(negated) if matches(negated, name, Wildcards::StarAndQuestion) => return false,
                        Some(_) => {}
                        None => positive |= matches(pattern, name, Wildcards::StarAndQuestion),
                    }
                }
                positive
            }
        }
    }
}

/// The line to append to a `known_hosts` file to trust `blob` for `host:port`.
pub fn entry_line(host: &str, port: u16, algorithm: &str, blob: &[u8]) -> String {
    format!("{} {algorithm} {}", host_entry_name(host, port), STANDARD.encode(blob))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(algorithm: &str, body: &[u8]) -> Vec<u8> {
        let mut out = (algorithm.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(algorithm.as_bytes());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn line(hosts: &str, algorithm: &str, body: &[u8]) -> String {
        format!("{hosts} {algorithm} {}", STANDARD.encode(blob(algorithm, body)))
    }

    fn parse(text: &str) -> KnownHosts {
        KnownHosts::parse(Path::new("known_hosts"), text).unwrap()
    }

    #[test]
    fn plain_entries_match_by_name_and_port() {
        let file = parse(&format!(
            "# comment\n{}\n{}\n",
            line("db.example.com,10.0.0.5", "ssh-ed25519", b"key-a"),
            line("[sftp.example.com]:2222", "ssh-ed25519", b"key-b")
        ));
        let a = blob("ssh-ed25519", b"key-a");
        let b = blob("ssh-ed25519", b"key-b");
        assert_eq!(file.verdict("DB.example.com", 22, "ssh-ed25519", &a), Verdict::Trusted(2));
        assert_eq!(file.verdict("10.0.0.5", 22, "ssh-ed25519", &a), Verdict::Trusted(2));
        assert_eq!(file.verdict("sftp.example.com", 2222, "ssh-ed25519", &b), Verdict::Trusted(3));
        // The same host on another port is another entry.
        assert_eq!(file.verdict("sftp.example.com", 22, "ssh-ed25519", &b), Verdict::Unknown);
        assert_eq!(file.verdict("db.example.com", 22, "ssh-ed25519", &b), Verdict::Changed(vec![2]));
    }

    #[test]
    fn hashed_names_are_matched_with_hmac_sha1() {
        // A line written by `ssh-keygen -H` for "[127.0.0.1]:12222".
        let file = parse(
            "|1|qGVQspI8guU0yocyzwg615x22mg=|2Cd7D+zoqAxGFKF7iKVGAiRnUwo= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINKDXRsnH3EkTIceVHujDgkybLokvjJpkGgyB0wjMTfV",
        );
        let k = STANDARD.decode("AAAAC3NzaC1lZDI1NTE5AAAAINKDXRsnH3EkTIceVHujDgkybLokvjJpkGgyB0wjMTfV").unwrap();
        assert_eq!(file.verdict("127.0.0.1", 12222, "ssh-ed25519", &k), Verdict::Trusted(1));
        assert_eq!(file.verdict("127.0.0.1", 22, "ssh-ed25519", &k), Verdict::Unknown);
        assert_eq!(file.verdict("127.0.0.2", 12222, "ssh-ed25519", &k), Verdict::Unknown);
    }

    #[test]
    fn wildcards_negation_and_revocation() {
        let file = parse(&format!(
            "{}\n@revoked {}\n{}\n",
            line("*.internal,!bastion.internal", "ecdsa-sha2-nistp256", b"key-w"),
            line("*", "ssh-ed25519", b"stolen"),
            line("db?.internal", "ssh-ed25519", b"key-d")
        ));
        let w = blob("ecdsa-sha2-nistp256", b"key-w");
        assert_eq!(file.verdict("api.internal", 22, "ecdsa-sha2-nistp256", &w), Verdict::Trusted(1));
        assert_eq!(file.verdict("bastion.internal", 22, "ecdsa-sha2-nistp256", &w), Verdict::Unknown);
        let stolen = blob("ssh-ed25519", b"stolen");
        assert_eq!(file.verdict("anything", 22, "ssh-ed25519", &stolen), Verdict::Revoked(2));
        assert_eq!(
            file.verdict("api.internal", 22, "ssh-ed25519", &blob("ssh-ed25519", b"other")),
            Verdict::OtherAlgorithms(vec!["ecdsa-sha2-nistp256".into()])
        );
        assert_eq!(file.algorithms_for("db1.internal", 22), vec!["ecdsa-sha2-nistp256", "ssh-ed25519"]);
    }

    #[test]
    fn corrupt_lines_are_skipped_and_empty_files_refused() {
        let good = line("h", "ssh-ed25519", b"k");
        let mismatched = format!("h ssh-rsa {}", STANDARD.encode(blob("ssh-ed25519", b"k")));
        let file = parse(&format!("garbage\nh ssh-ed25519 !!!\n{mismatched}\n{good}\n"));
        assert_eq!(file.verdict("h", 22, "ssh-ed25519", &blob("ssh-ed25519", b"k")), Verdict::Trusted(4));
        assert!(KnownHosts::parse(Path::new("x"), "# nothing\n").is_err());
    }

    #[test]
    fn entry_lines_use_brackets_for_other_ports() {
        let k = blob("ssh-ed25519", b"k");
        assert!(entry_line("127.0.0.1", 12222, "ssh-ed25519", &k).starts_with("[127.0.0.1]:12222 ssh-ed25519 AAAA"));
        assert!(entry_line("Host", 22, "ssh-ed25519", &k).starts_with("host ssh-ed25519 "));
    }
}
