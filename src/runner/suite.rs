//! `probes.toml`: loading, secret references, and validation. Everything past this module
//! works with checked values only; every problem found here is reported with file, line
//! and column, and the run stops with exit code 2 before any network traffic.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::config::document::ConfigInput;
use crate::config::document::{Item, LaterProbes, NotADocument, read_in_parts};
use crate::config::secrets;
use crate::config::separation::{self, ProbeSecrets};
pub use crate::config::{ConfigError, ReadContext, Source, TableReader};

use crate::connect::proxy::{EnvProxies, ProxyPolicy};
use crate::connect::tunnel::{self, TunnelConfig};
use crate::model::approvals::Approval;
use crate::model::error::Stage;
use crate::probes::Probe;
use crate::probes::stored::{STORE_PLACEHOLDER, SecretStores, StoreBacked};

use super::defaults::read_defaults;
pub use super::defaults::{DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, DEFAULT_WARN_EXPIRY_DAYS, Defaults};

/// One checked `[[probe]]`.
#[derive(Clone)]
pub struct ProbeConfig {
    pub name: String,
    pub kind: &'static str,
    pub tags: Vec<String>,
    pub timeout: Duration,
    pub warn_expiry_days: u32,
    pub probe: Arc<dyn Probe>,
    /// The tunnel the probe's connections go through (`via`).
    pub via: Option<Arc<TunnelConfig>>,
    /// Servers `serve` may aim this probe at (`?module=NAME&target=…`), as globs. Empty:
    /// none, so that nobody who can reach `serve` can send the probe's credentials elsewhere.
    pub allowed_targets: Vec<crate::model::targets::Pattern>,
    /// `allow_unverified_password`: the credential release rule waived for this probe (a
    /// secret may go in recoverable form to a server whose identity is not verified).
    pub allow_unverified_password: bool,
    /// Which proxy each of its connections goes through.
    pub proxy: Arc<ProxyPolicy>,
    /// `hygiene`, `expect_read_only`, `expect_scopes`, `max_age`: what the credential
    /// should be, compared with what the kinds learn of it.
    pub hygiene: Arc<crate::model::hygiene::HygieneSettings>,
}

impl ProbeConfig {
    /// The stages this probe goes through, its tunnel's included.
    pub fn stages(&self) -> Vec<Stage> {
        let stages = self.probe.stages();
        if self.via.is_some() { tunnel::stages_via(stages) } else { stages }
    }
}

impl std::fmt::Debug for ProbeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("target", &self.probe.target())
            .finish()
    }
}

/// The checked config file.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub defaults: Defaults,
    pub probes: Vec<ProbeConfig>,
    /// What works but is probably not meant; `validate` and `run` print these.
    pub warnings: Vec<ConfigError>,
    /// The secret stores its probes read (`serve` turns their cache on and shows their reads).
    pub stores: Arc<SecretStores>,
    /// The approvals file and what it approves (certificates and host keys).
    pub approvals: ApprovalsFile,
    /// `[cards]` and `[[card]]`: links for a credential's owner (their templates are not
    /// among `probes`).
    pub cards: Option<Arc<super::cards::Cards>>,
}

/// The approvals file a config uses, and its entries when it was read.
#[derive(Debug, Clone, Default)]
pub struct ApprovalsFile {
    pub path: PathBuf,
    pub entries: Vec<Approval>,
}

/// Everything wrong with a config file.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and checks a config file, resolving references from the process environment.
/// `-` reads it from standard input (how the Python API hands over probes with their
/// secrets: never in a file or an argument).
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let read = if path == Path::new("-") {
        secrets::read_stdin_capped(secrets::DATA_FILE_CAP)
    } else {
        secrets::read_text_capped(path, secrets::DATA_FILE_CAP)
    };
    let text = match read {
        Ok(text) => text,
        Err(err) => {
            let message = if err.kind() == std::io::ErrorKind::NotFound {
                "there is no such config file: give one with -c FILE (or AUTHPROBE_CONFIG); probes.toml.example shows every kind, or try `authprobe check URL` for one probe without a file".to_string()
            } else {
                format!("cannot read the config file: {}", crate::model::error::describe_io(&err))
            };
            return Err(ConfigErrors(vec![file_error(path, (0, 0), message)]));
        }
    };
    let env = |name: &str| std::env::var(name).ok();
    // Errors in probes from standard input name it so (as `-:3:1:` would not).
    let shown = if path == Path::new("-") { Path::new("<stdin>") } else { path };
    load_input(shown, ConfigInput::from_text(text), &env)
}

