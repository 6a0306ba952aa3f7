//! One `[[probe]]` table: the keys every kind has (kind, timeout, tags, via, proxy,
//! hygiene, allowed_targets, allow_unverified_password), then the kind's own through its
//! parser; and what most probes of a file share, made once.

use std::cell::RefCell;
use std::sync::Arc;

use crate::config::reader;
use crate::connect::proxy::{ProxyPolicy, ProxySource, Setting};
use crate::connect::tunnel::TunnelConfig;
use crate::probes;

use super::defaults::Defaults;
use super::suite::{ProbeConfig, TableReader, Tunnels};

/// What most probes of a file have alike, made once and shared: a fleet of 100,000 probes
/// would otherwise hold 100,000 equal copies.
pub(super) struct Shared {
    /// The proxy policy of a probe that sets no `proxy` of its own.
    proxy: Arc<ProxyPolicy>,
    /// The distinct hygiene settings met so far (one per environment, as a rule).
    hygiene: RefCell<Vec<Arc<crate::model::hygiene::HygieneSettings>>>,
}

impl Shared {
    pub(super) fn new(defaults: &Defaults) -> Self {
        let proxy = ProxyPolicy { probe: None, defaults: defaults.proxy.clone(), env: defaults.env_proxies.clone() };
        Shared { proxy: Arc::new(proxy), hygiene: RefCell::default() }
    }

    fn hygiene(&self, settings: crate::model::hygiene::HygieneSettings) -> Arc<crate::model::hygiene::HygieneSettings> {
        let mut seen = self.hygiene.borrow_mut();
        if let Some(same) = seen.iter().find(|s| ***s == settings) {
            return same.clone();
        }
        let made = Arc::new(settings);
        if seen.len() < 16 {
            seen.push(made.clone());
        }
        made
    }
}

/// "one of: http, postgres, …", for a probe without a kind.
static KIND_NAMES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("one of: {}", probes::KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", "))
});

/// Reads one probe and checks its keys. The unknown-key check is skipped when the kind is
/// unknown: every kind-specific key would be reported and bury the real problem.
pub(super) fn read_probe(
    reader: TableReader<'_, '_>,
    name: Option<String>,
    defaults: &Defaults,
    tunnels: &Tunnels,
    shared: &Shared,
) -> Option<ProbeConfig> {
    let tags = reader.string_list("tags").unwrap_or_default();
    let mut allowed_targets = Vec::new();
    for raw in reader.string_list("allowed_targets").unwrap_or_default() {
        match crate::model::targets::Pattern::parse(&raw) {
            Ok(pattern) => allowed_targets.push(pattern),
            Err(why) => reader.error_at("allowed_targets", why),
        }
    }
    let allow_unverified_password = reader.bool("allow_unverified_password").unwrap_or(false);
    let hygiene = shared.hygiene(super::defaults::read_hygiene(&reader, defaults, &tags));
    let proxy = match read_proxy(&reader) {
        Some(setting) => Arc::new(ProxyPolicy {
            probe: Some((setting, ProxySource::ProbeKey)),
            defaults: defaults.proxy.clone(),
            env: defaults.env_proxies.clone(),
        }),
        None => shared.proxy.clone(),
    };
    let timeout = reader.duration("timeout").unwrap_or(defaults.timeout);
    let warn_expiry_days =
        reader.integer("warn_expiry_days", 0..=3650).map(|d| d as u32).unwrap_or(defaults.warn_expiry_days);
    let kind_name = reader.required_string("kind", &KIND_NAMES)?;
    let Some(kind) = probes::find_kind(&kind_name) else {
        let known: Vec<&str> = probes::KINDS.iter().map(|k| k.name).collect();
        let mut message = format!("unknown kind `{kind_name}`; known kinds: {}", known.join(", "));
        if let Some(s) = reader::did_you_mean(&kind_name, &known) {
            message = format!("unknown kind `{kind_name}` (did you mean `{s}`?)");
        }
        reader.error_at("kind", message);
        return None;
    };
    let via = read_via(&reader, tunnels);
    let via_ok = via.is_some() || !reader.has("via");
    let errors_before = reader.context().error_count();
    let probe = (kind.parse)(&reader);
    if probe.is_none() && reader.context().error_count() == errors_before {
        // A probe is never dropped in silence: a parser that refuses must have said why.
        reader.error_here(format!(
            "this {} probe could not be read and no reason was given: a bug in authprobe, please report it",
            kind.name
        ));
    }
    reader.finish();
    let probe = probe?;
    if !via_ok {
        return None;
    }
    Some(ProbeConfig {
        name: name?,
        kind: kind.name,
        tags,
        timeout,
        warn_expiry_days,
        probe,
        via,
        allowed_targets,
        allow_unverified_password,
        proxy,
        hygiene,
    })
}

/// `proxy = "http://user:${PASS}@host:port"`, `"socks5://…"`, `"socks5h://…"` or `"none"`.
pub(super) fn read_proxy(reader: &TableReader<'_, '_>) -> Option<Setting> {
    let raw = reader.string("proxy")?;
    match Setting::parse(&raw) {
        Ok(setting) => Some(setting),
        Err(why) => {
            reader.error_at("proxy", why);
            None
        }
    }
}

/// `via = "NAME"`: the tunnel a probe's connections go through (every kind connects
/// through [`crate::connect::net`], so every kind can).
fn read_via(reader: &TableReader<'_, '_>, tunnels: &Tunnels) -> Option<Arc<TunnelConfig>> {
    let name = reader.string("via")?;
    if let Some((_, tunnel)) = tunnels.iter().find(|(n, _)| *n == name) {
        // A tunnel with errors of its own has them reported at its table.
        return tunnel.clone();
    }
    let known: Vec<&str> = tunnels.iter().map(|(n, _)| n.as_str()).collect();
    let message = match reader::did_you_mean(&name, &known) {
        Some(s) => format!("no [[tunnel]] named `{name}` (did you mean `{s}`?)"),
        None if known.is_empty() => {
            format!("no [[tunnel]] named `{name}`: define one with [[tunnel]] name = \"{name}\"")
        }
        None => format!("no [[tunnel]] named `{name}`; defined tunnels: {}", known.join(", ")),
    };
    reader.error_at("via", message);
    None
}
