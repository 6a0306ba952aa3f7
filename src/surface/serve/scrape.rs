//! The state behind `serve`: the loaded config (swapped whole on reload), one slot per
//! probe and target that coalesces concurrent scrapes and enforces the minimum interval,
//! and the exporter's own counters.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::connect::context::Shared;
use crate::connect::tls::TrustStore;
use crate::model::advice::Dialect;
use crate::model::report::{RunReport, Status};
use crate::model::targets::Target;
use crate::runner::suite::{self as config, Config, ProbeConfig};
use crate::runner::{self, RunOptions};

/// Locks a mutex, carrying on past a panic elsewhere: every value behind these locks is
/// consistent between statements.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One config as loaded. Replaced whole on reload, so a scrape sees one version throughout.
pub struct Loaded {
    pub config: Config,
    pub generation: u64,
    /// System roots, loaded on first need and kept until the next reload.
    pub trust: Arc<TrustStore>,
    /// SSH logins per server, limited across all scrapes (sshd's MaxStartups).
    pub ssh_logins: Arc<crate::connect::ssh::LoginGate>,
    /// `[[tunnel]]` connections kept between scrapes (checked alive before each reuse), so
    /// that a bastion is not logged into at every scrape; dropped with the config.
    pub tunnels: Arc<crate::connect::tunnel::TunnelPool>,
    pub loaded_at: SystemTime,
}

impl Loaded {
    /// How serve runs one probe: alone, within `timeout`, hints as config lines.
    pub fn run_options(&self, timeout: Duration, approvals: Arc<crate::model::approvals::Approvals>) -> RunOptions {
        RunOptions {
            concurrency: 1,
            timeout: Some(timeout),
            fail_fast: false,
            wait: None,
            tracker: None,
            advice: Dialect::Config,
            approvals,
            config_path: Some(self.config.path.clone()),
            // The status page shows every line, the blackbox metrics the facts.
            keep: crate::runner::Keep::ALL,
        }
    }

    /// What runs share with this config: `trust`, and the SSH logins and tunnels kept.
    pub fn shared(&self, trust: Arc<TrustStore>) -> Arc<Shared> {
        Arc::new(Shared { trust, ssh_logins: self.ssh_logins.clone(), tunnels: self.tunnels.clone() })
    }
}

/// How the last reload went, for /metrics and the status page.
pub struct ReloadStatus {
    pub ok: bool,
    pub last_success: SystemTime,
    /// The errors of the last failed reload (config errors never contain secret values).
    pub last_error: Option<String>,
}

/// A finished probe run, as served to scrapes.
pub struct Finished {
    /// One probe, secrets scrubbed.
    pub report: RunReport,
    pub ended: Instant,
    generation: u64,
}

impl Finished {
    pub fn passed(&self) -> bool {
        self.report.probes.first().is_some_and(|p| matches!(p.status, Status::Pass | Status::Warn))
    }
}

/// How a scrape got its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Served {
    /// This scrape started the run.
    Ran,
    /// A run was already under way; this scrape waited for it.
    Coalesced,
    /// A run finished less than the minimum interval ago; its result was reused.
    Cached,
}

impl Served {
    pub fn as_str(self) -> &'static str {
        match self {
            Served::Ran => "ran",
            Served::Coalesced => "coalesced",
            Served::Cached => "cached",
        }
    }
}

#[derive(Default)]
struct SlotState {
    running: Option<watch::Receiver<Option<Arc<Finished>>>>,
    last: Option<Arc<Finished>>,
    /// The last results, oldest first, at most [`HISTORY`].
    history: std::collections::VecDeque<Past>,
    /// The current status, and when it began (the first run that had it).
    since: Option<(Status, SystemTime)>,
}

/// Results kept per probe or target for the status page's history strip.
pub const HISTORY: usize = 30;

/// One past result, as the status page's history shows it.
#[derive(Debug, Clone)]
pub struct Past {
    pub at: SystemTime,
    pub status: Status,
    pub duration_ms: u64,
    /// `stage: class` of a failure.
    pub failure: Option<String>,
}

/// What the status page shows of one probe or target.
pub struct SlotView {
    pub key: SlotKey,
    pub last: Option<Arc<Finished>>,
    pub running: bool,
    pub history: Vec<Past>,
    pub since: Option<(Status, SystemTime)>,
}

/// Targets (probe aimed elsewhere) kept at most: beyond this, the least recently scraped
/// idle ones are forgotten, so that scrapes of ever new targets cannot grow memory or the
/// status page without bound. The config's own probes are always kept.
pub const MAX_TARGET_SLOTS: usize = 10_000;

struct Slot {
    state: Arc<Mutex<SlotState>>,
    /// Scrape count when last used: the eviction order.
    used: u64,
}