/// Checks TOML config text; `env` resolves `${NAME}` references.
pub fn load_str(path: &Path, text: String, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    load_input(path, ConfigInput::Toml(Arc::from(text)), env)
}

/// Checks a config in any form; `env` resolves `${NAME}` references.
pub fn load_input(
    path: &Path,
    input: ConfigInput,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    load_with(path, &input, env, &HashMap::new(), None)
}

/// One card's template probe, given as a document of its own (the template with the
/// owner's values set): only that probe, no cards.
pub(super) fn load_template(
    path: &Path,
    document: Item<'static>,
    env: &dyn Fn(&str) -> Option<String>,
    template: &str,
) -> Result<Config, ConfigErrors> {
    load_with(path, &ConfigInput::Built(Arc::new(document)), env, &HashMap::new(), Some(template))
}

/// An error about the file as a whole, or at a position the parser gave.
fn file_error(path: &Path, (line, column): (usize, usize), message: String) -> ConfigError {
    ConfigError { file: path.display().to_string(), line, column, item: None, key: None, unset_var: None, message }
}

/// What probes with store references need to be read again at each attempt.
struct StoreReading<'a> {
    stores: Arc<SecretStores>,
    /// The references met since the current probe began.
    pending: &'a RefCell<Vec<String>>,
    path: &'a Path,
    input: &'a ConfigInput,
    /// Read only this probe (a probe read again with its store values).
    only: Option<&'a str>,
    /// The variables `${NAME}` looked up so far, and what the loader's environment gave:
    /// the probe is read again with these (a caller's environment may not be the
    /// process's: the Python API's, a test's).
    seen_vars: &'a RefCell<HashMap<String, Option<String>>>,
}

/// [`load_str`], with the values of store references already fetched (`fetched`, keyed by
/// the reference's text): how a probe is read again at each attempt, `only` that one (the
/// others were checked when the file was loaded; reading them again for each would make a
/// run quadratic in the probes that use stores).
fn load_with(
    path: &Path,
    input: &ConfigInput,
    env: &dyn Fn(&str) -> Option<String>,
    fetched: &HashMap<String, String>,
    only: Option<&str>,
) -> Result<Config, ConfigErrors> {
    let source = match input {
        ConfigInput::Toml(text) => Source::new(path.to_path_buf(), text.clone()),
        ConfigInput::Json(_) | ConfigInput::Built(_) => Source::without_positions(path.to_path_buf()),
    };
    let reading = Reading { path, input, source: &source, env, fetched, only };
    match input {
        // A fleet file's later probes are parsed while the ones before are read.
        ConfigInput::Toml(text) => {
            read_in_parts(text, |head, later| read_document(&reading, head.map(Cow::Owned), later))
        }
        ConfigInput::Json(_) | ConfigInput::Built(_) => {
            read_document(&reading, input.document(), &mut std::iter::empty())
        }
    }
}

/// What [`load_with`] reads, and with what.
struct Reading<'a> {
    path: &'a Path,
    input: &'a ConfigInput,
    source: &'a Source,
    env: &'a dyn Fn(&str) -> Option<String>,
    fetched: &'a HashMap<String, String>,
    only: Option<&'a str>,
}

