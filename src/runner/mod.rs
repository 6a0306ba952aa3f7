//! Runs the selected probes concurrently: a concurrency bound, a timeout per probe covering
//! all its stages, `--fail-fast`, `--wait` retries, cancellation (Ctrl-C), and a report in
//! config order. One probe's failure or panic never affects another.

pub mod limits;
pub mod progress;
pub mod suite;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connect::context::{ProbeContext, Shared};
use crate::model::advice::Dialect;
use crate::model::error::{ErrorClass, Failure, Stage};
use crate::model::glob::{self, Wildcards};
use crate::model::report::{ErrorReport, ProbeReport, RunReport, Status};
use crate::runner::progress::Tracker;
use crate::runner::suite::ProbeConfig;

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
}

fn matches(probe: &ProbeConfig, pattern: &str) -> bool {
    let glob = |text: &str| glob::matches(pattern, text, Wildcards::Star);
    glob(&probe.name) || probe.tags.iter().any(|t| glob(t))
}

/// The probes `--only`/`--skip` select, in config order. `--skip` wins over `--only`.
pub fn select(probes: &[ProbeConfig], only: &[String], skip: &[String]) -> Vec<ProbeConfig> {
    probes
        .iter()
        .filter(|p| only.is_empty() || only.iter().any(|pat| matches(p, pat)))
        .filter(|p| !skip.iter().any(|pat| matches(p, pat)))
        .cloned()
        .collect()
}

/// Runs the probes and returns the report. Returns early (with unfinished probes marked
/// `cancelled`) when `cancel` fires.
pub async fn run(probes: Vec<ProbeConfig>, opts: &RunOptions, cancel: CancellationToken) -> RunReport {
    run_with(probes, opts, cancel, Arc::new(Shared::default())).await
}

/// [`run`] with what the probes share (trust roots, tunnels) given by the caller.
pub async fn run_with(
    probes: Vec<ProbeConfig>,
    opts: &RunOptions,
    cancel: CancellationToken,
    shared: Arc<Shared>,
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
    let mut tasks = JoinSet::new();
    let count = probes.len();
    if let Some(tracker) = &opts.tracker {
        tracker.set_total(count);
    }
    for (index, probe) in probes.into_iter().enumerate() {
        let shared = shared.clone();
        let semaphore = semaphore.clone();
        let stop = stop.clone();
        let opts = opts.clone();
        tasks.spawn(async move {
            let report = run_probe(index, &probe, &opts, shared, semaphore, &stop).await;
            if let Some(tracker) = &opts.tracker {
                tracker.finished(index, report.status == Status::Fail);
            }
            if opts.fail_fast && report.status == Status::Fail {
                stop.cancel();
            }
            (index, report)
        });
    }
    let mut reports: Vec<Option<ProbeReport>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        // The per-probe task only awaits code that catches panics itself; a JoinError here
        // would be a bug in this function, and the slot then stays empty (reported below).
        if let Ok((index, report)) = joined {
            reports[index] = Some(report);
        }
    }
    let probes: Vec<ProbeReport> = reports.into_iter().map(|r| r.unwrap_or_else(lost_report)).collect();
    RunReport {
        version: 1,
        started_at: humantime::format_rfc3339_millis(started_wall).to_string(),
        duration_ms: started.elapsed().as_millis() as u64,
        summary: RunReport::summarize(&probes),
        probes,
        started_unix: started_wall.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
    }
}

fn lost_report() -> ProbeReport {
    ProbeReport {
        name: "?".into(),
        kind: "?".into(),
        target: String::new(),
        tags: Vec::new(),
        status: Status::Fail,
        duration_ms: 0,
        duration_secs: 0.0,
        attempts: 0,
        stages: Vec::new(),
        error: Some(ErrorReport {
            stage: Stage::Check,
            class: ErrorClass::Internal,
            message: "authprobe lost this probe's result (a bug)".into(),
            hint: ErrorClass::Internal.default_hint().to_string(),
        }),
        warnings: Vec::new(),
        tls: None,
        host_key: None,
        credential: None,
        facts: Default::default(),
        details: Vec::new(),
        diagnostics: Vec::new(),
    }
}

/// How one attempt ended.
enum Outcome {
    Done(Result<(), Failure>),
    Cancelled,
}

