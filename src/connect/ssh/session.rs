//! The SSH session: the key exchange with the host key checked inside it, user
//! authentication, and channels, with their failures classified.

use super::*;
use crate::model::release::Release;

/// An SSH connection past key exchange (authenticated once `authenticate` succeeds).
pub struct Session {
    pub(super) handle: Handle<Callbacks>,
    pub(super) refusals: Arc<Refusals>,
    pub role: Role,
    pub address: String,
    /// The release rule's proof: a session exists only once its host key was accepted.
    release: Release,
}

pub(super) fn client_config(preferred_keys: Vec<Algorithm>) -> Arc<client::Config> {
    // Every key type is asked for also as a host certificate, ahead of bare keys, as ssh
    // does: a certificate is trusted by a listed CA, or else judged by its key.
    let preferred = russh::Preferred {
        host_key_certificates: preferred_keys.clone().into(),
        key: preferred_keys.into(),
        ..russh::Preferred::DEFAULT
    };
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
        approvals: ctx.approvals.clone(),
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
        if let (Some(certificate), Some(_)) = (&key.certificate, approval) {
            let who = match &role {
                Role::Probe => String::new(),
                Role::Tunnel(name) => format!("tunnel {name}: "),
            };
            certificate.note(ctx, &target.address(), &who);
        }
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
                    approved: key.approved.clone(),
                    public_key: format!(
                        "{} {}",
                        key.algorithm,
                        base64::engine::general_purpose::STANDARD.encode(&key.blob)
                    ),
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
        Ok(handle) => Ok(Session { handle, refusals, role, address, release: Release::approved_host_key() }),
        Err(err) => {
            let failure = match (&err, shown) {
                (russh::Error::UnknownKey, Some(Presented { verdict: Err(failure), .. })) => failure,
                _ => not_ssh(&first_bytes).unwrap_or_else(|| classify_transport(&err, &address)),
            };
            Err(role.label(failure))
        }
    }
}

