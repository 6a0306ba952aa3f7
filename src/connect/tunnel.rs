//! SSH tunnels: a `[[tunnel]]` is a bastion, and a probe with `via = "NAME"` makes every
//! connection through a direct-tcpip channel of it, as `ssh -J` would. The tunnel's own
//! steps are the probe's first stages (`tunnel_connect`: TCP, key exchange and host key;
//! `tunnel_auth`: login), and its failures say so, so a broken bastion is never blamed on
//! the target. All probes of a run that name the same tunnel share one SSH connection;
//! `serve` keeps it between scrapes, checking that it still answers before each reuse.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::TableReader;
use crate::connect::net::{self, BoxIo};
use crate::connect::proxy::through::{self, Via};
use crate::connect::proxy::{ProxyPolicy, Traffic};
use crate::connect::ssh::{self, Role, SshTarget};
use crate::model::error::{ErrorClass, Failure, Stage};
use crate::model::report::StageStatus;
use crate::model::stages::StageLog;

/// One checked `[[tunnel]]`.
#[derive(Debug)]
pub struct TunnelConfig {
    pub name: String,
    pub ssh: SshTarget,
}

impl TunnelConfig {
    /// Reads the keys of a `[[tunnel]]` table other than `name`.
    pub fn read(t: &TableReader<'_, '_>, name: String) -> Option<TunnelConfig> {
        let ssh = SshTarget::read(t)?;
        if matches!(ssh.auth, crate::connect::ssh::SshAuth::Gssapi) {
            t.error_at("auth", "a tunnel logs in with a password, a key or the agent; Kerberos is for sftp probes");
            return None;
        }
        Some(TunnelConfig { name, ssh })
    }

    fn describe(&self) -> String {
        format!("{}@{}", self.ssh.user, self.ssh.address())
    }
}

/// The stages a probe goes through when it uses a tunnel: the tunnel's two first, and no
/// `dns` of its own, since the SSH server resolves the target's name.
pub fn stages_via(stages: Vec<Stage>) -> Vec<Stage> {
    let mut out = vec![Stage::TunnelConnect, Stage::TunnelAuth];
    out.extend(stages.into_iter().filter(|s| *s != Stage::Dns));
    out
}

/// An open, authenticated tunnel.
pub struct Link {
    session: ssh::Session,
    opened: Instant,
}

impl Link {
    /// A new channel to `host:port`, connected by the SSH server.
    pub async fn open(&self, host: &str, port: u16) -> Result<BoxIo, Failure> {
        self.session.open_direct(host, port).await
    }
}

/// How long a kept tunnel may take to answer its liveness check before it is reopened.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(2);

/// The tunnels of one run, by name; or, `kept`, of many runs (serve's scrapes).
#[derive(Default)]
pub struct TunnelPool {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    kept: bool,
}

#[derive(Default)]
struct Slot {
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
enum State {
    #[default]
    Idle,
    Up(Arc<Link>),
    /// The last attempt failed; probes that were already waiting share the failure, later
    /// attempts (`--wait` retries) try again.
    Failed {
        failure: Failure,
        at: Instant,
    },
}

impl TunnelPool {
    /// A pool whose connections outlive a run: each reuse first checks that the bastion
    /// still answers, and a dead connection is reopened (its stages recorded as usual).
    pub fn kept() -> TunnelPool {
        TunnelPool { kept: true, ..TunnelPool::default() }
    }

    fn slot(&self, name: &str) -> Arc<Slot> {
        let mut slots = match self.slots.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots.entry(name.to_string()).or_default().clone()
    }