/// Which probe, aimed where (`None`: where the config says).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotKey {
    pub probe: String,
    pub target: Option<String>,
}

/// What the exporter counts about itself.
#[derive(Default)]
pub struct Stats {
    pub in_flight: AtomicI64,
    pub scrapes: Mutex<BTreeMap<Served, u64>>,
    /// (probe, "success" | "failure") → runs.
    pub runs: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// (probe, stage, class) → failed runs.
    pub failures: Mutex<BTreeMap<(String, String, String), u64>>,
    /// (handler, status code) → requests.
    pub requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    pub reloads_failed: AtomicU64,
    /// (card, "pass" | "fail") → attempts on its links.
    pub card_attempts: Mutex<BTreeMap<(String, &'static str), u64>>,
}

pub struct Service {
    pub config_path: PathBuf,
    loaded: RwLock<Arc<Loaded>>,
    pub reload_status: Mutex<ReloadStatus>,
    slots: Mutex<Slots>,
    /// Bounds the probes running at once across all scrapes (the config's concurrency,
    /// within the open-file limit); the rest queue.
    permits: Arc<Semaphore>,
    pub min_interval: Duration,
    pub stats: Stats,
    pub started: SystemTime,
}

/// Why a scrape cannot be served.
#[derive(Debug)]
pub enum ScrapeError {
    /// No such probe (or module): 400, as the blackbox exporter answers an unknown module.
    UnknownProbe(String),
    /// The probe may not be aimed at that target: 403.
    TargetNotAllowed(String),
    /// The target cannot be used by that kind: 400.
    BadTarget(String),
    /// The run was lost (a bug): 500.
    Lost,
}

impl Service {
    pub fn new(config_path: PathBuf, config: Config, min_interval: Duration) -> Service {
        let wanted = config.defaults.concurrency;
        let concurrency = match crate::runner::limits::raise_open_files() {
            Some(open_files) => crate::runner::limits::concurrency_within(open_files, wanted),
            None => wanted.max(1),
        };
        let now = SystemTime::now();
        let trust = Arc::new(trust_of(&config));
        Service {
            config_path,
            loaded: RwLock::new(Arc::new(Loaded {
                config: {
                    config.stores.serving();
                    config
                },
                generation: 1,
                trust,
                ssh_logins: Arc::default(),
                tunnels: Arc::new(crate::connect::tunnel::TunnelPool::kept()),
                loaded_at: now,
            })),
            reload_status: Mutex::new(ReloadStatus { ok: true, last_success: now, last_error: None }),
            slots: Mutex::default(),
            permits: Arc::new(Semaphore::new(concurrency)),
            min_interval,
            stats: Stats::default(),
            started: now,
        }
    }

