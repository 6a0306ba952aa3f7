//! A minimal HTTP client over the shared connection machinery: one connection, stages
//! recorded as they happen (dns, connect, tls), HTTP/2 or HTTP/1.1 by ALPN, bodies read
//! with a size cap. Used by the `http` probe and for OAuth2 token requests.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use url::Url;

use crate::connect::context::ProbeContext;
use crate::connect::dial;
use crate::connect::net::{self, Record};
use crate::connect::proxy::through::{self, Via};
use crate::connect::proxy::{ProxySource, ProxyUrl, Traffic};
use crate::connect::tls::{self, Recorder, TlsOptions};
use crate::model::error::{ErrorClass, Failure, Stage, classify_io, describe_io, find_cause};
use crate::model::release::Release;
use crate::model::stages::StageLog;

pub use crate::connect::net::USER_AGENT;

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// The task driving the connection; its error explains a request that was cut short.
type Driver = tokio::task::JoinHandle<Result<(), hyper::Error>>;

/// An open HTTP connection to one origin.
pub struct Connection {
    sender: Sender,
    driver: Option<Driver>,
    authority: String,
    tls: Option<TlsState>,
    /// Plain http through an HTTP proxy: requests go to the proxy in absolute-form.
    forward: Option<(ProxyUrl, ProxySource)>,
}

/// What a TLS connection needs to classify failures that surface after the handshake.
struct TlsState {
    recorder: Recorder,
    seen: Arc<Mutex<Option<rustls::Error>>>,
    opts: TlsOptions,
}

/// Host and port of an http(s) URL, or a config failure.
pub fn endpoint(url: &Url) -> Result<(String, u16, bool), Failure> {
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => {
            return Err(Failure::new(
                ErrorClass::Config,
                format!("unsupported URL scheme `{other}` (use http or https)"),
            ));
        }
    };
    let host = url.host_str().ok_or_else(|| Failure::new(ErrorClass::Config, "the URL has no host"))?.to_string();
    let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
    Ok((host, port, https))
}

/// Opens a connection: `dns`, `connect` and (for https) `tls` stages, recorded when
/// `record` says so. The certificate goes into the report only for recorded connections.
pub async fn connect(
    ctx: &ProbeContext,
    url: &Url,
    tls_opts: &TlsOptions,
    record: Record,
) -> Result<Connection, Failure> {
    let (host, port, https) = endpoint(url)?;
    let traffic = if https { Traffic::Https } else { Traffic::Http };
    // Boxed, as the TLS step below: a connection being made holds the step it is in.
    let connection = Box::pin(dial::connect(ctx, &host, port, traffic, record)).await?;
    let forward = match connection.route {
        dial::Route::Forward(proxy, source) => Some((proxy, source)),
        _ => None,
    };
    let tcp = connection.stream;
    let authority = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or(&host)),
        None => url.host_str().unwrap_or(&host).to_string(),
    };
    if !https {
        let (sender, driver) = handshake_h1(TokioIo::new(tcp)).await?;
        return Ok(Connection { sender, driver: Some(driver), authority, tls: None, forward });
    }
    let work = async {
        let hs = tls::handshake(
            ctx,
            &ctx.shared.trust,
            tcp,
            tls_opts,
            &host,
            &[b"h2", b"http/1.1"],
            record == Record::Stages,
        )
        .await?;
        let h2 = hs.stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let (tapped, seen) = tls::ErrorTap::new(hs.stream);
        let io = TokioIo::new(tapped);
        let (sender, driver) = if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| Failure::new(ErrorClass::Protocol, format!("HTTP/2 setup failed: {e}")))?;
            (Sender::H2(sender), tokio::spawn(conn))
        } else {
            handshake_h1(io).await?
        };
        let state = TlsState { recorder: hs.recorder, seen, opts: tls_opts.clone() };
        Ok::<_, Failure>((sender, driver, state))
    };
    let (sender, driver, state) = net::maybe_stage(ctx, record, Stage::Tls, Box::pin(work)).await?;
    Ok(Connection { sender, driver: Some(driver), authority, tls: Some(state), forward: None })
}

async fn handshake_h1<IO>(io: TokioIo<IO>) -> Result<(Sender, Driver), Failure>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io).await.map_err(|e| Failure::internal(format!("HTTP/1.1 setup: {e}")))?;
    Ok((Sender::H1(sender), tokio::spawn(conn)))
}