pub(super) fn method_names(methods: &russh::MethodSet) -> String {
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
                .authenticate_password(user, password.release(&self.release))
                .await
                .map_err(|e| self.lost(&e, "password authentication")),
            SshAuth::Key(file) => {
                if let Some(mode) = file.loose_mode {
                    ctx.warn(format!(
                        "private key {} is readable by group or others (mode {mode:04o}); ssh refuses such keys: chmod 600 it",
                        file.path.display()
                    ));
                }
                if let Some(cert) = &file.certificate {
                    match check_certificate(ctx, &cert.path, &cert.certificate) {
                        Ok(()) => {
                            let result = self
                                .handle
                                .authenticate_openssh_cert(user, file.key.clone(), cert.certificate.clone())
                                .await
                                .map_err(|e| self.lost(&e, "certificate authentication"))?;
                            return self.finish_auth(target, result);
                        }
                        Err(failure) if cert.named => return Err(failure),
                        // Found beside the key, not named: ssh would offer the bare key
                        // once the server refused the certificate; so does this.
                        Err(failure) => ctx.warn(format!("{}; the bare key is offered instead", failure.message)),
                    }
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
            SshAuth::Gssapi => {
                return Err(Failure::internal("a Kerberos SSH login goes through authenticate_gssapi"));
            }
        }?;
        self.finish_auth(target, result)
    }

    fn finish_auth(&self, target: &SshTarget, result: russh::client::AuthResult) -> Result<(), Failure> {
        match result {
            russh::client::AuthResult::Success => Ok(()),
            russh::client::AuthResult::Failure { remaining_methods, partial_success } => {
                Err(self.role.label(self.refused(target, &remaining_methods, partial_success)))
            }
        }
    }

    /// `gssapi-with-mic` (RFC 4462) with the probe's GSS-API context (Kerberos 5 offered).
    pub async fn authenticate_gssapi<G>(&mut self, target: &SshTarget, gss: &mut G) -> Result<(), Failure>
    where
        G: russh::GssapiAuthenticator,
        G::Error: Into<Failure>,
    {
        const KRB5_MECH: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
        let result = self
            .handle
            .authenticate_gssapi_with_mic(target.user.as_str(), vec![KRB5_MECH.to_vec()], gss)
            .await
            .map_err(Into::into)?;
        match result {
            russh::client::AuthResult::Success => Ok(()),
            russh::client::AuthResult::Failure { remaining_methods, partial_success } => {
                Err(self.role.label(self.refused(target, &remaining_methods, partial_success)))
            }
        }
    }

    pub(super) async fn authenticate_with_agent(&mut self, user: &str) -> Result<russh::client::AuthResult, Failure> {
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
    pub(super) fn lost(&self, err: &russh::Error, what: &str) -> Failure {
        let failure = match find_cause::<std::io::Error>(err) {
            Some(io) => Failure::new(classify_io(io), format!("{} during {what}: {}", self.address, describe_io(io))),
            None => Failure::new(ErrorClass::Network, format!("{} closed the connection during {what}", self.address)),
        };
        self.role.label(failure)
    }

    pub(super) fn refused(&self, target: &SshTarget, remaining: &russh::MethodSet, partial: bool) -> Failure {
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
            SshAuth::Gssapi => (
                "the Kerberos ticket".to_string(),
                MethodKind::GssapiWithMic,
                format!(
                    "the server refused the principal as `{user}`: it must map to the account (~{user}/.k5login, or the principal is {user}@ its default realm), and sshd needs GSSAPIAuthentication yes"
                ),
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

    /// Whether the server still answers: an SSH ping (a keepalive request that wants a
    /// reply) answered within `within`. A kept connection can have died silently (a NAT
    /// or firewall forgot it, the bastion restarted).
    pub async fn answers(&self, within: std::time::Duration) -> bool {
        let pinged = tokio::time::timeout(within, self.handle.send_ping()).await;
        // The reply channel also ends when the session does: check it is still open.
        matches!(pinged, Ok(Ok(()))) && !self.handle.is_closed()
    }

    /// Says goodbye, so the server logs a clean disconnect; best effort, briefly.
    pub async fn close(&self) {
        let goodbye = self.handle.disconnect(russh::Disconnect::ByApplication, "", "en");
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), goodbye).await;
    }
}

pub(super) fn classify_open_failure(reason: &ChannelOpenFailure, description: &str, host: &str, port: u16) -> Failure {
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

/// A user certificate's validity: listed with the probe's credentials, warned about before
/// it ends, and an ended (or not yet valid) one is not sent: the server would refuse it.
/// An OpenSSH certificate's validity (user's or host's) among the probe's credentials, as
/// [`StageLog::note_expiry`] records and judges it; one that never ends is a `-v` line.
pub(super) fn note_certificate_life(
    ctx: &StageLog,
    what: &str,
    valid_after: u64,
    valid_before: u64,
) -> crate::model::expiry::Standing {
    // OpenSSH writes "forever" as the largest time.
    let before = i64::try_from(valid_before).unwrap_or(i64::MAX);
    if before == i64::MAX {
        ctx.detail(format!("credential: {what} does not expire"));
        return crate::model::expiry::Standing::Valid;
    }
    let after = i64::try_from(valid_after).ok();
    ctx.note_expiry(what, before, after, after)
}

fn check_certificate(
    ctx: &StageLog,
    path: &std::path::Path,
    certificate: &russh::keys::Certificate,
) -> Result<(), Failure> {
    let what = format!("the SSH certificate `{}` ({})", certificate.key_id(), path.display());
    let sign_again = "sign the key again with the user CA (ssh-keygen -s CA_KEY -I ID -n USER -V +52w KEY.pub), or ask whoever runs the CA";
    match note_certificate_life(ctx, &what, certificate.valid_after(), certificate.valid_before()) {
        crate::model::expiry::Standing::Valid => Ok(()),
        crate::model::expiry::Standing::Expired(ago) => Err(Failure::new(
            ErrorClass::AuthRejected,
            format!(
                "{what} expired {} ago, at {}; authprobe did not send it",
                crate::model::signed_link::approx(ago),
                crate::model::expiry::rfc3339(i64::try_from(certificate.valid_before()).unwrap_or_default())
            ),
        )
        .with_hint(sign_again)),
        crate::model::expiry::Standing::NotYet(ahead) => Err(Failure::new(
            ErrorClass::AuthRejected,
            format!(
                "{what} is not valid for {} more; authprobe did not send it",
                crate::model::signed_link::approx(ahead)
            ),
        )
        .with_hint("check this machine's clock, or use a certificate whose validity has begun")),
    }
}
