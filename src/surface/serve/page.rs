//! serve's status pages, server-rendered HTML with inline SVG and no script: `/` (the state
//! at a glance, one card per probe, failing first) and `/status/NAME` (one probe's last
//! report in full and its history). Every value goes through maud's escaping; reports are already scrubbed.
//! Linear in the probes and targets shown.

use std::time::{Duration, SystemTime};

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::scrape::{HISTORY, Past, Service, SlotKey, SlotView, lock};
use crate::model::report::{ProbeReport, StageStatus, Status};

/// Targets (probes aimed elsewhere) listed per page of the status page.
pub const TARGETS_PER_PAGE: usize = 100;

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

/// A whole page: every value goes through maud, which escapes it.
fn document(title: &str, refresh: Option<u64>, body: Markup) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) }
                @if let Some(seconds) = refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    };
    page.into_string() + "\n"
}

fn colour(status: Status) -> &'static str {
    match css_class(status) {
        "fail" => "#c62828",
        "warn" => "#d08a00",
        _ => "#2e7d32",
    }
}

/// The history strip: one bar per past result, oldest left, with its time in a tooltip.
/// (SVG elements are written with end tags: inside `svg` the HTML parser wants them.)
fn history_svg(history: &[Past]) -> Markup {
    let offset = HISTORY - history.len().min(HISTORY);
    html! {
        svg viewBox=(format!("0 0 {} 14", HISTORY * 8)) role="img" aria-label=(format!("last {} results", history.len()))
            preserveAspectRatio="none" {
            @for i in 0..offset {
                rect x=(i * 8) y="1" width="6" height="12" fill="#e5e7eb" {}
            }
            @for (i, past) in history.iter().enumerate() {
                rect x=((offset + i) * 8) y="1" width="6" height="12" fill=(colour(past.status)) {
                    title {
                        (rfc3339(past.at)) " " (label(past.status)) " (" (past.duration_ms) " ms"
                        @if let Some(failure) = &past.failure { ", " (failure) }
                        ")"
                    }
                }
            }
        }
    }
}

/// The last run's stages as one bar, each stage as wide as it took, and a legend.
fn stages_svg(probe: &ProbeReport) -> Markup {
    let ran: Vec<_> = probe.stages.iter().filter(|s| s.status != StageStatus::Skipped).collect();
    let total: f64 = ran.iter().map(|s| s.duration_secs).sum::<f64>().max(1e-9);
    let palette = ["#5b8def", "#8e6be8", "#2aa198", "#d08a00", "#c2569b", "#3c8d5a", "#7a7f87", "#b5643c", "#4a6fa5"];
    let mut x = 0.0;
    let mut bars = Vec::new();
    let mut legend = Vec::new();
    for (i, stage) in ran.iter().enumerate() {
        let width = (stage.duration_secs / total * 1000.0).max(2.0);
        let fill = if stage.status == StageStatus::Fail { "#c62828" } else { palette[i % palette.len()] };
        let ms = stage.duration_secs * 1000.0;
        bars.push((format!("{x:.1}"), format!("{width:.1}"), fill, format!("{} {ms:.1} ms", stage.name)));
        x += width;
        let failed = if stage.status == StageStatus::Fail { " (failed)" } else { "" };
        legend.push(format!("{} {ms:.1} ms{failed}", stage.name));
    }
    html! {
        svg viewBox="0 0 1000 12" role="img" aria-label="stage timings" preserveAspectRatio="none" {
            @for (x, width, fill, tip) in &bars {
                rect x=(x) y="0" width=(width) height="12" fill=(fill) { title { (tip) } }
            }
        }
        p class="muted" { (legend.join(" · ")) }
    }
}

/// How a certificate or host key is trusted, in a few words.
fn trust_words(
    approved: Option<&crate::model::approvals::ApprovedBy>,
    pinned: bool,
    verified: bool,
    awaiting: bool,
) -> Markup {
    html! {
        @match approved {
            Some(a) => { "approved by " (a.by) " on " (a.date.get(..10).unwrap_or(&a.date)) }
            None if awaiting => strong { "awaiting approval" },
            None if pinned => "pinned",
            None if verified => "verified",
            None => "not verified",
        }
    }
}