    pub fn loaded(&self) -> Arc<Loaded> {
        self.loaded.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the config file again. An invalid file leaves the running config in place;
    /// the errors are returned (and shown on /metrics and the status page).
    pub fn reload(&self) -> Result<usize, String> {
        match config::load(&self.config_path) {
            Ok(config) => {
                // A reload starts with an empty cache of store values.
                config.stores.serving();
                let n = config.probes.len();
                let trust = Arc::new(trust_of(&config));
                let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
                let generation = loaded.generation + 1;
                *loaded = Arc::new(Loaded {
                    config,
                    generation,
                    trust,
                    ssh_logins: loaded.ssh_logins.clone(),
                    tunnels: Arc::new(crate::connect::tunnel::TunnelPool::kept()),
                    loaded_at: SystemTime::now(),
                });
                drop(loaded);
                *lock(&self.reload_status) =
                    ReloadStatus { ok: true, last_success: SystemTime::now(), last_error: None };
                Ok(n)
            }
            Err(errors) => {
                let text: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
                let text = text.join("\n");
                let mut status = lock(&self.reload_status);
                status.ok = false;
                status.last_error = Some(text.clone());
                self.stats.reloads_failed.fetch_add(1, Ordering::Relaxed);
                Err(text)
            }
        }
    }

    /// The probe a scrape names, aimed at `target` when one is given (blackbox style:
    /// the probe acts as the module), and the key it is kept under (the target in its
    /// canonical form).
    pub fn resolve(&self, loaded: &Loaded, key: &SlotKey) -> Result<(ProbeConfig, SlotKey), ScrapeError> {
        let Some(probe) = loaded.config.probes.iter().find(|p| p.name == key.probe) else {
            return Err(ScrapeError::UnknownProbe(key.probe.clone()));
        };
        let Some(target) = &key.target else {
            return Ok((probe.clone(), key.clone()));
        };
        // Matched on structure and aimed at the canonical form that matched, never at the
        // raw text: see crate::model::targets.
        let parsed = Target::parse(target).map_err(ScrapeError::BadTarget)?;
        let canonical = parsed.render();
        if !probe.allowed_targets.iter().any(|pattern| pattern.matches(&parsed)) {
            return Err(ScrapeError::TargetNotAllowed(format!(
                "probe `{}` may not be aimed at `{canonical}`: add a matching pattern to its allowed_targets (e.g. allowed_targets = [\"{canonical}\"]; the path is part of the pattern: `https://host:*/*` admits any path and port on host); without one, anyone who can reach this service could send the probe's credentials to a server of their choice",
                probe.name
            )));
        }
        let retargeted = probe.probe.retarget(&canonical).map_err(ScrapeError::BadTarget)?;
        let key = SlotKey { probe: key.probe.clone(), target: Some(canonical) };
        Ok((ProbeConfig { probe: retargeted, ..probe.clone() }, key))
    }

    fn slot(&self, key: &SlotKey) -> Arc<Mutex<SlotState>> {
        lock(&self.slots).get_or_insert(key)
    }

    /// The result for this scrape: a fresh run, the run already under way, or the last
    /// one when it is younger than the minimum interval. `budget` bounds a run started
    /// here (the scrape's own timeout); the probe's timeout applies when it is shorter.
    pub async fn scrape(
        self: &Arc<Self>,
        key: &SlotKey,
        budget: Option<Duration>,
    ) -> Result<(Arc<Finished>, Served), ScrapeError> {
        let loaded = self.loaded();
        let (probe, key) = self.resolve(&loaded, key)?;
        let slot = self.slot(&key);
        let (mut receiver, served) = {
            let mut state = lock(&slot);
            if let Some(last) = &state.last
                && last.generation == loaded.generation
                && last.ended.elapsed() < self.min_interval
            {
                let last = last.clone();
                drop(state);
                self.count_scrape(Served::Cached);
                return Ok((last, Served::Cached));
            }
            // A sender that went away without an answer (a bug) must not block the slot.
            match state.running.as_ref().filter(|r| r.has_changed().is_ok()) {
                Some(receiver) => (receiver.clone(), Served::Coalesced),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    state.running = Some(receiver.clone());
                    let timeout = budget.map_or(probe.timeout, |b| b.min(probe.timeout));
                    tokio::spawn(self.clone().run(probe, timeout, loaded.clone(), slot.clone(), sender));
                    (receiver, Served::Ran)
                }
            }
        };
        self.count_scrape(served);
        // The run goes on in its own task: a scraper that gives up does not cancel it for
        // the others, and its result still lands in the slot.
        let finished = receiver.wait_for(Option::is_some).await.map_err(|_| ScrapeError::Lost)?.clone();
        finished.map(|f| (f, served)).ok_or(ScrapeError::Lost)
    }

    async fn run(
        self: Arc<Self>,
        probe: ProbeConfig,
        timeout: Duration,
        loaded: Arc<Loaded>,
        slot: Arc<Mutex<SlotState>>,
        sender: watch::Sender<Option<Arc<Finished>>>,
    ) {
        let name = probe.name.clone();
        let permit = self.permits.clone().acquire_owned().await.ok();
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let opts = loaded.run_options(timeout, loaded.trust.approvals.clone());
        let mut report =
            runner::run_with(vec![probe], &opts, CancellationToken::new(), loaded.shared(loaded.trust.clone())).await;
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
        report.scrub_secrets();
        let finished = Arc::new(Finished { report, ended: Instant::now(), generation: loaded.generation });
        self.count_run(&name, &finished);
        {
            let mut state = lock(&slot);
            state.running = None;
            state.last = Some(finished.clone());
            if let Some(probe) = finished.report.probes.first() {
                let now = SystemTime::now();
                if state.history.len() == HISTORY {
                    state.history.pop_front();
                }
                let failure = probe.error.as_ref().map(|e| format!("{}: {}", e.stage, e.class));
                state.history.push_back(Past {
                    at: now,
                    status: probe.status,
                    duration_ms: probe.duration_ms,
                    failure,
                });
                if state.since.is_none_or(|(status, _)| status != probe.status) {
                    state.since = Some((probe.status, now));
                }
            }
        }
        let _ = sender.send(Some(finished));
    }

    fn count_scrape(&self, served: Served) {
        *lock(&self.stats.scrapes).entry(served).or_default() += 1;
    }

    fn count_run(&self, name: &str, finished: &Finished) {
        let result = if finished.passed() { "success" } else { "failure" };
        *lock(&self.stats.runs).entry((name.to_string(), result)).or_default() += 1;
        if let Some(error) = finished.report.probes.first().and_then(|p| p.error.as_ref()) {
            let key = (name.to_string(), error.stage.to_string(), error.class.to_string());
            *lock(&self.stats.failures).entry(key).or_default() += 1;
        }
    }

