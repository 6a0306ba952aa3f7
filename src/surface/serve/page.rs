//! serve's status pages, server-rendered HTML with inline SVG and no script: `/` (the state
//! at a glance, one card per probe, failing first) and `/status/NAME` (one probe's last
//! report in full and its history). Every value is escaped; reports are already scrubbed.
//! Linear in the probes and targets shown.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use super::scrape::{HISTORY, Past, Service, SlotKey, SlotView, lock};
use crate::model::report::{ProbeReport, StageStatus, Status};

/// Targets (probes aimed elsewhere) listed per page of the status page.
pub const TARGETS_PER_PAGE: usize = 100;

/// XML escaping suits HTML text and attribute values too.
fn esc(text: &str) -> String {
    crate::output::junit::escape(text)
}

fn query_escape(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn ago(t: SystemTime) -> String {
    let elapsed = t.elapsed().unwrap_or_default();
    crate::model::signed_link::approx(Duration::from_secs(elapsed.as_secs()))
}

const STYLE: &str = "*{box-sizing:border-box}\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;padding:1rem;color:#1b1f24;background:#f4f5f7}\
header{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:baseline;margin-bottom:1rem}\
h1{font-size:1.3rem;margin:0}h2{font-size:1.05rem;margin:0 0 .3rem;display:flex;flex-wrap:wrap;gap:.4rem;align-items:baseline}\
a{color:#0b57d0}p{margin:.25rem 0}code,p,td,pre{overflow-wrap:anywhere;word-break:break-word}\
pre{white-space:pre-wrap;background:#fff;border:1px solid #d0d4da;padding:.6rem;border-radius:.3rem}\
.summary{font-weight:600;padding:.15rem .6rem;border-radius:.3rem;color:#fff;background:var(--c)}\
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,24rem),1fr));gap:.8rem}\
article{background:#fff;border:1px solid #d0d4da;border-left:.45rem solid var(--c);border-radius:.4rem;padding:.7rem .8rem;min-width:0}\
.fail{--c:#c62828}.warn{--c:#a55d00}.pass{--c:#2e7d32}.idle{--c:#6b7280}\
.badge{font-size:.8rem;font-weight:700;letter-spacing:.04em;color:#fff;background:var(--c);padding:.05rem .45rem;border-radius:.25rem}\
.muted{color:#5b616b;font-size:.88rem}.why{font-weight:600}.soon{color:#a55d00;font-weight:600}.expired{color:#c62828;font-weight:600}\
svg{display:block;width:100%;height:auto;margin:.3rem 0}nav a{margin-right:.8rem}\
table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid #d0d4da;padding:.25rem .45rem;text-align:left;vertical-align:top}";

fn css_class(status: Status) -> &'static str {
    match status {
        Status::Fail | Status::Cancelled => "fail",
        Status::Warn => "warn",
        Status::Pass => "pass",
    }
}

fn label(status: Status) -> &'static str {
    match status {
        Status::Fail => "FAIL",
        Status::Cancelled => "CANCELLED",
        Status::Warn => "WARN",
        Status::Pass => "PASS",
    }
}

fn head(out: &mut String, title: &str, refresh: Option<u64>) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title>",
        esc(title)
    );
    if let Some(seconds) = refresh {
        let _ = write!(out, "<meta http-equiv=\"refresh\" content=\"{seconds}\">");
    }
    let _ = writeln!(out, "<style>{STYLE}</style></head><body>");
}

