//! Numbers and switches: integers, ports and booleans (also written as strings, as a
//! reference or a form gives them), and number lists: HTTP statuses and the like, with
//! classes of a hundred ("2xx").

use toml::de::DeValue;

use super::{TableReader, Value, as_i64};

impl<'r, 's> TableReader<'r, 's> {
    pub fn bool(&self, key: &'static str) -> Option<bool> {
        let value = self.get(key)?;
        // A string that says true or false (a reference, or a form whose values are all
        // strings) is what it says.
        let from_text = match value.get_ref() {
            DeValue::String(raw) => match self.expand(key, value, raw)?.value.trim() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            _ => None,
        };
        match value.get_ref().as_bool().or(from_text) {
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
        let from_text = match value.get_ref() {
            DeValue::String(raw) => self.expand(key, value, raw)?.value.trim().parse::<i64>().ok(),
            _ => None,
        };
        let Some(n) = as_i64(value.get_ref()).or(from_text) else {
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
        let parsed = match value.get_ref() {
            DeValue::Integer(_) => as_i64(value.get_ref()),
            DeValue::String(raw) => self.expand(key, value, raw)?.value.trim().parse::<i64>().ok(),
            _ => None,
        };
        match (parsed, value.get_ref()) {
            (Some(n), _) if (1..=65535).contains(&n) => Some(n as u16),
            (Some(n), _) => {
                self.error_at(key, format!("{n} is not a port number (1-65535)"));
                None
            }
            (None, DeValue::String(raw)) => {
                let shown = self.expand(key, value, raw).map(|e| e.value).unwrap_or_default();
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
        let items: Vec<&Value<'r>> = match value.get_ref() {
            DeValue::Array(array) => array.iter().collect(),
            // A single value is accepted where a list is expected: `status = 200`.
            DeValue::Integer(_) | DeValue::String(_) => vec![value],
            _ => {
                self.type_error(key, value, "an integer or an array of integers, e.g. [200, 204]");
                return None;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            // A class of a hundred, as blackbox and Gatus users write HTTP statuses: "2xx".
            if let DeValue::String(s) = item.get_ref()
                && let Some(class) = hundred_class(s)
                && range.contains(&(class * 100))
                && range.contains(&(class * 100 + 99))
            {
                out.extend(class * 100..=class * 100 + 99);
                continue;
            }
            // Numbers written as strings (`"200"`) are what they say.
            let number = match item.get_ref() {
                DeValue::String(s) => s.trim().parse::<i64>().ok(),
                other => as_i64(other),
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