    pub fn count_request(&self, handler: &'static str, code: u16) {
        *lock(&self.stats.requests).entry((handler, code)).or_default() += 1;
    }

    /// Probes and targets with a slot (a result or a run under way).
    pub fn slot_count(&self) -> usize {
        lock(&self.slots).len()
    }

    /// The last result of every probe and target scraped so far, in key order.
    pub fn last_results(&self) -> Vec<SlotView> {
        let slots: Vec<(SlotKey, Arc<Mutex<SlotState>>)> =
            lock(&self.slots).map.iter().map(|(k, v)| (k.clone(), v.state.clone())).collect();
        let mut out: Vec<_> = slots.into_iter().map(|(key, slot)| SlotView::of(key, &slot)).collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// What one probe or target has (not probed yet when it has no slot).
    pub fn slot_view(&self, key: &SlotKey) -> SlotView {
        let slot = lock(&self.slots).map.get(key).map(|s| s.state.clone());
        match slot {
            Some(slot) => SlotView::of(key.clone(), &slot),
            None => SlotView::empty(key.clone()),
        }
    }
}

impl SlotView {
    fn of(key: SlotKey, slot: &Mutex<SlotState>) -> SlotView {
        let state = lock(slot);
        SlotView {
            key,
            last: state.last.clone(),
            running: state.running.is_some(),
            history: state.history.iter().cloned().collect(),
            since: state.since,
        }
    }

    /// A probe or target not scraped yet.
    pub fn empty(key: SlotKey) -> SlotView {
        SlotView { key, last: None, running: false, history: Vec::new(), since: None }
    }
}

/// The slots of every probe and target scraped, bounded (see [`MAX_TARGET_SLOTS`]).
#[derive(Default)]
pub(crate) struct Slots {
    map: HashMap<SlotKey, Slot>,
    targets: usize,
    clock: u64,
}

impl Slots {
    fn get_or_insert(&mut self, key: &SlotKey) -> Arc<Mutex<SlotState>> {
        self.clock += 1;
        let now = self.clock;
        if let Some(slot) = self.map.get_mut(key) {
            slot.used = now;
            return slot.state.clone();
        }
        if key.target.is_some() {
            if self.targets >= MAX_TARGET_SLOTS {
                self.evict_idle_targets(MAX_TARGET_SLOTS / 10);
            }
            self.targets += 1;
        }
        let state = Arc::new(Mutex::new(SlotState::default()));
        self.map.insert(key.clone(), Slot { state: state.clone(), used: now });
        state
    }

    /// Forgets up to `count` of the least recently used target slots that no run is
    /// using; a tenth at a time, so eviction costs O(1) per insertion on average.
    fn evict_idle_targets(&mut self, count: usize) {
        let mut idle: Vec<(u64, SlotKey)> = self
            .map
            .iter()
            .filter(|(k, slot)| {
                k.target.is_some() && Arc::strong_count(&slot.state) == 1 && lock(&slot.state).running.is_none()
            })
            .map(|(k, slot)| (slot.used, k.clone()))
            .collect();
        let count = count.min(idle.len());
        if count == 0 {
            return;
        }
        idle.select_nth_unstable_by_key(count - 1, |(used, _)| *used);
        for (_, key) in idle.into_iter().take(count) {
            self.map.remove(&key);
            self.targets -= 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// The trust a config's probes share: its approvals (read again at each reload).
fn trust_of(config: &config::Config) -> TrustStore {
    let approvals = crate::model::approvals::Approvals::new(config.approvals.entries.clone());
    TrustStore::with_approvals(Arc::new(approvals))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(n: usize) -> SlotKey {
        SlotKey { probe: "p".into(), target: Some(format!("host-{n}:5432")) }
    }

    #[test]
    fn target_slots_are_bounded_and_the_oldest_idle_ones_go_first() {
        let mut slots = Slots::default();
        let config_probe = SlotKey { probe: "p".into(), target: None };
        slots.get_or_insert(&config_probe);
        let busy = slots.get_or_insert(&target(0));
        for n in 1..30_000 {
            slots.get_or_insert(&target(n));
            if n % 1000 == 0 {
                // Recently used: survives.
                slots.get_or_insert(&target(1));
            }
        }
        assert!(slots.len() <= MAX_TARGET_SLOTS + 1, "{}", slots.len());
        assert!(slots.map.contains_key(&config_probe), "the config's own probes stay");
        assert!(slots.map.contains_key(&target(0)), "a slot in use is never evicted");
        assert!(slots.map.contains_key(&target(1)), "a recently used slot stays");
        assert!(!slots.map.contains_key(&target(2)), "an old idle slot went");
        drop(busy);
    }
}
