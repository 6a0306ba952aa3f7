//! `/card/TOKEN`: the credential owner's page. They see who asks for what and the fixed
//! target, fill in the card's fields, press *Save & Test*, see the stages as the status
//! page shows them, approve an untrusted certificate or host key, and on a pass their
//! credential is sealed to the operators' age recipients and the link is spent.
//!
//! This page takes passwords from strangers: the target is the template's (the owner's
//! values land on the card's fields only, `runner::cards`), forms carry a signed token
//! matched with a cookie, bodies and fields are capped, attempts are limited per link (in
//! the shared outbox, so across replicas), every invalid link gets the same page, and
//! values are never written anywhere but the sealed file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroize;

use super::scrape::{Service, lock};
use super::{Answer, HTML, answer};
use crate::config::card_state::{self as state, Attempt, LinkState};
use crate::connect::tls::TrustStore;
use crate::model::approvals::{Approval, Approvals, Candidate};
use crate::model::cards::{LinkClaims, form_token, form_token_valid, random_hex, verify_link};
use crate::model::expiry::{now_unix, rfc3339};
use crate::model::report::{ProbeReport, Status};
use crate::runner;
use crate::runner::cards::{Card, Cards};

/// Bodies larger than this are refused (413) before they are read.
pub const MAX_BODY: usize = 64 * 1024;
/// One field's value at most.
pub const MAX_FIELD: usize = 8 * 1024;
/// Attempts per link per hour (across replicas: counted in the outbox).
pub const ATTEMPTS_PER_HOUR: usize = 10;
/// Attempts of one link running at once (per replica).
pub const RUNNING_PER_LINK: usize = 2;
const COOKIE: &str = "authprobe_card";

/// What serve keeps in memory for cards: attempts running per link.
#[derive(Default)]
pub struct Desk {
    running: Mutex<HashMap<String, usize>>,
}

/// Releases a running slot of a link when the attempt ends, however it ends.
struct Running<'a> {
    desk: &'a Desk,
    id: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut running = lock(&self.desk.running);
        if let Some(n) = running.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.id);
            }
        }
    }
}

impl Desk {
    fn start(&self, id: &str) -> Option<Running<'_>> {
        let mut running = lock(&self.running);
        let n = running.entry(id.to_string()).or_default();
        if *n >= RUNNING_PER_LINK {
            return None;
        }
        *n += 1;
        Some(Running { desk: self, id: id.to_string() })
    }
}

const STYLE: &str = "*{box-sizing:border-box}body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:44rem;padding:1rem;color:#1b1f24;background:#f4f5f7}\
h1{font-size:1.3rem;margin:.2rem 0 .6rem}section{background:#fff;border:1px solid #d0d4da;border-radius:.4rem;padding:.8rem 1rem;margin:.8rem 0}\
label{display:block;font-weight:600;margin:.6rem 0 .2rem}input[type=text],input[type=password]{width:100%;font:inherit;padding:.45rem;border:1px solid #8a9099;border-radius:.3rem}\
button{font:inherit;font-weight:600;margin-top:.9rem;padding:.5rem 1.2rem;border:0;border-radius:.3rem;color:#fff;background:#0b57d0}\
.fail{--c:#c62828}.warn{--c:#a55d00}.pass{--c:#2e7d32}.badge{font-weight:700;color:#fff;background:var(--c);padding:.05rem .5rem;border-radius:.25rem}\
.muted{color:#5b616b;font-size:.9rem}code,td,p{overflow-wrap:anywhere}table{border-collapse:collapse;width:100%}td,th{border:1px solid #d0d4da;padding:.25rem .45rem;text-align:left;vertical-align:top}\
.approve label{display:flex;gap:.5rem;align-items:flex-start;font-weight:600}";

/// The style's hash for the Content-Security-Policy (no inline style without it).
fn style_hash() -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, STYLE.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// The origin of a URL (`https://host:port`), for `form-action` after a redirect.
fn origin(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    Some(parsed.origin().ascii_serialization())
}

fn secured(mut response: Answer, card: Option<&Card>) -> Answer {
    let mut form_action = "'self'".to_string();
    if let Some(o) = card.and_then(|c| c.redirect_uri.as_deref()).and_then(origin) {
        form_action = format!("'self' {o}");
    }
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{}'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'",
        style_hash()
    );
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A card page: every value goes through maud, which escapes it.
fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    }
    .into_string()
}

