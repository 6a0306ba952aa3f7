//! Real servers inside the test process, on 127.0.0.1 and ephemeral ports. They check what
//! they receive for real: bearer tokens, basic auth, API keys, client certificates, and an
//! OAuth2 token endpoint that checks client credentials and refresh tokens and only accepts
//! the access tokens it issued. Plus misbehaving peers for the network error classes.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::certs::Leaf;

/// Credentials the servers accept. They double as canaries: none may ever appear in output.
pub const GOOD_TOKEN: &str = "CANARY-bearer-good-4f1d8e";
pub const BAD_TOKEN: &str = "CANARY-bearer-bad-9a7c21";
pub const BASIC_USER: &str = "alice";
pub const BASIC_PASSWORD: &str = "CANARY-basic-pw-77e1b3";
pub const BAD_PASSWORD: &str = "CANARY-basic-wrong-0c55aa";
pub const API_KEY: &str = "CANARY-apikey-good-31f0c2";
pub const BAD_API_KEY: &str = "CANARY-apikey-bad-e4a901";
pub const CLIENT_ID: &str = "authprobe-client";
pub const CLIENT_SECRET: &str = "CANARY-client-secret-6b2f90";
pub const BAD_CLIENT_SECRET: &str = "CANARY-client-secret-bad-d81e07";
pub const REFRESH_TOKEN: &str = "CANARY-refresh-good-58ac1e";
pub const BAD_REFRESH_TOKEN: &str = "CANARY-refresh-bad-a0b9f3";
/// Prefix of the access tokens the OAuth2 server issues (each one is registered too).
pub const ISSUED_PREFIX: &str = "CANARY-issued-";

pub fn all_canaries() -> Vec<String> {
    [
        GOOD_TOKEN,
        BAD_TOKEN,
        BASIC_PASSWORD,
        BAD_PASSWORD,
        API_KEY,
        BAD_API_KEY,
        CLIENT_SECRET,
        BAD_CLIENT_SECRET,
        REFRESH_TOKEN,
        BAD_REFRESH_TOKEN,
        ISSUED_PREFIX,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A running server; it stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    state: Arc<State>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.addr.port())
    }

    /// How many requests reached the application (not counting failed handshakes); for the
    /// misbehaving raw servers, how many connections they accepted.
    pub fn requests(&self) -> usize {
        *self.state.requests.lock().unwrap()
    }
}

#[derive(Default)]
struct State {
    issued: Mutex<HashSet<String>>,
    requests: Mutex<usize>,
}

/// Client certificate policy of an HTTPS test server.
pub enum ClientCerts {
    None,
    /// The handshake fails unless the client presents a certificate from this CA.
    Required(rustls::pki_types::CertificateDer<'static>),
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1")
}

/// Plain HTTP with the test routes.
pub async fn http() -> Server {
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let state = Arc::new(State::default());
    let st = state.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else { continue };
            serve_conn(TokioIo::new(tcp), st.clone());
        }
    });
    Server { addr, task, state }
}

/// HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with the test routes.
pub async fn https(leaf: &Leaf, client_certs: ClientCerts) -> Server {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().unwrap();
    let builder = match client_certs {
        ClientCerts::None => builder.with_no_client_auth(),
        ClientCerts::Required(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(leaf.chain.clone(), leaf.key()).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let state = Arc::new(State::default());
    let st = state.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else { continue };
            let acceptor = acceptor.clone();
            let st = st.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve_conn(TokioIo::new(tls), st);
                }
            });
        }
    });
    Server { addr, task, state }
}

fn serve_conn<IO>(io: TokioIo<IO>, state: Arc<State>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |req| handle(req, state.clone()));
        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).serve_connection(io, service).await;
    });
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder().status(status).body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

fn challenge(scheme: &str) -> Response<Full<Bytes>> {
    let mut r = reply(StatusCode::UNAUTHORIZED, "unauthorized");
    let value = if scheme == "Bearer" {
        "Bearer error=\"invalid_token\"".to_string()
    } else {
        format!("{scheme} realm=\"test\"")
    };
    r.headers_mut().insert(header::WWW_AUTHENTICATE, value.parse().unwrap());
    r
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = reply(status, &body.to_string());
    r.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    r
}