/// The history strip: one bar per past result, oldest left, with its time in a tooltip.
fn history_svg(history: &[Past]) -> String {
    let mut svg = format!(
        "<svg viewBox=\"0 0 {} 14\" role=\"img\" aria-label=\"last {} results\" preserveAspectRatio=\"none\">",
        HISTORY * 8,
        history.len()
    );
    let offset = HISTORY - history.len().min(HISTORY);
    for i in 0..offset {
        let _ = write!(svg, "<rect x=\"{}\" y=\"1\" width=\"6\" height=\"12\" fill=\"#e5e7eb\"/>", i * 8);
    }
    for (i, past) in history.iter().enumerate() {
        let colour = match css_class(past.status) {
            "fail" => "#c62828",
            "warn" => "#d08a00",
            _ => "#2e7d32",
        };
        let why = past.failure.as_deref().map(|f| format!(", {f}")).unwrap_or_default();
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"1\" width=\"6\" height=\"12\" fill=\"{colour}\"><title>{} {} ({} ms{})</title></rect>",
            (offset + i) * 8,
            rfc3339(past.at),
            label(past.status),
            past.duration_ms,
            esc(&why)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The last run's stages as one bar, each stage as wide as it took, and a legend.
fn stages_svg(probe: &ProbeReport) -> String {
    let ran: Vec<_> = probe.stages.iter().filter(|s| s.status != StageStatus::Skipped).collect();
    let total: f64 = ran.iter().map(|s| s.duration_secs).sum::<f64>().max(1e-9);
    let mut svg = String::from(
        "<svg viewBox=\"0 0 1000 12\" role=\"img\" aria-label=\"stage timings\" preserveAspectRatio=\"none\">",
    );
    let palette = ["#5b8def", "#8e6be8", "#2aa198", "#d08a00", "#c2569b", "#3c8d5a", "#7a7f87", "#b5643c", "#4a6fa5"];
    let mut x = 0.0;
    let mut legend = Vec::new();
    for (i, stage) in ran.iter().enumerate() {
        let width = (stage.duration_secs / total * 1000.0).max(2.0);
        let fill = if stage.status == StageStatus::Fail { "#c62828" } else { palette[i % palette.len()] };
        let ms = stage.duration_secs * 1000.0;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"0\" width=\"{width:.1}\" height=\"12\" fill=\"{fill}\"><title>{} {ms:.1} ms</title></rect>",
            stage.name
        );
        x += width;
        let failed = if stage.status == StageStatus::Fail { " (failed)" } else { "" };
        legend.push(format!("{} {ms:.1} ms{failed}", stage.name));
    }
    svg.push_str("</svg>");
    format!("{svg}<p class=\"muted\">{}</p>", legend.join(" · "))
}

/// How a certificate or host key is trusted, in a few words (escaped).
fn trust_words(
    approved: Option<&crate::model::approvals::ApprovedBy>,
    pinned: bool,
    verified: bool,
    awaiting: bool,
) -> String {
    match approved {
        Some(a) => format!("approved by {} on {}", esc(&a.by), esc(a.date.get(..10).unwrap_or(&a.date))),
        None if awaiting => "<strong>awaiting approval</strong>".into(),
        None if pinned => "pinned".into(),
        None if verified => "verified".into(),
        None => "not verified".into(),
    }
}

/// The certificate or host key, with days to expiry flagged under `warn_days`.
fn identity(probe: &ProbeReport, warn_days: u32) -> String {
    if let Some(tls) = &probe.tls {
        let class = if tls.days_left < 0 {
            "expired"
        } else if tls.days_left < i64::from(warn_days) {
            "soon"
        } else {
            ""
        };
        let trusted = trust_words(tls.approved.as_ref(), tls.pinned, tls.verified, probe.approve.is_some());
        return format!(
            "<p class=\"muted\">certificate {} ({trusted}), <span class=\"{class}\">expires {} ({} days)</span></p>",
            esc(&tls.subject),
            esc(&tls.not_after),
            tls.days_left
        );
    }
    if let Some(key) = &probe.host_key {
        let approved = trust_words(key.approved.as_ref(), false, key.verified, probe.approve.is_some());
        return format!(
            "<p class=\"muted\">host key {} <code>{}</code> ({approved})</p>",
            esc(&key.algorithm),
            esc(&key.sha256)
        );
    }
    String::new()
}

fn probe_query(key: &SlotKey) -> String {
    match &key.target {
        None => format!("target={}", query_escape(&key.probe)),
        Some(t) => format!("module={}&amp;target={}", query_escape(&key.probe), query_escape(t)),
    }
}

fn status_link(key: &SlotKey) -> String {
    let target = key.target.as_ref().map(|t| format!("?target={}", query_escape(t))).unwrap_or_default();
    format!("/status/{}{target}", query_escape(&key.probe))
}

/// One probe's card.
fn card(out: &mut String, view: &SlotView, kind: &str, target: &str, warn_days: u32) {
    let probe = view.last.as_ref().and_then(|f| f.report.probes.first());
    let (class, badge) = match probe {
        Some(p) => (css_class(p.status), label(p.status)),
        None if view.running => ("idle", "RUNNING"),
        None => ("idle", "NOT PROBED YET"),
    };
    let title = match &view.key.target {
        Some(t) => format!("{} → {}", view.key.probe, t),
        None => view.key.probe.clone(),
    };
    let _ = write!(
        out,
        "<article class=\"{class}\" data-probe=\"{}\"><h2><span class=\"badge\">{badge}</span> <a href=\"{}\">{}</a> <span class=\"muted\">{}</span></h2><p class=\"muted\"><code>{}</code></p>",
        esc(&title),
        status_link(&view.key),
        esc(&title),
        esc(kind),
        esc(target)
    );
    if let Some(p) = probe {
        if let Some(error) = &p.error {
            let _ = write!(
                out,
                "<p class=\"why\">{}: {} — {}</p><p class=\"muted\">{}</p>",
                error.stage,
                error.class,
                esc(&error.message),
                esc(&error.hint)
            );
        }
        for warning in &p.warnings {
            let _ = write!(out, "<p class=\"soon\">{}</p>", esc(warning));
        }
        if let Some((status, since)) = view.since {
            let what = match status {
                Status::Fail | Status::Cancelled => "failing",
                Status::Warn => "warning",
                Status::Pass => "passing",
            };
            let _ = write!(out, "<p class=\"muted\">{what} since {} ({} ago)", rfc3339(since), ago(since));
            if let Some(finished) = &view.last {
                let last = humantime::format_duration(Duration::from_secs(finished.ended.elapsed().as_secs()));
                let _ = write!(out, "; last run {} ms, {last} ago", p.duration_ms);
            }
            out.push_str("</p>");
        }
        out.push_str(&history_svg(&view.history));
        out.push_str(&stages_svg(p));
        out.push_str(&identity(p, warn_days));
    }
    let query = probe_query(&view.key);
    let _ = writeln!(
        out,
        "<nav><a href=\"{}\">details</a><a href=\"/probe?{query}\">probe now</a><a href=\"/probe?{query}&amp;debug=true\">debug</a></nav></article>",
        status_link(&view.key)
    );
}

/// Failing first, then warning, running or not probed yet, then passing; by name within.
fn rank(view: &SlotView) -> u8 {
    match view.last.as_ref().and_then(|f| f.report.probes.first()).map(|p| p.status) {
        Some(Status::Fail | Status::Cancelled) => 0,
        Some(Status::Warn) => 1,
        None => 2,
        Some(Status::Pass) => 3,
    }
}

/// `/`: the state at a glance and one card per probe, then targets scraped in the
/// blackbox style, [`TARGETS_PER_PAGE`] at a time (`?page=N`). `refresh`: seconds between
/// reloads of the page (none without).
pub fn status_page(service: &Service, page: usize, refresh: Option<u64>) -> String {
    let loaded = service.loaded();
    let views = service.last_results();
    let mut out = String::new();
    head(&mut out, "authprobe", refresh);
    let probes: std::collections::HashMap<&str, &crate::runner::suite::ProbeConfig> =
        loaded.config.probes.iter().map(|p| (p.name.as_str(), p)).collect();
    // The config's probes, each once, whether scraped yet or not; then the targets.
    let (mut targets, scraped): (Vec<SlotView>, Vec<SlotView>) =
        views.into_iter().partition(|v| v.key.target.is_some());
    let mut scraped: std::collections::HashMap<String, SlotView> =
        scraped.into_iter().map(|v| (v.key.probe.clone(), v)).collect();
    let mut own: Vec<SlotView> = loaded
        .config
        .probes
        .iter()
        .map(|p| {
            scraped.remove(&p.name).unwrap_or_else(|| SlotView::empty(SlotKey { probe: p.name.clone(), target: None }))
        })
        .collect();
    own.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.key.cmp(&b.key)));
    targets.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.key.cmp(&b.key)));
    let count = |n: u8| own.iter().filter(|v| rank(v) == n).count();
    let (failing, warning, waiting, passing) = (count(0), count(1), count(2), count(3));
    let (class, summary) = match (failing, warning) {
        (0, 0) if waiting == 0 => ("pass", "all passing".to_string()),
        (0, 0) => ("idle", format!("{passing} passing, {waiting} not probed yet")),
        (0, w) => ("warn", format!("{w} warning")),
        (f, _) => ("fail", format!("{f} failing")),
    };
    let status = lock(&service.reload_status);
    let reload =
        if status.ok { "reload ok".to_string() } else { "last reload FAILED (previous config served)".to_string() };
    let toggle = match refresh {
        Some(_) => "<a href=\"/\">stop auto refresh</a>".to_string(),
        None => "<a href=\"/?refresh=30\">auto refresh (30 s)</a>".to_string(),
    };
    let _ = writeln!(
        out,
        "<header class=\"{class}\"><h1>authprobe</h1><span class=\"summary\">{summary}</span><span class=\"muted\">{failing} failing · {warning} warning · {passing} passing · {waiting} not probed yet</span><span class=\"muted\">{} probes from <code>{}</code>, loaded {} ({reload})</span><nav>{toggle}<a href=\"/metrics\">metrics</a><a href=\"/docs\">docs</a></nav></header>",
        loaded.config.probes.len(),
        esc(&service.config_path.display().to_string()),
        rfc3339(loaded.loaded_at)
    );
    if let Some(error) = &status.last_error {
        let _ = writeln!(
            out,
            "<pre class=\"fail\">The last reload failed; the config loaded before it is still served:\n{}</pre>",
            esc(error)
        );
    }
    drop(status);
    out.push_str("<main class=\"cards\">\n");
    for view in &own {
        let Some(probe) = probes.get(view.key.probe.as_str()) else { continue };
        card(&mut out, view, probe.kind, &probe.probe.target(), probe.warn_expiry_days);
    }
    out.push_str("</main>\n");
    if !targets.is_empty() {
        let pages = targets.len().div_ceil(TARGETS_PER_PAGE).max(1);
        let page = page.clamp(1, pages);
        let _ = writeln!(
            out,
            "<h2>Targets scraped with module=…&amp;target=… ({})</h2><div class=\"cards\">",
            targets.len()
        );
        for view in targets.iter().skip((page - 1) * TARGETS_PER_PAGE).take(TARGETS_PER_PAGE) {
            let kind =
                view.last.as_ref().and_then(|f| f.report.probes.first()).map(|p| p.kind.clone()).unwrap_or_default();
            let warn_days = probes.get(view.key.probe.as_str()).map_or(14, |p| p.warn_expiry_days);
            card(&mut out, view, &kind, view.key.target.as_deref().unwrap_or_default(), warn_days);
        }
        out.push_str("</div>\n");
        if pages > 1 {
            let link = |n: usize, text: &str| format!("<a href=\"/?page={n}\">{text}</a>");
            let prev = if page > 1 { link(page - 1, "previous") } else { String::new() };
            let next = if page < pages { link(page + 1, "next") } else { String::new() };
            let _ = writeln!(
                out,
                "<p>page {page} of {pages} (first and last: {}, {}) {prev} {next}</p>",
                link(1, "1"),
                link(pages, &pages.to_string())
            );
        }
    }
    if let Some(cards) = &loaded.config.cards {
        cards_table(&mut out, cards);
    }
    out.push_str("</body></html>\n");
    out
}

