//! SSH for every kind that speaks it (the `sftp` probe, `[[tunnel]]` bastions, `inspect`):
//! the host-key policy (pins and `known_hosts`, mandatory: an unapproved key always
//! fails, with its fingerprint and the line that approves it), the credentials (password,
//! private key, agent), and the transport handshake and user authentication on top of
//! russh, with their failures classified.

pub mod known_hosts;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use russh::client::{self, Handle};
use russh::keys::{
    Algorithm, EcdsaCurve, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate,
};
use russh::{ChannelOpenFailure, MethodKind};

use crate::config::TableReader;
use crate::connect::net::BoxIo;
use crate::model::error::{ErrorClass, Failure, classify_io, describe_io, find_cause};
use crate::model::redact::Secret;
use crate::model::report::HostKeyReport;
use crate::model::stages::StageLog;
use known_hosts::{KnownHosts, Verdict};

pub const DEFAULT_PORT: u16 = 22;

/// How many connections to one SSH server may be logging in at once. OpenSSH starts
/// dropping new connections beyond 10 unauthenticated ones (MaxStartups 10:30:100), so more
/// probes than this against one server queue instead of being refused.
pub const LOGINS_PER_SERVER: usize = 8;

/// Admits connections to each SSH server at most [`LOGINS_PER_SERVER`] at a time (an
/// sftp probe's whole session, a tunnel's connection until it is logged in). One per run
/// (one per `serve` process), shared by every probe and tunnel.
#[derive(Default)]
pub struct LoginGate {
    per_server: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl LoginGate {
    pub async fn admit(&self, address: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let semaphore = {
            let mut servers = match self.per_server.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            servers
                .entry(address.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(LOGINS_PER_SERVER)))
                .clone()
        };
        semaphore.acquire_owned().await.ok()
    }
}

/// A host key as `ssh-keygen -l` shows it: `SHA256:` and unpadded base64.
pub fn sha256_fingerprint(blob: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, blob);
    format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref()))
}

/// The config line that approves a host key.
pub fn host_key_line(fingerprint: &str) -> String {
    format!("host_key = \"{fingerprint}\"")
}

/// One approved key: its fingerprint, and optionally the algorithm it was pinned with
/// (`"ssh-ed25519 SHA256:…"`), which then is the only one asked of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pin {
    algorithm: Option<String>,
    sha256: String,
}

/// How a server's host key is approved: pinned fingerprints, a `known_hosts` file, or
/// (when neither is configured) nothing, which fails every key with the line to add.
#[derive(Debug, Clone, Default)]
pub struct HostKeyPolicy {
    pins: Vec<Pin>,
    known_hosts: Option<Arc<KnownHosts>>,
    /// Accept any key without judging it: only for `inspect`, which shows keys and
    /// authenticates nothing.
    show_only: bool,
}

/// Parses `SHA256:…`, `ALGORITHM SHA256:…`, or a public key line `ALGORITHM BASE64 [comment]`.
fn parse_pin(raw: &str) -> Result<Pin, String> {
    let fields: Vec<&str> = raw.split_whitespace().collect();
    let (algorithm, value) = match fields.as_slice() {
        [fingerprint] => (None, *fingerprint),
        [algorithm, value, ..] => (Some(algorithm.to_string()), *value),
        [] => return Err("empty host key".into()),
    };
    if let Some(b64) = value.strip_prefix("SHA256:") {
        let decoded = base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64.trim_end_matches('='));
        return match decoded {
            Ok(bytes) if bytes.len() == 32 => {
                Ok(Pin { algorithm, sha256: format!("SHA256:{}", b64.trim_end_matches('=')) })
            }
            _ => Err(format!("`{value}` is not a SHA256 fingerprint (SHA256: and 43 base64 characters)")),
        };
    }
    if value.starts_with("MD5:") || value.contains(':') && value.len() == 47 {
        return Err(
            "MD5 fingerprints are not accepted: use the SHA256 one (`ssh-keygen -l -E sha256 -f KEY.pub`)".into()
        );
    }
    // A public key as in known_hosts or *.pub: pin exactly that key.
    if let Some(algorithm) = algorithm
        && let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(value)
        && known_hosts::blob_algorithm(&blob) == Some(algorithm.as_str())
    {
        return Ok(Pin { algorithm: Some(algorithm), sha256: sha256_fingerprint(&blob) });
    }
    Err(format!("`{raw}` is not a host key: write \"SHA256:…\" as `ssh-keygen -lf` prints it, or the public key line"))
}

impl HostKeyPolicy {
    /// Reads `host_key` (a string or a list, for rotations) and `known_hosts`.
    pub fn read(t: &TableReader<'_, '_>) -> Option<HostKeyPolicy> {
        let mut ok = true;
        let mut policy = HostKeyPolicy::default();
        let raw_pins: Vec<String> = match t.get("host_key").map(|v| v.get_ref().as_str().is_some()) {
            Some(true) => t.string("host_key").into_iter().collect(),
            Some(false) => t.string_list("host_key").unwrap_or_default(),
            None => Vec::new(),
        };
        for raw in raw_pins {
            match parse_pin(&raw) {
                Ok(pin) => policy.pins.push(pin),
                Err(why) => {
                    t.error_at("host_key", why);
                    ok = false;
                }
            }
        }
        if let Some((path, bytes)) = t.file_bytes("known_hosts") {
            match KnownHosts::parse(&path, &String::from_utf8_lossy(&bytes)) {
                Ok(file) => policy.known_hosts = Some(Arc::new(file)),
                Err(why) => {
                    t.error_at("known_hosts", format!("{}: {why}", path.display()));
                    ok = false;
                }
            }
        } else if t.has("known_hosts") {
            ok = false;
        }
        ok.then_some(policy)
    }

