//! Runs the selected probes concurrently: a concurrency bound, a timeout per probe covering
//! all its stages, `--fail-fast`, `--wait` retries, cancellation (Ctrl-C), and a report in
//! config order. One probe's failure or panic never affects another.

pub mod cards;
mod defaults;
mod in_order;
pub mod limits;
mod probe_table;
pub mod progress;
pub mod select;
pub mod suite;
mod wait;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connect::context::{ProbeContext, Shared};
use crate::model::advice::Dialect;
use crate::model::error::{ErrorClass, Failure, Stage};
use crate::model::report::{ErrorReport, ProbeReport, RunReport, Status};
use crate::runner::progress::Tracker;
use crate::runner::suite::ProbeConfig;
use in_order::InOrder;
pub use select::{select, suggest_patterns};
use wait::{Limit, WaitBudget, backoff};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub concurrency: usize,
    /// Overrides every probe's own timeout.
    pub timeout: Option<Duration>,
    pub fail_fast: bool,
    /// Retry failing probes until they pass or this much time has passed.
    pub wait: Option<Duration>,
    /// Where to report what each probe is doing (the live progress line).
    pub tracker: Option<Arc<Tracker>>,
    /// How hints and warnings name what to change: config lines, or `check`'s flags.
    pub advice: Dialect,
    /// What is approved (`approvals.toml`), and whether first-seen certificates and host
    /// keys are approved as the run goes (`--trust-new`).
    pub approvals: Arc<crate::model::approvals::Approvals>,
    /// The config file the probes come from (none for `check`): hints name the exact
    /// `authprobe approve` command with it.
    pub config_path: Option<std::path::PathBuf>,
    /// What each probe's report keeps beyond what every format shows.
    pub keep: Keep,
}

/// What a probe's report keeps beyond what every format shows: the `-v` and `-vv` lines
/// (the table shows them when asked) and the wire facts (`serve`'s blackbox metrics). A
/// run that shows none of them keeps none: 100,000 reports are then small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keep {
    pub details: bool,
    pub diagnostics: bool,
    pub facts: bool,
}

impl Keep {
    pub const ALL: Keep = Keep { details: true, diagnostics: true, facts: true };
}

/// Where a hint says to approve with `authprobe approve`, the exact command for this probe:
/// with its config and name, or (for `check`) its target.
fn name_the_approve_command(report: &mut ProbeReport, config: Option<&std::path::Path>) {
    const SAID: &str = "`authprobe approve`";
    let Some(error) = report.error.as_mut() else { return };
    let presented = match error.class {
        ErrorClass::TlsUntrusted => report.tls.is_some(),
        ErrorClass::HostKey => report.host_key.is_some() || error.hint.contains(SAID),
        _ => false,
    };
    if !presented {
        return;
    }
    let command = match config {
        Some(path) => format!("authprobe approve -c {} {}", path.display(), report.name),
        None => format!("authprobe approve '{}'", report.target),
    };
    error.hint = error.hint.replace(SAID, &format!("`{command}`"));
    report.approve = Some(command);
}

/// Runs the probes and returns the report. Returns early (with unfinished probes marked
/// `cancelled`) when `cancel` fires.
pub async fn run(probes: Vec<ProbeConfig>, opts: &RunOptions, cancel: CancellationToken) -> RunReport {
    run_streaming(probes, opts, cancel, None).await
}

/// Where each probe's report goes as soon as it and every probe before it (in config order)
/// are done, instead of into the returned report: a report written as it comes (JSON on
/// standard output) is not held whole.
pub type ReportSink<'s> = &'s mut (dyn FnMut(ProbeReport) + Send);

/// [`run`], each probe's report handed to `sink` in config order when one is given: the
/// returned report then has the summary and no probes.
pub async fn run_streaming(
    probes: Vec<ProbeConfig>,
    opts: &RunOptions,
    cancel: CancellationToken,
    sink: Option<ReportSink<'_>>,
) -> RunReport {
    let trust = crate::connect::tls::TrustStore::with_approvals(opts.approvals.clone());
    let shared = Shared { trust: Arc::new(trust), ..Shared::default() };
    run_into(probes, opts, cancel, Arc::new(shared), sink).await
}

