//! The startup and authentication as a state machine, sans I/O: fed the server's messages
//! one at a time (parsed by [`crate::parse_backend`]), it says what to send next, so that
//! every decision — which method the policy allows, whether a password may be handed over,
//! channel binding, the server's SCRAM proof — is a pure function of what was received.
//! [`crate::Client`] pumps it over a stream; tests and the fuzzer can feed it directly.

use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;

use crate::{
    AuthPolicy, Backend, CHATTER_CAP, ChannelBindingMode, GssInitiator, LoginOutcome, Method, Password, PgError,
    Refusal, protocol,
};

/// What to do after a message of the login.
#[derive(Debug)]
pub enum LoginStep {
    /// Send these bytes, then read the next message.
    Send(BytesMut),
    /// Read the next message.
    Read,
    /// Logged in (ReadyForQuery).
    Done(LoginOutcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Authentication requests.
    Authenticating,
    /// After SCRAM's final message: AuthenticationOk must follow.
    ScramVerified,
    /// After AuthenticationOk: parameters and key data until ReadyForQuery.
    Starting,
}

/// One login, from the startup message to ReadyForQuery.
pub struct LoginExchange<'a> {
    user: &'a str,
    password: Option<Password<'a>>,
    policy: &'a AuthPolicy,
    end_point: Option<Vec<u8>>,
    outcome: LoginOutcome,
    scram: Option<ScramSha256>,
    gss: Option<&'a mut dyn GssInitiator>,
    phase: Phase,
    chatter: usize,
}

impl<'a> LoginExchange<'a> {
    /// The exchange and the startup message to send. `password` is `None` when none is
    /// configured; `end_point` is the tls-server-end-point hash of the server's
    /// certificate when the session is TLS.
    pub fn start(
        user: &'a str,
        database: &str,
        password: Option<Password<'a>>,
        policy: &'a AuthPolicy,
        end_point: Option<Vec<u8>>,
    ) -> Result<(Self, BytesMut), PgError> {
        let mut buf = BytesMut::new();
        let params = [("user", user), ("database", database), ("application_name", "authprobe")];
        frontend::startup_message(params, &mut buf)?;
        let exchange = LoginExchange {
            user,
            password,
            policy,
            end_point,
            outcome: LoginOutcome::default(),
            scram: None,
            gss: None,
            phase: Phase::Authenticating,
            chatter: 0,
        };
        Ok((exchange, buf))
    }

    /// Lets the exchange answer AuthenticationGSS with this initiator's tokens.
    pub fn with_gss(mut self, gss: &'a mut dyn GssInitiator) -> Self {
        self.gss = Some(gss);
        self
    }

    /// The next message of the server.
    pub fn on_message(&mut self, message: Backend) -> Result<LoginStep, PgError> {
        match message {
            Backend::Notice => return self.chatter(),
            Backend::Parameter { name, value } => {
                if matches!(name.as_str(), "server_version" | "server_encoding" | "TimeZone")
                    && self.outcome.parameters.len() < 8
                {
                    self.outcome.parameters.push((name, value));
                }
                return self.chatter();
            }
            Backend::Error(e) => return Err(PgError::Server(e)),
            _ => self.chatter = 0,
        }
        match self.phase {
            Phase::Authenticating => self.authenticating(message),
            Phase::ScramVerified => match message {
                Backend::AuthOk => {
                    self.require_binding_if_asked("the server did not offer SCRAM-SHA-256-PLUS")?;
                    self.phase = Phase::Starting;
                    Ok(LoginStep::Read)
                }
                _ => Err(protocol("unexpected message after SCRAM authentication")),
            },
            Phase::Starting => match message {
                Backend::BackendKeyData => Ok(LoginStep::Read),
                Backend::ReadyForQuery => Ok(LoginStep::Done(std::mem::take(&mut self.outcome))),
                _ => Err(protocol("unexpected message after authentication")),
            },
        }
    }

    /// Notices and parameters before an answer are bounded.
    fn chatter(&mut self) -> Result<LoginStep, PgError> {
        self.chatter += 1;
        if self.chatter > CHATTER_CAP {
            return Err(protocol(format!(
                "the server sent more than {CHATTER_CAP} notices and parameters without answering"
            )));
        }
        Ok(LoginStep::Read)
    }

    fn require_binding_if_asked(&self, why: &'static str) -> Result<(), PgError> {
        if self.policy.channel_binding == ChannelBindingMode::Require && !self.outcome.channel_binding {
            return Err(PgError::Refused(Refusal::ChannelBindingUnavailable { why }));
        }
        Ok(())
    }

