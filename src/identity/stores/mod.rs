//! Secret stores: where `${STORE:REF}` references are read at each attempt, in the probe's
//! `secret` stage, before anything else happens. A store's failures are its own (stage
//! `secret`, messages naming the store and the path), never blamed on the probe's target.
//!
//! Built in without a table: `vault` (VAULT_ADDR, VAULT_TOKEN or ~/.vault-token,
//! VAULT_CACERT, VAULT_NAMESPACE, as the Vault and OpenBao CLIs read them). Others are
//! `[[secret_store]]` tables.

pub mod aws;
pub mod command;
pub mod vault;

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::reader::TableReader;
use crate::connect::context::ProbeContext;
use crate::model::error::{ErrorClass, Failure, Stage};

/// The store types `[[secret_store]]` knows.
pub const STORE_TYPES: &[&str] = &["vault", "aws_secrets_manager", "aws_ssm", "command"];

/// One configured store.
pub struct Store {
    pub name: String,
    kind: StoreKind,
    /// How long `serve` may reuse a static value read from this store (`cache`).
    cache: std::time::Duration,
}

/// `serve`'s default for `cache`: a rotation shows within a minute, and a scrape every few
/// seconds does not turn into a store request each.
const DEFAULT_CACHE: std::time::Duration = std::time::Duration::from_secs(60);

enum StoreKind {
    Vault(Box<vault::VaultStore>),
    Aws(Box<aws::AwsStore>),
    Command(command::CommandStore),
}

/// What one read gave: the fields (`#FIELD` picks one), the whole value where the store has
/// one (a Secrets Manager string, a parameter), and the lease to give back.
#[derive(Clone)]
pub struct StoreRead {
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub whole: Option<String>,
    pub lease: Option<String>,
}

/// A reference's parts: `vault:secret/app#token` is store `vault`, path `secret/app`,
/// field `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub store: String,
    pub path: String,
    pub field: Option<String>,
}

impl Reference {
    /// Splits `STORE:PATH[#FIELD]` (the text between `${` and `}`).
    pub fn parse(raw: &str) -> Option<Reference> {
        let (store, rest) = raw.split_once(':')?;
        let (path, field) = match rest.split_once('#') {
            Some((path, field)) => (path, Some(field.to_string())),
            None => (rest, None),
        };
        Some(Reference { store: store.to_string(), path: path.to_string(), field })
    }
}

/// What one attempt fetched: each reference's value, and the leases to give back.
#[derive(Default)]
pub struct Fetched {
    pub values: HashMap<String, String>,
    leases: Vec<(Arc<Store>, String)>,
}

/// Makes a built-in store from the environment.
type BuiltIn = fn(&dyn Fn(&str) -> Option<String>) -> StoreKind;

/// Every store of a config, built-in ones included, and what `serve` keeps of them.
#[derive(Default)]
pub struct SecretStores {
    stores: Vec<Arc<Store>>,
    /// Set by `serve`: static values are reused for each store's `cache`. Never in `run`,
    /// `check` or `--wait`, which must see a rotation at the next attempt.
    caching: std::sync::atomic::AtomicBool,
    cached: std::sync::Mutex<HashMap<(String, String), (std::time::Instant, StoreRead)>>,
    stats: std::sync::Mutex<HashMap<String, FetchStats>>,
    /// Leases being given back after their attempt was cut (a `--wait` budget or a probe
    /// timeout dropped it): `settle` waits for them before the process ends.
    returning: tokio_util::task::TaskTracker,
}

impl std::fmt::Debug for SecretStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.stores.iter().map(|s| &s.name)).finish()
    }
}

/// Reads of one store, for `serve`'s metrics.
#[derive(Default, Clone)]
pub struct FetchStats {
    pub ok: u64,
    pub failed: u64,
    pub cached: u64,
    /// Seconds spent in reads that went to the store.
    pub seconds: f64,
}

