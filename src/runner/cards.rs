//! Check cards in `probes.toml`: `[cards]` (the link key, the public URL, where sealed
//! results go) and `[[card]]` (a template probe with some keys left to the credential's
//! owner). A template probe is not run by `run` or `serve`; a card's attempt reads it again
//! from the same file's document with the owner's values set on exactly the card's
//! `fields`, as literal strings (no `${…}` of theirs is expanded, no text is parsed), so
//! nothing the owner sends can reach any other key (host, port, URL, TLS settings).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::suite::{ConfigErrors, ConfigInput, ProbeConfig, TableReader};
use crate::config::document::{self, Item, Table, Value};
use crate::model::redact::Secret;
use crate::model::seal::Recipient;

/// The default lifetime of a link.
pub const DEFAULT_EXPIRES: Duration = Duration::from_secs(24 * 3600);
/// What a card's placeholder values look like while its template is checked at load.
const PLACEHOLDER: &str = "authprobe-card-field-placeholder";

/// `[cards]` and every `[[card]]`.
pub struct Cards {
    /// Signs links and form tokens.
    pub key: Secret,
    /// Where links point (`https://authprobe.example.com`); links are printed relative
    /// (`/card/TOKEN`) without it.
    pub public_url: Option<String>,
    pub recipients: Vec<Recipient>,
    /// Sealed results and the links' state (shared by every replica of serve).
    pub outbox: PathBuf,
    pub cards: Vec<Card>,
    config_path: PathBuf,
    config: ConfigInput,
}

impl std::fmt::Debug for Cards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cards").field("outbox", &self.outbox).field("cards", &self.cards).finish()
    }
}

/// One `[[card]]`.
#[derive(Debug, Clone)]
pub struct Card {
    pub name: String,
    pub title: String,
    /// The template `[[probe]]`'s name.
    pub probe: String,
    /// Its kind and fixed target, as the owner's page shows them.
    pub kind: String,
    pub target: String,
    pub fields: Vec<Field>,
    pub expires: Duration,
    pub redirect_uri: Option<String>,
}

/// A key the owner fills in: `user`, `password`, `auth.token`, `private_key`…
#[derive(Debug, Clone)]
pub struct Field {
    pub key: String,
    /// Shown as a password input: anything but a name of someone or something.
    pub secret: bool,
}

fn is_secret_field(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    !matches!(
        last,
        "user" | "username" | "user_name" | "login" | "account" | "account_name" | "client_id" | "role_id" | "email"
    )
}

impl Cards {
    pub fn card(&self, name: &str) -> Option<&Card> {
        self.cards.iter().find(|c| c.name == name)
    }

    /// The template probe read again with the owner's `values` on the card's fields.
    /// Values for keys that are not the card's fields are refused, never set.
    pub fn attempt_probe(&self, card: &Card, values: &[(String, String)]) -> Result<ProbeConfig, String> {
        for (key, _) in values {
            if !card.fields.iter().any(|f| &f.key == key) {
                return Err(format!("`{key}` is not one of this card's fields"));
            }
        }
        build(&self.config_path, &self.config, &card.probe, values)
    }
}

/// Reads the template again from the file's document with `values` set on their keys.
fn build(
    path: &Path,
    config: &ConfigInput,
    template: &str,
    values: &[(String, String)],
) -> Result<ProbeConfig, String> {
    let document = config.document().map_err(|e| e.message)?;
    let probe = document
        .as_table()
        .and_then(|root| root.get("probe"))
        .and_then(|p| p.as_array())
        .ok_or("the config has no [[probe]]")?
        .iter()
        .find(|p| p.as_table().and_then(|t| t.get("name")).and_then(|n| n.as_str()) == Some(template))
        .ok_or_else(|| format!("no [[probe]] is named `{template}`"))?;
    let Value::Table(mut probe) = probe.clone().into_owned().value else {
        return Err(format!("the [[probe]] `{template}` is not a table"));
    };
    for (key, value) in values {
        set_field(&mut probe, key, value)?;
    }
    let mut root = Table::new();
    root.insert("probe", Value::Array(vec![Item::new(Value::Table(probe))]));
    let env = |name: &str| std::env::var(name).ok();
    let config = super::suite::load_template(path, Item::new(Value::Table(root)), &env, template)
        .map_err(|errors| brief(&errors))?;
    config.probes.into_iter().find(|p| p.name == template).ok_or_else(|| format!("probe `{template}` was not read"))
}

