//! A span-preserving reader over the parsed TOML tree. Each probe kind reads its keys
//! through [`TableReader`]; every key it asks for becomes a "known" key, and `finish`
//! reports the rest as unknown, with a did-you-mean from the known ones. Errors carry
//! file, line, column, probe and key, and are collected so that one run reports them all.

use std::cell::RefCell;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::document::{Item, Table, Text, Value};
use super::secrets::{self, SecretError};

mod maps;
mod numbers;
mod urls;

use crate::model::redact::Secret;
pub use numbers::hundred_class;

/// The config file's text, with the line index used to turn byte offsets into positions.
/// A source without text (JSON, `check`'s flags) has no positions: its errors name the
/// item and the key.
pub struct Source {
    pub path: PathBuf,
    /// Shared with whatever keeps the config to read it again: never copied.
    pub text: std::sync::Arc<String>,
    /// Where each line starts, worked out at the first position asked for (a config that
    /// has no errors needs none).
    line_starts: std::sync::OnceLock<Vec<u32>>,
    positions: bool,
}

impl Source {
    pub fn new(path: PathBuf, text: impl Into<std::sync::Arc<String>>) -> Self {
        Source { path, text: text.into(), line_starts: Default::default(), positions: true }
    }

    /// A source whose errors have no line and column.
    pub fn without_positions(path: PathBuf) -> Self {
        Source { path, text: Default::default(), line_starts: Default::default(), positions: false }
    }

    pub fn has_positions(&self) -> bool {
        self.positions
    }

    fn line_starts(&self) -> &[u32] {
        self.line_starts.get_or_init(|| {
            let mut starts = vec![0];
            // u32: a config is capped far below 4 GiB (secrets::DATA_FILE_CAP).
            starts.extend(self.text.match_indices('\n').map(|(i, _)| (i + 1) as u32));
            starts
        })
    }

    /// 1-based line and column (in characters) of a byte offset; (0, 0) without positions.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        if !self.has_positions() {
            return (0, 0);
        }
        let offset = offset.min(self.text.len());
        let line_starts = self.line_starts();
        let line = match line_starts.binary_search(&(offset as u32)) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = line_starts[line] as usize;
        let column = self.text.get(start..offset).map(|s| s.chars().count()).unwrap_or(0) + 1;
        (line + 1, column)
    }

    pub fn base_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The table the error is in, as shown: "probe `orders`", "tunnel `bastion`".
    pub item: Option<String>,
    pub key: Option<String>,
    pub message: String,
    /// The environment variable whose absence caused the error, if that is what it is.
    pub unset_var: Option<String>,
}

