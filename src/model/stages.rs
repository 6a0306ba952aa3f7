//! Stage timing: what a probe is doing right now, how long each step took, and what it
//! learned on the way (certificate, host key, warnings, run-time secrets). The runner owns
//! the timeout; when it fires, the stage in progress is the one blamed. This is the part
//! of a probe's context that knows nothing of connections: the connection layer's
//! `ProbeContext` adds the resources (trust roots, tunnels) on top of it.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::model::advice::Advice;
use crate::model::advice::Fix;
use crate::model::error::{Failure, Stage};
use crate::model::facts::{ChainCert, HttpFacts, WireFacts};
use crate::model::release::Release;
use crate::model::report::{CredentialReport, HostKeyReport, StageReport, StageStatus, TlsReport};

struct OpenStage {
    stage: Stage,
    started: Instant,
    /// Time spent in stages nested inside this one, reported by them, not by this one.
    nested: Duration,
}

#[derive(Default)]
struct Progress {
    stages: Vec<StageReport>,
    /// Stages in progress, innermost last: a stage may open inside another (a connection
    /// the AWS SDK makes during the `auth` request).
    open: Vec<OpenStage>,
    tls: Option<TlsReport>,
    host_key: Option<HostKeyReport>,
    credentials: Vec<CredentialReport>,
    findings: Vec<crate::model::report::Finding>,
    facts: WireFacts,
    warnings: Vec<Advice>,
    details: Vec<String>,
    diagnostics: Vec<String>,
    /// What this probe's servers issued at run time (tokens, keys), in every wire form:
    /// scrubbed from this probe's report only.
    secrets: Vec<String>,
    /// The matcher over `secrets`, built on first use after a registration.
    scrubber: Option<Arc<crate::model::redact::Scrubber>>,
    /// The `host:port` the probe's latest connection is for (directly, through a tunnel or
    /// a proxy alike): what an approval of the certificate it shows is for.
    dialed: Option<(String, u16)>,
}

/// One attempt's record and the settings every layer reads. Cheap to share: the runner
/// keeps a handle to read partial progress when the attempt times out or is cancelled.
#[derive(Clone)]
pub struct StageLog {
    progress: Arc<Mutex<Progress>>,
    /// Certificates expiring within this many days make the probe WARN.
    pub warn_expiry_days: u32,
    /// Per-probe timeout, for messages and for drivers that want their own deadline.
    pub timeout: Duration,
    /// `allow_unverified_password`: secrets may go in recoverable form to a server whose
    /// identity is not verified. Off by default: the credential release rule.
    pub allow_unverified_password: bool,
    /// The probe's hygiene keys (`hygiene`, `expect_read_only`, `expect_scopes`, `max_age`).
    pub hygiene: Arc<crate::model::hygiene::HygieneSettings>,
    /// The certificates and host keys approved for endpoints (the run's `approvals.toml`).
    pub approvals: Arc<crate::model::approvals::Approvals>,
}

impl StageLog {
    pub fn new(warn_expiry_days: u32, timeout: Duration) -> Self {
        StageLog {
            progress: Arc::default(),
            warn_expiry_days,
            timeout,
            allow_unverified_password: false,
            hygiene: Arc::default(),
            approvals: Arc::default(),
        }
    }

    /// The probe's consent to hand a secret to a peer whose identity is not verified
    /// (`allow_unverified_password = true`), as the release rule's proof; `None` without it.
    pub fn consent(&self) -> Option<Release> {
        self.consent_or(false)
    }

    /// The probe's consent, or `also` (a secret store's own `allow_unverified_password`).
    pub fn consent_or(&self, also: bool) -> Option<Release> {
        (self.allow_unverified_password || also).then(Release::consented)
    }