/// Sets `a.b.c` in the template to the owner's value, making the tables on the way.
fn set_field(table: &mut Table<'static>, key: &str, value: &str) -> Result<(), String> {
    let Some((head, rest)) = key.split_once('.') else {
        table.insert(key, document::literal(value));
        return Ok(());
    };
    if table.get(head).is_none() {
        table.insert(head, Value::Table(Table::new()));
    }
    match table.get_mut(head).map(|item| &mut item.value) {
        Some(Value::Table(inner)) => set_field(inner, rest, value),
        _ => Err(format!("`{key}`: `{head}` is not a table in the template")),
    }
}

/// Config errors of a rebuilt template, without positions (they are the rebuilt text's).
fn brief(errors: &ConfigErrors) -> String {
    errors
        .0
        .iter()
        .map(|e| match &e.key {
            Some(key) => format!("{key}: {}", e.message),
            None => e.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The probe names the `[[card]]` tables use as templates (read before the probes, which
/// skip them). Marks the keys as known even when nothing else is read.
pub fn template_names(root: &TableReader<'_, '_>) -> HashSet<String> {
    let _ = root.get("cards");
    super::suite::names_in(root, "card", "probe")
}

/// Reads `[cards]` and `[[card]]`, checking each card's template with placeholder values.
pub fn read(
    root: &TableReader<'_, '_>,
    path: &Path,
    config: &ConfigInput,
    probe_names: &HashSet<String>,
) -> Option<Arc<Cards>> {
    let settings = root.table("cards");
    let mut cards = Vec::new();
    super::suite::each_named_table(root, "card", "a unique name for this card", |reader, name| {
        cards.extend(read_card(&reader, name, path, config, probe_names));
        reader.finish();
    });
    let Some(settings) = settings else {
        if !cards.is_empty() {
            root.error_here("[[card]] needs a [cards] table: key, public_url, deliver = { age_recipients, outbox }");
        }
        return None;
    };
    let key = settings.required_secret("key", "the key that signs links: `authprobe card key FILE` writes one")?;
    if key.read_here().len() < 32 {
        settings.error_at("key", "the card key is too short: use `authprobe card key FILE` (32 random bytes)");
    }
    let public_url = settings.string("public_url").map(|u| u.trim_end_matches('/').to_string());
    if let Some(url) = &public_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        settings.error_at("public_url", "an http(s):// URL where serve is reached");
    }
    let deliver = settings.table("deliver");
    settings.finish();
    let Some(deliver) = deliver else {
        root.error_here("[cards] needs deliver = { age_recipients = [\"age1…\"], outbox = \"DIR\" }");
        return None;
    };
    let mut recipients = Vec::new();
    for raw in deliver.string_list("age_recipients").unwrap_or_default() {
        match Recipient::parse(&raw) {
            Ok(r) => recipients.push(r),
            Err(why) => deliver.error_at("age_recipients", why),
        }
    }
    if recipients.is_empty() && deliver.has("age_recipients") {
        deliver.error_at("age_recipients", "at least one age recipient (age-keygen prints one)");
    } else if !deliver.has("age_recipients") {
        deliver.error_here("age_recipients is missing: the operators' age public keys the results are sealed to");
    }
    let outbox = deliver.path("outbox");
    if outbox.is_none() && !deliver.has("outbox") {
        deliver.error_here("outbox is missing: the directory sealed results and the links' state go to");
    }
    deliver.finish();
    Some(Arc::new(Cards {
        key,
        public_url,
        recipients,
        outbox: outbox?,
        cards,
        config_path: path.to_path_buf(),
        config: config.clone(),
    }))
}

fn read_card(
    reader: &TableReader<'_, '_>,
    name: Option<String>,
    path: &Path,
    config: &ConfigInput,
    probe_names: &HashSet<String>,
) -> Option<Card> {
    let title = reader.string("title");
    let probe = reader.required_string("probe", "the name of the [[probe]] this card fills in")?;
    let fields = reader.string_list("fields");
    let expires = reader.duration("expires").unwrap_or(DEFAULT_EXPIRES);
    let redirect_uri = reader.string("redirect_uri");
    if let Some(uri) = &redirect_uri
        && !uri.starts_with("https://")
        && !uri.starts_with("http://")
    {
        reader.error_at("redirect_uri", "an http(s):// URL the owner is sent to after a pass");
    }
    if !probe_names.contains(&probe) {
        reader.error_at("probe", format!("no [[probe]] is named `{probe}`"));
        return None;
    }
    let Some(fields) = fields.filter(|f| !f.is_empty()) else {
        reader.error_at("fields", "the keys the owner fills in, e.g. fields = [\"user\", \"password\"]");
        return None;
    };
    let placeholders: Vec<(String, String)> = fields.iter().map(|f| (f.clone(), PLACEHOLDER.to_string())).collect();
    let template = match build(path, config, &probe, &placeholders) {
        Ok(template) => template,
        Err(why) => {
            reader.error_at("fields", format!("the probe `{probe}` with these fields filled in does not load: {why}"));
            return None;
        }
    };
    let name = name?;
    Some(Card {
        title: title.unwrap_or_else(|| name.clone()),
        name,
        kind: template.kind.to_string(),
        // The placeholder of a user field is no part of the target the owner is shown.
        target: template.probe.target().replace(&format!("{PLACEHOLDER}@"), "").replace(PLACEHOLDER, "…"),
        fields: fields.into_iter().map(|key| Field { secret: is_secret_field(&key), key }).collect(),
        probe,
        expires,
        redirect_uri,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cards(fields: &str) -> Result<Arc<Cards>, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let key = "k".repeat(40);
        let text = format!(
            "[cards]\nkey = \"{key}\"\ndeliver = {{ age_recipients = [\"age1rm60hqlajd9aadgemmux4dhyzjrk6syqzuwz9x02jk3unc3dr3nqx0tfhg\"], outbox = \"out\" }}\n\
             [[probe]]\nname = \"t\"\nkind = \"postgres\"\nhost = \"db.internal\"\nport = 5432\ndatabase = \"orders\"\n\
             [[card]]\nname = \"c\"\nprobe = \"t\"\nfields = {fields}\n"
        );
        let config = super::super::suite::load_str(&dir.path().join("probes.toml"), text, &|_| None)
            .map_err(|e| e.to_string())?;
        assert!(config.probes.is_empty(), "a template is not a probe of the file");
        config.cards.ok_or_else(|| "no cards".to_string())
    }

    #[test]
    fn an_owners_values_are_only_values_and_only_on_the_cards_fields() {
        let cards = cards("[\"user\", \"password\"]").unwrap();
        let card = cards.card("c").unwrap();
        assert_eq!(card.target, "postgres://db.internal:5432/orders", "no placeholder in what the owner sees");
        // A reference, a quote and a newline in a value are text: nothing is read, no key is added.
        let values = vec![
            ("user".to_string(), "${HOME}\"\nhost = \"evil.example".to_string()),
            ("password".to_string(), "${file:/etc/hostname}".to_string()),
        ];
        let probe = cards.attempt_probe(card, &values).unwrap();
        assert!(probe.probe.target().contains("db.internal:5432"), "{}", probe.probe.target());
        assert!(
            probe.probe.target().contains("%7BHOME%7D") || probe.probe.target().contains("{HOME}"),
            "{}",
            probe.probe.target()
        );
        let other = vec![("host".to_string(), "evil.example".to_string())];
        assert!(cards.attempt_probe(card, &other).unwrap_err().contains("not one of this card's fields"));
    }

    #[test]
    fn a_field_the_kind_does_not_have_is_a_config_error_at_load() {
        let err = cards("[\"pasword\"]").unwrap_err();
        assert!(err.contains("fields") && err.contains("pasword"), "{err}");
    }

    #[test]
    fn names_of_people_and_things_are_not_secret_fields() {
        assert!(!is_secret_field("user"));
        assert!(!is_secret_field("auth.client_id"));
        assert!(is_secret_field("password"));
        assert!(is_secret_field("auth.token"));
        assert!(is_secret_field("private_key"));
    }
}