/// The variable a failed expansion names as unset, for the one-line hint that a whole
/// environment was not loaded.
fn unset_var(err: &SecretError) -> Option<String> {
    match err {
        SecretError::MissingVar(name) => Some(name.clone()),
        _ => None,
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            // About the file as a whole: no position to point at.
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        }
        match (&self.item, &self.key) {
            (Some(item), Some(key)) => write!(f, "{item}, key `{key}`: ")?,
            (Some(item), None) => write!(f, "{item}: ")?,
            (None, Some(key)) => write!(f, "key `{key}`: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// Context shared by all readers of one file: where errors go and how references resolve.
pub struct ReadContext<'s> {
    pub source: &'s Source,
    errors: RefCell<Vec<ConfigError>>,
    /// Things that work but are probably not meant (a password equal to the user name).
    warnings: RefCell<Vec<ConfigError>>,
    item: RefCell<Option<String>>,
    env: &'s dyn Fn(&str) -> Option<String>,
    base_dir: PathBuf,
    /// The secrets read since the last [`ReadContext::take_secret_uses`], as keyed hashes:
    /// which probes share a credential, without keeping its value.
    secret_uses: RefCell<Vec<SecretUse>>,
    secret_hasher: std::hash::RandomState,
}

/// One secret a key holds, known by a keyed hash of it (never the value).
#[derive(Debug, Clone)]
pub struct SecretUse {
    pub digest: u64,
    pub span: Range<usize>,
    pub key: String,
}

impl<'s> ReadContext<'s> {
    pub fn new(source: &'s Source, env: &'s dyn Fn(&str) -> Option<String>) -> Self {
        ReadContext {
            source,
            errors: RefCell::default(),
            warnings: RefCell::default(),
            item: RefCell::default(),
            env,
            base_dir: source.base_dir(),
            secret_uses: RefCell::default(),
            // Random keys per process: the hashes cannot be compared with anything outside it.
            secret_hasher: std::hash::RandomState::new(),
        }
    }

    /// Notes that `key` holds the secret `identity` (its value, or for a secret store's
    /// value, not yet fetched, the reference).
    fn note_secret(&self, identity: &str, span: Range<usize>, key: String) {
        use std::hash::BuildHasher;
        let digest = self.secret_hasher.hash_one(identity);
        self.secret_uses.borrow_mut().push(SecretUse { digest, span, key });
    }

    /// The secrets noted since the last call.
    pub fn take_secret_uses(&self) -> Vec<SecretUse> {
        std::mem::take(&mut *self.secret_uses.borrow_mut())
    }

    /// A warning attributed to `item` ("probe `x`") whatever table is being read now.
    pub fn warning_for(&self, item: &str, span: Range<usize>, key: Option<String>, message: impl Into<String>) {
        let mut warning = self.located(span, key, message.into(), None);
        warning.item = Some(item.to_string());
        self.warnings.borrow_mut().push(warning);
    }

    pub fn error(&self, span: Range<usize>, key: Option<String>, message: impl Into<String>) {
        self.push(span, key, message.into(), None);
    }

    fn push(&self, span: Range<usize>, key: Option<String>, message: String, unset_var: Option<String>) {
        let error = self.located(span, key, message, unset_var);
        self.errors.borrow_mut().push(error);
    }

    /// A warning at a position: said by `validate` and `run`, never a reason to stop.
    pub fn warning(&self, span: Range<usize>, key: Option<String>, message: impl Into<String>) {
        let warning = self.located(span, key, message.into(), None);
        self.warnings.borrow_mut().push(warning);
    }

    fn located(
        &self,
        span: Range<usize>,
        key: Option<String>,
        message: String,
        unset_var: Option<String>,
    ) -> ConfigError {
        let (line, column) = self.source.position(span.start);
        ConfigError {
            file: self.source.path.display().to_string(),
            line,
            column,
            item: self.item.borrow().clone(),
            key,
            message,
            unset_var,
        }
    }

    /// Errors are attributed to this table ("probe `orders`") until the next call.
    pub fn set_item(&self, item: Option<String>) {
        *self.item.borrow_mut() = item;
    }

    pub fn error_count(&self) -> usize {
        self.errors.borrow().len()
    }

    /// The errors and the warnings.
    pub fn into_findings(self) -> (Vec<ConfigError>, Vec<ConfigError>) {
        (self.errors.into_inner(), self.warnings.into_inner())
    }

    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }
}

/// What makes two secrets the same one: the value, or while a secret store's value is not
/// fetched yet, the references it is made of (two probes reading one store path share it).
fn secret_identity(raw: &str, value: &str) -> String {
    if value.contains(secrets::STORE_PLACEHOLDER) { format!("\u{0}store:{raw}") } else { value.to_string() }
}

/// Reads the keys of one table of the document.
pub struct TableReader<'r, 's> {
    ctx: &'r ReadContext<'s>,
    table: &'r Table<'r>,
    span: Range<usize>,
    prefix: String,
    asked: RefCell<Vec<&'static str>>,
}

impl<'r, 's> TableReader<'r, 's> {
    pub fn new(ctx: &'r ReadContext<'s>, table: &'r Table<'r>, span: Range<usize>, prefix: &str) -> Self {
        // A probe's table is asked about two dozen keys: room for them from the start.
        let asked = RefCell::new(Vec::with_capacity(32));
        TableReader { ctx, table, span, prefix: prefix.to_string(), asked }
    }

    pub fn context(&self) -> &'r ReadContext<'s> {
        self.ctx
    }

    fn key_path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The raw value of a key, marking the key as known.
    pub fn get(&self, key: &'static str) -> Option<&'r Item<'r>> {
        self.asked.borrow_mut().push(key);
        self.table.get(key)
    }

    /// Whether a key is present (marks it as known).
    pub fn has(&self, key: &'static str) -> bool {
        self.get(key).is_some()
    }

    /// Reports a problem with a key's value.
    pub fn error_at(&self, key: &'static str, message: impl Into<String>) {
        let span = self.table.get(key).map(|v| v.span()).unwrap_or_else(|| self.span.clone());
        self.ctx.error(span, Some(self.key_path(key)), message);
    }

    /// A warning about `key` (see [`ReadContext::warning`]).
    pub fn warn_at(&self, key: &'static str, message: impl Into<String>) {
        let span = self.table.get(key).map(|v| v.span()).unwrap_or_else(|| self.span.clone());
        self.ctx.warning(span, Some(self.key_path(key)), message);
    }

    /// Reports a problem with the table as a whole.
    pub fn error_here(&self, message: impl Into<String>) {
        let key = if self.prefix.is_empty() { None } else { Some(self.prefix.trim_end_matches('.').to_string()) };
        self.ctx.error(self.span.clone(), key, message);
    }

    fn type_error(&self, key: &'static str, value: &Item<'r>, expected: &str) {
        self.ctx.error(
            value.span(),
            Some(self.key_path(key)),
            format!("expected {expected}, found {}", value.describe()),
        );
    }

    fn missing(&self, key: &'static str, what: &str) {
        self.ctx.error(self.span.clone(), Some(self.key_path(key)), format!("missing required key `{key}` ({what})"));
    }

    /// A string's value: references expanded where the user wrote it, as is otherwise.
    fn expand(&self, key: &'static str, value: &Item<'r>, text: &Text<'r>) -> Option<secrets::Expanded> {
        let raw = match text {
            Text::Written(raw) => raw,
            Text::Literal(raw) => return Some(secrets::Expanded { value: raw.to_string(), referenced: Vec::new() }),
            Text::Given(secret) => {
                return Some(secrets::Expanded { value: secret.read_here().to_string(), referenced: Vec::new() });
            }
        };
        match secrets::expand(raw, &self.ctx.base_dir, self.ctx.env) {
            Ok(expanded) => Some(expanded),
            Err(err) => {
                let message = match &err {
                    SecretError::MissingVar(_) | SecretError::EmptyVar(_) => {
                        format!("{err} (export it before running)")
                    }
                    _ => err.to_string(),
                };
                self.ctx.push(value.span(), Some(self.key_path(key)), message, unset_var(&err));
                None
            }
        }
    }

    fn raw_str(&self, key: &'static str) -> Option<(&'r Item<'r>, &'r Text<'r>)> {
        let value = self.get(key)?;
        match &value.value {
            Value::Text(text) => Some((value, text)),
            _ => {
                self.type_error(key, value, "a string");
                None
            }
        }
    }

    /// A string that is not secret by itself (host, user, URL). References inside it are
    /// still registered as secrets, except where `public_refs` says they are harmless.
    pub fn string(&self, key: &'static str) -> Option<String> {
        let (value, text) = self.raw_str(key)?;
        let expanded = self.expand(key, value, text)?;
        Some(expanded.value)
    }

    /// A string taken as written, with no `${…}` expansion (a file authprobe writes itself,
    /// such as the approvals file, where a `$` is only a character).
    pub fn literal(&self, key: &'static str) -> Option<String> {
        self.raw_str(key).map(|(_, text)| text.raw().to_string())
    }

    /// A string that holds a credential: the value is registered for scrubbing wherever it
    /// came from, literal or reference.
    pub fn secret(&self, key: &'static str) -> Option<Secret> {
        self.secret_and_references(key).map(|(secret, _)| secret)
    }

    /// A secret, and whether it holds a reference (`${…}`): a value that may be partly a
    /// credential (a request body) is one when something was put into it.
    pub fn secret_and_references(&self, key: &'static str) -> Option<(Secret, bool)> {
        let (value, text) = self.raw_str(key)?;
        let expanded = self.expand(key, value, text)?;
        if expanded.value.is_empty() {
            self.type_error(key, value, "a non-empty secret");
            return None;
        }
        self.ctx.note_secret(&secret_identity(text.raw(), &expanded.value), value.span(), self.key_path(key));
        let referenced = !expanded.referenced.is_empty();
        Some((Secret::new(expanded.value), referenced))
    }

    pub fn required_string(&self, key: &'static str, what: &str) -> Option<String> {
        if self.table.get(key).is_none() {
            self.asked.borrow_mut().push(key);
            self.missing(key, what);
            return None;
        }
        self.string(key)
    }

    pub fn required_secret(&self, key: &'static str, what: &str) -> Option<Secret> {
        if self.table.get(key).is_none() {
            self.asked.borrow_mut().push(key);
            self.missing(key, what);
            return None;
        }
        self.secret(key)
    }

    /// A path to a file, resolved against the config file's directory.
    pub fn path(&self, key: &'static str) -> Option<PathBuf> {
        let s = self.string(key)?;
        Some(secrets::resolve_path(&s, &self.ctx.base_dir))
    }

    /// Reads a file a key points at; an unreadable file is a config error.
    pub fn file_bytes(&self, key: &'static str) -> Option<(PathBuf, Vec<u8>)> {
        let path = self.path(key)?;
        match secrets::read_capped(&path, secrets::DATA_FILE_CAP) {
            Ok(bytes) => Some((path, bytes)),
            Err(err) => {
                self.error_at(
                    key,
                    format!("cannot read {}: {}", path.display(), crate::model::error::describe_io(&err)),
                );
                None
            }
        }
    }

    /// A duration such as "500ms", "10s" or "2m".
    pub fn duration(&self, key: &'static str) -> Option<Duration> {
        self.read_duration(key, false)
    }

    /// A duration where zero means "never" (a cache that keeps nothing).
    pub fn duration_or_zero(&self, key: &'static str) -> Option<Duration> {
        self.read_duration(key, true)
    }

    fn read_duration(&self, key: &'static str, zero_allowed: bool) -> Option<Duration> {
        let value = self.get(key)?;
        let Some(raw) = value.as_str() else {
            self.type_error(key, value, "a duration string such as \"10s\" or \"500ms\"");
            return None;
        };
        match humantime::parse_duration(raw) {
            Ok(d) if d.is_zero() && !zero_allowed => {
                self.ctx.error(
                    value.span(),
                    Some(self.key_path(key)),
                    "a duration of zero would never let anything finish",
                );
                None
            }
            Ok(d) => Some(d),
            Err(err) => {
                self.ctx.error(
                    value.span(),
                    Some(self.key_path(key)),
                    format!("`{raw}` is not a duration ({err}); write e.g. \"10s\" or \"500ms\""),
                );
                None
            }
        }
    }

    /// A string or an array of strings (`require_auth = "md5"` and `= ["md5"]` alike).
    pub fn string_or_list(&self, key: &'static str) -> Option<Vec<String>> {
        let value = self.get(key)?;
        match &value.value {
            Value::Text(text) => Some(vec![self.expand(key, value, text)?.value]),
            _ => self.string_list(key),
        }
    }

    pub fn string_list(&self, key: &'static str) -> Option<Vec<String>> {
        let value = self.get(key)?;
        let Some(array) = value.as_array() else {
            self.type_error(key, value, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        for item in array.iter() {
            match &item.value {
                Value::Text(text) => out.push(self.expand(key, item, text)?.value),
                _ => {
                    self.type_error(key, item, "a string");
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A sub-table (`auth = { ... }` or `[probe.auth]`).
    pub fn table(&self, key: &'static str) -> Option<TableReader<'r, 's>> {
        let value = self.get(key)?;
        match &value.value {
            Value::Table(table) => {
                Some(TableReader::new(self.ctx, table, value.span(), &self.key_path(&format!("{key}."))))
            }
            _ => {
                self.type_error(key, value, "a table");
                None
            }
        }
    }

    /// The tables of a `[[key]]` array, each read on its own (errors name `key[N].…`).
    pub fn table_list(&self, key: &'static str) -> Option<Vec<TableReader<'r, 's>>> {
        let value = self.get(key)?;
        let Some(array) = value.as_array() else {
            self.type_error(key, value, &format!("an array of tables: write [[{key}]]"));
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        for (i, item) in array.iter().enumerate() {
            match &item.value {
                Value::Table(table) => {
                    out.push(TableReader::new(self.ctx, table, item.span(), &format!("{key}[{i}].")))
                }
                _ => self.type_error(key, item, "a table"),
            }
        }
        Some(out)
    }

    /// A table of string values (e.g. HTTP headers). Values that come from references are
    /// secrets; literal values are when `is_secret` says so for their name.
    pub fn string_map(&self, key: &'static str, is_secret: fn(&str) -> bool) -> Option<Vec<(String, String)>> {
        let value = self.get(key)?;
        let Some(table) = value.as_table() else {
            self.type_error(key, value, "a table of strings");
            return None;
        };
        let mut out = Vec::with_capacity(table.len());
        let mut ok = true;
        for (name, item) in table.iter() {
            let name = name.name.as_ref();
            let Value::Text(text) = &item.value else {
                self.ctx.error(
                    item.span(),
                    Some(format!("{}.{}", self.key_path(key), name)),
                    format!("expected a string, found {}", item.describe()),
                );
                ok = false;
                continue;
            };
            let expanded = match text {
                Text::Written(raw) => secrets::expand(raw, &self.ctx.base_dir, self.ctx.env),
                Text::Literal(_) | Text::Given(_) => {
                    Ok(secrets::Expanded { value: text.raw().to_string(), referenced: Vec::new() })
                }
            };
            match expanded {
                Ok(expanded) => {
                    if is_secret(name) {
                        crate::model::redact::register(&expanded.value);
                    }
                    for r in &expanded.referenced {
                        crate::model::redact::register(r);
                    }
                    out.push((name.to_string(), expanded.value));
                }
                Err(err) => {
                    let key_path = format!("{}.{}", self.key_path(key), name);
                    self.ctx.push(item.span(), Some(key_path), err.to_string(), unset_var(&err));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// Reports every key that no reader asked for, with a suggestion where one is close.
    pub fn finish(self) {
        let asked = self.asked.borrow();
        for (key, _) in self.table.iter() {
            let name: &str = &key.name;
            if asked.contains(&name) {
                continue;
            }
            let mut message = format!("unknown key `{name}`");
            if let Some(suggestion) = did_you_mean(name, &asked) {
                message.push_str(&format!(" (did you mean `{suggestion}`?)"));
            } else if !asked.is_empty() {
                let mut known: Vec<&str> = asked.clone();
                known.sort_unstable();
                known.dedup();
                message.push_str(&format!("; known keys here: {}", known.join(", ")));
            }
            self.ctx.error(key.span.clone(), Some(self.key_path(name)), message);
        }
    }
}

/// The closest known name, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let src = Source::new("p.toml".into(), "a = 1\n\nbé = 2\n".to_string());
        assert_eq!(src.position(0), (1, 1));
        assert_eq!(src.position(7), (3, 1));
        assert_eq!(src.position(11), (3, 4));
    }

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(did_you_mean("urll", &["url", "method"]), Some("url"));
        assert_eq!(did_you_mean("tokne", &["token"]), Some("token"));
        assert_eq!(did_you_mean("zzz", &["url", "method"]), None);
    }
}