impl SecretStores {
    /// Reads the `[[secret_store]]` tables and adds the built-in `vault` unless a table
    /// took its name. `env` is the config's view of the environment.
    pub fn read(root: &TableReader<'_, '_>, env: &dyn Fn(&str) -> Option<String>) -> SecretStores {
        let mut stores = Vec::new();
        if let Some(list) = root.table_list("secret_store") {
            for table in list {
                let name = table.required_string("name", "the store's name, used in ${NAME:…} references");
                let kind = table.required_string("type", &format!("one of: {}", STORE_TYPES.join(", ")));
                let read = match kind.as_deref() {
                    Some("vault") => vault::VaultStore::from_table(&table, env).map(|v| StoreKind::Vault(Box::new(v))),
                    Some("aws_secrets_manager") => aws::AwsStore::from_table(aws::Service::SecretsManager, &table, env)
                        .map(|a| StoreKind::Aws(Box::new(a))),
                    Some("aws_ssm") => {
                        aws::AwsStore::from_table(aws::Service::Ssm, &table, env).map(|a| StoreKind::Aws(Box::new(a)))
                    }
                    Some("command") => command::CommandStore::from_table(&table).map(StoreKind::Command),
                    Some(other) => {
                        table.error_at(
                            "type",
                            format!("unknown store type `{other}`; known: {}", STORE_TYPES.join(", ")),
                        );
                        None
                    }
                    None => None,
                };
                let cache = table.duration_or_zero("cache").unwrap_or(DEFAULT_CACHE);
                table.finish();
                if let (Some(name), Some(kind)) = (name, read) {
                    stores.push(Arc::new(Store { name, kind, cache }));
                }
            }
        }
        let builtin: [(&str, BuiltIn); 3] = [
            ("vault", |env| StoreKind::Vault(Box::new(vault::VaultStore::from_env(env)))),
            ("aws-sm", |env| StoreKind::Aws(Box::new(aws::AwsStore::from_env(aws::Service::SecretsManager, env)))),
            ("aws-ssm", |env| StoreKind::Aws(Box::new(aws::AwsStore::from_env(aws::Service::Ssm, env)))),
        ];
        for (name, make) in builtin {
            if !stores.iter().any(|s| s.name == name) {
                stores.push(Arc::new(Store { name: name.into(), kind: make(env), cache: DEFAULT_CACHE }));
            }
        }
        SecretStores { stores, ..SecretStores::default() }
    }