/// The one page every link that cannot be used gets (expired, tampered, revoked, spent,
/// unknown): nothing in it helps to tell which.
fn no_longer_valid() -> Answer {
    let body = page(
        "Link no longer valid",
        html! {
            h1 { "This link is no longer valid" }
            section { p { "Ask whoever sent it for a new one." } }
        },
    );
    secured(answer(StatusCode::NOT_FOUND, HTML, body), None)
}

fn plain(code: StatusCode, title: &str, text: &str, card: Option<&Card>) -> Answer {
    let body = page(title, html! { h1 { (title) } section { p { (text) } } });
    secured(answer(code, HTML, body), card)
}

/// What the form shows besides its fields.
#[derive(Default)]
struct Shown<'a> {
    message: Option<String>,
    report: Option<&'a ProbeReport>,
    candidates: &'a [Candidate],
}

fn form_page(card: &Card, claims: &LinkClaims, token: &str, csrf: &str, shown: &Shown<'_>) -> String {
    let body = html! {
        h1 { (card.title) }
        section {
            p {
                "You were asked to test a credential and hand it over"
                @if !claims.label.is_empty() { " (for " (claims.label) ")" }
                ". It is checked against the target below, and delivered only when it works, encrypted to the people who asked for it."
            }
            table {
                tr { th scope="row" { "Kind" } td { (card.kind) } }
                tr { th scope="row" { "Target" } td { code { (card.target) } } }
                tr { th scope="row" { "Link valid until" } td { (rfc3339(claims.expires)) } }
            }
        }
        @if let Some(message) = &shown.message {
            section class="fail" role="alert" { p { (message) } }
        }
        @if let Some(report) = shown.report {
            (result(report))
        }
        section {
            form method="post" action={ "/card/" (token) } autocomplete="off" {
                input type="hidden" name="csrf" value=(csrf);
                @for (i, field) in card.fields.iter().enumerate() {
                    label for={ "f" (i) } { (field.key) }
                    input id={ "f" (i) } type=(if field.secret { "password" } else { "text" }) name=(field.key)
                        maxlength=(MAX_FIELD) autocomplete="off" spellcheck="false" required;
                }
                @for candidate in shown.candidates {
                    (approval_box(candidate))
                }
                button type="submit" { "Save & Test" }
            }
        }
    };
    page(&card.title, body)
}

fn result(report: &ProbeReport) -> Markup {
    let (class, label) = match report.status {
        Status::Pass => ("pass", "PASS"),
        Status::Warn => ("warn", "WARN"),
        Status::Fail | Status::Cancelled => ("fail", "FAIL"),
    };
    html! {
        section class=(class) aria-live="polite" {
            @match &report.error {
                Some(e) => {
                    p { span class="badge" { (label) } " " strong { (e.stage) ": " (e.class) } }
                    p { (e.message) }
                    p class="muted" { (e.hint) }
                }
                None => p { span class="badge" { (label) } " the credential works" },
            }
            table {
                tr { th { "stage" } th { "result" } th { "ms" } }
                @for stage in &report.stages {
                    tr { td { (stage.name) } td { (format!("{:?}", stage.status)) } td { (stage.duration_ms) } }
                }
            }
            @for warning in &report.warnings {
                p class="muted" { "warning: " (warning) }
            }
        }
    }
}

fn approval_box(candidate: &Candidate) -> Markup {
    let what =
        if candidate.approval.kind == crate::model::approvals::ApprovalKind::Tls { "certificate" } else { "host key" };
    html! {
        section class="approve" {
            p {
                (candidate.approval.endpoint) " presents a " (what) " that is not trusted yet (" (candidate.refusal)
                "). Compare it with what you know of your server before you approve it:"
            }
            table {
                @for (label, value) in &candidate.shown {
                    tr { th scope="row" { (label) } td { code { (value) } } }
                }
            }
            label {
                input type="checkbox" name="approve" value=(candidate.approval.sha256);
                " Approve this " (what) " for " (candidate.approval.endpoint)
            }
        }
    }
}

