//! Going through a proxy: the `proxy` stage (reach the proxy, authenticate, ask it for the
//! target) and the classification that says whose fault a failure is. The proxy's own
//! failures (unreachable, credentials refused, a rule against the target) fail the `proxy`
//! stage; the proxy's report that it could not reach the target fails `connect`, as if the
//! probe had connected itself.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wire::{self, ConnectAnswer, SocksMethod, SocksReply};
use super::{ProxyScheme, ProxySource, ProxyUrl};
use crate::connect::net::{BoxIo, Io, QuickAck, ReadBudget, Record, connect_any, maybe_stage, resolve};
use crate::model::error::{ErrorClass, Failure, Stage, classify_io, describe_io};
use crate::model::report::StageStatus;
use crate::model::stages::StageLog;

/// Who a failure belongs to.
enum Fault {
    Proxy(Failure),
    Target(Failure),
}

/// The proxy and where it was configured, for messages and hints.
pub struct Via<'a> {
    pub proxy: &'a ProxyUrl,
    pub source: &'a ProxySource,
}

impl Via<'_> {
    fn name(&self) -> String {
        format!("the proxy {} (from {})", self.proxy.display(), self.source.describe())
    }

    fn go_direct(&self) -> String {
        match self.source {
            ProxySource::Env(_) => "add the target to NO_PROXY or set proxy = \"none\" in the probe".into(),
            ProxySource::Flag => "drop --proxy (or pass --no-proxy)".into(),
            _ => "set proxy = \"none\" in the probe".into(),
        }
    }

    fn unreachable(&self, failure: Failure) -> Failure {
        let hint = format!(
            "check the proxy's address in {} and that it runs; to go without it, {}",
            self.source.describe(),
            self.go_direct()
        );
        Failure::new(failure.class, format!("{} is unreachable: {}", self.name(), failure.message)).with_hint(hint)
    }

    /// The proxy's rules refuse the target (HTTP 403, SOCKS "not allowed by ruleset").
    fn refused_by_rule(&self, target: &str, said: &str) -> Failure {
        Failure::new(ErrorClass::PermissionDenied, format!("{} refused to connect you to {target} ({said})", self.name()))
            .with_hint(format!(
                "the proxy's rules do not allow {target}: ask its owner to allow it, or, if it is reachable without the proxy, {}",
                self.go_direct()
            ))
    }

    /// The proxy answered but could not reach the target: the target's failure.
    fn could_not_reach(&self, class: ErrorClass, target: &str, said: &str) -> Failure {
        Failure::new(class, format!("{} could not reach {target} ({said})", self.name())).with_hint(format!(
            "the proxy answered, but not the target: check the host and port, and that {target} is reachable from the proxy's network"
        ))
    }

    /// The proxy wants credentials and the URL has none; `scheme` is the URL's, for the example.
    fn credentials_needed(&self, said: &str, scheme: &str) -> Failure {
        Failure::new(
            ErrorClass::AuthRejected,
            format!("{} requires authentication{said} and none was given", self.name()),
        )
        .with_hint(format!(
            "put the proxy's user and password in the proxy URL ({}), e.g. {scheme}://USER:${{PROXY_PASSWORD}}@{}:{}",
            self.source.describe(),
            self.proxy.host,
            self.proxy.port
        ))
    }

    fn credentials_refused(&self, what: &str) -> Failure {
        Failure::new(ErrorClass::AuthRejected, format!("{} {what}", self.name()))
            .with_hint(format!("check the user and password in the proxy URL ({})", self.source.describe()))
    }

    fn protocol(&self, what: impl std::fmt::Display) -> Failure {
        Failure::new(ErrorClass::Protocol, format!("{}: {what}", self.name()))
            .with_hint(format!("check that {} is a proxy of the scheme its URL says", self.proxy.display()))
    }
}

/// Connects to the proxy itself (the `proxy` stage's first step).
async fn reach(via: &Via<'_>) -> Result<BoxIo, Failure> {
    let addrs = resolve(&via.proxy.host, via.proxy.port).await.map_err(|f| via.unreachable(f))?;
    let tcp = connect_any(&via.proxy.host, via.proxy.port, &addrs).await.map_err(|f| via.unreachable(f))?;
    Ok(Box::new(ReadBudget::new(QuickAck::new(tcp))))
}

