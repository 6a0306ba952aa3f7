//! A minimal HTTP client over the shared connection machinery: one connection, stages
//! recorded as they happen (dns, connect, tls), HTTP/2 or HTTP/1.1 by ALPN, bodies read
//! with a size cap. Used by the `http` probe and for OAuth2 token requests.

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use url::Url;

use crate::error::{ErrorClass, Failure, Stage, classify_io, describe_io, find_cause};
use crate::net::{self, Record};
use crate::stage::ProbeContext;
use crate::tls::{self, Recorder, TlsOptions};

pub const USER_AGENT: &str = concat!("authprobe/", env!("CARGO_PKG_VERSION"));

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// An open HTTP connection to one origin.
pub struct Connection {
    sender: Sender,
    authority: String,
    recorder: Option<Recorder>,
    tls: TlsOptions,
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
    let host = url
        .host_str()
        .ok_or_else(|| Failure::new(ErrorClass::Config, "the URL has no host"))?
        .to_string();
    let port = url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
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
    let tcp = net::connect(ctx, &host, port, record).await?;
    let authority = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or(&host)),
        None => url.host_str().unwrap_or(&host).to_string(),
    };
    if !https {
        let sender = handshake_h1(TokioIo::new(tcp)).await?;
        return Ok(Connection {
            sender,
            authority,
            recorder: None,
            tls: tls_opts.clone(),
        });
    }
    let work = async {
        let hs = tls::handshake(
            ctx,
            tcp,
            tls_opts,
            &host,
            &[b"h2", b"http/1.1"],
            record == Record::Stages,
        )
        .await?;
        let h2 = hs.stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(hs.stream);
        let sender = if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| {
                    Failure::new(ErrorClass::Protocol, format!("HTTP/2 setup failed: {e}"))
                })?;
            tokio::spawn(conn);
            Sender::H2(sender)
        } else {
            handshake_h1(io).await?
        };
        Ok::<_, Failure>((sender, hs.recorder))
    };
    let (sender, recorder) = net::maybe_stage(ctx, record, Stage::Tls, work).await?;
    Ok(Connection {
        sender,
        authority,
        recorder: Some(recorder),
        tls: tls_opts.clone(),
    })
}

async fn handshake_h1<IO>(io: TokioIo<IO>) -> Result<Sender, Failure>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io)
        .await
        .map_err(|e| Failure::internal(format!("HTTP/1.1 setup: {e}")))?;
    tokio::spawn(conn);
    Ok(Sender::H1(sender))
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
        let uri = match &self.sender {
            Sender::H1(_) => path,
            Sender::H2(_) => format!("{}://{}{}", url.scheme(), self.authority, path),
        };
        let mut builder = Request::builder().method(method).uri(uri);
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
        let request = builder.body(Full::new(body)).map_err(|e| {
            Failure::new(ErrorClass::Config, format!("cannot build the request: {e}"))
        })?;
        let result = match &mut self.sender {
            Sender::H1(s) => s.send_request(request).await,
            Sender::H2(s) => s.send_request(request).await,
        };
        result.map_err(|err| self.classify(&err))
    }

    /// A failure while talking HTTP, with TLS errors that surface after the handshake
    /// (client certificate refusals under TLS 1.3) classified as such.
    pub fn classify(&self, err: &hyper::Error) -> Failure {
        if let Some(recorder) = &self.recorder {
            if let Some(failure) = tls::classify_post_handshake(err, recorder, &self.tls) {
                return failure;
            }
        }
        classify_hyper(err)
    }
}

pub fn classify_hyper(err: &hyper::Error) -> Failure {
    if err.is_parse() {
        return Failure::new(
            ErrorClass::Protocol,
            "the server's answer is not valid HTTP",
        )
        .with_hint("check the port and scheme: this may not be an HTTP server, or it expects TLS");
    }
    if let Some(io) = find_cause::<std::io::Error>(err) {
        return Failure::new(
            classify_io(io),
            format!("while waiting for the response: {}", describe_io(io)),
        );
    }
    if err.is_incomplete_message() || err.is_canceled() || err.is_closed() {
        return Failure::new(
            ErrorClass::Network,
            "the server closed the connection before answering",
        );
    }
    Failure::new(ErrorClass::Network, format!("HTTP exchange failed: {err}"))
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