/// The reading of one document: its root (with the first part's probes) and the probes of
/// the later parts of a big file.
fn read_document<'a>(
    reading: &Reading<'_>,
    document: Result<Cow<'_, Item<'a>>, NotADocument>,
    later: LaterProbes<'_, 'a>,
) -> Result<Config, ConfigErrors> {
    let Reading { path, input, source, env, fetched, only } = *reading;
    let parse_error = |err: NotADocument| {
        let position = err.span.map(|s| source.position(s.start)).unwrap_or((0, 0));
        ConfigErrors(vec![file_error(path, position, err.message)])
    };
    let document = document.map_err(parse_error)?;
    let Some(root_table) = document.as_table() else {
        return Err(ConfigErrors(vec![file_error(path, (0, 0), "the config must be a table of keys".into())]));
    };
    let stores: std::cell::OnceCell<Arc<SecretStores>> = std::cell::OnceCell::new();
    let pending: RefCell<Vec<String>> = RefCell::default();
    let seen_vars: RefCell<HashMap<String, Option<String>>> = RefCell::default();
    // `${STORE:REF}`: a value already fetched, else a placeholder and a note for the probe
    // being read; an unknown store is an error (the store tables are read first, and may
    // not refer to stores themselves).
    let lookup = |name: &str| -> Option<String> {
        let Some((store, _)) = name.split_once(':') else {
            let value = env(name);
            seen_vars.borrow_mut().insert(name.to_string(), value.clone());
            return value;
        };
        if let Some(value) = fetched.get(name) {
            return Some(value.clone());
        }
        if !stores.get().is_some_and(|s| s.knows(store)) {
            return None;
        }
        pending.borrow_mut().push(name.to_string());
        Some(STORE_PLACEHOLDER.to_string())
    };
    let ctx = ReadContext::new(source, &lookup);
    let root = TableReader::new(&ctx, root_table, document.span(), "");
    let mut defaults = read_defaults(&root);
    defaults.env_proxies = Arc::new(EnvProxies::from_env(env));
    let read_stores = Arc::new(SecretStores::read(&root, env));
    let _ = stores.set(read_stores.clone());
    let tunnels = read_tunnels(&root);
    // Card templates are read only for a card (`only`), never run as probes of the file.
    let templates = super::cards::template_names(&root);
    let store_reading =
        StoreReading { stores: read_stores.clone(), pending: &pending, path, input, only, seen_vars: &seen_vars };
    let skip = if only.is_some() { Default::default() } else { templates };
    // The probes' names only when there are cards to check against them.
    let want_names = only.is_none() && (root.has("card") || root.has("cards"));
    let read = read_probes(&root, later, &defaults, &tunnels, &store_reading, &skip, want_names);
    let (probes, names) = read.map_err(parse_error)?;
    let cards = if want_names { super::cards::read(&root, path, input, &names) } else { None };
    root.finish();
    let (mut errors, mut warnings) = ctx.into_findings();
    // In the order of the file, as an editor would walk them.
    errors.sort_by_key(|e| (e.line, e.column));
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    warnings.sort_by_key(|e| (e.line, e.column));
    let approvals_path = defaults.approvals.clone().unwrap_or_else(|| path.with_file_name("approvals.toml"));
    // A probe read again with its store values needs no second reading of the file.
    let entries = match only {
        Some(_) => Vec::new(),
        None => crate::config::approvals::read(&approvals_path).map_err(ConfigErrors)?,
    };
    let approvals = ApprovalsFile { path: approvals_path, entries };
    Ok(Config { path: path.to_path_buf(), defaults, probes, warnings, stores: read_stores, approvals, cards })
}

/// The string values of `field` in the tables of the `[[array]]` (read before the tables
/// themselves are; shapes are checked where they are read).
pub(super) fn names_in(
    root: &TableReader<'_, '_>,
    array: &'static str,
    field: &str,
) -> std::collections::HashSet<String> {
    let Some(tables) = root.get(array).and_then(|v| v.as_array()) else {
        return Default::default();
    };
    tables
        .iter()
        .filter_map(|item| item.as_table())
        .filter_map(|t| t.get(field).and_then(|n| n.as_str()).map(str::to_string))
        .collect()
}

/// Walks the tables of a `[[key]]` array: each is read with its `name` (`naming` says what
/// the name is for), and errors are attributed to it ("probe `x`", "tunnel `x`"). Wrong
/// shapes and empty or duplicate names are reported here. False when the key is absent.
pub(super) fn each_named_table<'s>(
    root: &TableReader<'_, 's>,
    key: &'static str,
    naming: &'static str,
    read: impl for<'t> FnMut(TableReader<'t, 's>, Option<String>),
) -> bool {
    // Without later parts, no part can fail to parse.
    walk_named_tables(root, key, naming, &mut std::iter::empty(), read).map_or(true, |(present, _)| present)
}

