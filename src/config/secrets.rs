//! `${NAME}` and `${file:PATH}` references inside config strings. A reference that cannot
//! be resolved is an error naming the variable or file, never a value.

use std::path::{Path, PathBuf};

/// Why a reference could not be resolved. The text names the reference, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    MissingVar(String),
    EmptyVar(String),
    UnreadableFile {
        path: PathBuf,
        reason: String,
    },
    Malformed(String),
    /// `${STORE:REF}` names a store the config does not define.
    UnknownStore(String),
}

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretError::MissingVar(name) => write!(f, "environment variable {name} is not set"),
            SecretError::EmptyVar(name) => {
                write!(f, "environment variable {name} is set but empty")
            }
            SecretError::UnreadableFile { path, reason } => {
                write!(f, "cannot read {} (from a ${{file:...}} reference): {reason}", path.display())
            }
            SecretError::Malformed(why) => write!(f, "{why}"),
            SecretError::UnknownStore(store) => write!(
                f,
                "`{store}` is not a secret store: define it with a [[secret_store]] table (`vault` is built in)"
            ),
        }
    }
}

/// What a `${STORE:REF}` stands for while the config is read (the value is fetched at each
/// attempt, and the probe read again with it); it shows where a target is made of one,
/// until a first attempt has run.
pub const STORE_PLACEHOLDER: &str = "from-secret-store";

/// The most a `${file:…}` secret may hold: a password or token file, never a disk image.
pub const SECRET_FILE_CAP: u64 = 1024 * 1024;
/// The most a certificate bundle, key or known_hosts file may hold.
pub const DATA_FILE_CAP: u64 = 16 * 1024 * 1024;

/// Reads a whole file, refusing one larger than `cap` (a mistaken `/dev/zero` or a log file
/// must not eat the machine's memory).
pub fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    // Room for the whole file at once (its size may still change while it is read).
    let size = file.metadata().map(|m| m.len().min(cap) + 1).unwrap_or(0);
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} KiB, which is more than such a file holds", cap / 1024),
        ));
    }
    Ok(bytes)
}

/// As [`read_capped`], for text.
pub fn read_text_capped(path: &Path, cap: u64) -> std::io::Result<String> {
    String::from_utf8(read_capped(path, cap)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Standard input as text, at most `cap` bytes.
pub fn read_stdin_capped(cap: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin().lock().take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("more than {cap} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// The result of expanding one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    pub value: String,
    /// The values that came from references, to be registered as secrets where the key
    /// holds one.
    pub referenced: Vec<String>,
}

/// Expands references in `raw`. `$${` stands for a literal `${`. Relative `file:` paths
/// resolve against `base_dir` (the config file's directory), `~/` against `$HOME`.
pub fn expand(raw: &str, base_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Expanded, SecretError> {
    let mut value = String::with_capacity(raw.len());
    let mut referenced = Vec::new();
    let mut rest = raw;
    while let Some(pos) = rest.find('$') {
        value.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(stripped) = after.strip_prefix("$${") {
            value.push_str("${");
            rest = stripped;
            continue;
        }
        let Some(inner_start) = after.strip_prefix("${") else {
            value.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = inner_start.find('}') else {
            return Err(SecretError::Malformed("unterminated ${...} reference (write $${ for a literal ${)".into()));
        };
        let reference = &inner_start[..end];
        let resolved = resolve(reference, base_dir, env)?;
        value.push_str(&resolved);
        referenced.push(resolved);
        rest = &inner_start[end + 1..];
    }
    value.push_str(rest);
    Ok(Expanded { value, referenced })
}

fn resolve(reference: &str, base_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<String, SecretError> {
    if let Some(path) = reference.strip_prefix("file:") {
        let path = resolve_path(path.trim(), base_dir);
        return match read_text_capped(&path, SECRET_FILE_CAP) {
            Ok(text) => Ok(text.trim_end_matches(['\n', '\r']).to_string()),
            Err(err) => Err(SecretError::UnreadableFile { path, reason: crate::model::error::describe_io(&err) }),
        };
    }
    let name = reference.trim();
    if let Some((store, reference)) = name.split_once(':') {
        // A secret store's reference, `${vault:secret/app#token}`: the caller's lookup
        // knows the stores (and, at load time, defers the fetch to the probe's run).
        let store_ok = !store.is_empty() && store.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !store_ok || reference.trim().is_empty() {
            return Err(SecretError::Malformed(format!(
                "`${{{name}}}` is not a reference: a secret store's is ${{STORE:REF}}, e.g. ${{vault:secret/app#token}}"
            )));
        }
        return env(name).ok_or_else(|| SecretError::UnknownStore(store.to_string()));
    }
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(SecretError::Malformed(format!(
            "`${{{name}}}` is not a reference: use ${{NAME}} for an environment variable, ${{file:PATH}} for a file or ${{STORE:REF}} for a secret store"
        )));
    }
    match env(name) {
        Some(v) if v.is_empty() => Err(SecretError::EmptyVar(name.to_string())),
        Some(v) => Ok(v),
        None => Err(SecretError::MissingVar(name.to_string())),
    }
}

/// Resolves a path from the config: `~/` is the home directory, relative paths are relative
/// to the config file's directory (as Prometheus and docker-compose do).
pub fn resolve_path(path: &str, base_dir: &Path) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { base_dir.join(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cr3t-value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_env_references() {
        let e = expand("Bearer ${TOKEN}!", Path::new("."), &env).unwrap();
        assert_eq!(e.value, "Bearer s3cr3t-value!");
        assert_eq!(e.referenced, ["s3cr3t-value"]);
    }

    #[test]
    fn dollar_escapes_and_plain_dollars_stay() {
        let e = expand("a $${NOT} $5", Path::new("."), &env).unwrap();
        assert_eq!(e.value, "a ${NOT} $5");
        assert!(e.referenced.is_empty());
    }

    #[test]
    fn missing_and_empty_variables_name_the_variable() {
        assert_eq!(expand("${NOPE}", Path::new("."), &env), Err(SecretError::MissingVar("NOPE".into())));
        assert_eq!(expand("${EMPTY}", Path::new("."), &env), Err(SecretError::EmptyVar("EMPTY".into())));
        assert!(matches!(expand("${oops", Path::new("."), &env), Err(SecretError::Malformed(_))));
        assert!(matches!(expand("${a-b}", Path::new("."), &env), Err(SecretError::Malformed(_))));
    }

    #[test]
    fn file_references_trim_the_trailing_newline_and_resolve_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "file-secret\n").unwrap();
        let e = expand("${file:tok}", dir.path(), &env).unwrap();
        assert_eq!(e.value, "file-secret");
        let err = expand("${file:missing}", dir.path(), &env).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        assert!(err.to_string().contains("No such file") || err.to_string().contains("not found"), "{err}");
    }
}
