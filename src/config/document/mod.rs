//! The config as a tree of values, whatever wrote it: a TOML file, a JSON document (the
//! Python API, a form), or `check URL`'s flags. Every kind reads its keys from this tree
//! through [`super::TableReader`], so a probe is checked the same way from each of them
//! and `check` needs no config text of its own.
//!
//! A string knows what it is: written by the user (a `${…}` in it is a reference),
//! taken as is (a flag's value or a URL's part, where `$` is only a character), or a
//! secret handed over in memory (a URL's password), which no text ever holds.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use crate::model::redact::Secret;

mod toml_text;

pub use toml_text::{LaterPart, LaterProbes, check_parts_agree_with_whole, from_toml, read_in_parts};

/// A string value and how to read it.
#[derive(Debug, Clone)]
pub enum Text<'a> {
    /// As the user wrote it: `${…}` references are expanded, `$${` is a literal `${`.
    Written(Cow<'a, str>),
    /// Taken as is, never expanded.
    Literal(Cow<'a, str>),
    /// A secret given in memory (registered for scrubbing when it was made).
    Given(Secret),
}

impl Text<'_> {
    /// The text before any expansion. A given secret's is its value: it is in memory
    /// already, and never written anywhere.
    pub fn raw(&self) -> &str {
        match self {
            Text::Written(s) | Text::Literal(s) => s,
            Text::Given(secret) => secret.read_here(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Value<'a> {
    Text(Text<'a>),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    /// A TOML date or time: no key takes one, but a user may write one by mistake.
    Datetime,
    Array(Vec<Item<'a>>),
    Table(Table<'a>),
}

/// A value and where it is: a byte range of the source text (empty for sources without
/// positions, such as JSON and `check`'s flags).
#[derive(Debug, Clone)]
pub struct Item<'a> {
    pub value: Value<'a>,
    pub span: Range<usize>,
}

impl<'a> Item<'a> {
    pub fn new(value: Value<'a>) -> Self {
        Item { value, span: 0..0 }
    }

    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The text of a string value, whatever kind of string it is.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Text(text) => Some(text.raw()),
            _ => None,
        }
    }

    pub fn as_table(&self) -> Option<&Table<'a>> {
        match &self.value {
            Value::Table(table) => Some(table),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Item<'a>]> {
        match &self.value {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// "a string", "a table": what the value is, for messages.
    pub fn describe(&self) -> &'static str {
        match self.value {
            Value::Text(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime => "a datetime",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

impl Item<'_> {
    /// The same value owning its strings, to keep past the text it was read from.
    pub fn into_owned(self) -> Item<'static> {
        let value = match self.value {
            Value::Text(Text::Written(s)) => Value::Text(Text::Written(Cow::Owned(s.into_owned()))),
            Value::Text(Text::Literal(s)) => Value::Text(Text::Literal(Cow::Owned(s.into_owned()))),
            Value::Text(Text::Given(secret)) => Value::Text(Text::Given(secret)),
            Value::Integer(n) => Value::Integer(n),
            Value::Float(f) => Value::Float(f),
            Value::Boolean(b) => Value::Boolean(b),
            Value::Datetime => Value::Datetime,
            Value::Array(items) => Value::Array(items.into_iter().map(Item::into_owned).collect()),
            Value::Table(table) => Value::Table(table.into_owned()),
        };
        Item { value, span: self.span }
    }
}

/// A key and where it is written.
#[derive(Debug, Clone)]
pub struct Key<'a> {
    pub name: Cow<'a, str>,
    pub span: Range<usize>,
}

/// The keys of a table in the order written. Tables are small (a probe has a dozen keys),
/// so a search along a vector is what a lookup costs.
#[derive(Debug, Clone, Default)]
pub struct Table<'a> {
    entries: Vec<(Key<'a>, Item<'a>)>,
}

impl<'a> Table<'a> {
    pub fn new() -> Self {
        Table::default()
    }

    pub fn get(&self, name: &str) -> Option<&Item<'a>> {
        self.entries.iter().find(|(key, _)| key.name == name).map(|(_, item)| item)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key<'a>, &Item<'a>)> {
        self.entries.iter().map(|(key, item)| (key, item))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn into_owned(self) -> Table<'static> {
        let entries = self
            .entries
            .into_iter()
            .map(|(key, item)| (Key { name: Cow::Owned(key.name.into_owned()), span: key.span }, item.into_owned()))
            .collect();
        Table { entries }
    }

    /// The value of a key to change, for documents built in code.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Item<'a>> {
        self.entries.iter_mut().find(|(key, _)| key.name == name).map(|(_, item)| item)
    }

    /// Sets a key (replacing a value it had), for documents built in code.
    pub fn insert(&mut self, name: &str, value: Value<'a>) {
        let item = Item::new(value);
        match self.entries.iter_mut().find(|(key, _)| key.name == name) {
            Some((_, slot)) => *slot = item,
            None => self.entries.push((Key { name: Cow::Owned(name.to_string()), span: 0..0 }, item)),
        }
    }
}

/// An array of values, for documents built in code.
pub fn array(values: impl IntoIterator<Item = Value<'static>>) -> Value<'static> {
    Value::Array(values.into_iter().map(Item::new).collect())
}

/// A string taken as is: a flag's value or a part of a URL.
pub fn literal(text: &str) -> Value<'static> {
    Value::Text(Text::Literal(Cow::Owned(text.to_string())))
}

/// A string as a user wrote it: `${…}` references in it expand as in the config (an
/// `-H` header's value).
pub fn written(text: &str) -> Value<'static> {
    Value::Text(Text::Written(Cow::Owned(text.to_string())))
}

/// A `${NAME}` reference to an environment variable (a flag that names one).
pub fn reference(var: &str) -> Value<'static> {
    Value::Text(Text::Written(Cow::Owned(format!("${{{var}}}"))))
}