/// [`each_named_table`] over the root's `[[key]]` tables, then those of the later parts of
/// a big file: whether any was there, and the walk with the names it saw. Err: a later
/// part is not valid TOML.
fn walk_named_tables<'s>(
    root: &TableReader<'_, 's>,
    key: &'static str,
    naming: &'static str,
    later: LaterProbes<'_, '_>,
    mut read: impl for<'t> FnMut(TableReader<'t, 's>, Option<String>),
) -> Result<(bool, NamedTables), NotADocument> {
    let ctx = root.context();
    let first = named_items(root, key);
    let mut walk = NamedTables::new(key, naming, first.map_or(0, <[_]>::len));
    let mut present = first.is_some();
    for item in first.into_iter().flatten() {
        walk.read(ctx, item, &mut read);
    }
    for part in later {
        for item in part?.iter() {
            present = true;
            walk.read(ctx, item, &mut read);
        }
    }
    Ok((present, walk))
}

/// The items of the `[[key]]` array; an error when `key` is something else.
fn named_items<'r>(root: &TableReader<'r, '_>, key: &'static str) -> Option<&'r [Item<'r>]> {
    let value = root.get(key)?;
    match value.as_array() {
        Some(array) => Some(array),
        None => {
            root.context().error(
                value.span(),
                Some(key.into()),
                format!("`{key}` must be an array of tables: write [[{key}]], not [{key}]"),
            );
            Some(&[])
        }
    }
}

/// The tables of one `[[key]]` array, walked one by one (from one document, or from the
/// parts of a big file), with the names seen so far.
struct NamedTables {
    key: &'static str,
    naming: &'static str,
    /// Each name, with where its first table starts.
    seen: HashMap<String, usize>,
}

impl NamedTables {
    fn new(key: &'static str, naming: &'static str, expected: usize) -> Self {
        NamedTables { key, naming, seen: HashMap::with_capacity(expected) }
    }

    fn read<'s>(
        &mut self,
        ctx: &ReadContext<'s>,
        item: &Item<'_>,
        read: &mut impl for<'t> FnMut(TableReader<'t, 's>, Option<String>),
    ) {
        let key = self.key;
        let Some(table) = item.as_table() else {
            ctx.error(item.span(), Some(key.into()), format!("each {key} must be a table"));
            return;
        };
        ctx.set_item(None);
        let reader = TableReader::new(ctx, table, item.span(), "");
        let name = reader.required_string("name", self.naming);
        if let Some(name) = &name {
            ctx.set_item(Some(format!("{key} `{name}`")));
            if name.trim().is_empty() {
                reader.error_at("name", "the name must not be empty");
            } else if let Some(first) = self.seen.insert(name.clone(), item.span().start) {
                let message = if ctx.source.has_positions() {
                    let first = ctx.source.position(first).0;
                    format!("duplicate {key} name (first defined at line {first})")
                } else {
                    format!("duplicate {key} name")
                };
                reader.error_at("name", message);
            }
        }
        read(reader, name);
        ctx.set_item(None);
    }

    /// The names seen, once the walk is over.
    fn into_names(self) -> std::collections::HashSet<String> {
        self.seen.into_keys().collect()
    }
}

/// A `[[tunnel]]` by name; `None` when its table has errors (reported already).
pub(super) type Tunnels = Vec<(String, Option<Arc<TunnelConfig>>)>;

fn read_tunnels(root: &TableReader<'_, '_>) -> Tunnels {
    let mut tunnels = Vec::new();
    each_named_table(root, "tunnel", "a unique name that probes refer to with `via`", |reader, name| {
        let tunnel = name.clone().and_then(|name| TunnelConfig::read(&reader, name));
        reader.finish();
        if let Some(name) = name {
            tunnels.push((name, tunnel.map(Arc::new)));
        }
    });
    tunnels
}