    /// The host-key algorithms to ask for, approved ones first (as `ssh` orders them by
    /// known_hosts), so that a server with several keys presents one that can be checked.
    fn preferred_algorithms(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let mut named: Vec<String> = self.pins.iter().filter_map(|p| p.algorithm.clone()).collect();
        if let Some(file) = &self.known_hosts {
            named.extend(file.algorithms_for(host, port));
        }
        let mut preferred: Vec<Algorithm> = Vec::new();
        for name in named {
            for algorithm in negotiable(&name) {
                if !preferred.contains(&algorithm) {
                    preferred.push(algorithm);
                }
            }
        }
        let pinned_algorithm_only = !self.pins.is_empty() && self.pins.iter().all(|p| p.algorithm.is_some());
        if !pinned_algorithm_only {
            for algorithm in russh::Preferred::DEFAULT.key.iter() {
                if !preferred.contains(algorithm) {
                    preferred.push(algorithm.clone());
                }
            }
        }
        preferred
    }
}

/// The negotiation names under which a key type is asked for.
fn negotiable(key_type: &str) -> Vec<Algorithm> {
    match key_type {
        "ssh-rsa" | "rsa-sha2-256" | "rsa-sha2-512" => {
            vec![Algorithm::Rsa { hash: Some(HashAlg::Sha512) }, Algorithm::Rsa { hash: Some(HashAlg::Sha256) }]
        }
        "ssh-ed25519" => vec![Algorithm::Ed25519],
        "ecdsa-sha2-nistp256" => vec![Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 }],
        "ecdsa-sha2-nistp384" => vec![Algorithm::Ecdsa { curve: EcdsaCurve::NistP384 }],
        "ecdsa-sha2-nistp521" => vec![Algorithm::Ecdsa { curve: EcdsaCurve::NistP521 }],
        _ => Vec::new(),
    }
}

/// Who an SSH connection belongs to, for messages: the probe itself, or a tunnel.
#[derive(Debug, Clone)]
pub enum Role {
    Probe,
    Tunnel(String),
}

impl Role {
    /// Where the settings that fix a problem live.
    fn settings(&self) -> String {
        match self {
            Role::Probe => "the probe".into(),
            Role::Tunnel(name) => format!("[[tunnel]] `{name}`"),
        }
    }

    /// Prefixes a tunnel's failure with the tunnel's name, so it is never blamed on the target.
    pub fn label(&self, failure: Failure) -> Failure {
        match self {
            Role::Probe => failure,
            Role::Tunnel(name) => Failure { message: format!("tunnel `{name}`: {}", failure.message), ..failure },
        }
    }

    /// Prefixes a failure to reach the target through this connection: the tunnel worked,
    /// and what follows is what its far end found.
    fn via(&self, failure: Failure) -> Failure {
        match self {
            Role::Probe => failure,
            Role::Tunnel(name) => Failure { message: format!("via tunnel `{name}`: {}", failure.message), ..failure },
        }
    }
}

/// A key the server presented, and what the policy made of it.
#[derive(Debug, Clone)]
struct Presented {
    algorithm: String,
    sha256: String,
    blob: Vec<u8>,
    /// How the key was approved, or why not.
    verdict: Result<String, Failure>,
}