/// Links shown on the status page at most (the newest).
const CARD_LINKS_SHOWN: usize = 100;

/// The check cards' links: label, card, state, attempts, the last result and what was
/// approved; never a value (the outbox has none but in the sealed files).
fn cards_table(out: &mut String, cards: &crate::runner::cards::Cards) {
    use crate::config::card_state as state;
    let links = state::list(&cards.outbox).unwrap_or_default();
    let now = crate::model::expiry::now_unix();
    let _ = writeln!(
        out,
        "<h2>Check cards ({} links)</h2><table><tr><th>card</th><th>label</th><th>state</th><th>created</th><th>expires</th><th>attempts</th><th>last result</th><th>approved</th></tr>",
        links.len()
    );
    for link in links.iter().rev().take(CARD_LINKS_SHOWN) {
        let view = state::view(&cards.outbox, link, now);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&link.card),
            esc(&link.label),
            view.state.as_str(),
            crate::model::expiry::rfc3339(link.created),
            crate::model::expiry::rfc3339(link.expires),
            view.attempts,
            esc(view.last.as_deref().unwrap_or_default()),
            esc(view.approved.as_deref().unwrap_or_default())
        );
    }
    out.push_str("</table>\n");
}

/// `/status/NAME[?target=T]`: one probe's card, its last report in full, and its history;
/// `None` when the config has no such probe.
pub fn probe_page(service: &Service, key: &SlotKey) -> Option<String> {
    let loaded = service.loaded();
    let config = loaded.config.probes.iter().find(|p| p.name == key.probe)?;
    let view = service.slot_view(key);
    let mut out = String::new();
    head(&mut out, &format!("{} — authprobe", key.probe), None);
    out.push_str("<header><h1><a href=\"/\">authprobe</a> / probe</h1></header>\n");
    let target = key.target.clone().unwrap_or_else(|| config.probe.target());
    card(&mut out, &view, config.kind, &target, config.warn_expiry_days);
    if let Some(finished) = &view.last {
        let report = crate::output::render(
            &finished.report,
            crate::output::Format::Table,
            crate::output::Style { verbose: 2, color: false, width: Some(100) },
        );
        let _ = writeln!(out, "<h2>Last report</h2><pre>{}</pre>", esc(&report));
        if let Some(p) = finished.report.probes.first() {
            out.push_str("<h2>Stages</h2><table><tr><th>stage</th><th>status</th><th>ms</th></tr>");
            for stage in &p.stages {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
                    stage.name,
                    stage.status.as_str(),
                    stage.duration_secs * 1000.0
                );
            }
            let _ = writeln!(out, "</table><p class=\"muted\">attempts: {}</p>", p.attempts);
            if let Some(tls) = &p.tls {
                let _ = writeln!(
                    out,
                    "<h2>TLS</h2><table><tr><th>version</th><td>{}</td></tr><tr><th>subject</th><td>{}</td></tr><tr><th>issuer</th><td>{}</td></tr><tr><th>names</th><td>{}</td></tr><tr><th>valid</th><td>{} to {} ({} days left)</td></tr><tr><th>SHA-256</th><td><code>{}</code></td></tr><tr><th>SHA-1</th><td><code>{}</code></td></tr><tr><th>trust</th><td>{}</td></tr></table>",
                    esc(tls.version.as_deref().unwrap_or("no handshake")),
                    esc(&tls.subject),
                    esc(&tls.issuer),
                    esc(&tls.sans.join(", ")),
                    esc(&tls.not_before),
                    esc(&tls.not_after),
                    tls.days_left,
                    esc(&tls.sha256),
                    esc(&tls.sha1),
                    if tls.pinned {
                        "pinned"
                    } else if tls.verified {
                        "verified by a CA"
                    } else {
                        "not verified"
                    }
                );
            }
        }
    }
    out.push_str("<h2>History</h2><table><tr><th>when</th><th>result</th><th>ms</th><th>failure</th></tr>");
    for past in view.history.iter().rev() {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            rfc3339(past.at),
            css_class(past.status),
            label(past.status),
            past.duration_ms,
            esc(past.failure.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table></body></html>\n");
    Some(out)
}
