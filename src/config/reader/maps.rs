//! Tables whose keys are the user's names: lists of strings under each.

use super::TableReader;

impl<'r, 's> TableReader<'r, 's> {
    /// `{ name = ["a", "b"], … }`: each name with its strings, in the order written.
    pub fn string_lists_by_name(&self, key: &'static str) -> Option<Vec<(String, Vec<String>)>> {
        let value = self.get(key)?;
        let Some(table) = value.as_table() else {
            self.type_error(key, value, "a table of string arrays");
            return None;
        };
        let mut out = Vec::with_capacity(table.len());
        for (name, item) in table.iter() {
            let strings: Option<Vec<String>> =
                item.as_array().and_then(|items| items.iter().map(|i| i.as_str().map(str::to_string)).collect());
            match strings {
                Some(list) => out.push((name.name.to_string(), list)),
                None => self.ctx.error(
                    item.span(),
                    Some(format!("{}.{}", self.key_path(key), name.name)),
                    format!("expected an array of strings, found {}", item.describe()),
                ),
            }
        }
        Some(out)
    }
}