impl Connection {
    /// Sends one request. `url` supplies the path and query; the connection's origin is used
    /// for the Host header / :authority.
    pub async fn send(
        &mut self,
        method: Method,
        url: &Url,
        headers: &[(header::HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Response<Incoming>, Failure> {
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let uri = match (&self.sender, &self.forward) {
            (Sender::H1(_), None) => path,
            _ => format!("{}://{}{}", url.scheme(), self.authority, path),
        };
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some((proxy, _)) = &self.forward
            && let Some(value) = proxy.basic_authorization()
        {
            builder = builder.header(header::PROXY_AUTHORIZATION, sensitive_header(&value)?);
        }
        if let Sender::H1(_) = self.sender {
            builder = builder.header(header::HOST, self.authority.as_str());
        }
        let has_user_agent = headers.iter().any(|(n, _)| n == header::USER_AGENT);
        if !has_user_agent {
            builder = builder.header(header::USER_AGENT, USER_AGENT);
        }
        for (name, value) in headers {
            builder = builder.header(name, value.clone());
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| Failure::new(ErrorClass::Config, format!("cannot build the request: {e}")))?;
        let result = match &mut self.sender {
            Sender::H1(s) => s.send_request(request).await,
            Sender::H2(s) => s.send_request(request).await,
        };
        match result {
            Ok(response) if response.status() == http::StatusCode::PROXY_AUTHENTICATION_REQUIRED => {
                // Only a proxy answers 407; the origin was never asked.
                let Some((proxy, source)) = &self.forward else { return Ok(response) };
                let schemes: Vec<String> = response
                    .headers()
                    .get_all(header::PROXY_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()?.split_whitespace().next().map(str::to_string))
                    .collect();
                let via = Via { proxy, source };
                let said = format!("{}", response.status());
                Err(through::proxy_auth_refused(&via, &schemes, proxy.user.is_some(), &said).at(Stage::Proxy))
            }
            Ok(response) => Ok(response),
            Err(err) => Err(self.classify(&err).await),
        }
    }

    /// The credential release rule for `what` ("the bearer token"), about to go on this
    /// connection to `url`: the proof of a verified handshake, or else `consent` (the
    /// probe's, [`StageLog::consent`]); otherwise refused, naming the certificate and the
    /// ways to verify it. Plain http:// is refused before connecting
    /// ([`StageLog::release_over_plain_http`]), and here again should a caller skip that.
    pub fn release(&self, ctx: &StageLog, url: &Url, what: &str, consent: Option<Release>) -> Result<Release, Failure> {
        let Some(tls) = &self.tls else {
            return consent.ok_or_else(|| crate::model::stages::plain_http_refusal(url, what));
        };
        if let Some(proof) = tls.recorder.release_proof() {
            return Ok(proof);
        }
        let host = url.host_str().unwrap_or("the server");
        if let Some(consent) = consent {
            ctx.detail(format!(
                "release: {what} was sent to {host}, whose certificate is not verified (allow_unverified_password = true)"
            ));
            return Ok(consent);
        }
        let fingerprint = tls.recorder.snapshot().chain.first().map(|c| tls::sha256_fingerprint(c)).unwrap_or_default();
        Err(tls::unverified_certificate_refusal(
            format!(
                "{what} would go to {host}, whose certificate is not verified (sha256 {fingerprint}): authprobe did not send it"
            ),
            fingerprint,
        ))
    }

    /// Whether the server asked for a client certificate during the handshake.
    pub fn client_cert_requested(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.recorder.snapshot().client_cert_requested)
    }

    /// A failure while talking HTTP. TLS errors that surface after the handshake (client
    /// certificate refusals under TLS 1.3) are classified as such, and a request cut short
    /// is explained by what ended the connection (e.g. a banner that is not HTTP).
    pub async fn classify(&mut self, err: &hyper::Error) -> Failure {
        let mut cause = None;
        if (err.is_canceled() || err.is_closed() || err.is_incomplete_message())
            && let Some(driver) = self.driver.take()
            && let Ok(Ok(Err(conn_err))) = tokio::time::timeout(std::time::Duration::from_millis(250), driver).await
        {
            cause = Some(conn_err);
        }
        let err = cause.as_ref().unwrap_or(err);
        if let Some(state) = &self.tls {
            let seen = state.seen.lock().ok().and_then(|slot| slot.clone());
            if let Some(tls_err) = seen.as_ref().or_else(|| find_cause::<rustls::Error>(err)) {
                return tls::classify_post_handshake(tls_err, &state.recorder, &state.opts);
            }
            if is_connection_drop(err) && state.recorder.snapshot().client_cert_requested {
                return tls::client_cert_refused_silently(state.opts.identity.is_some());
            }
        }
        classify_hyper(err)
    }
}

/// The peer went away (reset, closed, EOF) rather than answering something.
fn is_connection_drop(err: &hyper::Error) -> bool {
    use std::io::ErrorKind::*;
    match find_cause::<std::io::Error>(err) {
        Some(io) => matches!(io.kind(), BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof),
        None => err.is_incomplete_message() || err.is_canceled() || err.is_closed(),
    }
}

pub fn classify_hyper(err: &hyper::Error) -> Failure {
    if err.is_parse() {
        return Failure::new(ErrorClass::Protocol, "the server's answer is not valid HTTP")
            .with_hint("check the port and scheme: this may not be an HTTP server, or it expects TLS");
    }
    if let Some(io) = find_cause::<std::io::Error>(err) {
        return Failure::new(classify_io(io), format!("while waiting for the response: {}", describe_io(io)));
    }
    // A request cancelled because hyper itself gave up on the connection: the nested error
    // says why. Anything but a plain close means the peer sent bytes that are not an HTTP
    // response to our request, such as the banner an SSH or SMTP server sends on connect.
    use std::error::Error as _;
    if let Some(inner) = err.source().and_then(|s| s.downcast_ref::<hyper::Error>())
        && !(inner.is_incomplete_message() || inner.is_canceled() || inner.is_closed())
    {
        return Failure::new(ErrorClass::Protocol, "the server sent something that is not an HTTP response").with_hint(
            "this port speaks another protocol (it spoke first, as SSH and SMTP servers do): check the port",
        );
    }
    if err.is_incomplete_message() || err.is_canceled() || err.is_closed() {
        return Failure::new(ErrorClass::Network, "the server closed the connection before answering");
    }
    Failure::new(ErrorClass::Network, format!("HTTP exchange failed: {err}"))
}

/// A response's status line and headers for `-vv` diagnostics; cookies show only their
/// size, and any registered secret a header echoes is scrubbed with the rest of the report.
pub fn describe_response(ctx: &ProbeContext, method: &Method, url: &Url, response: &Response<Incoming>) -> String {
    let mut parts = vec![format!("{method} {} -> {:?} {}", url.path(), response.version(), response.status())];
    for (name, value) in response.headers().iter().take(30) {
        let shown = match name.as_str() {
            "set-cookie" | "cookie" => format!("({} bytes)", value.len()),
            _ => value.to_str().map(|v| ctx.server_text(v, 160)).unwrap_or_else(|_| "(binary)".into()),
        };
        parts.push(format!("{name}: {shown}"));
    }
    format!("http: {}", parts.join("; "))
}

/// A header value carrying a credential: marked sensitive, so that hyper never logs it.
pub fn sensitive_header(value: &str) -> Result<HeaderValue, Failure> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        Failure::new(ErrorClass::Config, "a credential contains characters an HTTP header cannot carry")
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// The trimmed text of the first `<name>…</name>` in an XML error body (S3, Azure, GCS).
pub fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].trim().to_string())
}

/// Reads at most `cap` bytes of a body; the rest is left unread (the connection is dropped
/// afterwards). Returns the bytes and whether the body was longer.
pub async fn read_capped(body: &mut Incoming, cap: usize) -> Result<(Bytes, bool), Failure> {
    let mut buf = BytesMut::new();
    while buf.len() < cap {
        match body.frame().await {
            None => return Ok((buf.freeze(), false)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = cap - buf.len();
                    buf.extend_from_slice(&data[..data.len().min(room)]);
                    if data.len() > room {
                        return Ok((buf.freeze(), true));
                    }
                }
            }
            Some(Err(err)) => return Err(classify_hyper(&err)),
        }
    }
    Ok((buf.freeze(), true))
}