    fn authenticating(&mut self, message: Backend) -> Result<LoginStep, PgError> {
        let policy = self.policy;
        let mut buf = BytesMut::new();
        match message {
            Backend::AuthOk => {
                if self.scram.is_some() {
                    return Err(protocol("the server ended SCRAM authentication without its final message"));
                }
                if self.outcome.method == Some(Method::Gss) && !self.gss.as_deref().is_some_and(|gss| gss.is_complete())
                {
                    return Err(protocol(
                        "the server accepted the login before its GSSAPI exchange proved who it is (mutual authentication)",
                    ));
                }
                let method = *self.outcome.method.get_or_insert(Method::None);
                if method == Method::None {
                    policy.check(Method::None)?;
                }
                self.require_binding_if_asked("the server did not authenticate with SCRAM-SHA-256-PLUS")?;
                self.phase = Phase::Starting;
                Ok(LoginStep::Read)
            }
            Backend::AuthCleartext => {
                policy.check(Method::Password)?;
                let password =
                    self.password.ok_or(PgError::Refused(Refusal::NoPassword { method: Method::Password }))?;
                let Some(password) = password.released() else {
                    return Err(PgError::Refused(Refusal::UnverifiedPeer { method: Method::Password }));
                };
                self.outcome.method = Some(Method::Password);
                frontend::password_message(password.as_bytes(), &mut buf)?;
                Ok(LoginStep::Send(buf))
            }
            Backend::AuthMd5 { salt } => {
                policy.check(Method::Md5)?;
                let password =
                    self.password.ok_or(PgError::Refused(Refusal::NoPassword { method: Method::Md5 }))?.for_challenge();
                self.outcome.method = Some(Method::Md5);
                let hashed =
                    postgres_protocol::authentication::md5_hash(self.user.as_bytes(), password.as_bytes(), salt);
                frontend::password_message(hashed.as_bytes(), &mut buf)?;
                Ok(LoginStep::Send(buf))
            }
            Backend::AuthSasl { mechanisms } => {
                if self.scram.is_some() || self.outcome.method.is_some() {
                    return Err(protocol("the server restarted authentication"));
                }
                policy.check(Method::ScramSha256)?;
                let plus = mechanisms.iter().any(|m| m == "SCRAM-SHA-256-PLUS");
                let plain = mechanisms.iter().any(|m| m == "SCRAM-SHA-256");
                let password = self
                    .password
                    .ok_or(PgError::Refused(Refusal::NoPassword { method: Method::ScramSha256 }))?
                    .for_challenge();
                let (mechanism, binding) = match (policy.channel_binding, plus, self.end_point.clone()) {
                    (ChannelBindingMode::Disable, _, _) | (_, false, _) | (_, _, None) => {
                        if policy.channel_binding == ChannelBindingMode::Require {
                            let why = if self.end_point.is_none() {
                                "the session is not TLS, and channel binding needs it"
                            } else {
                                "the server does not offer SCRAM-SHA-256-PLUS"
                            };
                            return Err(PgError::Refused(Refusal::ChannelBindingUnavailable { why }));
                        }
                        if !plain {
                            return Err(PgError::Refused(Refusal::Unsupported {
                                what: format!("SASL mechanisms {}", mechanisms.join(", ")),
                            }));
                        }
                        // "y": the client could bind but the server did not offer it, so a
                        // downgrade by a man in the middle is detected by the server.
                        let binding = if self.end_point.is_some() {
                            ChannelBinding::unrequested()
                        } else {
                            ChannelBinding::unsupported()
                        };
                        ("SCRAM-SHA-256", binding)
                    }
                    (_, true, Some(hash)) => ("SCRAM-SHA-256-PLUS", ChannelBinding::tls_server_end_point(hash)),
                };
                self.outcome.channel_binding = mechanism.ends_with("-PLUS");
                self.outcome.method = Some(Method::ScramSha256);
                let exchange = ScramSha256::new(password.as_bytes(), binding);
                frontend::sasl_initial_response(mechanism, exchange.message(), &mut buf)?;
                self.scram = Some(exchange);
                Ok(LoginStep::Send(buf))
            }
            Backend::AuthSaslContinue(data) => {
                let exchange = self.scram.as_mut().ok_or_else(|| protocol("a SCRAM step nobody asked for"))?;
                exchange
                    .update(&data)
                    .map_err(|e| protocol(format!("the server's SCRAM challenge is invalid ({e})")))?;
                frontend::sasl_response(exchange.message(), &mut buf)?;
                Ok(LoginStep::Send(buf))
            }
            Backend::AuthSaslFinal(data) => {
                let mut exchange = self.scram.take().ok_or_else(|| protocol("a SCRAM step nobody asked for"))?;
                // The server proves it knows the password's verifier (and, with -PLUS, that
                // it terminates this TLS session): an impostor fails here.
                exchange.finish(&data).map_err(|e| {
                    protocol(format!(
                        "the server's SCRAM signature does not verify ({e}): it does not know this password's verifier"
                    ))
                })?;
                self.phase = Phase::ScramVerified;
                Ok(LoginStep::Read)
            }
            Backend::AuthGss | Backend::AuthGssContinue(_) => {
                policy.check(Method::Gss)?;
                let input = match &message {
                    Backend::AuthGssContinue(token) => Some(token.as_slice()),
                    _ => None,
                };
                if input.is_none() && self.outcome.method == Some(Method::Gss) {
                    return Err(protocol("the server started GSSAPI authentication twice"));
                }
                if input.is_some() && self.outcome.method != Some(Method::Gss) {
                    return Err(protocol("the server continued a GSSAPI exchange that was not started"));
                }
                let Some(gss) = self.gss.as_deref_mut() else {
                    return Err(PgError::Refused(Refusal::Unsupported {
                        what: "GSSAPI (Kerberos) authentication, and the probe has no Kerberos credentials (auth = { type = \"kerberos\" })".into(),
                    }));
                };
                self.outcome.method = Some(Method::Gss);
                // A Kerberos token is bound to the service's key and the moment: nothing in it
                // is reusable elsewhere, so no release rule applies.
                let token = gss.step(input).map_err(PgError::Gss)?;
                if token.is_empty() {
                    return Ok(LoginStep::Read);
                }
                frontend::sasl_response(&token, &mut buf)?;
                Ok(LoginStep::Send(buf))
            }
            Backend::AuthOther { code } => {
                let what = match code {
                    2 => "Kerberos V5 authentication".to_string(),
                    9 => {
                        policy.check(Method::Sspi)?;
                        "SSPI authentication".to_string()
                    }
                    other => return Err(protocol(format!("unknown authentication request {other}"))),
                };
                Err(PgError::Refused(Refusal::Unsupported { what }))
            }
            Backend::NegotiateProtocolVersion => Err(protocol("the server does not speak protocol version 3.0")),
            _ => Err(protocol("unexpected message during authentication")),
        }
    }
}
