//! The approvals file (`approvals.toml`): read with every error at file:line:column like
//! the config, written sorted and atomically, and changed under a lock so that two
//! processes approving at once keep both entries (each re-reads the file under the lock
//! and writes it with its change).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::reader::{ConfigError, ReadContext, Source, TableReader};
use crate::model::approvals::{Approval, ApprovalKind};

const HEADER: &str = "# Certificates and SSH host keys approved for probes, one [[approved]] per approval.\n\
# Written by `authprobe approve` (and `run --trust-new`); entries may be edited by hand\n\
# (`for` may then be a glob such as \"*.example.com:443\"). Nothing here is secret.\n\n";

/// Reads the file: its entries, or every error in it.
pub fn read(path: &Path) -> Result<Vec<Approval>, Vec<ConfigError>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(vec![file_error(path, format!("cannot read the approvals file: {}", err.kind()))]);
        }
    };
    parse(path, text)
}

fn file_error(path: &Path, message: String) -> ConfigError {
    ConfigError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        item: None,
        key: None,
        message,
        unset_var: None,
    }
}

/// Parses approvals text; `path` names it in errors.
pub fn parse(path: &Path, text: String) -> Result<Vec<Approval>, Vec<ConfigError>> {
    let source = Source::new(path.to_path_buf(), text);
    let document = match crate::config::document::from_toml(&source.text) {
        Ok(doc) => doc,
        Err(err) => {
            let (line, column) = err.span.map(|s| source.position(s.start)).unwrap_or((0, 0));
            let mut error = file_error(path, err.message);
            (error.line, error.column) = (line, column);
            return Err(vec![error]);
        }
    };
    let empty = crate::config::document::Table::new();
    let no_variables = |_: &str| None;
    let ctx = ReadContext::new(&source, &no_variables);
    let root = TableReader::new(&ctx, document.as_table().unwrap_or(&empty), document.span(), "");
    let mut entries = Vec::new();
    for table in root.table_list("approved").unwrap_or_default() {
        if let Some(entry) = read_entry(&table) {
            entries.push(entry);
        }
        table.finish();
    }
    root.finish();
    let (errors, _) = ctx.into_findings();
    if errors.is_empty() { Ok(entries) } else { Err(errors) }
}

fn read_entry(t: &TableReader<'_, '_>) -> Option<Approval> {
    let kind = t.required_string("type", "tls or ssh")?;
    let Some(kind) = ApprovalKind::parse(&kind) else {
        t.error_at("type", format!("`{kind}` is not an approval type: tls or ssh"));
        return None;
    };
    let text = |key: &'static str, what: &str| {
        if t.has(key) { t.literal(key) } else { t.required_string(key, what) }
    };
    let endpoint = text("for", "the host:port it was seen at")?;
    if !endpoint.contains(':') {
        t.error_at("for", format!("`{endpoint}` names no port: write host:port"));
    }
    let sha256 = text("sha256", "the fingerprint")?;
    let well_formed = match kind {
        ApprovalKind::Tls => crate::model::approvals::colon_hex(&sha256, 32),
        ApprovalKind::Ssh => sha256.strip_prefix("SHA256:").is_some_and(|b64| b64.len() == 43),
    };
    if !well_formed {
        let want = match kind {
            ApprovalKind::Tls => "32 bytes in colon hex (AA:BB:…)",
            ApprovalKind::Ssh => "SHA256: and 43 base64 characters",
        };
        t.error_at("sha256", format!("`{sha256}` is not a SHA-256 fingerprint: {want}"));
        return None;
    }
    let optional = |key: &'static str| if t.has(key) { t.literal(key) } else { None };
    Some(Approval {
        kind,
        endpoint,
        name: optional("name").unwrap_or_default(),
        sha1: optional("sha1"),
        sha256: if kind == ApprovalKind::Tls { sha256.to_ascii_uppercase() } else { sha256 },
        public_key: optional("public_key").unwrap_or_default(),
        encoded_cert: optional("encoded_cert"),
        not_after: optional("not_after"),
        validated_by: text("validated_by", "who approved it")?,
        validated_date: text("validated_date", "when (RFC 3339)")?,
    })
}

/// The file's text for these entries: sorted by endpoint, type and fingerprint.
pub fn render(entries: &[Approval]) -> String {
    #[derive(serde::Serialize)]
    struct File<'a> {
        approved: &'a [Approval],
    }
    let mut sorted = entries.to_vec();
    sorted.sort_by(|a, b| (&a.endpoint, a.kind, &a.sha256).cmp(&(&b.endpoint, b.kind, &b.sha256)));
    sorted.dedup_by(|a, b| a.kind == b.kind && a.endpoint == b.endpoint && a.sha256 == b.sha256);
    let body = toml::to_string(&File { approved: &sorted }).unwrap_or_default();
    format!("{HEADER}{body}")
}

