//! The state of check-card links, kept as files in the outbox directory so that every
//! replica of `serve` that shares it sees the same thing: `ID.link` (what `card create`
//! made), `ID.revoked`, `ID.spent` (created exclusively: one pass spends a link once, on
//! whichever replica), `ID.attempts` (one line per attempt: time, result, stage and class;
//! never a value) and `ID.age` (the sealed result). Nothing secret is ever written here
//! except inside the sealed file.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::cards::LinkClaims;

/// A link as `card create` recorded it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkRecord {
    pub id: String,
    pub card: String,
    pub label: String,
    /// Unix seconds.
    pub created: i64,
    pub expires: i64,
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Open,
    Expired,
    Revoked,
    Spent,
    /// No record in this outbox (another outbox's link, or one removed by hand).
    Unknown,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Open => "open",
            LinkState::Expired => "expired",
            LinkState::Revoked => "revoked",
            LinkState::Spent => "spent",
            LinkState::Unknown => "unknown",
        }
    }
}

/// One attempt, as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at: i64,
    /// `pass`, `warn`, `fail`.
    pub result: String,
    /// `stage: class` of a failure, or what was approved.
    pub detail: String,
}

fn file(outbox: &Path, id: &str, ext: &str) -> Result<PathBuf, String> {
    // Ids are ours (hex); anything else never names a file.
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{id}` is not a link id"));
    }
    Ok(outbox.join(format!("{id}.{ext}")))
}

fn io(what: &str, path: &Path, err: std::io::Error) -> String {
    format!("{what} {}: {}", path.display(), crate::model::error::describe_io(&err))
}

fn create_dir(outbox: &Path) -> Result<(), String> {
    std::fs::create_dir_all(outbox).map_err(|e| io("cannot create the outbox", outbox, e))?;
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file and a rename, readable by the owner only.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("cannot write", &tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("cannot write", path, e))
}

/// Records a new link; earlier open links of the same card and label are revoked (one open
/// link per card and label). Returns the ids it revoked.
pub fn create(outbox: &Path, link: &LinkRecord, now: i64) -> Result<Vec<String>, String> {
    create_dir(outbox)?;
    let mut replaced = Vec::new();
    for old in list(outbox)? {
        if old.card == link.card && old.label == link.label && state(outbox, &old, now) == LinkState::Open {
            revoke(outbox, &old.id)?;
            replaced.push(old.id);
        }
    }
    let json = serde_json::to_vec_pretty(link).map_err(|e| e.to_string())?;
    write_atomically(&file(outbox, &link.id, "link")?, &json)?;
    Ok(replaced)
}

/// Every recorded link, oldest first.
pub fn list(outbox: &Path) -> Result<Vec<LinkRecord>, String> {
    let entries = match std::fs::read_dir(outbox) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("cannot read the outbox", outbox, e)),
    };
    let mut links = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "link")
            && let Ok(text) = crate::config::secrets::read_text_capped(&path, 64 * 1024)
            && let Ok(link) = serde_json::from_str::<LinkRecord>(&text)
        {
            links.push(link);
        }
    }
    links.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    Ok(links)
}

/// The record of a link, if this outbox has it.
pub fn find(outbox: &Path, id: &str) -> Option<LinkRecord> {
    let text = crate::config::secrets::read_text_capped(&file(outbox, id, "link").ok()?, 64 * 1024).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn state(outbox: &Path, link: &LinkRecord, now: i64) -> LinkState {
    let exists = |ext: &str| file(outbox, &link.id, ext).is_ok_and(|p| p.exists());
    if exists("spent") {
        LinkState::Spent
    } else if exists("revoked") {
        LinkState::Revoked
    } else if now >= link.expires {
        LinkState::Expired
    } else {
        LinkState::Open
    }
}

/// Where the link of a verified token stands: its record must exist and agree with the
/// token (a record is what `card revoke` and a spend act on).
pub fn state_of(outbox: &Path, claims: &LinkClaims, now: i64) -> LinkState {
    match find(outbox, &claims.id) {
        Some(link) if link.card == claims.card && link.label == claims.label && link.expires == claims.expires => {
            state(outbox, &link, now)
        }
        _ => LinkState::Unknown,
    }
}

pub fn revoke(outbox: &Path, id: &str) -> Result<(), String> {
    let path = file(outbox, id, "revoked")?;
    File::create(&path).map(|_| ()).map_err(|e| io("cannot write", &path, e))
}

/// Spends a link: true for the one caller (on any replica) that created the mark.
pub fn spend(outbox: &Path, id: &str) -> Result<bool, String> {
    let path = file(outbox, id, "spent")?;
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io("cannot write", &path, e)),
    }
}

/// Undoes a spend whose delivery failed, so the link may be used again.
pub fn unspend(outbox: &Path, id: &str) {
    if let Ok(path) = file(outbox, id, "spent") {
        let _ = std::fs::remove_file(path);
    }
}

/// What the operator sees of a link (`card list`, serve's status page): never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    pub state: LinkState,
    pub attempts: usize,
    /// The last attempt's result and `stage: class`.
    pub last: Option<String>,
    /// The fingerprint the owner approved, if any attempt did.
    pub approved: Option<String>,
    /// Whether the sealed result is in the outbox.
    pub sealed: bool,
}

pub fn view(outbox: &Path, link: &LinkRecord, now: i64) -> LinkView {
    let attempts = attempts(outbox, &link.id);
    LinkView {
        state: state(outbox, link, now),
        attempts: attempts.len(),
        last: attempts.last().map(|a| format!("{} {}", a.result, a.detail).trim().to_string()),
        approved: attempts.iter().rev().find_map(|a| a.detail.strip_prefix("approved ").map(str::to_string)),
        sealed: file(outbox, &link.id, "age").is_ok_and(|p| p.exists()),
    }
}

/// Writes the sealed result (`ID.age`).
pub fn deliver(outbox: &Path, id: &str, sealed: &[u8]) -> Result<PathBuf, String> {
    let path = file(outbox, id, "age")?;
    write_atomically(&path, sealed)?;
    Ok(path)
}

/// Appends an attempt; tabs and newlines in its texts become spaces.
pub fn record_attempt(outbox: &Path, id: &str, attempt: &Attempt) -> Result<(), String> {
    let path = file(outbox, id, "attempts")?;
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let line = format!("{}\t{}\t{}\n", attempt.at, clean(&attempt.result), clean(&attempt.detail));
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io("cannot write", &path, e))?;
    // One write of one short line: appends from several replicas do not interleave.
    f.write_all(line.as_bytes()).map_err(|e| io("cannot write", &path, e))
}

/// The attempts recorded for a link (the last 1,000 at most).
pub fn attempts(outbox: &Path, id: &str) -> Vec<Attempt> {
    let Ok(path) = file(outbox, id, "attempts") else {
        return Vec::new();
    };
    let Ok(text) = crate::config::secrets::read_text_capped(&path, 256 * 1024) else {
        return Vec::new();
    };
    let mut out: Vec<Attempt> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            Some(Attempt {
                at: parts.next()?.parse().ok()?,
                result: parts.next()?.to_string(),
                detail: parts.next().unwrap_or("").to_string(),
            })
        })
        .collect();
    if out.len() > 1000 {
        out.drain(..out.len() - 1000);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: &str, label: &str, expires: i64) -> LinkRecord {
        LinkRecord { id: id.into(), card: "db".into(), label: label.into(), created: 1, expires }
    }

    #[test]
    fn a_link_is_open_until_spent_revoked_or_expired_and_spent_once() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        create(&outbox, &link("aa01", "acme", 100), 10).unwrap();
        let replaced = create(&outbox, &link("aa02", "acme", 100), 11).unwrap();
        assert_eq!(replaced, vec!["aa01".to_string()], "one open link per card and label");
        create(&outbox, &link("aa03", "other", 100), 12).unwrap();
        let claims = LinkClaims { id: "aa02".into(), card: "db".into(), label: "acme".into(), expires: 100 };
        assert_eq!(state_of(&outbox, &claims, 50), LinkState::Open);
        assert_eq!(state_of(&outbox, &claims, 100), LinkState::Expired);
        assert_eq!(state_of(&outbox, &LinkClaims { label: "x".into(), ..claims.clone() }, 50), LinkState::Unknown);
        assert!(spend(&outbox, "aa02").unwrap());
        assert!(!spend(&outbox, "aa02").unwrap(), "spent once");
        assert_eq!(state_of(&outbox, &claims, 50), LinkState::Spent);
        assert_eq!(state(&outbox, &link("aa01", "acme", 100), 50), LinkState::Revoked);
        assert!(file(&outbox, "../etc/passwd", "link").is_err());
        record_attempt(
            &outbox,
            "aa03",
            &Attempt { at: 5, result: "fail".into(), detail: "auth:\tauth_rejected".into() },
        )
        .unwrap();
        assert_eq!(attempts(&outbox, "aa03")[0].detail, "auth: auth_rejected");
    }
}
