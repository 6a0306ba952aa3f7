//! russh's callbacks: host-key verification during the key exchange, and the reasons
//! servers give for refusing a channel.

use super::*;

/// russh's callbacks: host-key verification, and the reasons servers give for refusing
/// to open a channel (russh keeps only the code; the reason says "connection refused" or
/// "Name or service not known").
pub(super) struct Callbacks {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) policy: HostKeyPolicy,
    pub(super) approvals: Arc<crate::model::approvals::Approvals>,
    pub(super) role: Role,
    pub(super) presented: Arc<Mutex<Option<Presented>>>,
    pub(super) refusals: Arc<Refusals>,
    /// The algorithms the key exchange settled on, for `-vv`.
    pub(super) negotiated: Arc<Mutex<Option<String>>>,
}

/// Hands the reason for a refused channel to the task that asked for the channel.
///
/// russh tells the opener only the code, and tells the callback the reason without saying
/// whose channel it was. The callback runs on the connection's task right after the refusal
/// reached its opener; it parks the reason here and holds that task until the opener has
/// taken it, so no second refusal can be processed in between: whoever finds a reason
/// here is its owner. An opener that gave up (timed out) never takes it; the callback then
/// stops waiting after [`Refusals::HOLD`], which is long enough that a live opener is never
/// that late, even on a loaded machine.
#[derive(Default)]
pub(super) struct Refusals {
    pub(super) parked: Mutex<Option<String>>,
    pub(super) parked_signal: tokio::sync::Notify,
    pub(super) taken_signal: tokio::sync::Notify,
}

impl Refusals {
    pub(super) const HOLD: std::time::Duration = std::time::Duration::from_secs(1);

    pub(super) fn slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        match self.parked.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The callback's side.
    pub(super) async fn park(&self, reason: String) {
        *self.slot() = Some(reason);
        self.parked_signal.notify_one();
        let deadline = tokio::time::Instant::now() + Self::HOLD;
        while self.slot().is_some() {
            if tokio::time::timeout_at(deadline, self.taken_signal.notified()).await.is_err() {
                self.slot().take();
                break;
            }
        }
    }

    /// The opener's side, after its open was refused.
    pub(super) async fn take(&self) -> String {
        let deadline = tokio::time::Instant::now() + Self::HOLD;
        loop {
            if let Some(reason) = self.slot().take() {
                self.taken_signal.notify_one();
                return reason;
            }
            if tokio::time::timeout_at(deadline, self.parked_signal.notified()).await.is_err() {
                return String::new();
            }
        }
    }
}

impl Callbacks {
    fn judge(
        &self,
        algorithm: &str,
        blob: &[u8],
    ) -> (Result<String, Failure>, Option<crate::model::approvals::ApprovedBy>) {
        self.policy.judge_approved(&self.approvals, &self.host, self.port, algorithm, blob, &self.role)
    }
}

impl client::Handler for Callbacks {
    type Error = russh::Error;

    async fn check_server_key(&mut self, server_key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let key = server_key.public_key();
        let blob = key.to_bytes().unwrap_or_default();
        let algorithm = key.algorithm().as_str().to_string();
        let certificate = server_key.certificate();
        let now = u64::try_from(crate::model::expiry::now_unix()).unwrap_or_default();
        let certified = certificate.and_then(|cert| self.policy.certified(&self.host, self.port, cert, now));
        let (verdict, approved) = match certified {
            Some(Ok(how)) => (Ok(how), None),
            // A certificate that does not hold is judged by its key, as ssh does; a refusal
            // then also says why the certificate was not enough.
            Some(Err(why)) => {
                let (verdict, approved) = self.judge(&algorithm, &blob);
                let verdict = verdict.map_err(|failure| {
                    let message = format!("{} ({why})", failure.message);
                    Failure { message, ..failure }
                });
                (verdict, approved)
            }
            None => self.judge(&algorithm, &blob),
        };
        let trusted = verdict.is_ok();
        let sha256 = sha256_fingerprint(&blob);
        let certificate = certificate.map(HostCertificate::of);
        if let Ok(mut slot) = self.presented.lock() {
            *slot = Some(Presented { algorithm, sha256, blob, verdict, approved, certificate });
        }
        Ok(trusted)
    }

    async fn kex_done(
        &mut self,
        _shared_secret: Option<&[u8]>,
        names: &russh::Names,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let settled = format!(
            "kex {}, host key {}, cipher {}, mac {}",
            names.kex.as_ref(),
            names.key.as_str(),
            names.cipher.as_ref(),
            names.client_mac.as_ref()
        );
        if let Ok(mut slot) = self.negotiated.lock() {
            slot.get_or_insert(settled);
        }
        Ok(())
    }

    async fn channel_open_failure(
        &mut self,
        _channel: russh::ChannelId,
        _reason: ChannelOpenFailure,
        description: &str,
        _language: &str,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.refusals.park(crate::model::redact::excerpt(description, 200)).await;
        Ok(())
    }
}