fn cookie_nonce(request: &Request<Incoming>) -> Option<String> {
    request.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|cookies| {
        cookies.split(';').find_map(|c| c.trim().strip_prefix(&format!("{COOKIE}=")).map(str::to_string))
    })
}

/// The link's card, when the token is signed and its link is open.
fn open_link<'c>(cards: &'c Cards, token: &str) -> Option<(&'c Card, LinkClaims)> {
    let claims = verify_link(cards.key.read_here().as_bytes(), token)?;
    if state::state_of(&cards.outbox, &claims, now_unix()) != LinkState::Open {
        return None;
    }
    Some((cards.card(&claims.card)?, claims))
}

pub async fn handle(service: &Service, desk: &Desk, token: &str, request: Request<Incoming>, https: bool) -> Answer {
    let loaded = service.loaded();
    let Some(cards) = loaded.config.cards.clone() else {
        return no_longer_valid();
    };
    let Some((card, claims)) = open_link(&cards, token) else {
        return no_longer_valid();
    };
    let key = cards.key.read_here().as_bytes();
    match *request.method() {
        Method::GET | Method::HEAD => {
            let Ok(nonce) = random_hex(16) else {
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "Try again", "no randomness available", Some(card));
            };
            let csrf = form_token(key, &claims.id, &nonce);
            let page = form_page(card, &claims, token, &csrf, &Shown::default());
            let mut response = secured(answer(StatusCode::OK, HTML, page), Some(card));
            let cookie = format!(
                "{COOKIE}={nonce}; Path=/card/; HttpOnly; SameSite=Strict{}",
                if https { "; Secure" } else { "" }
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Method::POST => post(service, desk, &cards, card, &claims, token, request).await,
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "Use the form", "open the link in a browser", Some(card)),
    }
}

async fn post(
    service: &Service,
    desk: &Desk,
    cards: &Cards,
    card: &Card,
    claims: &LinkClaims,
    token: &str,
    request: Request<Incoming>,
) -> Answer {
    let too_large =
        || plain(StatusCode::PAYLOAD_TOO_LARGE, "Too much data", "the form is larger than 64 KiB", Some(card));
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let nonce = cookie_nonce(&request).unwrap_or_default();
    let body = match http_body_util::Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return too_large(),
    };
    let mut form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    drop(body);
    let key = cards.key.read_here().as_bytes();
    let csrf_given = form.remove("csrf").unwrap_or_default();
    if !form_token_valid(key, &claims.id, &csrf_given, &nonce) {
        return plain(
            StatusCode::FORBIDDEN,
            "Please reload the page",
            "this form was not sent from its page (or the page is too old): open the link again",
            Some(card),
        );
    }
    let now = now_unix();
    let recent = state::attempts(&cards.outbox, &claims.id).iter().filter(|a| a.at > now - 3600).count();
    if recent >= ATTEMPTS_PER_HOUR {
        return plain(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "this link was tried 10 times in the last hour: wait, or ask for a new link",
            Some(card),
        );
    }
    let Some(_running) = desk.start(&claims.id) else {
        return plain(
            StatusCode::TOO_MANY_REQUESTS,
            "Already testing",
            "two tests of this link are running",
            Some(card),
        );
    };
    // A fresh form token for the page that answers (the cookie stays).
    let csrf = form_token(key, &claims.id, &nonce);
    let approve = form.remove("approve");
    let mut values = Vec::with_capacity(card.fields.len());
    let mut problem = None;
    for field in &card.fields {
        match form.remove(&field.key) {
            Some(v) if v.len() > MAX_FIELD => problem = Some(format!("{} is longer than 8 KiB", field.key)),
            Some(v) if v.is_empty() => problem = Some(format!("fill in {}", field.key)),
            Some(v) => values.push((field.key.clone(), v)),
            None => problem = Some(format!("fill in {}", field.key)),
        }
    }
    for (_, mut v) in form.drain() {
        v.zeroize();
    }
    let answer_page = |code: StatusCode, shown: &Shown<'_>| {
        secured(answer(code, HTML, form_page(card, claims, token, &csrf, shown)), Some(card))
    };
    if let Some(message) = problem {
        wipe(&mut values);
        return answer_page(StatusCode::BAD_REQUEST, &Shown { message: Some(message), ..Shown::default() });
    }
    let outcome = attempt(service, cards, card, claims, &values, approve.as_deref()).await;
    let (report, candidates, approved) = match outcome {
        Ok(done) => done,
        Err(why) => {
            let why = hide_values(&why, &values);
            wipe(&mut values);
            record(service, cards, claims, "fail", "config");
            return answer_page(StatusCode::BAD_REQUEST, &Shown { message: Some(why), ..Shown::default() });
        }
    };
    let passed = matches!(report.status, Status::Pass | Status::Warn);
    let detail = match (&report.error, &approved) {
        (Some(e), _) => format!("{}: {}", e.stage, e.class),
        (None, Some(a)) => format!("approved {}", a.sha256),
        (None, None) => String::new(),
    };
    record(service, cards, claims, if passed { "pass" } else { "fail" }, &detail);
    if !passed {
        wipe(&mut values);
        return answer_page(StatusCode::OK, &Shown { message: None, report: Some(&report), candidates: &candidates });
    }
    let delivered = deliver(cards, card, claims, &report, &values, approved.as_ref());
    wipe(&mut values);
    match delivered {
        Ok(true) => {}
        Ok(false) => return no_longer_valid(),
        Err(why) => {
            crate::surface::execute::eprint_line(&format!(
                "authprobe serve: card {}: cannot deliver: {why}",
                card.name
            ));
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Not delivered",
                "the credential works, but it could not be delivered; nothing was kept: try again later",
                Some(card),
            );
        }
    }
    if let Some(uri) = &card.redirect_uri {
        let sep = if uri.contains('?') { '&' } else { '?' };
        let location = format!("{uri}{sep}card={}&status=passed", claims.id);
        let mut response = plain(StatusCode::SEE_OTHER, "Passed", "the credential works and was delivered", Some(card));
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return response;
    }
    let body = html! {
        h1 { (card.title) }
        (result(&report))
        section {
            p {
                "The credential works. It was delivered encrypted to the people who asked for it; this link is now used up. You can close this page."
            }
        }
    };
    secured(answer(StatusCode::OK, HTML, page(&card.title, body)), Some(card))
}