/// [`run`] with what the probes share (trust roots, tunnels) given by the caller.
pub async fn run_with(
    probes: Vec<ProbeConfig>,
    opts: &RunOptions,
    cancel: CancellationToken,
    shared: Arc<Shared>,
) -> RunReport {
    run_into(probes, opts, cancel, shared, None).await
}

async fn run_into(
    probes: Vec<ProbeConfig>,
    opts: &RunOptions,
    cancel: CancellationToken,
    shared: Arc<Shared>,
    sink: Option<ReportSink<'_>>,
) -> RunReport {
    let started = Instant::now();
    let started_wall = SystemTime::now();
    // Never more at once than the open-file limit allows: the rest queue.
    let concurrency = match crate::runner::limits::raise_open_files() {
        Some(open_files) => crate::runner::limits::concurrency_within(open_files, opts.concurrency),
        None => opts.concurrency.max(1),
    };
    let semaphore = Arc::new(Semaphore::new(concurrency));
    // Fail-fast stops the rest of the run without being an interruption of the process.
    let stop = cancel.child_token();
    // The deploy gate's budget starts with the run, for every probe alike.
    let budget = opts.wait.map(WaitBudget::starting_now);
    let mut tasks = JoinSet::new();
    let count = probes.len();
    if let Some(tracker) = &opts.tracker {
        tracker.set_total(count);
    }
    let mut reports = InOrder::new(count, sink);
    let mut keep = |joined: Option<Result<(usize, ProbeReport), tokio::task::JoinError>>| {
        // The per-probe task only awaits code that catches panics itself; a JoinError here
        // would be a bug in this function, and the slot then stays empty (reported below).
        if let Some(Ok((index, report))) = joined {
            reports.put(index, report);
        }
    };
    // A probe's task is made when a slot is free for its first attempt, not all at once: a
    // run of 100,000 probes holds the state of those running, not of every one queued.
    // Once the run stops or the budget is spent, the rest are made at once: they end
    // without a slot, each saying why.
    let mut queued = probes.into_iter().enumerate().peekable();
    let mut draining = false;
    while queued.peek().is_some() {
        let first_slot = if draining {
            None
        } else {
            tokio::select! {
                biased;
                _ = stop.cancelled() => None,
                _ = sleep_until_opt(budget.as_ref().map(|b| b.deadline)) => None,
                permit = semaphore.clone().acquire_owned() => permit.ok(),
                // Reports are taken as they come, not only at the end.
                joined = tasks.join_next(), if !tasks.is_empty() => {
                    keep(joined);
                    continue;
                }
            }
        };
        draining |= first_slot.is_none();
        let Some((index, probe)) = queued.next() else { break };
        let (shared, semaphore, stop, opts) = (shared.clone(), semaphore.clone(), stop.clone(), opts.clone());
        let budget = budget.clone();
        tasks.spawn(async move {
            let slots = Slots { semaphore, first: first_slot, budget };
            let report = run_probe(index, &probe, &opts, shared, slots, &stop).await;
            if let Some(tracker) = &opts.tracker {
                tracker.finished(index, report.status == Status::Fail);
            }
            if opts.fail_fast && report.status == Status::Fail {
                stop.cancel();
            }
            (index, report)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        keep(Some(joined));
    }
    let (probes, summary) = reports.finish(count);
    RunReport {
        version: 1,
        started_at: humantime::format_rfc3339_millis(started_wall).to_string(),
        duration_ms: started.elapsed().as_millis() as u64,
        summary,
        probes,
        started_unix: started_wall.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
    }
}

/// How one attempt ended.
enum Outcome {
    Done(Result<(), Failure>),
    Cancelled,
}

/// The concurrency slots a probe's attempts take: the first one, when the run had it free
/// for the probe's first attempt, and the run's `--wait` budget.
struct Slots {
    semaphore: Arc<Semaphore>,
    first: Option<tokio::sync::OwnedSemaphorePermit>,
    budget: Option<WaitBudget>,
}

async fn run_probe(
    index: usize,
    probe: &ProbeConfig,
    opts: &RunOptions,
    shared: Arc<Shared>,
    slots: Slots,
    stop: &CancellationToken,
) -> ProbeReport {
    let timeout = opts.timeout.unwrap_or(probe.timeout);
    // The deploy gate's budget is a promise: every attempt, and the wait for a slot, ends by
    // the deadline (see `WaitBudget`).
    let Slots { semaphore, first: mut first_slot, budget } = slots;
    // The probe's own time starts when it first runs, not while it queues for a slot.
    let mut started: Option<Instant> = None;
    let mut attempts = 0u32;
    // The last attempt that ended in a failure: an interrupt that cuts the next attempt
    // (Ctrl-C during a deploy gate's retries) reports why the probe was failing, not only
    // that it was cut.
    let mut last_failed: Option<(ProbeContext, Outcome)> = None;
    loop {
        let ctx = ProbeContext::new(shared.clone(), probe.warn_expiry_days, timeout)
            .with_via(probe.via.clone())
            .allowing_unverified_password(probe.allow_unverified_password)
            .with_hygiene(probe.hygiene.clone())
            .with_proxy(probe.proxy.clone());
        let slot_deadline = budget.as_ref().map(|b| b.deadline);
        let outcome = tokio::select! {
            // A stop wins over a slot that frees up at the same moment: the slot is usually
            // freed by the very failure that stopped the run (--fail-fast).
            biased;
            _ = stop.cancelled() => Outcome::Cancelled,
            _ = sleep_until_opt(slot_deadline) => {
                let stage = probe.stages().first().copied().unwrap_or(Stage::Connect);
                Outcome::Done(Err(Failure::new(
                    ErrorClass::Timeout,
                    format!("the --wait budget ran out before this probe got one of the {concurrency} concurrency slots", concurrency = opts.concurrency),
                )
                .with_hint("raise --wait or --concurrency, or split the run")
                .at(stage)))
            }
            permit = async {
                match first_slot.take() {
                    Some(permit) => Ok(permit),
                    None => semaphore.clone().acquire_owned().await,
                }
            } => {
                // The semaphore is never closed, so acquisition only fails if that changes.
                let _permit = permit.ok();
                started.get_or_insert_with(Instant::now);
                attempts += 1;
                if let Some(tracker) = &opts.tracker {
                    tracker.started(index, &probe.name, &ctx);
                }
                let limit = match budget.as_ref().map(|b| (b.left(), b.total)) {
                    Some((left, total)) if left < timeout => Limit::Wait(left, total),
                    _ => Limit::Probe(timeout),
                };
                let outcome = attempt(probe, &ctx, limit, stop).await;
                // Stop the others before this slot frees up, or a queued probe could take
                // it first (with --wait, only once the retries are over: below).
                if opts.fail_fast && budget.is_none() && matches!(outcome, Outcome::Done(Err(_))) {
                    stop.cancel();
                }
                outcome
            }
        };
        let mut not_retried = None;
        if let (Outcome::Done(Err(failure)), Some(budget)) = (&outcome, &budget) {
            match failure.retryable() {
                Err(why) => not_retried = Some(format!("not retried: {why}")),
                Ok(()) => {
                    if let Some(pause) = budget.pause_before_retry(backoff(attempts), timeout) {
                        if let Some(tracker) = &opts.tracker {
                            tracker.retrying(index, attempts);
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {
                                last_failed = Some((ctx, outcome));
                                continue;
                            }
                            _ = stop.cancelled() => {}
                        }
                    }
                }
            }
        }
        let (ctx, outcome) = match (outcome, last_failed) {
            (Outcome::Cancelled, Some(failed)) => {
                not_retried = Some(format!(
                    "interrupted during attempt {attempts}; the error is from attempt {}",
                    attempts.saturating_sub(1)
                ));
                failed
            }
            (outcome, _) => (ctx, outcome),
        };
        let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
        let mut report =
            build_report(probe, &ctx, outcome, Attempts { elapsed, count: attempts }, opts.advice, opts.keep);
        report.not_retried = not_retried;
        name_the_approve_command(&mut report, opts.config_path.as_deref());
        return report;
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn attempt(probe: &ProbeConfig, ctx: &ProbeContext, limit: Limit, stop: &CancellationToken) -> Outcome {
    let runnable = probe.probe.clone();
    let task_ctx = ctx.clone();
    // A task of its own, so that a panic in a probe is caught here and blamed on this probe.
    let mut handle = tokio::spawn(async move { runnable.run(&task_ctx).await });
    tokio::select! {
        joined = tokio::time::timeout(limit.duration(), &mut handle) => match joined {
            Ok(Ok(result)) => Outcome::Done(result),
            Ok(Err(join_error)) => {
                let why = panic_message(join_error);
                let stage = ctx.interrupt();
                let failure = Failure::internal(format!("authprobe bug: the probe panicked: {why}"));
                Outcome::Done(Err(match stage { Some(s) => failure.at(s), None => failure }))
            }
            Err(_elapsed) => {
                abort_and_reap(&mut handle).await;
                let stage = ctx.interrupt().or_else(|| ctx.last_stage()).unwrap_or(Stage::Connect);
                let failure = match limit {
                    Limit::Probe(timeout) => Failure::new(
                        ErrorClass::Timeout,
                        format!("no answer within {} (the probe's timeout) during the {stage} stage", humantime::format_duration(timeout)),
                    )
                    .with_hint(timeout_hint(stage)),
                    Limit::Wait(_, total) => Failure::new(
                        ErrorClass::Timeout,
                        format!(
                            "the --wait budget of {} ran out during the {stage} stage; this attempt was cut there",
                            humantime::format_duration(total)
                        ),
                    )
                    .with_hint(match stage {
                        Stage::Dns | Stage::Connect | Stage::TunnelConnect | Stage::Tls | Stage::Proxy => timeout_hint(stage),
                        _ => "the server accepted the connection but did not answer before the deadline: check its health, or raise --wait".into(),
                    }),
                };
                Outcome::Done(Err(failure.at(stage)))
            }
        },
        _ = stop.cancelled() => {
            abort_and_reap(&mut handle).await;
            ctx.interrupt();
            Outcome::Cancelled
        }
    }
}

/// Aborts a probe's task and waits (briefly) until it is gone: its future is dropped then,
/// and what its drop guards start (a secret store's lease given back) has started before
/// the run goes on to end. `abort` alone only asks; on a loaded machine the drop came after
/// the run had stopped waiting for leases, and a database role outlived the run.
async fn abort_and_reap<T>(handle: &mut tokio::task::JoinHandle<T>) {
    handle.abort();
    let _ = tokio::time::timeout(Duration::from_secs(1), handle).await;
}

fn timeout_hint(stage: Stage) -> crate::model::advice::Advice {
    let text = match stage {
        Stage::Dns => "the resolver did not answer: check /etc/resolv.conf and the DNS servers it names",
        Stage::Connect | Stage::TunnelConnect => {
            "nothing answered: a firewall or security group probably drops the packets (check allow-lists for this machine's address)"
        }
        Stage::Tls => {
            "the server accepted the connection but did not complete TLS: is this port TLS, and is the server overloaded?"
        }
        Stage::Proxy => {
            "the proxy did not answer in time: check the proxy's address, and that it runs and is not overloaded"
        }
        _ => {
            return crate::advice![
                "the server accepted the connection but did not answer in time: check its health, or ",
                crate::model::advice::Fix::RaiseTimeout
            ];
        }
    };
    text.into()
}

fn panic_message(err: tokio::task::JoinError) -> String {
    if !err.is_panic() {
        return "the probe task was cancelled".into();
    }
    let payload = err.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// How long a probe's attempts took, and how many there were.
struct Attempts {
    elapsed: Duration,
    count: u32,
}

fn build_report(
    probe: &ProbeConfig,
    ctx: &ProbeContext,
    outcome: Outcome,
    Attempts { elapsed, count: attempts }: Attempts,
    dialect: Dialect,
    keep: Keep,
) -> ProbeReport {
    let planned = probe.stages();
    let recorded = ctx.finish(&planned);
    let (status, error) = match &outcome {
        Outcome::Cancelled => (Status::Cancelled, None),
        Outcome::Done(Err(failure)) => {
            let fallback = ctx.last_stage().or_else(|| planned.first().copied()).unwrap_or(Stage::Check);
            (Status::Fail, Some(ErrorReport::from_failure(failure, fallback, dialect)))
        }
        Outcome::Done(Ok(())) if recorded.warnings.is_empty() => (Status::Pass, None),
        Outcome::Done(Ok(())) => (Status::Warn, None),
    };
    let mut report = ProbeReport {
        name: probe.name.clone(),
        kind: probe.kind.to_string(),
        target: probe.probe.target(),
        tags: probe.tags.clone(),
        status,
        duration_ms: elapsed.as_millis() as u64,
        duration_secs: elapsed.as_secs_f64(),
        attempts,
        stages: recorded.stages,
        error,
        warnings: recorded.warnings.iter().map(|w| w.render(dialect)).collect(),
        tls: recorded.tls.map(Box::new),
        host_key: recorded.host_key.map(Box::new),
        credential: recorded.credentials.iter().find(|c| c.not_after.is_some()).cloned().map(Box::new),
        credentials: recorded.credentials,
        findings: recorded.findings,
        not_retried: None,
        approve: None,
        facts: keep.facts.then(|| Box::new(recorded.facts)),
        details: if keep.details { recorded.details } else { Vec::new() },
        diagnostics: if keep.diagnostics { recorded.diagnostics } else { Vec::new() },
    };
    // Scrubbed of this probe's run-time secrets, then capped: server texts are hostile.
    report.scrub_free_text(&recorded.scrubber);
    report.bound_texts();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Option<&'static str>);

    impl crate::probes::Probe for Fake {
        fn target(&self) -> String {
            "fake".into()
        }
        fn retarget(&self, _target: &str) -> Result<Arc<dyn crate::probes::Probe>, String> {
            Err("fake probes have no target".into())
        }

        fn stages(&self) -> Vec<Stage> {
            vec![Stage::Check]
        }
        fn run<'a>(&'a self, ctx: &'a crate::connect::context::ProbeContext) -> crate::probes::ProbeFuture<'a> {
            Box::pin(async move {
                ctx.stage(Stage::Check, async {
                    if let Some(why) = self.0 {
                        panic!("{why}");
                    }
                    Ok(())
                })
                .await
            })
        }
    }

    fn fake(name: &str, panic: Option<&'static str>) -> ProbeConfig {
        ProbeConfig {
            name: name.into(),
            kind: "fake",
            tags: vec![],
            timeout: Duration::from_secs(5),
            warn_expiry_days: 14,
            probe: Arc::new(Fake(panic)),
            via: None,
            allowed_targets: vec![],
            allow_unverified_password: false,
            hygiene: Arc::default(),
            proxy: Arc::default(),
        }
    }

    #[tokio::test]
    async fn a_panicking_probe_is_reported_as_internal_and_the_others_still_run() {
        let opts = RunOptions {
            concurrency: 4,
            timeout: None,
            fail_fast: false,
            wait: None,
            tracker: None,
            advice: Dialect::Config,
            approvals: Arc::default(),
            config_path: None,
            keep: Keep::ALL,
        };
        let probes = vec![fake("before", None), fake("boom", Some("probe exploded")), fake("after", None)];
        let report = run(probes, &opts, CancellationToken::new()).await;
        let statuses: Vec<Status> = report.probes.iter().map(|p| p.status).collect();
        assert_eq!(statuses, [Status::Pass, Status::Fail, Status::Pass]);
        let err = report.probes[1].error.as_ref().unwrap();
        assert_eq!(err.class, ErrorClass::Internal);
        assert_eq!(err.stage, Stage::Check);
        assert!(err.message.contains("probe exploded"), "{}", err.message);
    }

    #[test]
    fn only_failures_that_waiting_can_cure_are_retried() {
        assert!(Failure::new(ErrorClass::ConnectRefused, "x").retryable().is_ok());
        assert!(Failure::new(ErrorClass::UnexpectedResponse, "HTTP 503").transient().retryable().is_ok());
        let refused = Failure::new(ErrorClass::AuthRejected, "x").retryable().unwrap_err();
        assert!(refused.contains("lock the account"), "{refused}");
        assert!(Failure::new(ErrorClass::TlsUntrusted, "x").retryable().is_err());
        assert!(Failure::new(ErrorClass::HostKey, "x").retryable().is_err());
        assert!(Failure::new(ErrorClass::Config, "x").retryable().is_err());
    }

    #[test]
    fn an_only_pattern_that_selects_nothing_gets_a_glob_or_the_closest_names() {
        let probes = vec![fake("warehouse-pg", None), fake("warehouse-s3", None), fake("orders-api", None)];
        let glob = suggest_patterns(&probes, &["warehouse".into()]);
        assert_eq!(glob, ["--only 'warehouse*' (matches warehouse-pg, warehouse-s3)"]);
        let close = suggest_patterns(&probes, &["orders-apj".into()]);
        assert_eq!(close, ["instead of `orders-apj`: orders-api"]);
    }
}