async fn run_probe(
    index: usize,
    probe: &ProbeConfig,
    opts: &RunOptions,
    shared: Arc<Shared>,
    semaphore: Arc<Semaphore>,
    stop: &CancellationToken,
) -> ProbeReport {
    let timeout = opts.timeout.unwrap_or(probe.timeout);
    let deadline = opts.wait.map(|w| Instant::now() + w);
    // The probe's own time starts when it first runs, not while it queues for a slot.
    let mut started: Option<Instant> = None;
    let mut attempts = 0u32;
    loop {
        let ctx = ProbeContext::new(shared.clone(), probe.warn_expiry_days, timeout)
            .with_via(probe.via.clone())
            .allowing_unverified_password(probe.allow_unverified_password)
            .with_proxy(probe.proxy.clone());
        let outcome = tokio::select! {
            // A stop wins over a slot that frees up at the same moment: the slot is usually
            // freed by the very failure that stopped the run (--fail-fast).
            biased;
            _ = stop.cancelled() => Outcome::Cancelled,
            permit = semaphore.clone().acquire_owned() => {
                // The semaphore is never closed, so acquisition only fails if that changes.
                let _permit = permit.ok();
                started.get_or_insert_with(Instant::now);
                attempts += 1;
                if let Some(tracker) = &opts.tracker {
                    tracker.started(index, &probe.name, &ctx);
                }
                let outcome = attempt(probe, &ctx, timeout, stop).await;
                // Stop the others before this slot frees up, or a queued probe could take
                // it first (with --wait, only once the retries are over: below).
                if opts.fail_fast && deadline.is_none() && matches!(outcome, Outcome::Done(Err(_))) {
                    stop.cancel();
                }
                outcome
            }
        };
        let failed = matches!(outcome, Outcome::Done(Err(_)));
        if failed && let Some(deadline) = deadline {
            let pause = backoff(attempts);
            if Instant::now() + pause < deadline {
                if let Some(tracker) = &opts.tracker {
                    tracker.retrying(index, attempts);
                }
                tokio::select! {
                    _ = tokio::time::sleep(pause) => continue,
                    _ = stop.cancelled() => {}
                }
            }
        }
        let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
        return build_report(probe, &ctx, outcome, Attempts { elapsed, count: attempts }, opts.advice);
    }
}

/// Exponential backoff from 250 ms, capped at 5 s, with ±20% jitter so that many waiting
/// probes do not retry in lockstep.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(5)).min(5_000);
    let jitter = 0.8 + fastrand::f64() * 0.4;
    Duration::from_millis((base as f64 * jitter) as u64)
}

async fn attempt(probe: &ProbeConfig, ctx: &ProbeContext, timeout: Duration, stop: &CancellationToken) -> Outcome {
    let runnable = probe.probe.clone();
    let task_ctx = ctx.clone();
    // A task of its own, so that a panic in a probe is caught here and blamed on this probe.
    let mut handle = tokio::spawn(async move { runnable.run(&task_ctx).await });
    tokio::select! {
        joined = tokio::time::timeout(timeout, &mut handle) => match joined {
            Ok(Ok(result)) => Outcome::Done(result),
            Ok(Err(join_error)) => {
                let why = panic_message(join_error);
                let stage = ctx.interrupt();
                let failure = Failure::internal(format!("authprobe bug: the probe panicked: {why}"));
                Outcome::Done(Err(match stage { Some(s) => failure.at(s), None => failure }))
            }
            Err(_elapsed) => {
                handle.abort();
                let stage = ctx.interrupt().or_else(|| ctx.last_stage()).unwrap_or(Stage::Connect);
                Outcome::Done(Err(Failure::new(
                    ErrorClass::Timeout,
                    format!("no answer within {} (the probe's timeout) during the {stage} stage", humantime::format_duration(timeout)),
                )
                .with_hint(timeout_hint(stage))
                .at(stage)))
            }
        },
        _ = stop.cancelled() => {
            handle.abort();
            ctx.interrupt();
            Outcome::Cancelled
        }
    }
}

fn timeout_hint(stage: Stage) -> &'static str {
    match stage {
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
        _ => "the server accepted the connection but did not answer in time: check its health, or raise `timeout`",
    }
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
        tls: recorded.tls,
        host_key: recorded.host_key,
        credential: recorded.credential,
        facts: recorded.facts,
        details: recorded.details,
        diagnostics: recorded.diagnostics,
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
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(300));
        assert!(backoff(3) >= Duration::from_millis(800));
        assert!(backoff(30) <= Duration::from_millis(6_000));
    }
}