/// A path given on the command line, taken as is.
pub fn path(path: &std::path::Path) -> Value<'static> {
    literal(&path.display().to_string())
}

/// A secret handed over in memory: registered for scrubbing as it is wrapped
/// (`Secret::new`), so that no output shows it whatever reads it later.
pub fn given_secret(value: &str) -> Value<'static> {
    Value::Text(Text::Given(Secret::new(value.to_string())))
}

/// Why a source could not become a document.
#[derive(Debug)]
pub struct NotADocument {
    pub message: String,
    /// Where in the text, when the format says.
    pub span: Option<Range<usize>>,
}

/// A JSON document (an object at the top): the same keys and values as the TOML file,
/// `null` standing for a key not given. JSON has no position to report, so errors name
/// the probe and the key.
pub fn from_json(text: &str) -> Result<Item<'static>, NotADocument> {
    let parsed: serde_json::Value = serde_json::from_str(text)
        .map_err(|err| NotADocument { message: format!("not valid JSON: {err}"), span: None })?;
    if !parsed.is_object() {
        return Err(NotADocument {
            message: "the JSON document must be an object, as probes.toml is a table".into(),
            span: None,
        });
    }
    json_item(parsed)
}

fn json_item(value: serde_json::Value) -> Result<Item<'static>, NotADocument> {
    use serde_json::Value as J;
    let value = match value {
        J::String(s) => Value::Text(Text::Written(Cow::Owned(s))),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Integer(i),
            (None, Some(f)) if n.is_f64() => Value::Float(f),
            _ => {
                return Err(NotADocument {
                    message: format!("{n} is out of the range of a 64-bit integer"),
                    span: None,
                });
            }
        },
        J::Bool(b) => Value::Boolean(b),
        J::Array(items) => {
            Value::Array(items.into_iter().filter(|i| !i.is_null()).map(json_item).collect::<Result<_, _>>()?)
        }
        J::Object(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (name, value) in map {
                if value.is_null() {
                    continue;
                }
                entries.push((Key { name: Cow::Owned(name), span: 0..0 }, json_item(value)?));
            }
            Value::Table(Table { entries })
        }
        // Left out by the callers above.
        J::Null => Value::Table(Table::default()),
    };
    Ok(Item::new(value))
}