/// The probes of the root's `[[probe]]` array and of the later parts of a big file, and
/// their names when `want_names` (the cards are checked against them). Err: a later part
/// is not valid TOML (what was read is dropped: the error is the file's).
#[allow(clippy::too_many_arguments)]
fn read_probes<'a>(
    root: &TableReader<'_, '_>,
    later: LaterProbes<'_, 'a>,
    defaults: &Defaults,
    tunnels: &Tunnels,
    stores: &StoreReading<'_>,
    templates: &std::collections::HashSet<String>,
    want_names: bool,
) -> Result<(Vec<ProbeConfig>, std::collections::HashSet<String>), NotADocument> {
    let ctx = root.context();
    let mut probes = Vec::new();
    let mut secrets = Vec::new();
    let shared = super::probe_table::Shared::new(defaults);
    let mut read = |reader: TableReader<'_, '_>, name: Option<String>| {
        if stores.only.is_some_and(|only| name.as_deref() != Some(only)) {
            return;
        }
        if name.as_ref().is_some_and(|n| templates.contains(n)) {
            return;
        }
        stores.pending.borrow_mut().clear();
        ctx.take_secret_uses();
        let read = super::probe_table::read_probe(reader, name, defaults, tunnels, &shared);
        let uses = ctx.take_secret_uses();
        let refs = std::mem::take(&mut *stores.pending.borrow_mut());
        // Only probes that hold a secret can share one, and only across environments.
        if let Some(probe) =
            read.as_ref().filter(|probe| !uses.is_empty() && defaults.environments.of(&probe.tags).is_some())
        {
            secrets.push(ProbeSecrets { name: probe.name.clone(), tags: probe.tags.clone(), uses });
        }
        probes.extend(read.map(|probe| with_stores(probe, refs, stores)));
    };
    let (present, walk) = walk_named_tables(root, "probe", "a unique name for this probe", later, &mut read)?;
    if !present {
        root.error_here("no probes defined: add at least one [[probe]] table");
    }
    separation::warn_shared(ctx, &defaults.environments, &secrets);
    Ok((probes, if want_names { walk.into_names() } else { Default::default() }))
}