fn wipe(values: &mut Vec<(String, String)>) {
    for (_, v) in values.iter_mut() {
        v.zeroize();
    }
    values.clear();
}

/// A config message about the owner's values, with the values themselves taken out.
fn hide_values(text: &str, values: &[(String, String)]) -> String {
    let mut out = text.to_string();
    for (_, v) in values {
        if !v.is_empty() {
            out = out.replace(v.as_str(), "********");
        }
    }
    crate::model::redact::scrub(&out)
}

fn record(service: &Service, cards: &Cards, claims: &LinkClaims, result: &'static str, detail: &str) {
    let attempt = Attempt { at: now_unix(), result: result.to_string(), detail: detail.to_string() };
    if let Err(why) = state::record_attempt(&cards.outbox, &claims.id, &attempt) {
        crate::surface::execute::eprint_line(&format!("authprobe serve: card {}: {why}", claims.card));
    }
    *lock(&service.stats.card_attempts).entry((claims.card.clone(), result)).or_default() += 1;
}

type Outcome = (ProbeReport, Vec<Candidate>, Option<Approval>);

/// Runs the card's probe with the owner's values; with `approve`, a refused certificate or
/// host key with exactly that fingerprint is approved (recorded as `card:LABEL`) and the
/// probe runs again trusting it.
async fn attempt(
    service: &Service,
    cards: &Cards,
    card: &Card,
    claims: &LinkClaims,
    values: &[(String, String)],
    approve: Option<&str>,
) -> Result<Outcome, String> {
    let loaded = service.loaded();
    let approvals_path = loaded.config.approvals.path.clone();
    let entries = crate::config::approvals::read(&approvals_path)
        .map_err(|_| "the approvals file cannot be read: tell whoever sent the link".to_string())?;
    let probe = cards.attempt_probe(card, values)?;
    let (report, candidates) = run_once(&loaded, probe.clone(), entries).await?;
    let wanted = approve.and_then(|fp| candidates.iter().find(|c| c.approval.sha256 == fp));
    let Some(candidate) = wanted.filter(|_| report.error.is_some()) else {
        return Ok((report, candidates, None));
    };
    let mut approval = candidate.approval.clone();
    approval.validated_by = format!("card:{}", if claims.label.is_empty() { &claims.card } else { &claims.label });
    approval.validated_date = rfc3339(now_unix());
    let (_, entries) = crate::config::approvals::record(&approvals_path, std::slice::from_ref(&approval))
        .map_err(|_| "the approval could not be recorded: tell whoever sent the link".to_string())?;
    let (report, candidates) = run_once(&loaded, probe, entries).await?;
    Ok((report, candidates, Some(approval)))
}