impl HostKeyPolicy {
    pub fn judge(&self, host: &str, port: u16, algorithm: &str, blob: &[u8], role: &Role) -> Result<String, Failure> {
        if self.show_only {
            return Ok("shown, not judged".into());
        }
        let sha256 = sha256_fingerprint(blob);
        let approve = host_key_line(&sha256);
        let where_ = role.settings();
        let known_line = known_hosts::entry_line(host, port, algorithm, blob);
        if self.pins.iter().any(|p| p.sha256 == sha256) {
            return Ok("pinned by host_key".into());
        }
        if let Some(file) = &self.known_hosts {
            let path = file.path.display();
            let name = known_hosts::host_entry_name(host, port);
            match file.verdict(host, port, algorithm, blob) {
                Verdict::Trusted(line) => return Ok(format!("listed in {path} line {line}")),
                Verdict::Revoked(line) => {
                    return Err(Failure::new(
                        ErrorClass::HostKey,
                        format!("the server presented {algorithm} {sha256}, which {path} line {line} marks @revoked"),
                    )
                    .with_hint("a revoked key must never be accepted: this server (or whoever answers for it) is not to be trusted; ask its owner"));
                }
                Verdict::Changed(lines) => {
                    let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                    return Err(Failure::new(
                        ErrorClass::HostKey,
                        format!(
                            "the host key of {name} has CHANGED: the server presented {algorithm} {sha256}, but {path} line {} holds another {algorithm} key",
                            lines.join(", ")
                        ),
                    )
                    .with_hint(format!(
                        "someone may be intercepting the connection, or the server was rebuilt: verify the new key with its owner, then run `ssh-keygen -R '{name}' -f {path}` and add `{known_line}` (or set {approve} in {where_})"
                    )));
                }
                Verdict::OtherAlgorithms(known) if self.pins.is_empty() => {
                    return Err(Failure::new(
                        ErrorClass::HostKey,
                        format!(
                            "{path} lists {name} only with {} keys, but the server presented {algorithm} {sha256}",
                            known.join(", ")
                        ),
                    )
                    .with_hint(format!(
                        "the server no longer offers the known key type: verify the new key with its owner, then add `{known_line}` to {path} (or set {approve} in {where_})"
                    )));
                }
                Verdict::OtherAlgorithms(_) | Verdict::Unknown => {}
            }
        }
        let (message, hint) = if !self.pins.is_empty() {
            (
                format!("the server presented {algorithm} {sha256}, which matches no pinned host_key"),
                format!(
                    "if the key changed on purpose (server rebuilt), verify it with the server's owner and update {where_}: {approve}; otherwise someone may be intercepting the connection"
                ),
            )
        } else if let Some(file) = &self.known_hosts {
            (
                format!(
                    "{} is not in {}; the server presented {algorithm} {sha256}",
                    known_hosts::host_entry_name(host, port),
                    file.path.display()
                ),
                format!(
                    "verify the fingerprint with the server's owner (`ssh-keygen -lf` on its host key), then add `{known_line}` to {} or set {approve} in {where_}",
                    file.path.display()
                ),
            )
        } else {
            (
                format!(
                    "the server's host key is not approved: it presented {algorithm} {sha256} and no host_key or known_hosts is configured"
                ),
                format!(
                    "verify the fingerprint with the server's owner (`ssh-keygen -lf` on its host key), then add to {where_}: {approve}"
                ),
            )
        };
        Err(Failure::new(ErrorClass::HostKey, message).with_hint(hint))
    }
}

/// Which credentials to log in with.
#[derive(Debug, Clone)]
pub enum SshAuth {
    Password(Secret),
    Key(Arc<KeyFile>),
    /// Every identity the agent at `SSH_AUTH_SOCK` holds, in its order.
    Agent,
}

/// A decoded private key and where it came from.
pub struct KeyFile {
    pub path: PathBuf,
    pub key: Arc<PrivateKey>,
    /// The file's mode when group or others can read it (ssh refuses such keys).
    pub loose_mode: Option<u32>,
}

impl KeyFile {
    /// The public half's fingerprint, which names the key in messages.
    pub fn fingerprint(&self) -> String {
        sha256_fingerprint(&self.key.public_key().to_bytes().unwrap_or_default())
    }
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("KeyFile").field("path", &self.path).field("public", &self.fingerprint()).finish()
    }
}

const AUTH_TYPES: &[&str] = &["password", "key", "agent"];

impl SshAuth {
    pub fn read(t: &TableReader<'_, '_>) -> Option<SshAuth> {
        let Some(a) = t.table("auth") else {
            if !t.has("auth") {
                t.error_here(
                    "missing required key `auth` (e.g. auth = { type = \"key\", private_key = \"~/.ssh/id_ed25519\" })",
                );
            }
            return None;
        };
        let kind = a.required_string("type", AUTH_TYPES.join(" | ").as_str());
        let auth = match kind.as_deref() {
            None => None,
            Some("password") => a.required_secret("password", "the password").map(SshAuth::Password),
            Some("agent") => Some(SshAuth::Agent),
            Some("key") => read_key(&a).map(|k| SshAuth::Key(Arc::new(k))),
            Some(other) => {
                let hint = crate::config::reader::did_you_mean(other, AUTH_TYPES)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_else(|| format!("; use one of: {}", AUTH_TYPES.join(", ")));
                a.error_at("type", format!("unknown SSH auth type `{other}`{hint}"));
                return None;
            }
        };
        a.finish();
        auth
    }
}

fn read_key(a: &TableReader<'_, '_>) -> Option<KeyFile> {
    let passphrase = a.secret("passphrase");
    let passphrase_ok = passphrase.is_some() || !a.has("passphrase");
    if !a.has("private_key") {
        a.required_string("private_key", "the private key file, e.g. ~/.ssh/id_ed25519");
        return None;
    }
    let (path, bytes) = a.file_bytes("private_key")?;
    if !passphrase_ok {
        return None;
    }
    let text = String::from_utf8_lossy(&bytes);
    let key = match russh::keys::decode_secret_key(&text, passphrase.as_ref().map(|p| p.expose())) {
        Ok(key) => key,
        Err(err) => {
            let why = match (&err, &passphrase) {
                (russh::keys::Error::KeyIsEncrypted, _) => "the key is encrypted: set `passphrase`".to_string(),
                (_, Some(_)) if text.contains("ENCRYPTED") || text.contains("OPENSSH PRIVATE KEY") => {
                    "cannot decrypt the key: is the passphrase right?".to_string()
                }
                _ => format!("not a usable private key ({err})"),
            };
            a.error_at("private_key", format!("{}: {why}", path.display()));
            return None;
        }
    };
    let loose_mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&path).ok().map(|m| m.permissions().mode() & 0o777).filter(|mode| mode & 0o077 != 0)
    };
    Some(KeyFile { path, key: Arc::new(key), loose_mode })
}

/// Where to log in, as whom, and which host key to expect: the keys an `sftp` probe and a
/// `[[tunnel]]` share.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub auth: SshAuth,
    pub host_keys: HostKeyPolicy,
}

