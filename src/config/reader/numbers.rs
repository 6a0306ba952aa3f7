//! Numbers and switches: integers, ports and booleans (also written as strings, as a
//! reference or a form gives them), and number lists: HTTP statuses and the like, with
//! classes of a hundred ("2xx").

use super::TableReader;
use crate::config::document::{Item, Value};

impl<'r, 's> TableReader<'r, 's> {
    pub fn bool(&self, key: &'static str) -> Option<bool> {
        let value = self.get(key)?;
        // A string that says true or false (a reference, or a form whose values are all
        // strings) is what it says.
        let read = match &value.value {
            Value::Boolean(b) => Some(*b),
            Value::Text(text) => match self.expand(key, value, text)?.value.trim() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            _ => None,
        };
        match read {
            Some(b) => Some(b),
            None => {
                self.type_error(key, value, "true or false");
                None
            }
        }
    }

    /// An integer within `range`.
    pub fn integer(&self, key: &'static str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
        let value = self.get(key)?;
        let read = match &value.value {
            Value::Integer(n) => Some(*n),
            Value::Text(text) => self.expand(key, value, text)?.value.trim().parse::<i64>().ok(),
            _ => None,
        };
        let Some(n) = read else {
            self.type_error(key, value, "an integer");
            return None;
        };
        if !range.contains(&n) {
            self.ctx.error(
                value.span(),
                Some(self.key_path(key)),
                format!("{n} is out of range ({}..={})", range.start(), range.end()),
            );
            return None;
        }
        Some(n)
    }

    /// A TCP port: an integer, or a string (so that it can come from a reference).
    pub fn port(&self, key: &'static str) -> Option<u16> {
        let value = self.get(key)?;
        let parsed = match &value.value {
            Value::Integer(n) => Some(*n),
            Value::Text(text) => self.expand(key, value, text)?.value.trim().parse::<i64>().ok(),
            _ => None,
        };
        match (parsed, &value.value) {
            (Some(n), _) if (1..=65535).contains(&n) => Some(n as u16),
            (Some(n), _) => {
                self.error_at(key, format!("{n} is not a port number (1-65535)"));
                None
            }
            (None, Value::Text(text)) => {
                let shown = self.expand(key, value, text).map(|e| e.value).unwrap_or_default();
                self.error_at(key, format!("`{shown}` is not a port number (1-65535)"));
                None
            }
            (None, _) => {
                self.type_error(key, value, "a port number (1-65535)");
                None
            }
        }
    }

    pub fn integer_list(&self, key: &'static str, range: std::ops::RangeInclusive<i64>) -> Option<Vec<i64>> {
        let value = self.get(key)?;
        let items: Vec<&Item<'r>> = match &value.value {
            Value::Array(array) => array.iter().collect(),
            // A single value is accepted where a list is expected: `status = 200`.
            Value::Integer(_) | Value::Text(_) => vec![value],
            _ => {
                self.type_error(key, value, "an integer or an array of integers, e.g. [200, 204]");
                return None;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            // A class of a hundred, as blackbox and Gatus users write HTTP statuses: "2xx".
            if let Some(s) = item.as_str()
                && let Some(class) = hundred_class(s)
                && range.contains(&(class * 100))
                && range.contains(&(class * 100 + 99))
            {
                out.extend(class * 100..=class * 100 + 99);
                continue;
            }
            // Numbers written as strings (`"200"`) are what they say.
            let number = match &item.value {
                Value::Text(text) => text.raw().trim().parse::<i64>().ok(),
                Value::Integer(n) => Some(*n),
                _ => None,
            };
            match number {
                Some(n) if range.contains(&n) => out.push(n),
                Some(n) => {
                    self.ctx.error(
                        item.span(),
                        Some(self.key_path(key)),
                        format!("{n} is out of range ({}..={})", range.start(), range.end()),
                    );
                    return None;
                }
                None => {
                    self.type_error(key, item, "an integer, e.g. 200, or a class such as \"2xx\"");
                    return None;
                }
            }
        }
        Some(out)
    }
}

/// `"2xx"` → 2: a class of a hundred numbers, written with its first digit.
pub fn hundred_class(text: &str) -> Option<i64> {
    let t = text.trim().to_ascii_lowercase();
    let digit = t.strip_suffix("xx")?;
    if digit.len() != 1 {
        return None;
    }
    digit.parse::<i64>().ok().filter(|d| (1..=9).contains(d))
}