/// A probe with store references becomes one that fetches them at each attempt and reads
/// its config again with the values.
fn with_stores(mut probe: ProbeConfig, mut refs: Vec<String>, stores: &StoreReading<'_>) -> ProbeConfig {
    if refs.is_empty() {
        return probe;
    }
    refs.sort();
    refs.dedup();
    let (path, input, name) = (stores.path.to_path_buf(), stores.input.clone(), probe.name.clone());
    let vars = stores.seen_vars.borrow().clone();
    let rebuild = move |values: &HashMap<String, String>| -> Result<Arc<dyn Probe>, String> {
        let env = |var: &str| match vars.get(var) {
            Some(seen) => seen.clone(),
            None => std::env::var(var).ok(),
        };
        let config = load_with(&path, &input, &env, values, Some(&name)).map_err(|errors| errors.to_string())?;
        config
            .probes
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| p.probe)
            .ok_or_else(|| format!("probe `{name}` is no longer in the config"))
    };
    probe.probe = Arc::new(StoreBacked::new(probe.probe, refs, stores.stores.clone(), Arc::new(rebuild)));
    probe
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "API_TOKEN").then(|| "tok-123456".to_string())
    }

    fn load(text: &str) -> Result<Config, ConfigErrors> {
        crate::install_crypto_provider();
        load_str(Path::new("probes.toml"), text.to_string(), &env)
    }

    fn errors(text: &str) -> Vec<String> {
        load(text).unwrap_err().0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn a_minimal_probe_loads_with_defaults() {
        let cfg = load("[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://example.com/\"\n").unwrap();
        assert_eq!(cfg.probes.len(), 1);
        assert_eq!(cfg.probes[0].timeout, DEFAULT_TIMEOUT);
        assert_eq!(cfg.defaults.concurrency, DEFAULT_CONCURRENCY);
    }

    #[test]
    fn defaults_apply_and_probes_override_them() {
        let cfg = load(
            "[defaults]\ntimeout = \"3s\"\nwarn_expiry_days = 30\n\n[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\n\n[[probe]]\nname = \"b\"\nkind = \"http\"\nurl = \"http://x/\"\ntimeout = \"500ms\"\n",
        )
        .unwrap();
        assert_eq!(cfg.probes[0].timeout, Duration::from_secs(3));
        assert_eq!(cfg.probes[0].warn_expiry_days, 30);
        assert_eq!(cfg.probes[1].timeout, Duration::from_millis(500));
    }

    #[test]
    fn unknown_keys_name_file_line_column_probe_and_suggestion() {
        let errs = errors("[[probe]]\nname = \"orders\"\nkind = \"http\"\nurll = \"https://x/\"\n");
        assert!(
            errs.contains(
                &"probes.toml:4:1: probe `orders`, key `urll`: unknown key `urll` (did you mean `url`?)".to_string()
            ),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with("probes.toml:1:1: probe `orders`, key `url`: missing required key")),
            "{errs:?}"
        );
    }

    #[test]
    fn nested_unknown_keys_have_their_path() {
        let errs = errors(
            "[[probe]]\nname = \"o\"\nkind = \"http\"\nurl = \"https://x/\"\nauth = { type = \"bearer\", tokn = \"${API_TOKEN}\" }\n",
        );
        assert!(
            errs.iter().any(|e| e.contains("key `auth.tokn`: unknown key `tokn` (did you mean `token`?)")),
            "{errs:?}"
        );
    }

    #[test]
    fn wrong_types_and_duplicates_and_missing_vars_are_reported_together() {
        let errs = errors(
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://x/\"\ntimeout = 5\n\n[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://x/\"\nauth = { type = \"bearer\", token = \"${MISSING_TOKEN}\" }\n",
        );
        assert!(
            errs.iter().any(|e| e.starts_with("probes.toml:5:11: probe `a`, key `timeout`: expected a duration")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e
                .starts_with("probes.toml:8:8: probe `a`, key `name`: duplicate probe name (first defined at line 1)")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("key `auth.token`: environment variable MISSING_TOKEN is not set")),
            "{errs:?}"
        );
    }

    /// `n` http probes, enough of them that the file is read in parts.
    fn fleet(n: usize) -> String {
        (0..n)
            .map(|i| format!("[[probe]]\nname = \"p{i}\"\nkind = \"http\"\nurl = \"https://h{i}.example/\"\n\n"))
            .collect()
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text[..text.rfind(needle).unwrap()].lines().count() + 1
    }

    #[test]
    fn a_fleet_read_in_parts_is_checked_as_one_file() {
        let text =
            format!("{}[[probe]]\nname = \"p3\"\nkind = \"http\"\nurl = \"https://again/\"\ncolour = 1\n", fleet(4000));
        let errs = errors(&text);
        let line = line_of(&text, "name = \"p3\"");
        assert!(
            errs.iter().any(|e| e.starts_with(&format!(
                "probes.toml:{line}:8: probe `p3`, key `name`: duplicate probe name (first defined at line 16)"
            ))),
            "{errs:?}"
        );
        let line = line_of(&text, "colour");
        assert!(
            errs.iter().any(|e| e.starts_with(&format!("probes.toml:{line}:1: probe `p3`, key `colour`"))),
            "{errs:?}"
        );
        let config = load(&fleet(4000)).unwrap();
        assert_eq!(config.probes.len(), 4000);
        assert_eq!(config.probes[3999].name, "p3999");
    }

    #[test]
    fn defaults_written_after_a_fleet_apply_to_all_of_it() {
        let text =
            format!("{}[defaults]\ntimeout = \"3s\"\n\n{}", fleet(2000), fleet(10).replace("name = \"p", "name = \"q"));
        let config = load(&text).unwrap();
        assert_eq!(config.probes.len(), 2010);
        assert!(config.probes.iter().all(|p| p.timeout == Duration::from_secs(3)));
    }

    #[test]
    fn a_syntax_error_in_a_later_part_is_the_only_error() {
        let text = format!("{}[[probe]]\nname = \"late\"\nkind = 1 2\n{}", fleet(2000), fleet(100));
        let errs = errors(&text);
        let line = line_of(&text, "kind = 1 2");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with(&format!("probes.toml:{line}:")) && errs[0].contains("not valid TOML"), "{errs:?}");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let errs = errors("[[probe]]\nname = \"a\nkind = 1\n");
        assert!(errs[0].starts_with("probes.toml:2:"), "{errs:?}");
        assert!(errs[0].contains("not valid TOML"), "{errs:?}");
    }

    #[test]
    fn unknown_kind_gets_a_suggestion() {
        let errs = errors("[[probe]]\nname = \"a\"\nkind = \"htpp\"\n");
        assert!(errs.iter().any(|e| e.contains("unknown kind `htpp` (did you mean `http`?)")), "{errs:?}");
    }

    #[test]
    fn probe_must_be_an_array_of_tables() {
        let errs = errors("[probe]\nname = \"a\"\n");
        assert!(errs.iter().any(|e| e.contains("write [[probe]], not [probe]")), "{errs:?}");
    }
}