/// What a config is read from, kept to read a probe again (with its store values at each
/// attempt, or a card's template with the owner's values).
#[derive(Clone, Debug)]
pub enum ConfigInput {
    /// probes.toml: errors name line and column.
    Toml(Arc<String>),
    /// The same document as JSON (the Python API, tools that write JSON): `null` is a key
    /// not given; errors name the probe and the key.
    Json(Arc<String>),
    /// A document built in code (`check URL`'s flags, a card's filled-in template).
    Built(Arc<Item<'static>>),
}

impl ConfigInput {
    /// JSON when the text starts with `{` (no TOML document can), TOML otherwise.
    pub fn from_text(text: String) -> ConfigInput {
        if text.trim_start().starts_with('{') {
            ConfigInput::Json(Arc::from(text))
        } else {
            ConfigInput::Toml(Arc::from(text))
        }
    }

    /// The document tree, borrowing the text where it can.
    pub fn document(&self) -> Result<Cow<'_, Item<'_>>, NotADocument> {
        match self {
            ConfigInput::Toml(text) => from_toml(text).map(Cow::Owned),
            ConfigInput::Json(text) => from_json(text).map(Cow::Owned),
            ConfigInput::Built(item) => Ok(Cow::Borrowed(&**item)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_keeps_spans_order_and_kinds_of_values() {
        let text = "b = 1\na = \"x${Y}\"\n[t]\nf = 1.5\nd = 1979-05-27\nl = [0x10, true]\n";
        let doc = from_toml(text).unwrap();
        let root = doc.as_table().unwrap();
        let names: Vec<&str> = root.iter().map(|(k, _)| k.name.as_ref()).collect();
        assert_eq!(names, ["b", "a", "t"]);
        let a = root.get("a").unwrap();
        assert_eq!(&text[a.span()], "\"x${Y}\"");
        assert!(matches!(&a.value, Value::Text(Text::Written(s)) if s == "x${Y}"));
        let t = root.get("t").unwrap().as_table().unwrap();
        assert!(matches!(t.get("f").unwrap().value, Value::Float(f) if f == 1.5));
        assert!(matches!(t.get("d").unwrap().value, Value::Datetime));
        let list = t.get("l").unwrap().as_array().unwrap();
        assert!(matches!(list[0].value, Value::Integer(16)));
        assert!(matches!(list[1].value, Value::Boolean(true)));
    }

    #[test]
    fn toml_errors_say_where() {
        let err = from_toml("a = \n").unwrap_err();
        assert!(err.message.starts_with("not valid TOML"), "{}", err.message);
        assert!(err.span.is_some());
        let err = from_toml("a = 99999999999999999999\n").unwrap_err();
        assert!(err.message.starts_with("not valid TOML"), "{}", err.message);
    }

    #[test]
    fn json_is_the_same_tree_with_nulls_left_out() {
        let doc = from_json(r#"{"probe": [{"name": "x", "port": 5432, "tls": null, "w": 0.5, "on": false}]}"#).unwrap();
        let probes = doc.as_table().unwrap().get("probe").unwrap().as_array().unwrap();
        let probe = probes[0].as_table().unwrap();
        assert_eq!(probe.get("name").unwrap().as_str(), Some("x"));
        assert!(matches!(probe.get("port").unwrap().value, Value::Integer(5432)));
        assert!(probe.get("tls").is_none());
        assert!(matches!(probe.get("w").unwrap().value, Value::Float(_)));
        assert!(matches!(probe.get("on").unwrap().value, Value::Boolean(false)));
        assert!(from_json("[1]").is_err());
        assert!(from_json("{").unwrap_err().message.starts_with("not valid JSON"));
        assert!(from_json(r#"{"a": 18446744073709551615}"#).is_err());
    }

    #[test]
    fn built_tables_replace_keys_and_literals_stay_literal() {
        let mut t = Table::new();
        t.insert("a", literal("${NOT_A_REFERENCE}"));
        t.insert("a", literal("second"));
        assert_eq!(t.len(), 1);
        assert_eq!(t.get("a").unwrap().as_str(), Some("second"));
        assert!(matches!(reference("V"), Value::Text(Text::Written(s)) if s == "${V}"));
    }
}