    /// The tunnel connection for an attempt: opened on first use in a run (recorded as the
    /// `tunnel_connect` and `tunnel_auth` stages), shared afterwards.
    pub async fn acquire(
        &self,
        ctx: &StageLog,
        logins: &ssh::LoginGate,
        proxy: &ProxyPolicy,
        tunnel: &TunnelConfig,
    ) -> Result<Arc<Link>, Failure> {
        let slot = self.slot(&tunnel.name);
        // Waiting for another probe that is opening the tunnel counts as connecting.
        let asked = ctx.begin(Stage::TunnelConnect);
        let mut state = slot.state.lock().await;
        match &*state {
            State::Up(link) if !link.session.is_closed() => {
                let alive = !self.kept || link.session.answers(LIVENESS_TIMEOUT).await;
                if alive {
                    ctx.end(Stage::TunnelConnect, asked, true);
                    ctx.record(Stage::TunnelAuth, StageStatus::Ok, Duration::ZERO);
                    let how = if self.kept {
                        format!("connection kept, opened {}s ago, answered a ping", link.opened.elapsed().as_secs())
                    } else {
                        "connection shared with other probes".to_string()
                    };
                    ctx.detail(format!("tunnel {}: {} ({how})", tunnel.name, tunnel.describe()));
                    return Ok(link.clone());
                }
                ctx.detail(format!(
                    "tunnel {}: the kept connection did not answer a ping within {}s: reopened",
                    tunnel.name,
                    LIVENESS_TIMEOUT.as_secs()
                ));
            }
            State::Failed { failure, at } if *at >= asked => {
                // The wait is charged to the stage that failed.
                if failure.stage == Some(Stage::TunnelAuth) {
                    ctx.record(Stage::TunnelConnect, StageStatus::Ok, Duration::ZERO);
                    ctx.end(Stage::TunnelAuth, asked, false);
                } else {
                    ctx.end(Stage::TunnelConnect, asked, false);
                }
                return Err(failure.clone());
            }
            _ => {}
        }
        let result = establish(ctx, logins, proxy, tunnel, asked).await;
        *state = match &result {
            Ok(link) => State::Up(link.clone()),
            Err(failure) => State::Failed { failure: failure.clone(), at: Instant::now() },
        };
        result
    }
}

/// Connects to the bastion, checks its host key and logs in; `started` is when the
/// `tunnel_connect` stage began.
async fn establish(
    ctx: &StageLog,
    logins: &ssh::LoginGate,
    proxy: &ProxyPolicy,
    tunnel: &TunnelConfig,
    started: Instant,
) -> Result<Arc<Link>, Failure> {
    let target = &tunnel.ssh;
    let role = Role::Tunnel(tunnel.name.clone());
    ctx.detail(format!("tunnel {}: {}", tunnel.name, tunnel.describe()));
    let login = logins.admit(&target.address()).await;
    let connected = async {
        // As ssh's ProxyCommand: the bastion is reached through the proxy, if one applies.
        let choice = proxy
            .choose(Traffic::Other, &target.host, target.port)
            .map_err(|why| role.label(Failure::new(ErrorClass::Config, format!("the proxy setting {why}"))))?;
        let stream: net::BoxIo = match &choice.proxy {
            Some((url, source)) => {
                ctx.detail(format!("tunnel {}: proxy {}", tunnel.name, choice.why));
                let via = Via { proxy: url, source };
                through::open(ctx, &via, &target.host, target.port, net::Record::Quietly)
                    .await
                    .map_err(|f| role.label(f))?
            }
            None => {
                let addrs = net::resolve(&target.host, target.port).await.map_err(|f| role.label(f))?;
                let tcp = net::connect_any(&target.host, target.port, &addrs).await.map_err(|f| role.label(f))?;
                Box::new(net::QuickAck::new(tcp))
            }
        };
        ssh::handshake(ctx, stream, target, role.clone()).await
    }
    .await;
    ctx.end(Stage::TunnelConnect, started, connected.is_ok());
    let mut session = connected.map_err(|f| f.at(Stage::TunnelConnect))?;
    let auth = ctx.stage(Stage::TunnelAuth, session.authenticate(ctx, target)).await;
    drop(login);
    auth?;
    Ok(Arc::new(Link { session, opened: Instant::now() }))
}