/// A stream to `host:port` through the proxy, the `proxy` stage recorded when `record` says
/// so (a failure the target causes is recorded as `connect`).
pub async fn open(log: &StageLog, via: &Via<'_>, host: &str, port: u16, record: Record) -> Result<BoxIo, Failure> {
    let target = match via.proxy.scheme {
        // socks5:// resolves the name here (socks5h leaves it to the proxy): the `dns` stage.
        // An IPv4 address when the name has one: a proxy's egress is IPv4 far more often
        // than not (danted here, as many, is configured with an IPv4 external address).
        ProxyScheme::Socks5 => {
            let addrs = maybe_stage(log, record, Stage::Dns, resolve(host, port)).await?;
            let chosen = addrs.iter().find(|a| a.is_ipv4()).unwrap_or(&addrs[0]);
            wire::SocksTarget::Ip(chosen.ip())
        }
        _ => wire::socks_target(host),
    };
    let started = (record == Record::Stages).then(|| log.begin(Stage::Proxy));
    let result = async {
        let mut stream = reach(via).await.map_err(Fault::Proxy)?;
        ask(&mut stream, via, host, port, &target).await?;
        Ok::<_, Fault>(stream)
    }
    .await;
    let Some(started) = started else {
        return result.map_err(|fault| match fault {
            Fault::Proxy(f) | Fault::Target(f) => f,
        });
    };
    match result {
        Ok(stream) => {
            log.end(Stage::Proxy, started, true);
            Ok(stream)
        }
        Err(Fault::Proxy(failure)) => {
            log.end(Stage::Proxy, started, false);
            Err(failure.at(Stage::Proxy))
        }
        Err(Fault::Target(failure)) => {
            log.end(Stage::Proxy, started, true);
            log.record(Stage::Connect, StageStatus::Fail, Duration::ZERO);
            Err(failure.at(Stage::Connect))
        }
    }
}

/// Asks the proxy, over a stream already connected to it, for a tunnel to `host:port`
/// (`target` is what a SOCKS5 request names: the address, or the name for the proxy).
async fn ask<S: Io>(
    stream: &mut S,
    via: &Via<'_>,
    host: &str,
    port: u16,
    target: &wire::SocksTarget,
) -> Result<(), Fault> {
    match via.proxy.scheme {
        ProxyScheme::Http => http_connect(stream, via, host, port).await,
        ProxyScheme::Socks5 | ProxyScheme::Socks5h => socks5_connect(stream, via, host, port, target).await,
    }
}

/// [`ask`] with the fault flattened to a failure: what the fuzzer drives over arbitrary
/// proxy bytes.
pub async fn negotiate<S: Io>(stream: &mut S, via: &Via<'_>, host: &str, port: u16) -> Result<(), Failure> {
    ask(stream, via, host, port, &wire::socks_target(host)).await.map_err(|fault| match fault {
        Fault::Proxy(f) | Fault::Target(f) => f,
    })
}

/// A plain connection to an HTTP proxy, for requests in absolute-form: the `proxy` stage.
pub async fn open_forward(log: &StageLog, via: &Via<'_>, record: Record) -> Result<BoxIo, Failure> {
    maybe_stage(log, record, Stage::Proxy, reach(via)).await
}

/// Reads the answer head one byte at a time, so that nothing of the tunnel is consumed (a
/// MySQL or SSH server speaks first, and its greeting may follow the head at once).
async fn read_head<S: Io>(stream: &mut S, via: &Via<'_>) -> Result<ConnectAnswer, Fault> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte).await {
            Ok(0) => {
                let said = if head.is_empty() {
                    "closed the connection without answering".into()
                } else {
                    "closed the connection in the middle of its answer".to_string()
                };
                return Err(Fault::Proxy(
                    Failure::new(ErrorClass::Network, format!("{} {said}", via.name())).with_hint(
                        "the proxy dropped the CONNECT request: check its logs and that it speaks HTTP on this port",
                    ),
                ));
            }
            Ok(_) => head.push(byte[0]),
            Err(err) => return Err(Fault::Proxy(io_failure(via, &err))),
        }
        // Parsed only where it can decide something: the end of the head, the first bytes
        // (another protocol), or the cap; a byte-by-byte re-parse would be quadratic.
        if !(head.ends_with(b"\r\n\r\n") || head.len() == 5 || head.len() > wire::HEAD_MAX) {
            continue;
        }
        match wire::parse_connect_answer(&head) {
            Ok(Some((answer, _))) => return Ok(answer),
            Ok(None) => {}
            Err(err) => return Err(Fault::Proxy(via.protocol(err))),
        }
    }
}

fn io_failure(via: &Via<'_>, err: &std::io::Error) -> Failure {
    Failure::new(classify_io(err), format!("{}: {}", via.name(), describe_io(err)))
}

async fn send<S: Io>(stream: &mut S, via: &Via<'_>, bytes: &[u8]) -> Result<(), Fault> {
    stream.write_all(bytes).await.map_err(|e| Fault::Proxy(io_failure(via, &e)))?;
    stream.flush().await.map_err(|e| Fault::Proxy(io_failure(via, &e)))
}

