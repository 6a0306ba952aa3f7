//! What `serve` answers: a probe's metrics (blackbox-exporter names first, then
//! authprobe's own), its debug log, the exporter's metrics and the HTML status page.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::scrape::{Finished, Served, Service, SlotKey, lock};
use crate::output::prometheus::{counter, gauge, label, summary};
use crate::output::{self, Format, Style};

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// `/probe`: the blackbox exporter's `probe_*` metrics (its names, labels and meanings, so
/// its dashboards and alerts keep working), then authprobe's own.
pub fn probe_metrics(finished: &Finished) -> String {
    let mut out = String::new();
    let probe = finished.report.probes.first();
    gauge(&mut out, "probe_success", "Whether the probe passed (1, warnings allowed) or failed (0).");
    let _ = writeln!(out, "probe_success {}", u8::from(finished.passed()));
    gauge(&mut out, "probe_duration_seconds", "How long the probe took, all stages together.");
    let _ = writeln!(out, "probe_duration_seconds {}", probe.map_or(0.0, |p| p.duration_secs));
    if let Some(probe) = probe {
        super::blackbox::render(&mut out, probe);
    }
    gauge(
        &mut out,
        "authprobe_probe_result_age_seconds",
        "How long ago the run behind this answer ended (above 0 when a recent result was reused, see --min-interval).",
    );
    let _ = writeln!(out, "authprobe_probe_result_age_seconds {:.3}", finished.ended.elapsed().as_secs_f64());
    out.push_str(&crate::output::prometheus::render(&finished.report));
    out
}

/// `/probe?debug=true`: what happened, stage by stage, then the metrics a scrape gets.
pub fn probe_debug(key: &SlotKey, finished: &Finished, served: Served, service: &Service) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Probe `{}`{}",
        key.probe,
        key.target.as_ref().map(|t| format!(" aimed at {t}")).unwrap_or_default()
    );
    let _ = match served {
        Served::Ran => writeln!(out, "Run for this request."),
        Served::Coalesced => writeln!(out, "Shared a run that another scrape had started."),
        Served::Cached => writeln!(
            out,
            "Reused the run that ended {:.1}s ago (minimum interval {}).",
            finished.ended.elapsed().as_secs_f64(),
            humantime::format_duration(service.min_interval)
        ),
    };
    out.push('\n');
    out.push_str(&output::render(&finished.report, Format::Table, Style { verbose: 2, color: false, width: None }));
    out.push_str("\nMetrics a scrape gets:\n\n");
    out.push_str(&probe_metrics(finished));
    out
}

