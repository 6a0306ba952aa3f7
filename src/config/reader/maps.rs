//! Tables whose keys are the user's names: lists of strings under each.

use toml::de::DeValue;

use super::{TableReader, describe};

impl<'r, 's> TableReader<'r, 's> {
    /// `{ name = ["a", "b"], … }`: each name with its strings, in the order written.
    pub fn string_lists_by_name(&self, key: &'static str) -> Option<Vec<(String, Vec<String>)>> {
        let value = self.get(key)?;
        let DeValue::Table(table) = value.get_ref() else {
            self.type_error(key, value, "a table of string arrays");
            return None;
        };
        let mut out = Vec::with_capacity(table.len());
        for (name, item) in table.iter() {
            let strings: Option<Vec<String>> = match item.get_ref() {
                DeValue::Array(items) => items.iter().map(|i| i.get_ref().as_str().map(str::to_string)).collect(),
                _ => None,
            };
            match strings {
                Some(list) => out.push((name.get_ref().to_string(), list)),
                None => self.ctx.error(
                    item.span(),
                    Some(format!("{}.{}", self.key_path(key), name.get_ref())),
                    format!("expected an array of strings, found {}", describe(item.get_ref())),
                ),
            }
        }
        Some(out)
    }
}
