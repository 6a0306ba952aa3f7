//! The shape of `probes.toml`, declared once: every table, its keys and their types, which
//! keys hold secrets, and the tables whose keys depend on their `kind` or `type`.
//! `authprobe schema` prints it as a JSON Schema (committed as `schemas/probes.schema.json`
//! for editors: Taplo, "Even Better TOML"); the tests hold the config readers to it both
//! ways: every key a reader asks for is declared here, and every key declared here is one
//! a reader knows.

mod json;
mod keys;

pub use json::json_schema;
pub use keys::{ROOT, probe_kinds};

/// What a key's value is.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// Text; may hold references (`${ENV}`, `${file:…}`, `${STORE:REF}`).
    Str,
    /// Text that is a credential: scrubbed from every output, best written as a reference.
    Secret,
    /// A boolean (or a string that says one, as a reference gives it).
    Bool,
    /// An integer (or a string that says one).
    Int,
    /// A port: an integer 1–65535 (or a string that says one).
    Port,
    /// `"500ms"`, `"10s"`, `"2m"`, `"90d"`.
    Duration,
    /// A file's path, relative to the config file; `~/` is the home directory.
    Path,
    /// A URL.
    Url,
    /// One of these words (or a reference).
    OneOf(&'static [&'static str]),
    /// A string, or an array of strings.
    StrOrList,
    /// An array of strings.
    StrList,
    /// A table of strings (HTTP headers).
    StrMap,
    /// A table whose values are arrays of strings (`[defaults] environments`).
    ListsByName,
    /// An HTTP status, a class (`"2xx"`), or an array of them.
    Statuses,
    /// A table with these keys.
    Table(&'static Table),
    /// A table whose `type` key chooses its other keys.
    Tagged(&'static Tagged),
    /// An array of tables with these keys (`[[probe]]`-style).
    Tables(&'static Table),
    /// An array of tables chosen by a key (`[[secret_store]]` by `type`, `[[probe]]` by `kind`).
    TaggedTables(&'static Tagged),
}

/// One key of a table.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub ty: Ty,
    pub doc: &'static str,
}

/// A table's keys. A named table is written once in the schema and referred to.
#[derive(Debug)]
pub struct Table {
    pub name: Option<&'static str>,
    pub keys: &'static [&'static [Key]],
}

/// A table whose `tag` key chooses among variants, each adding its own keys to `common`.
#[derive(Debug)]
pub struct Tagged {
    pub name: &'static str,
    pub tag: &'static str,
    pub common: &'static [Key],
    pub variants: &'static [Variant],
}

#[derive(Debug)]
pub struct Variant {
    pub tag: &'static str,
    pub doc: &'static str,
    pub keys: &'static [&'static [Key]],
}

impl Table {
    pub fn all(&self) -> impl Iterator<Item = &'static Key> {
        self.keys.iter().flat_map(|keys| keys.iter())
    }
}

impl Variant {
    pub fn all(&self) -> impl Iterator<Item = &'static Key> {
        self.keys.iter().flat_map(|keys| keys.iter())
    }
}

impl Key {
    /// Whether the value is a credential.
    pub fn is_secret(&self) -> bool {
        matches!(self.ty, Ty::Secret)
    }
}

/// Every key a table at `path` may hold, found by walking the declared shape: `path` is the
/// table's keys from the root, with the chosen tag values in brackets where the shape
/// branches (`probe[http].auth[bearer]`). `None` when the shape has no such table.
pub fn keys_at(path: &str) -> Option<Vec<&'static str>> {
    Some(declared_at(path)?.iter().map(|k| k.name).collect())
}

/// The declared key `name` of the table at `path` (as [`keys_at`] writes it): its type,
/// and so whether it holds a secret. What a form asks for knows how to show it.
pub fn key_in(path: &str, name: &str) -> Option<&'static Key> {
    declared_at(path)?.into_iter().find(|k| k.name == name)
}

fn declared_at(path: &str) -> Option<Vec<&'static Key>> {
    let mut keys: Vec<&'static Key> = ROOT.all().collect();
    if path.is_empty() {
        return Some(keys);
    }
    for step in path.split('.') {
        let (name, chosen) = match step.split_once('[') {
            Some((name, rest)) => (name, Some(rest.trim_end_matches(']'))),
            None => (step, None),
        };
        let key = keys.iter().find(|k| k.name == name)?;
        keys = match (key.ty, chosen) {
            (Ty::Table(table) | Ty::Tables(table), None) => table.all().collect(),
            (Ty::Tagged(tagged) | Ty::TaggedTables(tagged), Some(tag)) => {
                let variant = tagged.variants.iter().find(|v| v.tag == tag)?;
                let tag_key: &'static Key = &TAG_KEYS[if tagged.tag == "kind" { 0 } else { 1 }];
                std::iter::once(tag_key).chain(tagged.common.iter()).chain(variant.all()).collect()
            }
            _ => return None,
        };
    }
    Some(keys)
}

/// The tag keys themselves, as keys of the tables they choose.
static TAG_KEYS: [Key; 2] = [
    Key { name: "kind", ty: Ty::Str, doc: "the probe's kind" },
    Key { name: "type", ty: Ty::Str, doc: "which of the table's forms" },
];

#[cfg(test)]
mod tests;