fn authorization(req: &Request<Incoming>) -> Option<String> {
    req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn basic_pair(auth: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = auth.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    let unform = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unform(u)?, unform(p)?))
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    let q = req.uri().query()?;
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Response<Full<Bytes>>, Infallible> {
    *state.requests.lock().unwrap() += 1;
    let path = req.uri().path().to_string();
    let auth = authorization(&req);
    let good_bearer = auth.as_deref() == Some(&format!("Bearer {GOOD_TOKEN}"));
    Ok(match path.as_str() {
        "/health" => reply(StatusCode::OK, "status: healthy"),
        "/bearer" if good_bearer => reply(StatusCode::OK, "hello bearer"),
        "/bearer" => challenge("Bearer"),
        "/basic" => match auth.as_deref().and_then(basic_pair) {
            Some((u, p)) if u == BASIC_USER && p == BASIC_PASSWORD => reply(StatusCode::OK, "hello basic"),
            _ => challenge("Basic"),
        },
        "/apikey" => match req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
            Some(k) if k == API_KEY => reply(StatusCode::OK, "hello key"),
            _ => reply(StatusCode::UNAUTHORIZED, "bad key"),
        },
        "/apikey-query" => match query_param(&req, "api_key") {
            Some(k) if k == API_KEY => reply(StatusCode::OK, "hello key"),
            _ => reply(StatusCode::UNAUTHORIZED, "bad key"),
        },
        // Authenticated, but not allowed.
        "/forbidden" if good_bearer => reply(StatusCode::FORBIDDEN, "forbidden"),
        "/forbidden" => challenge("Bearer"),
        "/error" => reply(StatusCode::INTERNAL_SERVER_ERROR, "boom"),
        "/slow" => {
            let ms: u64 = query_param(&req, "ms").and_then(|v| v.parse().ok()).unwrap_or(300);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            reply(StatusCode::OK, "slow but fine")
        }
        "/redirect" => {
            let mut r = reply(StatusCode::FOUND, "");
            r.headers_mut().insert(header::LOCATION, "/health".parse().unwrap());
            r
        }
        "/oauth/token" => token_endpoint(req, &state).await,
        "/oauth/api" => {
            let issued = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")).map(str::to_string);
            match issued {
                Some(t) if state.issued.lock().unwrap().contains(&t) => reply(StatusCode::OK, "hello oauth"),
                _ => challenge("Bearer"),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "not found"),
    })
}

/// RFC 6749 token endpoint: client_credentials and refresh_token grants, client secret by
/// HTTP basic or in the form.
async fn token_endpoint(req: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let auth = authorization(&req);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, "bad body"),
    };
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (client_id, secret) = match auth.as_deref().and_then(basic_pair) {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (field("client_id"), field("client_secret")),
    };
    let error = |status: StatusCode, code: &str| {
        json(status, serde_json::json!({"error": code, "error_description": format!("test server says {code}")}))
    };
    if client_id.as_deref() != Some(CLIENT_ID) {
        return error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    match field("grant_type").as_deref() {
        Some("client_credentials") => {
            if secret.as_deref() != Some(CLIENT_SECRET) {
                return error(StatusCode::UNAUTHORIZED, "invalid_client");
            }
            if field("scope").as_deref() == Some("admin") {
                return error(StatusCode::BAD_REQUEST, "invalid_scope");
            }
        }
        Some("refresh_token") => {
            // Public client allowed: no secret, or the right one.
            if secret.as_deref().is_some_and(|s| s != CLIENT_SECRET) {
                return error(StatusCode::UNAUTHORIZED, "invalid_client");
            }
            if field("refresh_token").as_deref() != Some(REFRESH_TOKEN) {
                return error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
        }
        _ => return error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
    let token = format!("{ISSUED_PREFIX}{:016x}", rand_u64());
    state.issued.lock().unwrap().insert(token.clone());
    json(StatusCode::OK, serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": 300}))
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    h.finish()
}

/// A server whose every connection is handled by `handle`: the misbehaving peers below.
pub async fn raw<F, Fut>(handle: F) -> Server
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let state: Arc<State> = Arc::default();
    let counted = state.clone();
    let task = tokio::spawn(async move {
        loop {
            if let Ok((tcp, _)) = l.accept().await {
                *counted.requests.lock().unwrap() += 1;
                tokio::spawn(handle(tcp));
            }
        }
    });
    Server { addr, task, state }
}

/// Accepts connections and never says a word (a black-holed service).
pub async fn silent() -> Server {
    raw(|tcp| async move {
        let _held = tcp;
        std::future::pending::<()>().await
    })
    .await
}

/// Reads whatever the client sends (a TLS ClientHello) and never answers.
pub async fn stall_after_hello() -> Server {
    raw(|mut tcp| async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
}

/// Reads the first bytes and resets the connection (RST, not FIN) mid-handshake.
pub async fn reset_after_hello() -> Server {
    raw(|mut tcp| async move {
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.set_zero_linger();
    })
    .await
}

/// Answers anything with a line that is not HTTP (an SSH banner).
pub async fn wrong_protocol() -> Server {
    raw(|mut tcp| async move {
        let _ = tcp.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.write_all(b"Protocol mismatch.\n").await;
    })
    .await
}

/// A DNS server on a loopback address that answers every query with NXDOMAIN, so that a
/// resolver pointed at it fails for real without any traffic leaving the machine.
pub async fn nxdomain_dns(ip: &str) -> tokio::task::JoinHandle<()> {
    let socket = tokio::net::UdpSocket::bind(format!("{ip}:53")).await.expect("bind DNS port (needs root)");
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else { continue };
            if n < 12 {
                continue;
            }
            let mut answer = buf[..n].to_vec();
            // QR=1, opcode copied, RD copied, RA=1, RCODE=3 (NXDOMAIN); counts: 1 question.
            answer[2] = 0x80 | (buf[2] & 0x79);
            answer[3] = 0x80 | 0x03;
            answer[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
            let _ = socket.send_to(&answer, peer).await;
        }
    })
}