    /// `serve` keeps static values for each store's `cache` (dynamic ones, with a lease,
    /// never).
    pub fn serving(&self) {
        self.caching.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reads per store so far: `(store, stats)`, sorted.
    pub fn stats(&self) -> Vec<(String, FetchStats)> {
        let mut all: Vec<(String, FetchStats)> =
            self.stats.lock().map(|s| s.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn count(&self, store: &str, update: impl FnOnce(&mut FetchStats)) {
        if let Ok(mut stats) = self.stats.lock() {
            update(stats.entry(store.to_string()).or_default());
        }
    }

    /// Whether values of `store` are kept (`serve`, and a `cache` that is not zero).
    fn keeps(&self, store: &Store) -> bool {
        self.caching.load(std::sync::atomic::Ordering::Relaxed) && !store.cache.is_zero()
    }

    /// A value kept by `serve` that is still fresh.
    fn cached_read(&self, store: &Store, path: &str) -> Option<StoreRead> {
        if !self.keeps(store) {
            return None;
        }
        let cached = self.cached.lock().ok()?;
        let (at, read) = cached.get(&(store.name.clone(), path.to_string()))?;
        (at.elapsed() < store.cache).then(|| read.clone())
    }

    /// One read that goes to the store, counted and timed, kept for `serve` when static.
    async fn read_from(&self, ctx: &ProbeContext, store: &Store, reference: &Reference) -> Result<StoreRead, Failure> {
        if let Some(read) = self.cached_read(store, &reference.path) {
            self.count(&store.name, |s| s.cached += 1);
            ctx.detail(format!(
                "secret store `{}`: `{}` reused (serve keeps it for {})",
                store.name,
                reference.path,
                humantime::format_duration(store.cache)
            ));
            return Ok(read);
        }
        let started = std::time::Instant::now();
        let result = match &store.kind {
            StoreKind::Vault(vault) => vault.read(ctx, &store.name, reference.path.trim_matches('/')).await,
            StoreKind::Aws(aws) => aws.read(ctx, &store.name, &reference.path).await,
            StoreKind::Command(command) => command.read(ctx, &store.name, &reference.path).await,
        };
        let seconds = started.elapsed().as_secs_f64();
        match &result {
            Ok(read) => {
                self.count(&store.name, |s| {
                    s.ok += 1;
                    s.seconds += seconds;
                });
                if read.lease.is_none()
                    && self.keeps(store)
                    && let Ok(mut cached) = self.cached.lock()
                {
                    cached.insert(
                        (store.name.clone(), reference.path.clone()),
                        (std::time::Instant::now(), read.clone()),
                    );
                }
            }
            Err(_) => self.count(&store.name, |s| {
                s.failed += 1;
                s.seconds += seconds;
            }),
        }
        result
    }

    pub fn knows(&self, name: &str) -> bool {
        self.stores.iter().any(|s| s.name == name)
    }

    /// Fetches every reference (the text between `${` and `}`) for one attempt. The same
    /// path is read once, so that the fields of one dynamic secret come from one lease.
    /// Every value and store token is registered with the probe's scrubber.
    pub async fn fetch(&self, ctx: &ProbeContext, refs: &[String]) -> Result<Fetched, Failure> {
        let mut fetched = Fetched::default();
        let mut read: HashMap<(String, String), StoreRead> = HashMap::new();
        for raw in refs {
            let mut reference = Reference::parse(raw)
                .ok_or_else(|| Failure::new(ErrorClass::Config, format!("`${{{raw}}}` is not a store reference")))?;
            let store = self.stores.iter().find(|s| s.name == reference.store).cloned().ok_or_else(|| {
                Failure::new(ErrorClass::Config, format!("no secret store named `{}`", reference.store))
            })?;
            if let StoreKind::Command(_) = store.kind {
                // A program's argument is the whole reference, `#` included: it is what is
                // read, and what the read is kept under.
                reference.path = raw.split_once(':').map_or(raw.as_str(), |(_, r)| r).to_string();
                reference.field = None;
            }
            let key = (reference.store.clone(), reference.path.clone());
            if !read.contains_key(&key) {
                let secret = self.read_from(ctx, &store, &reference).await?;
                if let Some(lease) = &secret.lease {
                    fetched.leases.push((store.clone(), lease.clone()));
                }
                read.insert(key.clone(), secret);
            }
            let entry = &read[&key];
            let fields = &entry.fields;
            let as_text = |value: &serde_json::Value| match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let text = match (&reference.field, &entry.whole) {
                (Some(field), _) => {
                    as_text(fields.get(field).ok_or_else(|| missing_field(&store.name, &reference, fields))?)
                }
                (None, Some(whole)) => whole.clone(),
                (None, None) if fields.len() == 1 => fields.values().next().map(as_text).unwrap_or_default(),
                (None, None) => {
                    return Err(Failure::new(
                        ErrorClass::Config,
                        format!(
                            "`${{{raw}}}` names no field and `{}` has {}: add #FIELD",
                            reference.path,
                            field_list(fields)
                        ),
                    ));
                }
            };
            ctx.register_secret(&text);
            fetched.values.insert(raw.clone(), text);
        }
        Ok(fetched)
    }

    /// Gives back, in the background, the leases of an attempt that was cut before it could
    /// (its future dropped at a deadline). `settle` waits for them.
    pub fn release_later(self: &Arc<Self>, ctx: ProbeContext, fetched: Fetched) {
        if fetched.leases.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let stores = self.clone();
        self.returning.spawn_on(async move { stores.release(&ctx, fetched).await }, &runtime);
    }

    /// Waits, at most `within`, for the leases `release_later` is giving back: `run` and
    /// `check` call it before they exit, so a cut attempt leaves no database role behind.
    pub async fn settle(&self, within: std::time::Duration) {
        self.returning.close();
        let _ = tokio::time::timeout(within, self.returning.wait()).await;
    }

    /// Gives back the leases of dynamic secrets once the probe is done with them (a health
    /// cron must not leave a trail of database roles). A lease not given back is a warning.
    pub async fn release(&self, ctx: &ProbeContext, fetched: Fetched) {
        for (store, lease) in fetched.leases {
            match &store.kind {
                StoreKind::Vault(vault) => vault.revoke(ctx, &store.name, &lease).await,
                StoreKind::Aws(_) | StoreKind::Command(_) => {}
            }
        }
    }
}

/// A failure of the store, at the `secret` stage; an empty hint is none.
pub(crate) fn failure(class: ErrorClass, message: String, hint: impl Into<String>) -> Failure {
    let hint = hint.into();
    let failure = Failure::new(class, message).at(Stage::Secret);
    if hint.is_empty() { failure } else { failure.with_hint(hint) }
}

fn field_list(fields: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut names: Vec<&str> = fields.keys().map(String::as_str).take(20).collect();
    names.sort_unstable();
    if names.is_empty() { "no fields".into() } else { format!("fields {}", names.join(", ")) }
}

fn missing_field(store: &str, reference: &Reference, fields: &serde_json::Map<String, serde_json::Value>) -> Failure {
    let field = reference.field.as_deref().unwrap_or_default();
    Failure::new(
        ErrorClass::NotFound,
        format!("secret store `{store}`: `{}` has no field `{field}` ({})", reference.path, field_list(fields)),
    )
    .with_hint("check the #FIELD part of the reference against the secret's keys (names are case-sensitive)")
    .at(Stage::Secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_store_path_and_field() {
        let r = Reference::parse("vault:secret/app#api_token").unwrap();
        assert_eq!((r.store.as_str(), r.path.as_str(), r.field.as_deref()), ("vault", "secret/app", Some("api_token")));
        let whole = Reference::parse("aws-ssm:/probe/api-token").unwrap();
        assert_eq!((whole.path.as_str(), whole.field), ("/probe/api-token", None));
        let arn = Reference::parse("aws-sm:arn:aws:secretsmanager:us-east-1:1:secret:db#password").unwrap();
        assert_eq!((arn.store.as_str(), arn.field.as_deref()), ("aws-sm", Some("password")));
        assert!(Reference::parse("no-store").is_none());
    }
}
