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
    /// Shown as a password input: what the declared shape says is a secret or a key
    /// file, and any key it does not know; not names of people and things.
    pub secret: bool,
}

/// Whether a field of a `kind` template holds a secret, by the declared shape of
/// probes.toml (`config::schema`): the template's own `auth` type says which form's keys
/// the field is among.
fn is_secret_field(kind: &str, template: &Table<'_>, field: &str) -> bool {
    use crate::config::schema::{self, Ty};
    let mut path = format!("probe[{kind}]");
    let mut table = Some(template);
    let mut steps: Vec<&str> = field.split('.').collect();
    let Some(name) = steps.pop() else { return true };
    for step in steps {
        let inner = table.and_then(|t| t.get(step)).and_then(|item| item.as_table());
        path.push('.');
        path.push_str(step);
        if let Some(tag) = inner.and_then(|t| t.get("type")).and_then(|v| v.as_str()) {
            path.push_str(&format!("[{tag}]"));
        }
        table = inner;
    }
    match schema::key_in(&path, name) {
        Some(key) => key.is_secret() || matches!(key.ty, Ty::Path),
        None => true,
    }
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
        let probe = template_table(&self.config, &card.probe)?;
        build(&self.config_path, probe, &card.probe, values)
    }
}

/// Reads the template `probe` (its table from the file's document) again with `values`
/// set on their keys.
fn build(
    path: &Path,
    mut probe: Table<'static>,
    template: &str,
    values: &[(String, String)],
) -> Result<ProbeConfig, String> {
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

/// The template `[[probe]]`'s table, as written in the config.
fn template_table(config: &ConfigInput, template: &str) -> Result<Table<'static>, String> {
    let document = config.document().map_err(|e| e.message)?;
    let probe = document
        .as_table()
        .and_then(|root| root.get("probe"))
        .and_then(|p| p.as_array())
        .ok_or("the config has no [[probe]]")?
        .iter()
        .find(|p| p.as_table().and_then(|t| t.get("name")).and_then(|n| n.as_str()) == Some(template))
        .ok_or_else(|| format!("no [[probe]] is named `{template}`"))?;
    match probe.clone().into_owned().value {
        Value::Table(table) => Ok(table),
        _ => Err(format!("the [[probe]] `{template}` is not a table")),
    }
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
    let written = template_table(config, &probe);
    let template = match written.clone().and_then(|table| build(path, table, &probe, &placeholders)) {
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
        fields: fields
            .into_iter()
            .map(|key| Field {
                secret: written.as_ref().map_or(true, |t| is_secret_field(template.kind, t, &key)),
                key,
            })
            .collect(),
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
    fn fields_are_secret_as_the_declared_shape_says() {
        let doc = crate::config::document::from_toml(
            "kind = \"http\"\nauth = { type = \"oauth2_client_credentials\", token_url = \"https://t/\" }\n",
        )
        .unwrap();
        let http = doc.as_table().unwrap();
        assert!(!is_secret_field("http", http, "auth.client_id"));
        assert!(is_secret_field("http", http, "auth.client_secret"));
        let empty = Table::new();
        assert!(!is_secret_field("postgres", &empty, "user"));
        assert!(!is_secret_field("postgres", &empty, "database"));
        assert!(is_secret_field("postgres", &empty, "password"));
        assert!(is_secret_field("postgres", &empty, "tls.client_key"), "a key file's path stays masked");
        // A key the shape does not know (or a form not chosen yet) is shown masked.
        assert!(is_secret_field("http", &empty, "auth.token"));
        assert!(is_secret_field("sftp", &empty, "nonsense"));
    }
}
