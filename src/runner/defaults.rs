//! `[defaults]`: what every probe inherits unless it sets its own.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::TableReader;
use crate::config::separation::Environments;
use crate::connect::proxy::{EnvProxies, Setting};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CONCURRENCY: usize = 32;
pub const DEFAULT_WARN_EXPIRY_DAYS: u32 = 14;

/// `[defaults]`: values every probe inherits unless it sets its own.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Per probe, all stages together.
    pub timeout: Duration,
    /// How many probes run at once.
    pub concurrency: usize,
    /// A certificate expiring within this many days makes the probe WARN.
    pub warn_expiry_days: u32,
    /// `proxy`: for every probe that sets none (`NO_PROXY` applies to it).
    pub proxy: Option<Setting>,
    /// The proxy variables of the environment the config was read in.
    pub env_proxies: Arc<EnvProxies>,
    /// `approvals`: the approvals file [`approvals.toml` beside the config].
    pub approvals: Option<PathBuf>,
    /// `environments`: which tags are production and which are test, for the shared-secret warning.
    pub environments: Environments,
    /// `max_age`: a credential older than this WARNs, where its service says its age.
    pub max_age: Option<Duration>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            warn_expiry_days: DEFAULT_WARN_EXPIRY_DAYS,
            proxy: None,
            env_proxies: Arc::default(),
            approvals: None,
            environments: Environments::default(),
            max_age: None,
        }
    }
}

pub(super) fn read_defaults(root: &TableReader<'_, '_>) -> Defaults {
    let mut defaults = Defaults::default();
    let Some(table) = root.table("defaults") else {
        return defaults;
    };
    if let Some(timeout) = table.duration("timeout") {
        defaults.timeout = timeout;
    }
    if let Some(n) = table.integer("concurrency", 1..=100_000) {
        defaults.concurrency = n as usize;
    }
    if let Some(days) = table.integer("warn_expiry_days", 0..=3650) {
        defaults.warn_expiry_days = days as u32;
    }
    defaults.max_age = table.duration("max_age");
    defaults.proxy = super::probe_table::read_proxy(&table);
    defaults.approvals = table.path("approvals");
    if let Some(groups) = table.string_lists_by_name("environments") {
        defaults.environments = Environments(groups);
    }
    table.finish();
    defaults
}

/// A probe's hygiene keys (`hygiene`, `expect_read_only`, `expect_scopes`, `max_age`, its
/// default from `[defaults]`) and the environment its tags put it in.
pub(super) fn read_hygiene(
    reader: &TableReader<'_, '_>,
    defaults: &Defaults,
    tags: &[String],
) -> crate::model::hygiene::HygieneSettings {
    crate::model::hygiene::HygieneSettings {
        enabled: reader.bool("hygiene").unwrap_or(true),
        expect_read_only: reader.bool("expect_read_only").unwrap_or(false),
        expect_scopes: reader.string_list("expect_scopes"),
        max_age: reader.duration("max_age").or(defaults.max_age),
        environment: defaults.environments.of(tags).map(str::to_string),
    }
}