impl SshTarget {
    pub fn read(t: &TableReader<'_, '_>) -> Option<SshTarget> {
        let host = t.required_string("host", "the SSH server's host name or address");
        let port = t.port("port");
        let port_ok = port.is_some() || !t.has("port");
        let user = t.required_string("user", "the SSH user");
        let auth = SshAuth::read(t);
        let host_keys = HostKeyPolicy::read(t);
        if !port_ok {
            return None;
        }
        Some(SshTarget {
            host: host?,
            port: port.unwrap_or(DEFAULT_PORT),
            user: user?,
            auth: auth?,
            host_keys: host_keys?,
        })
    }

    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// russh's callbacks: host-key verification, and the reasons servers give for refusing
/// to open a channel (russh keeps only the code; the reason says "connection refused" or
/// "Name or service not known").
struct Callbacks {
    host: String,
    port: u16,
    policy: HostKeyPolicy,
    role: Role,
    presented: Arc<Mutex<Option<Presented>>>,
    refusals: Arc<Refusals>,
    /// The algorithms the key exchange settled on, for `-vv`.
    negotiated: Arc<Mutex<Option<String>>>,
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
struct Refusals {
    parked: Mutex<Option<String>>,
    parked_signal: tokio::sync::Notify,
    taken_signal: tokio::sync::Notify,
}

impl Refusals {
    const HOLD: std::time::Duration = std::time::Duration::from_secs(1);

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        match self.parked.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The callback's side.
    async fn park(&self, reason: String) {
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
    async fn take(&self) -> String {
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

impl client::Handler for Callbacks {
    type Error = russh::Error;

    async fn check_server_key(&mut self, server_key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_key else {
            // Host certificates are never asked for; a server sending one anyway is refused.
            return Ok(false);
        };
        let blob = key.to_bytes().unwrap_or_default();
        let algorithm = key.algorithm().as_str().to_string();
        let verdict = self.policy.judge(&self.host, self.port, &algorithm, &blob, &self.role);
        let trusted = verdict.is_ok();
        let sha256 = sha256_fingerprint(&blob);
        if let Ok(mut slot) = self.presented.lock() {
            *slot = Some(Presented { algorithm, sha256, blob, verdict });
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

/// An SSH connection past key exchange (authenticated once `authenticate` succeeds).
pub struct Session {
    handle: Handle<Callbacks>,
    refusals: Arc<Refusals>,
    pub role: Role,
    pub address: String,
}

fn client_config(preferred_keys: Vec<Algorithm>) -> Arc<client::Config> {
    let preferred = russh::Preferred { key: preferred_keys.into(), ..russh::Preferred::DEFAULT };
    Arc::new(client::Config {
        client_id: russh::SshId::Standard(concat!("SSH-2.0-authprobe_", env!("CARGO_PKG_VERSION")).into()),
        preferred,
        nodelay: true,
        ..client::Config::default()
    })
}

/// The key exchange over `stream`, with the host key checked against the target's policy.
/// The key goes into the report (also when it is refused).
pub async fn handshake(ctx: &StageLog, stream: BoxIo, target: &SshTarget, role: Role) -> Result<Session, Failure> {
    let presented = Arc::new(Mutex::new(None));
    let refusals = Arc::new(Refusals::default());
    let negotiated = Arc::new(Mutex::new(None));
    let callbacks = Callbacks {
        host: target.host.clone(),
        port: target.port,
        policy: target.host_keys.clone(),
        role: role.clone(),
        presented: presented.clone(),
        refusals: refusals.clone(),
        negotiated: negotiated.clone(),
    };
    let config = client_config(target.host_keys.preferred_algorithms(&target.host, target.port));
    let (stream, first_bytes) = FirstBytes::new(stream);
    let result = client::connect_stream(config, stream, callbacks).await;
    let shown = presented.lock().ok().and_then(|p| p.clone());
    let address = target.address();
    if let Some(key) = &shown {
        let approval = key.verdict.as_ref().ok();
        match (&role, approval) {
            (Role::Tunnel(name), Some(how)) => {
                ctx.detail(format!("tunnel {name}: host key {} {} ({how})", key.algorithm, key.sha256))
            }
            (_, approval) => {
                if let Some(how) = approval {
                    ctx.detail(format!("host key approved: {how}"));
                }
                ctx.set_host_key(HostKeyReport {
                    algorithm: key.algorithm.clone(),
                    sha256: key.sha256.clone(),
                    host: address.clone(),
                    verified: approval.is_some(),
                });
            }
        }
    }
    let banner = first_bytes
        .lock()
        .ok()
        .and_then(|seen| String::from_utf8_lossy(&seen).lines().find(|l| l.starts_with("SSH-")).map(str::to_string));
    let settled = negotiated.lock().ok().and_then(|n| n.clone());
    if banner.is_some() || settled.is_some() {
        let who = match &role {
            Role::Probe => String::new(),
            Role::Tunnel(name) => format!("tunnel {name}: "),
        };
        let banner = banner.map(|b| format!("server {b}")).unwrap_or_else(|| "no banner".into());
        let settled = settled.map(|s| format!("; {s}")).unwrap_or_default();
        ctx.diagnostic(format!("{who}ssh: {banner}{settled}"));
    }
    match result {
        Ok(handle) => Ok(Session { handle, refusals, role, address }),
        Err(err) => {
            let failure = match (&err, shown) {
                (russh::Error::UnknownKey, Some(Presented { verdict: Err(failure), .. })) => failure,
                _ => not_ssh(&first_bytes).unwrap_or_else(|| classify_transport(&err, &address)),
            };
            Err(role.label(failure))
        }
    }
}

/// Keeps the first bytes a server sends: SSH clients skip lines before the banner, so a
/// server speaking another protocol otherwise looks like one that hung up.
struct FirstBytes<S> {
    inner: S,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl<S> FirstBytes<S> {
    const KEEP: usize = 256;

    fn new(inner: S) -> (Self, Arc<Mutex<Vec<u8>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        (FirstBytes { inner, seen: seen.clone() }, seen)
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstBytes<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Ok(mut seen) = self.seen.lock()
            && seen.len() < Self::KEEP
        {
            let fresh = &buf.filled()[before..];
            let room = Self::KEEP - seen.len();
            seen.extend_from_slice(&fresh[..fresh.len().min(room)]);
            // SSH allows text lines before the banner, so a client keeps reading; a server
            // that answered in another protocol would keep it reading until the timeout.
            if foreign(&seen) {
                return std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the server speaks another protocol",
                )));
            }
        }
        result
    }
}

crate::connect::net::forward_async_write!(FirstBytes);

/// What the connection's first bytes say about the server, as the client reads them:
/// whether they are another protocol, and the failure to report if they are no banner.
/// For fuzzing the sniffer.
pub fn sniff_first_bytes(seen: &[u8]) -> (bool, Option<Failure>) {
    (foreign(seen), not_ssh(&Mutex::new(seen.to_vec())))
}

/// Bytes no SSH server sends before its banner: an HTTP status line, or binary data (a
/// TLS record, a database greeting). Lines before the banner are text.
fn foreign(seen: &[u8]) -> bool {
    let before_banner = match seen.windows(4).position(|w| w == b"SSH-") {
        Some(at) => &seen[..at],
        None => seen,
    };
    before_banner.starts_with(b"HTTP/")
        || before_banner.iter().any(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n')) || b >= 0x80)
}

/// The server answered, but not with an SSH banner: quote its first line.
fn not_ssh(first_bytes: &Mutex<Vec<u8>>) -> Option<Failure> {
    let seen = first_bytes.lock().ok()?.clone();
    if seen.is_empty() || seen.starts_with(b"SSH-") || String::from_utf8_lossy(&seen).contains("\nSSH-") {
        return None;
    }
    let first_line: String = String::from_utf8_lossy(&seen)
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(60)
        .collect();
    if first_line.contains("MaxStartups") {
        // OpenSSH's own words when it drops a connection because too many others have
        // not finished logging in yet.
        return Some(
            Failure::new(ErrorClass::Network, format!("the SSH server refused the connection: `{first_line}`"))
                .with_hint("too many connections to this SSH server are logging in at once (its MaxStartups): retry, lower --concurrency, or raise MaxStartups in sshd_config"),
        );
    }
    Some(
        Failure::new(
            ErrorClass::Protocol,
            format!("the server did not answer with an SSH banner; it said `{first_line}`"),
        )
        .with_hint("check the port: this is another protocol's server, not SSH"),
    )
}

/// A failure before or during key exchange.
fn classify_transport(err: &russh::Error, address: &str) -> Failure {
    use russh::Error as E;
    match err {
        E::IO(io) => match io.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => Failure::new(
                ErrorClass::Network,
                format!("{address} closed the connection during the SSH handshake ({})", describe_io(io)),
            )
            .with_hint("the server dropped us before authentication: check its MaxStartups, TCP wrappers or fail2ban, and that this port speaks SSH"),
            _ => Failure::new(classify_io(io), format!("SSH handshake with {address}: {}", describe_io(io))),
        },
        E::Version => Failure::new(ErrorClass::Protocol, format!("{address} did not answer with an SSH banner"))
            .with_hint("check the port: this does not look like an SSH server"),
        E::Disconnect | E::HUP => Failure::new(
            ErrorClass::Network,
            format!("{address} closed the connection during the SSH handshake"),
        )
        .with_hint("the server dropped us before authentication: check its MaxStartups, TCP wrappers or fail2ban, and that this port speaks SSH"),
        E::NoCommonAlgo { kind, theirs, .. } => Failure::new(
            ErrorClass::Protocol,
            format!("{address} and authprobe share no {kind:?} algorithm (the server offers {})", theirs.join(", ")),
        )
        .with_hint("the server only offers algorithms authprobe considers unsafe or does not implement: update the server's SSH configuration"),
        E::UnknownKey => Failure::new(ErrorClass::HostKey, format!("{address} presented a host key authprobe cannot check")),
        other => {
            if let Some(io) = find_cause::<std::io::Error>(other) {
                return Failure::new(classify_io(io), format!("SSH handshake with {address}: {}", describe_io(io)));
            }
            Failure::new(ErrorClass::Protocol, format!("SSH handshake with {address} failed: {other}"))
        }
    }
}

fn method_names(methods: &russh::MethodSet) -> String {
    let names: Vec<&str> = methods.iter().map(<&str>::from).collect();
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

impl Session {
    /// Logs in as the target's user with its credentials.
    pub async fn authenticate(&mut self, ctx: &StageLog, target: &SshTarget) -> Result<(), Failure> {
        let user = target.user.as_str();
        let result = match &target.auth {
            SshAuth::Password(password) => self
                .handle
                .authenticate_password(user, password.expose())
                .await
                .map_err(|e| self.lost(&e, "password authentication")),
            SshAuth::Key(file) => {
                if let Some(mode) = file.loose_mode {
                    ctx.warn(format!(
                        "private key {} is readable by group or others (mode {mode:04o}); ssh refuses such keys: chmod 600 it",
                        file.path.display()
                    ));
                }
                let hash = if file.key.algorithm().is_rsa() {
                    self.handle.best_supported_rsa_hash().await.ok().flatten().flatten()
                } else {
                    None
                };
                self.handle
                    .authenticate_publickey(user, PrivateKeyWithHashAlg::new(file.key.clone(), hash))
                    .await
                    .map_err(|e| self.lost(&e, "public key authentication"))
            }
            SshAuth::Agent => self.authenticate_with_agent(user).await,
        }?;
        match result {
            russh::client::AuthResult::Success => Ok(()),
            russh::client::AuthResult::Failure { remaining_methods, partial_success } => {
                Err(self.role.label(self.refused(target, &remaining_methods, partial_success)))
            }
        }
    }

    async fn authenticate_with_agent(&mut self, user: &str) -> Result<russh::client::AuthResult, Failure> {
        let no_agent = |why: String| {
            Failure::new(ErrorClass::Config, why).with_hint(
                "start an agent (eval $(ssh-agent); ssh-add KEY) and export SSH_AUTH_SOCK, or use auth type `key`",
            )
        };
        if std::env::var_os("SSH_AUTH_SOCK").is_none() {
            return Err(no_agent("auth type `agent`, but SSH_AUTH_SOCK is not set".into()));
        }
        let mut agent = russh::keys::agent::client::AgentClient::connect_env()
            .await
            .map_err(|e| no_agent(format!("cannot reach the SSH agent at SSH_AUTH_SOCK: {e}")))?;
        let identities = agent
            .request_identities()
            .await
            .map_err(|e| no_agent(format!("the SSH agent did not list its keys: {e}")))?;
        if identities.is_empty() {
            return Err(no_agent("the SSH agent holds no keys".into()));
        }
        let mut last = None;
        for identity in identities {
            let key: PublicKey = identity.public_key().into_owned();
            let hash = if key.algorithm().is_rsa() {
                self.handle.best_supported_rsa_hash().await.ok().flatten().flatten()
            } else {
                None
            };
            let result = self.handle.authenticate_publickey_with(user, key, hash, &mut agent).await.map_err(|e| {
                Failure::new(ErrorClass::Config, format!("the SSH agent could not sign: {e}"))
                    .with_hint("check that the agent still holds the key (ssh-add -l) and is not locked")
            })?;
            if matches!(result, russh::client::AuthResult::Success) {
                return Ok(result);
            }
            last = Some(result);
        }
        last.ok_or_else(|| no_agent("the SSH agent holds no keys".into()))
    }

    /// The connection broke while authenticating.
    fn lost(&self, err: &russh::Error, what: &str) -> Failure {
        let failure = match find_cause::<std::io::Error>(err) {
            Some(io) => Failure::new(classify_io(io), format!("{} during {what}: {}", self.address, describe_io(io))),
            None => Failure::new(ErrorClass::Network, format!("{} closed the connection during {what}", self.address)),
        };
        self.role.label(failure)
    }

    fn refused(&self, target: &SshTarget, remaining: &russh::MethodSet, partial: bool) -> Failure {
        let offered = method_names(remaining);
        let user = &target.user;
        let address = &self.address;
        if partial {
            return Failure::new(
                ErrorClass::AuthRejected,
                format!("{address} accepted the credentials for `{user}` but wants another factor too ({offered})"),
            )
            .with_hint("this account needs more than one authentication method: authprobe probes one");
        }
        let (what, method, hint) = match &target.auth {
            SshAuth::Password(_) => (
                "the password".to_string(),
                MethodKind::Password,
                format!("check the password for `{user}`, and that the account is not locked or expired"),
            ),
            SshAuth::Key(file) => (
                format!("the key {} ({})", file.path.display(), file.fingerprint()),
                MethodKind::PublicKey,
                format!(
                    "add the public key to ~{user}/.ssh/authorized_keys on the server (ssh-copy-id), or check that the user is right"
                ),
            ),
            SshAuth::Agent => (
                "every key the SSH agent holds".to_string(),
                MethodKind::PublicKey,
                format!("none of the agent's keys (ssh-add -l) is in ~{user}/.ssh/authorized_keys on the server"),
            ),
        };
        let not_offered = !remaining.is_empty() && !remaining.contains(&method);
        if not_offered {
            let method: &str = (&method).into();
            return Failure::new(
                ErrorClass::AuthRejected,
                format!("{address} does not accept {method} authentication for `{user}`; it offers: {offered}"),
            )
            .with_hint(format!(
                "use one of the methods the server offers ({offered}), or ask its owner to enable {method}"
            ));
        }
        Failure::new(
            ErrorClass::AuthRejected,
            format!("{address} refused {what} for `{user}` (the server offers: {offered})"),
        )
        .with_hint(hint)
    }

    /// Opens a direct-tcpip channel: the server connects to `host:port` for us.
    pub async fn open_direct(&self, host: &str, port: u16) -> Result<BoxIo, Failure> {
        match self.handle.channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0).await {
            Ok(channel) => Ok(Box::new(channel.into_stream())),
            Err(russh::Error::ChannelOpenFailure(reason)) => {
                let description = self.refusals.take().await;
                Err(self.role.via(classify_open_failure(&reason, &description, host, port)))
            }
            Err(err) => Err(self.lost(&err, &format!("the request to connect to {host}:{port}"))),
        }
    }

    /// Starts the `sftp` subsystem on a new session channel.
    pub async fn open_sftp(&self) -> Result<russh::ChannelStream<client::Msg>, Failure> {
        let mut channel = match self.handle.channel_open_session().await {
            Ok(channel) => channel,
            Err(russh::Error::ChannelOpenFailure(reason)) => {
                let said = self.refusals.take().await;
                return Err(Failure::new(
                    ErrorClass::PermissionDenied,
                    format!("{} refused a session channel ({reason:?}: {said})", self.address),
                )
                .with_hint("the account may not open sessions (e.g. a forwarding-only account): SFTP needs one"));
            }
            Err(err) => return Err(self.lost(&err, "opening a session channel")),
        };
        channel.request_subsystem(true, "sftp").await.map_err(|e| self.lost(&e, "starting the sftp subsystem"))?;
        loop {
            match channel.wait().await {
                Some(russh::ChannelMsg::Success) => return Ok(channel.into_stream()),
                Some(russh::ChannelMsg::Failure) | Some(russh::ChannelMsg::Close) | None => {
                    return Err(Failure::new(
                        ErrorClass::Protocol,
                        format!("{} refused to start the sftp subsystem", self.address),
                    )
                    .with_hint("the server has no SFTP (Subsystem sftp in sshd_config), or the account may only run a forced command"));
                }
                Some(_) => {}
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Says goodbye, so the server logs a clean disconnect; best effort, briefly.
    pub async fn close(&self) {
        let goodbye = self.handle.disconnect(russh::Disconnect::ByApplication, "", "en");
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), goodbye).await;
    }
}

/// A host key found by [`scan`].
#[derive(Debug, Clone)]
pub struct ScannedKey {
    pub algorithm: String,
    pub sha256: String,
    /// The key in SSH wire format (for known_hosts lines).
    pub blob: Vec<u8>,
}

/// The key types asked for one at a time by [`scan`], in the order a probe prefers them.
const SCAN_ORDER: [Algorithm; 5] = [
    Algorithm::Ed25519,
    Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 },
    Algorithm::Ecdsa { curve: EcdsaCurve::NistP384 },
    Algorithm::Ecdsa { curve: EcdsaCurve::NistP521 },
    Algorithm::Rsa { hash: Some(HashAlg::Sha512) },
];

/// Every host key a server has, one key exchange per key type (as `ssh-keyscan`), without
/// authenticating. The first is the one a probe without known_hosts negotiates.
pub async fn scan(host: &str, port: u16) -> Result<Vec<ScannedKey>, Failure> {
    let address = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let addrs = crate::connect::net::resolve(host, port).await?;
    let mut keys = Vec::new();
    for algorithm in SCAN_ORDER {
        let tcp = crate::connect::net::connect_any(host, port, &addrs).await?;
        let presented = Arc::new(Mutex::new(None));
        let callbacks = Callbacks {
            host: host.to_string(),
            port,
            policy: HostKeyPolicy { show_only: true, ..HostKeyPolicy::default() },
            role: Role::Probe,
            presented: presented.clone(),
            refusals: Arc::default(),
            negotiated: Arc::default(),
        };
        match client::connect_stream(client_config(vec![algorithm]), tcp, callbacks).await {
            Ok(handle) => {
                let goodbye = handle.disconnect(russh::Disconnect::ByApplication, "", "en");
                let _ = tokio::time::timeout(std::time::Duration::from_millis(200), goodbye).await;
            }
            // The server has no key of this type.
            Err(russh::Error::NoCommonAlgo { .. }) => continue,
            Err(err) if keys.is_empty() => return Err(classify_transport(&err, &address)),
            Err(_) => continue,
        }
        if let Some(key) = presented.lock().ok().and_then(|mut p| p.take()) {
            keys.push(ScannedKey { algorithm: key.algorithm, sha256: key.sha256, blob: key.blob });
        }
    }
    if keys.is_empty() {
        return Err(Failure::new(
            ErrorClass::Protocol,
            format!("{address} offered none of the host key types authprobe checks"),
        ));
    }
    Ok(keys)
}

fn classify_open_failure(reason: &ChannelOpenFailure, description: &str, host: &str, port: u16) -> Failure {
    let said = if description.is_empty() { String::new() } else { format!(" ({description})") };
    let lower = description.to_ascii_lowercase();
    match reason {
        ChannelOpenFailure::AdministrativelyProhibited => Failure::new(
            ErrorClass::PermissionDenied,
            format!("the SSH server refused to forward to {host}:{port}{said}"),
        )
        .with_hint("the server does not allow TCP forwarding for this account or this destination (AllowTcpForwarding, PermitOpen in sshd_config)"),
        ChannelOpenFailure::ConnectFailed if lower.contains("refused") => Failure::new(
            ErrorClass::ConnectRefused,
            format!("nothing listens on {host}:{port}, as seen from the SSH server{said}"),
        )
        .with_hint("check the port, and that the service runs and is reachable from the SSH server"),
        ChannelOpenFailure::ConnectFailed
            if ["not known", "resolution", "nodename", "no address", "name or service", "not found"]
                .iter()
                .any(|w| lower.contains(w)) =>
        {
            Failure::new(ErrorClass::Dns, format!("the SSH server cannot resolve {host}{said}"))
                .with_hint("the name must resolve on the SSH server (the tunnel's end), not here: check it there")
        }
        ChannelOpenFailure::ConnectFailed if lower.contains("timed out") => {
            Failure::new(ErrorClass::Timeout, format!("the SSH server's connection to {host}:{port} timed out{said}"))
        }
        ChannelOpenFailure::ConnectFailed => Failure::new(
            ErrorClass::Network,
            format!("the SSH server could not connect to {host}:{port}{said}"),
        )
        .with_hint("the destination is unreachable from the SSH server: check routes and firewalls between them"),
        ChannelOpenFailure::ResourceShortage => {
            Failure::new(ErrorClass::Network, format!("the SSH server is out of resources for a new channel{said}"))
        }
        ChannelOpenFailure::UnknownChannelType => Failure::new(
            ErrorClass::Protocol,
            format!("the SSH server does not support direct-tcpip channels{said}"),
        ),
        ChannelOpenFailure::Other { code, .. } => Failure::new(
            ErrorClass::Network,
            format!("the SSH server refused to connect to {host}:{port} (code {code}){said}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_accept_fingerprints_and_public_keys() {
        let fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
        assert_eq!(parse_pin(fp).unwrap(), Pin { algorithm: None, sha256: fp.into() });
        assert_eq!(
            parse_pin(&format!("ssh-ed25519 {fp}")).unwrap(),
            Pin { algorithm: Some("ssh-ed25519".into()), sha256: fp.into() }
        );
        let public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINKDXRsnH3EkTIceVHujDgkybLokvjJpkGgyB0wjMTfV root@vm";
        let pin = parse_pin(public).unwrap();
        assert_eq!(pin.algorithm.as_deref(), Some("ssh-ed25519"));
        assert!(pin.sha256.starts_with("SHA256:") && pin.sha256.len() == 50, "{}", pin.sha256);
        assert!(parse_pin("SHA256:short").is_err());
        assert!(parse_pin("MD5:12:34").is_err());
        assert!(parse_pin("").is_err());
    }

    #[test]
    fn fingerprints_match_ssh_keygen() {
        // `ssh-keygen -l -E sha256` of the key in the known_hosts tests.
        let blob = base64::engine::general_purpose::STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAINKDXRsnH3EkTIceVHujDgkybLokvjJpkGgyB0wjMTfV")
            .unwrap();
        assert_eq!(sha256_fingerprint(&blob), "SHA256:Toz1v0I20ZMI9Ak7vlAnkxpe3I+ONtReRP5Jj27PLwM");
    }

    #[test]
    fn unknown_keys_fail_with_the_line_that_approves_them() {
        let blob = [0, 0, 0, 11].iter().copied().chain(*b"ssh-ed25519").chain([0, 0, 0, 1, 7]).collect::<Vec<u8>>();
        let failure =
            HostKeyPolicy::default().judge("h", 22, "ssh-ed25519", &blob, &Role::Tunnel("bastion".into())).unwrap_err();
        assert_eq!(failure.class, ErrorClass::HostKey);
        let fp = sha256_fingerprint(&blob);
        assert!(failure.message.contains(&fp), "{}", failure.message);
        assert!(
            failure.hint_or_default().contains(&format!("[[tunnel]] `bastion`: host_key = \"{fp}\"")),
            "{}",
            failure.hint_or_default()
        );
        let pinned = HostKeyPolicy { pins: vec![parse_pin(&fp).unwrap()], ..HostKeyPolicy::default() };
        assert_eq!(pinned.judge("h", 22, "ssh-ed25519", &blob, &Role::Probe), Ok("pinned by host_key".into()));
    }

    #[test]
    fn foreign_protocols_are_told_from_lines_before_the_banner() {
        assert!(!foreign(b"SSH-2.0-OpenSSH_9.2p1\r\n"));
        assert!(!foreign(b"Authorized users only\r\nSSH-2.0-OpenSSH_9.2p1\r\n"));
        assert!(!foreign(b"Authorized use"));
        assert!(foreign(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(foreign(&[0x16, 0x03, 0x03, 0x00, 0x40]));
        assert!(foreign(b"\x0a\x00\x00\x005.7.44\x00"));
    }

    #[test]
    fn channel_refusals_are_classified_from_the_servers_words() {
        let refused = classify_open_failure(&ChannelOpenFailure::ConnectFailed, "Connection refused", "db", 5432);
        assert_eq!(refused.class, ErrorClass::ConnectRefused);
        let dns = classify_open_failure(&ChannelOpenFailure::ConnectFailed, "Name or service not known", "db", 5432);
        assert_eq!(dns.class, ErrorClass::Dns);
        let prohibited = classify_open_failure(&ChannelOpenFailure::AdministrativelyProhibited, "", "db", 5432);
        assert_eq!(prohibited.class, ErrorClass::PermissionDenied);
    }
}