/// The certificate or host key, with days to expiry flagged under `warn_days`.
fn identity(probe: &ProbeReport, warn_days: u32) -> Markup {
    if let Some(tls) = &probe.tls {
        let class = if tls.days_left < 0 {
            "expired"
        } else if tls.days_left < i64::from(warn_days) {
            "soon"
        } else {
            ""
        };
        let trusted = trust_words(tls.approved.as_ref(), tls.pinned, tls.verified, probe.approve.is_some());
        return html! {
            p class="muted" {
                "certificate " (tls.subject) " (" (trusted) "), "
                span class=(class) { "expires " (tls.not_after) " (" (tls.days_left) " days)" }
            }
        };
    }
    if let Some(key) = &probe.host_key {
        let approved = trust_words(key.approved.as_ref(), false, key.verified, probe.approve.is_some());
        return html! { p class="muted" { "host key " (key.algorithm) " " code { (key.sha256) } " (" (approved) ")" } };
    }
    html! {}
}

fn probe_query(key: &SlotKey) -> String {
    match &key.target {
        None => format!("target={}", query_escape(&key.probe)),
        Some(t) => format!("module={}&target={}", query_escape(&key.probe), query_escape(t)),
    }
}

fn status_link(key: &SlotKey) -> String {
    let target = key.target.as_ref().map(|t| format!("?target={}", query_escape(t))).unwrap_or_default();
    format!("/status/{}{target}", query_escape(&key.probe))
}