    /// The credential release rule for a secret about to leave over plain HTTP (`url` is
    /// http://): refused, before anything is sent, unless the probe allows it. `what` names
    /// the secret ("the bearer token").
    pub fn release_over_plain_http(&self, url: &url::Url, what: &str) -> Result<(), Failure> {
        if url.scheme() != "http" {
            return Ok(());
        }
        if self.allow_unverified_password {
            self.detail(format!(
                "release: {what} was sent over plain HTTP to {} (allow_unverified_password = true)",
                url.host_str().unwrap_or("the server")
            ));
            return Ok(());
        }
        Err(plain_http_refusal(url, what))
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        // A panic while holding the lock leaves plain data behind; it stays usable.
        match self.progress.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Runs one stage: times it, records ok/fail, and attaches the stage to a failure that
    /// does not name one itself.
    pub async fn stage<T, F>(&self, stage: Stage, work: F) -> Result<T, Failure>
    where
        F: Future<Output = Result<T, Failure>>,
    {
        let started = self.begin(stage);
        let result = work.await;
        self.end(stage, started, result.is_ok());
        result.map_err(|failure| if failure.stage.is_some() { failure } else { failure.at(stage) })
    }

    /// Marks `stage` as running (a timeout now blames it); close it with [`Self::end`].
    /// For stages whose work is not one future, such as waiting for a shared tunnel.
    pub fn begin(&self, stage: Stage) -> Instant {
        let started = Instant::now();
        self.lock().open.push(OpenStage { stage, started, nested: Duration::ZERO });
        started
    }

    /// Closes a stage opened by [`Self::begin`] at `started`. Its duration excludes the
    /// stages nested in it; its own time counts toward the stage it is nested in.
    pub fn end(&self, stage: Stage, started: Instant, ok: bool) {
        let mut progress = self.lock();
        let elapsed = started.elapsed();
        let nested = match progress.open.iter().rposition(|o| o.stage == stage && o.started == started) {
            Some(at) => progress.open.remove(at).nested,
            None => Duration::ZERO,
        };
        if let Some(parent) = progress.open.last_mut() {
            parent.nested += elapsed;
        }
        let status = if ok { StageStatus::Ok } else { StageStatus::Fail };
        progress.stages.push(stage_report(stage, status, elapsed.saturating_sub(nested)));
    }

    /// Records a stage whose outcome was decided elsewhere (a tunnel another probe opened).
    pub fn record(&self, stage: Stage, status: StageStatus, elapsed: Duration) {
        self.lock().stages.push(stage_report(stage, status, elapsed));
    }

    /// The stages in progress, closed as failed; used when the attempt is cut short. The
    /// innermost is the one to blame.
    pub fn interrupt(&self) -> Option<Stage> {
        let mut progress = self.lock();
        let open = std::mem::take(&mut progress.open);
        let blamed = open.last().map(|o| o.stage);
        for o in open.into_iter().rev() {
            let own = o.started.elapsed().saturating_sub(o.nested);
            progress.stages.push(stage_report(o.stage, StageStatus::Fail, own));
        }
        blamed
    }

    /// The innermost stage in progress, else the last one recorded: for failures raised
    /// between stages.
    pub fn last_stage(&self) -> Option<Stage> {
        let progress = self.lock();
        progress.open.last().map(|o| o.stage).or_else(|| progress.stages.last().map(|s| s.name))
    }

    pub fn set_tls(&self, tls: TlsReport) {
        self.lock().tls = Some(tls);
    }

    pub fn tls(&self) -> Option<TlsReport> {
        self.lock().tls.clone()
    }

    pub fn set_host_key(&self, key: HostKeyReport) {
        self.lock().host_key = Some(key);
    }

    /// A credential whose end or age is known (a signed link, a JWT, a client certificate,
    /// a key's creation date), once per description: what is learned of it later fills in
    /// what was not known yet.
    pub fn add_credential(&self, credential: CredentialReport) {
        let mut progress = self.lock();
        match progress.credentials.iter_mut().find(|c| c.what == credential.what) {
            Some(known) => {
                if known.not_after.is_none() {
                    (known.not_after, known.seconds_left, known.not_after_unix) =
                        (credential.not_after, credential.seconds_left, credential.not_after_unix);
                }
                known.age_seconds = known.age_seconds.or(credential.age_seconds);
            }
            None => progress.credentials.push(credential),
        }
    }

    /// A hygiene finding, once per name; a warning-severity one also warns (with `warning`
    /// as the line the table and markdown show), so the probe WARNs.
    pub fn add_finding(&self, finding: crate::model::report::Finding, warning: Option<Advice>) {
        let mut progress = self.lock();
        if progress.findings.iter().any(|f| f.what == finding.what) {
            return;
        }
        progress.findings.push(finding);
        if let Some(warning) = warning
            && !progress.warnings.contains(&warning)
        {
            progress.warnings.push(warning);
        }
    }

    /// Notes the `host:port` a connection is being opened to.
    pub fn set_dialed(&self, host: &str, port: u16) {
        self.lock().dialed = Some((host.to_string(), port));
    }

    /// The `host:port` of the connection opened last.
    pub fn dialed(&self) -> Option<(String, u16)> {
        self.lock().dialed.clone()
    }

    /// The address the probe's own first connection reached.
    pub fn set_peer(&self, peer: std::net::SocketAddr) {
        self.lock().facts.peer.get_or_insert(peer);
    }

    /// The presented chain of the probe's own handshake.
    pub fn set_chain(&self, chain: Vec<ChainCert>) {
        self.lock().facts.chain = chain;
    }

    pub fn set_http(&self, http: HttpFacts) {
        self.lock().facts.http = Some(http);
    }

    pub fn http_facts(&self) -> Option<HttpFacts> {
        self.lock().facts.http.clone()
    }

    pub fn warn(&self, warning: impl Into<Advice>) {
        let warning = warning.into();
        let mut progress = self.lock();
        if !progress.warnings.contains(&warning) {
            progress.warnings.push(warning);
        }
    }

    /// A failure decided before `stage`'s work began (a refusal to send a credential): the
    /// stage is recorded as failed, and the failure blames it.
    pub fn fail_before(&self, stage: Stage, failure: Failure) -> Failure {
        self.record(stage, StageStatus::Fail, Duration::ZERO);
        failure.at(stage)
    }

    /// Registers a secret a server issued to this probe (an access token, STS keys): it is
    /// scrubbed from this probe's output. Not process-wide, so that a hostile server cannot
    /// make authprobe mask other probes' names, targets or messages.
    pub fn register_secret(&self, value: &str) {
        let forms = crate::model::redact::forms(value);
        let mut progress = self.lock();
        for form in forms {
            if !progress.secrets.contains(&form) {
                progress.secrets.push(form);
                progress.scrubber = None;
            }
        }
    }

    /// A text a server supplied (an error message, a header, a parameter), scrubbed of
    /// every known secret and then capped at `max` characters: in that order, so that a
    /// secret straddling the cut cannot survive in part.
    pub fn server_text(&self, raw: &str, max: usize) -> String {
        self.scrubber().excerpt(raw, max)
    }

    /// The registry plus this probe's run-time secrets, built once per registration rather
    /// than per text (a response's headers are scrubbed one by one).
    fn scrubber(&self) -> Arc<crate::model::redact::Scrubber> {
        let mut progress = self.lock();
        let Progress { secrets, scrubber, .. } = &mut *progress;
        scrubber.get_or_insert_with(|| Arc::new(crate::model::redact::Scrubber::new(secrets))).clone()
    }

    /// A line for `-v` output (e.g. the credential source used).
    pub fn detail(&self, line: impl Into<String>) {
        let line = line.into();
        let mut progress = self.lock();
        if !progress.details.contains(&line) {
            progress.details.push(line);
        }
    }

    /// A line for `-vv` output: what the protocol and the drivers saw (server versions,
    /// negotiated algorithms, response headers, request ids). Scrubbed like everything else.
    pub fn diagnostic(&self, line: impl Into<String>) {
        let line = line.into();
        let mut progress = self.lock();
        if !progress.diagnostics.contains(&line) {
            progress.diagnostics.push(line);
        }
    }

    /// Everything recorded so far, with the planned stages that never ran marked skipped.
    pub fn finish(&self, planned: &[Stage]) -> Recorded {
        let scrubber = self.scrubber();
        let progress = self.lock();
        let mut stages = progress.stages.clone();
        for &stage in planned {
            if !stages.iter().any(|s| s.name == stage) {
                stages.push(stage_report(stage, StageStatus::Skipped, Duration::ZERO));
            }
        }
        // Keep the canonical order even when a probe records stages out of plan order.
        stages.sort_by_key(|s| s.name as u8);
        Recorded {
            stages,
            tls: progress.tls.clone(),
            host_key: progress.host_key.clone(),
            credentials: progress.credentials.clone(),
            findings: progress.findings.clone(),
            facts: progress.facts.clone(),
            warnings: progress.warnings.clone(),
            details: progress.details.clone(),
            diagnostics: progress.diagnostics.clone(),
            scrubber,
        }
    }
}

/// What an attempt left behind.
pub struct Recorded {
    pub stages: Vec<StageReport>,
    pub tls: Option<TlsReport>,
    pub host_key: Option<HostKeyReport>,
    pub credentials: Vec<CredentialReport>,
    pub findings: Vec<crate::model::report::Finding>,
    pub facts: WireFacts,
    pub warnings: Vec<Advice>,
    pub details: Vec<String>,
    pub diagnostics: Vec<String>,
    /// Scrubs the registry's and this probe's run-time secrets (see `register_secret`).
    pub scrubber: Arc<crate::model::redact::Scrubber>,
}

fn stage_report(stage: Stage, status: StageStatus, elapsed: Duration) -> StageReport {
    StageReport { name: stage, status, duration_ms: elapsed.as_millis() as u64, duration_secs: elapsed.as_secs_f64() }
}

/// The release rule's refusal of `what` ("the bearer token") over plain http:// to `url`.
pub fn plain_http_refusal(url: &url::Url, what: &str) -> Failure {
    Failure::new(
        crate::model::error::ErrorClass::TlsHandshake,
        format!(
            "{what} would go over plain http:// to {}, whose identity nothing verifies: authprobe did not send it",
            url.host_str().unwrap_or("the server")
        ),
    )
    .with_hint(crate::advice![
        "use https:// (the server's certificate then vouches for it); or, to send it over plain HTTP anyway, ",
        Fix::AllowUnverifiedPassword
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::error::ErrorClass;

    #[tokio::test]
    async fn stages_are_recorded_and_failures_tagged() {
        let ctx = StageLog::new(14, Duration::from_secs(1));
        ctx.stage(Stage::Dns, async { Ok::<_, Failure>(()) }).await.unwrap();
        let err = ctx
            .stage(Stage::Connect, async { Err::<(), _>(Failure::new(ErrorClass::ConnectRefused, "no")) })
            .await
            .unwrap_err();
        assert_eq!(err.stage, Some(Stage::Connect));
        let recorded = ctx.finish(&[Stage::Dns, Stage::Connect, Stage::Tls, Stage::Check]);
        let summary: Vec<(Stage, StageStatus)> = recorded.stages.iter().map(|s| (s.name, s.status)).collect();
        assert_eq!(
            summary,
            [
                (Stage::Dns, StageStatus::Ok),
                (Stage::Connect, StageStatus::Fail),
                (Stage::Tls, StageStatus::Skipped),
                (Stage::Check, StageStatus::Skipped)
            ]
        );
    }

    #[tokio::test]
    async fn nested_stages_report_their_own_time_and_a_timeout_blames_the_innermost() {
        let ctx = StageLog::new(14, Duration::from_secs(1));
        let outer = ctx.begin(Stage::Auth);
        ctx.stage(Stage::Connect, async {
            tokio::time::sleep(Duration::from_millis(60)).await;
            Ok::<_, Failure>(())
        })
        .await
        .unwrap();
        ctx.end(Stage::Auth, outer, true);
        let recorded = ctx.finish(&[Stage::Connect, Stage::Auth]);
        let connect = recorded.stages.iter().find(|s| s.name == Stage::Connect).unwrap();
        let auth = recorded.stages.iter().find(|s| s.name == Stage::Auth).unwrap();
        assert!(connect.duration_ms >= 60, "{}", connect.duration_ms);
        assert!(auth.duration_ms < 30, "the nested connect is not auth's time: {}", auth.duration_ms);

        let ctx = StageLog::new(14, Duration::from_secs(1));
        ctx.begin(Stage::Auth);
        ctx.begin(Stage::Tls);
        assert_eq!(ctx.interrupt(), Some(Stage::Tls));
        let statuses: Vec<_> = ctx.finish(&[]).stages.iter().map(|s| (s.name, s.status)).collect();
        assert_eq!(statuses, [(Stage::Tls, StageStatus::Fail), (Stage::Auth, StageStatus::Fail)]);
    }

    #[tokio::test]
    async fn interrupt_blames_the_running_stage() {
        let ctx = StageLog::new(14, Duration::from_secs(1));
        let ctx2 = ctx.clone();
        let hung =
            tokio::spawn(async move { ctx2.stage(Stage::Tls, std::future::pending::<Result<(), Failure>>()).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        hung.abort();
        assert_eq!(ctx.interrupt(), Some(Stage::Tls));
    }
}
