//! What a probe holds for one attempt: its [`StageLog`] (stages, findings, secrets,
//! settings) and the connection resources the run shares (trust roots, SSH tunnels, the
//! SSH login gate). Lower connection modules take only the parts they need, so that this
//! module is the one place that knows them all.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use crate::connect::proxy::ProxyPolicy;
use crate::connect::ssh::LoginGate;
use crate::connect::tls::TrustStore;
use crate::connect::tunnel::{Link, TunnelConfig, TunnelPool};
use crate::model::error::Failure;
pub use crate::model::stages::{Recorded, StageLog};

/// Resources shared by every probe of a run, loaded once.
#[derive(Default)]
pub struct Shared {
    /// Shared beyond one run by `serve`, so that each scrape does not reload the system roots.
    pub trust: Arc<TrustStore>,
    /// The open SSH tunnels: probes that name the same tunnel share one connection (and
    /// `serve`'s scrapes share it too: `TunnelPool::kept`).
    pub tunnels: Arc<TunnelPool>,
    /// Keeps the logins to each SSH server under its MaxStartups.
    /// Shared beyond one run by `serve` too: concurrent scrapes must stay under the limit.
    pub ssh_logins: Arc<LoginGate>,
}

/// Handed to a probe for one attempt: its stage log (through `Deref`, so `ctx.stage(…)`,
/// `ctx.warn(…)`) and the run's shared connection resources. Cheap to clone.
#[derive(Clone)]
pub struct ProbeContext {
    log: StageLog,
    pub shared: Arc<Shared>,
    /// The SSH tunnel every connection of this probe goes through (`via`).
    pub via: Option<Arc<TunnelConfig>>,
    /// The tunnel connection this attempt uses, once it has one.
    link: Arc<tokio::sync::Mutex<Option<Arc<Link>>>>,
    /// Which proxy each connection goes through (keys, flags, environment).
    pub proxy: Arc<ProxyPolicy>,
}

impl Deref for ProbeContext {
    type Target = StageLog;

    fn deref(&self) -> &StageLog {
        &self.log
    }
}

impl ProbeContext {
    pub fn new(shared: Arc<Shared>, warn_expiry_days: u32, timeout: Duration) -> Self {
        let mut log = StageLog::new(warn_expiry_days, timeout);
        // The SSH handshake takes only the log: it finds the approvals there.
        log.approvals = shared.trust.approvals.clone();
        ProbeContext { log, shared, via: None, link: Arc::default(), proxy: Arc::default() }
    }

    pub fn allowing_unverified_password(mut self, allow: bool) -> Self {
        self.log.allow_unverified_password = allow;
        self
    }

    /// `hygiene = false`: no question about what the credential may do.
    pub fn with_hygiene(mut self, hygiene: Arc<crate::model::hygiene::HygieneSettings>) -> Self {
        self.log.hygiene = hygiene;
        self
    }

    pub fn with_via(mut self, via: Option<Arc<TunnelConfig>>) -> Self {
        self.via = via;
        self
    }

    pub fn with_proxy(mut self, proxy: Arc<ProxyPolicy>) -> Self {
        self.proxy = proxy;
        self
    }

    /// The same stage log and shared resources without the probe's tunnel or proxy: for
    /// connections that are not the probe's own (its secret store is reached directly).
    pub fn direct(&self) -> ProbeContext {
        ProbeContext {
            log: self.log.clone(),
            shared: self.shared.clone(),
            via: None,
            link: Arc::default(),
            proxy: Arc::default(),
        }
    }

    pub fn log(&self) -> &StageLog {
        &self.log
    }

    /// The tunnel this probe's connections go through, opened (or joined) on first use;
    /// `None` when the probe connects directly.
    pub async fn tunnel(&self) -> Result<Option<Arc<Link>>, Failure> {
        let Some(tunnel) = self.via.clone() else {
            return Ok(None);
        };
        // Held while the tunnel opens: connections a probe makes at once (S3's hygiene
        // questions beside its listing) share one tunnel, opened and recorded once.
        let mut current = self.link.lock().await;
        if let Some(link) = current.as_ref() {
            return Ok(Some(link.clone()));
        }
        let link = self.shared.tunnels.acquire(&self.log, &self.shared.ssh_logins, &self.proxy, &tunnel).await?;
        *current = Some(link.clone());
        Ok(Some(link))
    }
}