async fn http_connect<S: Io>(stream: &mut S, via: &Via<'_>, host: &str, port: u16) -> Result<(), Fault> {
    let authorization = via.proxy.basic_authorization();
    send(stream, via, &wire::connect_request(host, port, authorization.as_deref())).await?;
    let answer = read_head(stream, via).await?;
    classify_connect_answer(&answer, via, host, port, authorization.is_some())
}

/// The class of a proxy's answer to CONNECT (also of a 407 to an absolute-form request).
fn classify_connect_answer(
    answer: &ConnectAnswer,
    via: &Via<'_>,
    host: &str,
    port: u16,
    sent_credentials: bool,
) -> Result<(), Fault> {
    let target = format!("{host}:{port}");
    let said = match &answer.proxy_error {
        Some(code) => format!("{} {}, {code}", answer.status, answer.reason),
        None => format!("{} {}", answer.status, answer.reason),
    };
    match answer.status {
        200..=299 => Ok(()),
        407 => Err(Fault::Proxy(proxy_auth_refused(via, &answer.auth_schemes, sent_credentials, &said))),
        403 => Err(Fault::Proxy(via.refused_by_rule(&target, &said))),
        502..=504 => {
            let class = match (answer.status, answer.proxy_error.as_deref()) {
                (504, _) => ErrorClass::Timeout,
                (_, Some("ERR_DNS_FAIL")) => ErrorClass::Dns,
                _ => ErrorClass::Network,
            };
            Err(Fault::Target(via.could_not_reach(class, &target, &said)))
        }
        _ => Err(Fault::Proxy(
            Failure::new(
                ErrorClass::UnexpectedResponse,
                format!("{} answered CONNECT {target} with {said}", via.name()),
            )
            .with_hint("check that the proxy allows CONNECT to this port"),
        )),
    }
}

/// A 407: the proxy wants (other) credentials.
pub fn proxy_auth_refused(via: &Via<'_>, schemes: &[String], sent_credentials: bool, said: &str) -> Failure {
    let asked = if schemes.is_empty() { "no scheme named".to_string() } else { schemes.join(", ") };
    let basic = schemes.is_empty() || schemes.iter().any(|s| s.eq_ignore_ascii_case("basic"));
    let failure = if sent_credentials {
        let user = via.proxy.user.as_deref().unwrap_or("?");
        via.credentials_refused(&format!("refused the credentials for {user} ({said}; it asks for {asked})"))
    } else {
        via.credentials_needed(&format!(" ({said}; it asks for {asked})"), "http")
    };
    if basic {
        return failure;
    }
    failure.with_hint(format!("the proxy accepts only {asked}; authprobe authenticates to proxies with Basic only"))
}

async fn socks5_connect<S: Io>(
    stream: &mut S,
    via: &Via<'_>,
    host: &str,
    port: u16,
    target: &wire::SocksTarget,
) -> Result<(), Fault> {
    let password = via.proxy.user.is_some();
    send(stream, via, &wire::socks_greeting(password)).await?;
    let mut method = [0u8; 2];
    stream.read_exact(&mut method).await.map_err(|e| Fault::Proxy(socks_io(via, &e)))?;
    match wire::parse_socks_method(method).map_err(|e| Fault::Proxy(via.protocol(e)))? {
        SocksMethod::NoAuth => {}
        SocksMethod::NoneAcceptable if !password => {
            return Err(Fault::Proxy(via.credentials_needed("", "socks5h")));
        }
        SocksMethod::NoneAcceptable => {
            return Err(Fault::Proxy(via.credentials_refused("accepts none of the methods offered")));
        }
        SocksMethod::Password => {
            let user = via.proxy.user.as_deref().unwrap_or_default();
            let secret = via.proxy.password_for_proxy();
            let request = wire::socks_password_request(user, secret).ok_or_else(|| {
                Fault::Proxy(via.protocol("the user or password is longer than SOCKS5 allows (255 bytes)"))
            })?;
            send(stream, via, &request).await?;
            let mut status = [0u8; 2];
            stream.read_exact(&mut status).await.map_err(|e| Fault::Proxy(socks_io(via, &e)))?;
            if status[1] != 0 {
                return Err(Fault::Proxy(
                    via.credentials_refused(&format!("refused the user name and password of `{user}`")),
                ));
            }
        }
    }
    let request = wire::socks_connect_request(target, port)
        .ok_or_else(|| Fault::Proxy(via.protocol("the host name is longer than SOCKS5 allows (255 bytes)")))?;
    send(stream, via, &request).await?;
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).await.map_err(|e| Fault::Proxy(socks_io(via, &e)))?;
    let len = wire::socks_reply_len(head).map_err(|e| Fault::Proxy(via.protocol(e)))?;
    let mut rest = vec![0u8; len - head.len()];
    stream.read_exact(&mut rest).await.map_err(|e| Fault::Proxy(socks_io(via, &e)))?;
    classify_socks_reply(SocksReply::from_byte(head[1]), via, host, port)
}