async fn run_once(
    loaded: &super::scrape::Loaded,
    probe: crate::runner::suite::ProbeConfig,
    entries: Vec<Approval>,
) -> Result<(ProbeReport, Vec<Candidate>), String> {
    let approvals = Arc::new(Approvals::new(entries).capturing());
    let opts = loaded.run_options(probe.timeout, approvals.clone());
    let shared = loaded.shared(Arc::new(TrustStore::with_approvals(approvals.clone())));
    let mut report = runner::run_with(vec![probe], &opts, CancellationToken::new(), shared).await;
    report.scrub_secrets();
    let probe = report.probes.into_iter().next().ok_or("the test was lost (a bug in authprobe): try again")?;
    Ok((probe, approvals.take_captured()))
}

/// Seals what the owner entered and spends the link. `Ok(false)`: another replica spent it.
fn deliver(
    cards: &Cards,
    card: &Card,
    claims: &LinkClaims,
    report: &ProbeReport,
    values: &[(String, String)],
    approved: Option<&Approval>,
) -> Result<bool, String> {
    let fields: serde_json::Map<String, serde_json::Value> =
        values.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    let sealed_json = serde_json::json!({
        "card": card.name,
        "label": claims.label,
        "link": claims.id,
        "probe": card.probe,
        "kind": card.kind,
        "target": card.target,
        "fields": fields,
        "tls_sha256": report.tls.as_ref().map(|t| t.sha256.clone()),
        "host_key_sha256": report.host_key.as_ref().map(|k| k.sha256.clone()),
        "approved": approved.map(|a| serde_json::json!({"sha256": a.sha256, "for": a.endpoint, "by": a.validated_by})),
        "tested_at": rfc3339(now_unix()),
    });
    let mut plaintext = serde_json::to_vec_pretty(&sealed_json).map_err(|e| e.to_string())?;
    let sealed = crate::model::seal::seal(&cards.recipients, &plaintext);
    plaintext.zeroize();
    drop(sealed_json);
    let sealed = sealed?;
    if !state::spend(&cards.outbox, &claims.id)? {
        return Ok(false);
    }
    if let Err(why) = state::deliver(&cards.outbox, &claims.id, &sealed) {
        // Not delivered: the link may be used again.
        state::unspend(&cards.outbox, &claims.id);
        return Err(why);
    }
    Ok(true)
}

/// `authprobe_cards_open`: links that can still be used.
pub fn open_links(cards: &Cards) -> usize {
    let now = now_unix();
    state::list(&cards.outbox)
        .unwrap_or_default()
        .iter()
        .filter(|l| state::state(&cards.outbox, l, now) == LinkState::Open)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unusable_link_gets_the_same_page_with_the_security_headers() {
        let page = no_longer_valid();
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"), "{csp}");
        assert_eq!(page.headers()[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let body = runtime.block_on(page.into_body().collect()).unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("This link is no longer valid"));
    }

    #[test]
    fn values_are_taken_out_of_messages() {
        let values = vec![("password".to_string(), "hunter2-secret".to_string())];
        assert_eq!(hide_values("bad value hunter2-secret here", &values), "bad value ******** here");
    }

    #[test]
    fn two_attempts_per_link_run_at_once() {
        let desk = Desk::default();
        let a = desk.start("l1").unwrap();
        let _b = desk.start("l1").unwrap();
        assert!(desk.start("l1").is_none());
        assert!(desk.start("l2").is_some());
        drop(a);
        assert!(desk.start("l1").is_some());
    }
}