/// `/metrics`: the exporter itself.
pub fn exporter_metrics(service: &Service) -> String {
    let mut out = String::new();
    let stats = &service.stats;
    gauge(&mut out, "authprobe_build_info", "The authprobe version serving.");
    let _ = writeln!(out, "authprobe_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));

    if let Some(cards) = service.loaded().config.cards.clone() {
        counter(
            &mut out,
            "authprobe_card_attempts_total",
            "Attempts on check cards' links served by this process, by card and result (pass, fail).",
        );
        for ((card, result), n) in super::scrape::lock(&stats.card_attempts).iter() {
            let _ = writeln!(out, "authprobe_card_attempts_total{{card=\"{}\",result=\"{result}\"}} {n}", label(card));
        }
        gauge(&mut out, "authprobe_cards_open", "Check-card links that can still be used (in the shared outbox).");
        let _ = writeln!(out, "authprobe_cards_open {}", super::cards::open_links(&cards));
    }
    let stores = service.loaded().config.stores.stats();
    counter(
        &mut out,
        "authprobe_secret_fetch_total",
        "Secret store reads since the config was loaded, by store and result: ok and failed went to the store, cached reused a static value within the store's cache.",
    );
    for (store, stats) in &stores {
        for (result, n) in [("ok", stats.ok), ("failed", stats.failed), ("cached", stats.cached)] {
            let _ = writeln!(out, "authprobe_secret_fetch_total{{store=\"{}\",result=\"{result}\"}} {n}", label(store));
        }
    }
    summary(
        &mut out,
        "authprobe_secret_fetch_duration_seconds",
        "Time spent reading from each secret store (reads that went to it).",
    );
    for (store, stats) in &stores {
        let _ = writeln!(
            out,
            "authprobe_secret_fetch_duration_seconds_sum{{store=\"{}\"}} {}",
            label(store),
            stats.seconds
        );
        let _ = writeln!(
            out,
            "authprobe_secret_fetch_duration_seconds_count{{store=\"{}\"}} {}",
            label(store),
            stats.ok + stats.failed
        );
    }

    counter(&mut out, "authprobe_serve_probe_runs_total", "Probe runs, by probe and result.");
    for ((probe, result), n) in lock(&stats.runs).iter() {
        let _ = writeln!(out, "authprobe_serve_probe_runs_total{{probe=\"{}\",result=\"{result}\"}} {n}", label(probe));
    }
    counter(&mut out, "authprobe_serve_probe_failures_total", "Failed probe runs, by probe, stage and error class.");
    for ((probe, stage, class), n) in lock(&stats.failures).iter() {
        let _ = writeln!(
            out,
            "authprobe_serve_probe_failures_total{{probe=\"{}\",stage=\"{stage}\",class=\"{class}\"}} {n}",
            label(probe)
        );
    }
    counter(
        &mut out,
        "authprobe_serve_scrapes_total",
        "/probe requests answered, by how: ran (a new run), coalesced (joined a run under way), cached (reused a run younger than --min-interval).",
    );
    let scrapes = lock(&stats.scrapes);
    for served in [Served::Ran, Served::Coalesced, Served::Cached] {
        let _ = writeln!(
            out,
            "authprobe_serve_scrapes_total{{served=\"{}\"}} {}",
            served.as_str(),
            scrapes.get(&served).copied().unwrap_or(0)
        );
    }
    drop(scrapes);
    gauge(
        &mut out,
        "authprobe_serve_slots",
        "Probes and targets whose last result is kept (targets beyond the bound are forgotten, least recently scraped first).",
    );
    let _ = writeln!(out, "authprobe_serve_slots {}", service.slot_count());
    gauge(&mut out, "authprobe_serve_probes_in_flight", "Probes running now.");
    let _ = writeln!(out, "authprobe_serve_probes_in_flight {}", stats.in_flight.load(Ordering::Relaxed));
    counter(&mut out, "authprobe_serve_http_requests_total", "HTTP requests, by handler and status code.");
    for ((handler, code), n) in lock(&stats.requests).iter() {
        let _ = writeln!(out, "authprobe_serve_http_requests_total{{handler=\"{handler}\",code=\"{code}\"}} {n}");
    }

    let loaded = service.loaded();
    gauge(&mut out, "authprobe_serve_config_probes", "Probes in the config being served.");
    let _ = writeln!(out, "authprobe_serve_config_probes {}", loaded.config.probes.len());
    let status = lock(&service.reload_status);
    gauge(
        &mut out,
        "authprobe_serve_config_last_reload_successful",
        "Whether the last config reload succeeded (1) or the previous config is still served (0).",
    );
    let _ = writeln!(out, "authprobe_serve_config_last_reload_successful {}", u8::from(status.ok));
    gauge(
        &mut out,
        "authprobe_serve_config_last_reload_success_timestamp_seconds",
        "When the config being served was loaded.",
    );
    let _ =
        writeln!(out, "authprobe_serve_config_last_reload_success_timestamp_seconds {:.3}", unix(status.last_success));
    drop(status);
    counter(&mut out, "authprobe_serve_config_reload_failures_total", "Config reloads that failed.");
    let _ =
        writeln!(out, "authprobe_serve_config_reload_failures_total {}", stats.reloads_failed.load(Ordering::Relaxed));

    process_metrics(&mut out, service);
    out
}

/// The standard process_* metrics, from /proc (Linux); absent elsewhere.
fn process_metrics(out: &mut String, service: &Service) {
    gauge(out, "process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.");
    let _ = writeln!(out, "process_start_time_seconds {:.3}", unix(service.started));
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // The fields after the command name, which is in parentheses and may contain spaces.
    let Some(fields) = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect::<Vec<_>>()) else {
        return;
    };
    let field = |n: usize| fields.get(n).and_then(|v| v.parse::<f64>().ok());
    // SAFETY: sysconf only reads a configuration value.
    let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    // Fields 14, 15 (utime, stime) and 24 (rss) of proc(5), counted from the state field (3).
    if let (Some(user), Some(system)) = (field(11), field(12))
        && ticks > 0
    {
        counter(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.");
        let _ = writeln!(out, "process_cpu_seconds_total {}", (user + system) / ticks as f64);
    }
    if let Some(rss) = field(21)
        && page > 0
    {
        gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.");
        let _ = writeln!(out, "process_resident_memory_bytes {}", rss * page as f64);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge(out, "process_open_fds", "Number of open file descriptors.");
        let _ = writeln!(out, "process_open_fds {}", fds.count());
    }
}