/// One probe's card.
fn card(view: &SlotView, kind: &str, target: &str, warn_days: u32) -> Markup {
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
    let since = view.since.map(|(status, since)| {
        let what = match status {
            Status::Fail | Status::Cancelled => "failing",
            Status::Warn => "warning",
            Status::Pass => "passing",
        };
        let last = view.last.as_ref().zip(probe).map(|(finished, p)| {
            let ago = humantime::format_duration(Duration::from_secs(finished.ended.elapsed().as_secs()));
            format!("; last run {} ms, {ago} ago", p.duration_ms)
        });
        format!("{what} since {} ({} ago){}", rfc3339(since), ago(since), last.unwrap_or_default())
    });
    let query = probe_query(&view.key);
    html! {
        article class=(class) data-probe=(title) {
            h2 {
                span class="badge" { (badge) } " "
                a href=(status_link(&view.key)) { (title) } " "
                span class="muted" { (kind) }
            }
            p class="muted" { code { (target) } }
            @if let Some(p) = probe {
                @if let Some(error) = &p.error {
                    p class="why" { (error.stage) ": " (error.class) " — " (error.message) }
                    p class="muted" { (error.hint) }
                }
                @for warning in &p.warnings {
                    p class="soon" { (warning) }
                }
                @if let Some(since) = &since {
                    p class="muted" { (since) }
                }
                (history_svg(&view.history))
                (stages_svg(p))
                (identity(p, warn_days))
            }
            nav {
                a href=(status_link(&view.key)) { "details" }
                a href={ "/probe?" (query) } { "probe now" }
                a href={ "/probe?" (query) "&debug=true" } { "debug" }
            }
        }
    }
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
    let reload = if status.ok { "reload ok" } else { "last reload FAILED (previous config served)" };
    let last_error = status.last_error.clone();
    drop(status);
    let pages = targets.len().div_ceil(TARGETS_PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let body = html! {
        header class=(class) {
            h1 { "authprobe" }
            span class="summary" { (summary) }
            span class="muted" {
                (failing) " failing · " (warning) " warning · " (passing) " passing · " (waiting) " not probed yet"
            }
            span class="muted" {
                (loaded.config.probes.len()) " probes from " code { (service.config_path.display()) }
                ", loaded " (rfc3339(loaded.loaded_at)) " (" (reload) ")"
            }
            nav {
                @if refresh.is_some() { a href="/" { "stop auto refresh" } } @else { a href="/?refresh=30" { "auto refresh (30 s)" } }
                a href="/metrics" { "metrics" }
                a href="/docs" { "docs" }
            }
        }
        @if let Some(error) = &last_error {
            pre class="fail" { "The last reload failed; the config loaded before it is still served:\n" (error) }
        }
        main class="cards" {
            @for view in &own {
                @if let Some(probe) = probes.get(view.key.probe.as_str()) {
                    (card(view, probe.kind, &probe.probe.target(), probe.warn_expiry_days))
                }
            }
        }
        @if !targets.is_empty() {
            h2 { "Targets scraped with module=…&target=… (" (targets.len()) ")" }
            div class="cards" {
                @for view in targets.iter().skip((page - 1) * TARGETS_PER_PAGE).take(TARGETS_PER_PAGE) {
                    @let kind = view.last.as_ref().and_then(|f| f.report.probes.first()).map(|p| p.kind.clone()).unwrap_or_default();
                    @let warn_days = probes.get(view.key.probe.as_str()).map_or(14, |p| p.warn_expiry_days);
                    (card(view, &kind, view.key.target.as_deref().unwrap_or_default(), warn_days))
                }
            }
            @if pages > 1 {
                p {
                    "page " (page) " of " (pages) " (first and last: " a href="/?page=1" { "1" } ", "
                    a href={ "/?page=" (pages) } { (pages) } ") "
                    @if page > 1 { a href={ "/?page=" (page - 1) } { "previous" } } " "
                    @if page < pages { a href={ "/?page=" (page + 1) } { "next" } }
                }
            }
        }
        @if let Some(cards) = &loaded.config.cards {
            (cards_table(cards))
        }
    };
    document("authprobe", refresh, body)
}

/// Links shown on the status page at most (the newest).
const CARD_LINKS_SHOWN: usize = 100;

/// The check cards' links: label, card, state, attempts, the last result and what was
/// approved; never a value (the outbox has none but in the sealed files).
fn cards_table(cards: &crate::runner::cards::Cards) -> Markup {
    use crate::config::card_state as state;
    let links = state::list(&cards.outbox).unwrap_or_default();
    let now = crate::model::expiry::now_unix();
    html! {
        h2 { "Check cards (" (links.len()) " links)" }
        table {
            tr {
                th { "card" } th { "label" } th { "state" } th { "created" } th { "expires" } th { "attempts" }
                th { "last result" } th { "approved" }
            }
            @for link in links.iter().rev().take(CARD_LINKS_SHOWN) {
                @let view = state::view(&cards.outbox, link, now);
                tr {
                    td { (link.card) } td { (link.label) } td { (view.state.as_str()) }
                    td { (crate::model::expiry::rfc3339(link.created)) }
                    td { (crate::model::expiry::rfc3339(link.expires)) }
                    td { (view.attempts) }
                    td { (view.last.as_deref().unwrap_or_default()) }
                    td { code { (view.approved.as_deref().unwrap_or_default()) } }
                }
            }
        }
    }
}

/// `/status/NAME[?target=T]`: one probe's card, its last report in full, and its history;
/// `None` when the config has no such probe.
pub fn probe_page(service: &Service, key: &SlotKey) -> Option<String> {
    let loaded = service.loaded();
    let config = loaded.config.probes.iter().find(|p| p.name == key.probe)?;
    let view = service.slot_view(key);
    let target = key.target.clone().unwrap_or_else(|| config.probe.target());
    let last = view.last.as_ref().map(|finished| {
        let report = crate::output::render(
            &finished.report,
            crate::output::Format::Table,
            crate::output::Style { verbose: 2, color: false, width: Some(100) },
        );
        (report, finished.report.probes.first())
    });
    let body = html! {
        header { h1 { a href="/" { "authprobe" } " / probe" } }
        (card(&view, config.kind, &target, config.warn_expiry_days))
        @if let Some((report, probe)) = &last {
            h2 { "Last report" }
            pre { (report) }
            @if let Some(p) = probe {
                h2 { "Stages" }
                table {
                    tr { th { "stage" } th { "status" } th { "ms" } }
                    @for stage in &p.stages {
                        tr { td { (stage.name) } td { (stage.status.as_str()) } td { (format!("{:.1}", stage.duration_secs * 1000.0)) } }
                    }
                }
                p class="muted" { "attempts: " (p.attempts) }
                @if let Some(tls) = &p.tls {
                    h2 { "TLS" }
                    table {
                        tr { th { "version" } td { (tls.version.as_deref().unwrap_or("no handshake")) } }
                        tr { th { "subject" } td { (tls.subject) } }
                        tr { th { "issuer" } td { (tls.issuer) } }
                        tr { th { "names" } td { (tls.sans.join(", ")) } }
                        tr { th { "valid" } td { (tls.not_before) " to " (tls.not_after) " (" (tls.days_left) " days left)" } }
                        tr { th { "SHA-256" } td { code { (tls.sha256) } } }
                        tr { th { "SHA-1" } td { code { (tls.sha1) } } }
                        tr {
                            th { "trust" }
                            td { @if tls.pinned { "pinned" } @else if tls.verified { "verified by a CA" } @else { "not verified" } }
                        }
                    }
                }
            }
        }
        h2 { "History" }
        table {
            tr { th { "when" } th { "result" } th { "ms" } th { "failure" } }
            @for past in view.history.iter().rev() {
                tr {
                    td { (rfc3339(past.at)) }
                    td class=(css_class(past.status)) { (label(past.status)) }
                    td { (past.duration_ms) }
                    td { (past.failure.as_deref().unwrap_or("")) }
                }
            }
        }
    };
    Some(document(&format!("{} — authprobe", key.probe), None, body))
}