/// Why changing the file failed.
#[derive(Debug)]
pub enum ChangeError {
    /// The file as it is now has errors: nothing was written.
    Invalid(Vec<ConfigError>),
    Io(String),
}

/// Changes the file under an exclusive lock: reads it as it is now, applies `change`, and
/// writes it atomically (a new file renamed over the old one). `change` returns what to
/// tell the caller; the file is written only when it says the entries changed.
pub fn change<T>(path: &Path, change: impl FnOnce(&mut Vec<Approval>) -> (bool, T)) -> Result<T, ChangeError> {
    let io = |what: &str, err: std::io::Error| ChangeError::Io(format!("{what} {}: {}", path.display(), err.kind()));
    let _lock = Lock::take(path).map_err(|err| io("cannot lock", err))?;
    let mut entries = read(path).map_err(ChangeError::Invalid)?;
    let (changed, answer) = change(&mut entries);
    if changed {
        write_atomic(path, &render(&entries)).map_err(|err| io("cannot write", err))?;
    }
    Ok(answer)
}

/// Records `chosen` under the lock: a new approval for an endpoint supersedes the one it
/// had (a changed certificate approved again), so the old one is not trusted on. Returns
/// the superseded approvals that differed, and the file's entries as written.
pub fn record(path: &Path, chosen: &[Approval]) -> Result<(Vec<Approval>, Vec<Approval>), ChangeError> {
    change(path, |entries| {
        let mut replaced = Vec::new();
        for approval in chosen {
            entries.retain(|e| {
                let superseded = e.kind == approval.kind && e.endpoint == approval.endpoint;
                if superseded && e.sha256 != approval.sha256 {
                    replaced.push(e.clone());
                }
                !superseded
            });
            entries.push(approval.clone());
        }
        (true, (replaced, entries.clone()))
    })
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    // Readable by whoever reads the config: nothing in it is secret.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    file.persist(path).map_err(|err| err.error)?;
    Ok(())
}

/// An exclusive `flock` on `FILE.lock` beside the file (the file itself is replaced by
/// each write, so it cannot hold the lock), released when dropped.
struct Lock {
    /// Held open: closing it releases the lock.
    _file: std::fs::File,
}

impl Lock {
    fn take(path: &Path) -> std::io::Result<Lock> {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".lock");
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path.with_file_name(name))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a descriptor this struct owns; it is released with the file.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Lock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(endpoint: &str, sha256: &str) -> Approval {
        Approval {
            kind: ApprovalKind::Tls,
            endpoint: endpoint.into(),
            name: "CN=db.example.com, O=Example \"quoted\"".into(),
            sha1: Some(vec!["AB"; 20].join(":")),
            sha256: sha256.into(),
            public_key: "MIIB".into(),
            encoded_cert: Some("MIID".into()),
            not_after: Some("2027-11-23T16:38:16Z".into()),
            validated_by: "alice".into(),
            validated_date: "2026-12-06T10:12:00Z".into(),
        }
    }

    #[test]
    fn written_entries_read_back_sorted() {
        let (a, b) = (vec!["AA"; 32].join(":"), vec!["BB"; 32].join(":"));
        let text = render(&[entry("z.example.com:443", &a), entry("a.example.com:5432", &b)]);
        let read = parse(Path::new("approvals.toml"), text.clone()).unwrap();
        assert_eq!(read, vec![entry("a.example.com:5432", &b), entry("z.example.com:443", &a)]);
        assert!(text.starts_with("# Certificates"), "{text}");
    }

    #[test]
    fn errors_name_line_and_key() {
        let text = "[[approved]]\ntype = \"tls\"\nfor = \"db:5432\"\nsha256 = \"AA\"\nvalidated_by = \"a\"\nvalidated_date = \"d\"\nsha266 = \"x\"\n";
        let errors = parse(Path::new("approvals.toml"), text.into()).unwrap_err();
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(shown.iter().any(|e| e.contains(":4:") && e.contains("not a SHA-256")), "{shown:?}");
        assert!(shown.iter().any(|e| e.contains(":7:") && e.contains("sha266")), "{shown:?}");
        let broken = parse(Path::new("approvals.toml"), "[[approved]\n".into()).unwrap_err();
        assert!(broken[0].to_string().contains("approvals.toml:1:"), "{}", broken[0]);
    }
}