fn socks_io(via: &Via<'_>, err: &std::io::Error) -> Failure {
    if err.kind() == std::io::ErrorKind::UnexpectedEof {
        return Failure::new(
            ErrorClass::Protocol,
            format!("{} closed the connection during the SOCKS5 negotiation", via.name()),
        )
        .with_hint("check that the proxy speaks SOCKS5 on this port and accepts this client");
    }
    io_failure(via, err)
}

fn classify_socks_reply(reply: SocksReply, via: &Via<'_>, host: &str, port: u16) -> Result<(), Fault> {
    let target = format!("{host}:{port}");
    let unreachable = |class: ErrorClass| Fault::Target(via.could_not_reach(class, &target, &reply.describe()));
    match reply {
        SocksReply::Succeeded => Ok(()),
        SocksReply::NotAllowedByRuleset => Err(Fault::Proxy(via.refused_by_rule(&target, &reply.describe()))),
        SocksReply::ConnectionRefused => Err(unreachable(ErrorClass::ConnectRefused)),
        SocksReply::TtlExpired => Err(unreachable(ErrorClass::Timeout)),
        SocksReply::HostUnreachable | SocksReply::NetworkUnreachable | SocksReply::GeneralFailure => {
            Err(unreachable(ErrorClass::Network))
        }
        SocksReply::CommandNotSupported | SocksReply::AddressTypeNotSupported | SocksReply::Unassigned(_) => {
            Err(Fault::Proxy(
                Failure::new(ErrorClass::UnexpectedResponse, format!("{} answered CONNECT {target}: {}", via.name(), reply.describe()))
                    .with_hint("the proxy does not support this request: try socks5:// instead of socks5h:// (or the other way round)"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via_env() -> (ProxyUrl, ProxySource) {
        (ProxyUrl::parse("http://u:pw@proxy.corp:3128").unwrap(), ProxySource::Env("HTTPS_PROXY".into()))
    }

    #[test]
    fn connect_answers_say_whose_fault_it_is() {
        let (proxy, source) = via_env();
        let via = Via { proxy: &proxy, source: &source };
        let answer = |status: u16, error: Option<&str>| ConnectAnswer {
            status,
            reason: "Reason".into(),
            auth_schemes: vec!["Basic".into()],
            proxy_error: error.map(str::to_string),
        };
        let class = |result: Result<(), Fault>| match result {
            Err(Fault::Proxy(f)) => ("proxy", f.class, f.message, f.hint.map(|h| h.to_string()).unwrap_or_default()),
            Err(Fault::Target(f)) => ("target", f.class, f.message, f.hint.map(|h| h.to_string()).unwrap_or_default()),
            Ok(()) => ("ok", ErrorClass::Internal, String::new(), String::new()),
        };
        let (who, c, message, hint) = class(classify_connect_answer(&answer(407, None), &via, "db", 5432, true));
        assert_eq!((who, c), ("proxy", ErrorClass::AuthRejected));
        assert!(
            message.contains("http://u@proxy.corp:3128 (from HTTPS_PROXY)") && message.contains("Basic"),
            "{message}"
        );
        assert!(hint.contains("HTTPS_PROXY") && !hint.contains("pw"), "{hint}");
        let (who, c, message, hint) =
            class(classify_connect_answer(&answer(403, Some("ERR_ACCESS_DENIED")), &via, "db", 5432, true));
        assert_eq!((who, c), ("proxy", ErrorClass::PermissionDenied));
        assert!(message.contains("refused to connect you to db:5432"), "{message}");
        assert!(hint.contains("NO_PROXY"), "{hint}");
        assert_eq!(
            class(classify_connect_answer(&answer(503, Some("ERR_CONNECT_FAIL")), &via, "db", 1, true)).1,
            ErrorClass::Network
        );
        assert_eq!(
            class(classify_connect_answer(&answer(503, Some("ERR_DNS_FAIL")), &via, "db", 1, true)).1,
            ErrorClass::Dns
        );
        assert_eq!(class(classify_connect_answer(&answer(504, None), &via, "db", 1, true)).0, "target");
        assert_eq!(class(classify_connect_answer(&answer(200, None), &via, "db", 1, true)).0, "ok");
        assert_eq!(
            class(classify_connect_answer(&answer(400, None), &via, "db", 1, true)).1,
            ErrorClass::UnexpectedResponse
        );
        let negotiate = proxy_auth_refused(&via, &["Negotiate".into()], false, "407");
        assert!(negotiate.hint.unwrap().to_string().contains("Basic only"));
        assert_eq!(
            class(classify_socks_reply(SocksReply::NotAllowedByRuleset, &via, "db", 1)).1,
            ErrorClass::PermissionDenied
        );
        assert_eq!(class(classify_socks_reply(SocksReply::ConnectionRefused, &via, "db", 1)).0, "target");
    }
}
