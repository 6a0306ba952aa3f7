//! `authprobe serve`: the probes of a config as a Prometheus multi-target exporter, on the
//! blackbox exporter's `/probe` protocol, with its own `/metrics`, a status page, config
//! reload (SIGHUP, `POST /-/reload`), scrape coalescing, a minimum interval per probe, and
//! optional basic auth and (m)TLS for the endpoints.

mod blackbox;
mod cards;
mod page;
mod render;
mod scrape;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::model::redact::{self, Secret};
use crate::surface::execute::{EXIT_OK, EXIT_USAGE, eprint_line};
use scrape::{ScrapeError, Service, SlotKey};

/// The default address: loopback only, and not the blackbox exporter's 9115, so both can
/// run on one machine.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9715";

/// Subtracted from Prometheus' scrape timeout so that the answer arrives before it gives
/// up (the blackbox exporter's `--timeout-offset` default).
const TIMEOUT_OFFSET: Duration = Duration::from_millis(500);

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: crate::surface::loading::ConfigArg,
    /// Address to listen on. Anything but loopback exposes the probes to the network:
    /// combine it with --basic-auth-user or --client-ca.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// A probe's result is reused for scrapes within this long of its last run, so that
    /// many scrapers (HA Prometheus pairs, dashboards) cannot storm a target. 0s disables.
    #[arg(long, value_name = "DUR", value_parser = parse_interval, default_value = "5s")]
    pub min_interval: Duration,
    /// Require HTTP basic auth with this user name (not for /healthz).
    #[arg(long, value_name = "USER", requires = "basic_auth_password_env")]
    pub basic_auth_user: Option<String>,
    /// The environment variable holding the basic-auth password.
    #[arg(long, value_name = "NAME", requires = "basic_auth_user")]
    pub basic_auth_password_env: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates issued by this CA (PEM): mutual TLS.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// On SIGTERM or SIGINT: stop accepting, let scrapes under way finish for at most this
    /// long, then exit 0. Keep it below Kubernetes' terminationGracePeriodSeconds.
    #[arg(long, value_name = "DUR", value_parser = parse_interval, default_value = "25s")]
    pub shutdown_grace: Duration,
    /// Also probe every probe of the config on this interval, without a scraper, so that
    /// serve is a standalone monitor (status page, /metrics); results are shared with
    /// scrapes under the --min-interval rule. Off by default.
    #[arg(long, value_name = "DUR", value_parser = parse_interval)]
    pub probe_interval: Option<Duration>,
}

fn parse_interval(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|err| format!("{err} (write e.g. 5s, 500ms, 0s)"))
}

struct BasicAuth {
    user: String,
    password: Secret,
}

struct Server {
    service: Arc<Service>,
    auth: Option<BasicAuth>,
    /// Check cards' attempts running per link.
    desk: cards::Desk,
    /// Served over TLS (the card cookie is `Secure`).
    https: bool,
    /// Card pages take passwords: only over TLS, or on loopback (behind a TLS proxy).
    card_pages: bool,
}

pub fn main(args: ServeArgs) -> u8 {
    let config = match crate::surface::loading::load_config(&args.config.config) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let auth = match (&args.basic_auth_user, &args.basic_auth_password_env) {
        (Some(user), Some(var)) => match std::env::var(var) {
            Ok(password) if !password.is_empty() => {
                redact::register(&password);
                redact::register_basic_auth(user, &password);
                Some(BasicAuth { user: user.clone(), password: Secret::new(password) })
            }
            _ => {
                eprint_line(&format!("error: --basic-auth-password-env: ${var} is not set or empty"));
                return EXIT_USAGE;
            }
        },
        _ => None,
    };
    let tls = match server_tls(&args) {
        Ok(tls) => tls,
        Err(why) => {
            eprint_line(&format!("error: {why}"));
            return EXIT_USAGE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprint_line(&format!("error: cannot start the async runtime: {err}"));
            return EXIT_USAGE;
        }
    };
    let code = runtime.block_on(async {
        let listener = match TcpListener::bind(&args.listen).await {
            Ok(l) => l,
            Err(err) => {
                eprint_line(&format!("error: cannot listen on {}: {}", args.listen, crate::model::error::describe_io(&err)));
                return EXIT_USAGE;
            }
        };
        let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| args.listen.clone());
        let exposed = listener.local_addr().is_ok_and(|a| !a.ip().is_loopback());
        if exposed && auth.is_none() && args.client_ca.is_none() {
            eprint_line(&format!(
                "warning: listening on {address} without --basic-auth-user or --client-ca: anyone who can reach it can run the probes"
            ));
        }
        let probes = config.probes.len();
        let service = Arc::new(Service::new(args.config.config.clone(), config, args.min_interval));
        let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
        let server = Arc::new(Server {
            service,
            auth,
            desk: cards::Desk::default(),
            https: tls.is_some(),
            card_pages: tls.is_some() || loopback,
        });
        eprint_line(&format!(
            "authprobe serve: listening on {}://{address} ({probes} probes from {})",
            if tls.is_some() { "https" } else { "http" },
            args.config.config.display()
        ));
        reload_on_sighup(server.service.clone());
        if let Some(every) = args.probe_interval.filter(|d| !d.is_zero()) {
            tokio::spawn(probe_on_interval(server.service.clone(), every));
        }
        let connections = Connections::default();
        tokio::select! {
            code = accept_loop(listener, tls, server.clone(), connections.clone()) => code,
            _ = crate::surface::execute::interrupt_signal() => {
                // The listener went with accept_loop: new connections are refused now.
                drain(&server, &connections, args.shutdown_grace).await;
                EXIT_OK
            }
        }
    });
    runtime.shutdown_background();
    code
}

/// `--probe-interval`: every probe of the config (as reloaded) on a fixed interval, all
/// at once, through the same slots scrapes use, so a scrape right after one is served the
/// fresh result and a run under way is shared.
async fn probe_on_interval(service: Arc<Service>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let names: Vec<String> = service.loaded().config.probes.iter().map(|p| p.name.clone()).collect();
        let runs = names.into_iter().map(|probe| {
            let service = service.clone();
            async move {
                let _ = service.scrape(&scrape::SlotKey { probe, target: None }, None).await;
            }
        });
        futures_join_all(runs).await;
    }
}

/// Runs the futures to completion together.
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(runs: impl Iterator<Item = F>) {
    let mut set = tokio::task::JoinSet::new();
    for run in runs {
        set.spawn(run);
    }
    while set.join_next().await.is_some() {}
}

fn server_tls(args: &ServeArgs) -> Result<Option<TlsAcceptor>, String> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &Path, what: &str| {
        crate::config::secrets::read_text_capped(path, crate::config::secrets::DATA_FILE_CAP)
            .map_err(|err| format!("{what} {}: {err}", path.display()))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(read(cert, "--tls-cert")?.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {}: no certificate in the file", cert.display()));
    }
    let private_key = PrivateKeyDer::from_pem_slice(read(key, "--tls-key")?.as_bytes())
        .map_err(|e| format!("--tls-key {}: no usable private key ({e})", key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(crate::connect::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match &args.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = crate::connect::tls::parse_ca(read(ca, "--client-ca")?.as_bytes())
                .map_err(|why| format!("--client-ca {}: {why}", ca.display()))?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                crate::connect::tls::provider(),
            )
            .build()
            .map_err(|e| format!("--client-ca {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, private_key).map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

fn reload_on_sighup(service: Arc<Service>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangup.recv().await.is_some() {
            log_reload(&service.reload(), "SIGHUP");
        }
    });
}

fn log_reload(result: &Result<usize, String>, why: &str) {
    match result {
        Ok(n) => eprint_line(&format!("authprobe serve: config reloaded ({why}): {n} probes")),
        Err(errors) => {
            eprint_line(&format!("authprobe serve: config reload ({why}) failed; still serving the previous config:"));
            for line in errors.lines() {
                eprint_line(&format!("  {line}"));
            }
        }
    }
}

/// The open connections, so that a shutdown can ask each to finish its request and close.
#[derive(Clone, Default)]
struct Connections {
    shutdown: tokio_util::sync::CancellationToken,
    tracker: tokio_util::task::TaskTracker,
}

/// Graceful shutdown: every connection finishes the request it is answering (idle ones
/// close at once), for at most `grace`; a second signal ends it sooner.
async fn drain(server: &Server, connections: &Connections, grace: Duration) {
    let in_flight = server.service.stats.in_flight.load(std::sync::atomic::Ordering::Relaxed);
    eprint_line(&format!(
        "authprobe serve: stopping: no new connections; {in_flight} probe runs under way get up to {}",
        humantime::format_duration(grace)
    ));
    connections.shutdown.cancel();
    connections.tracker.close();
    tokio::select! {
        _ = connections.tracker.wait() => eprint_line("authprobe serve: stopped"),
        _ = tokio::time::sleep(grace) => eprint_line(&format!(
            "authprobe serve: stopped with {} connections unfinished after {}",
            connections.tracker.len(),
            humantime::format_duration(grace)
        )),
        _ = crate::surface::execute::interrupt_signal() => eprint_line("authprobe serve: stopped at a second signal"),
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    server: Arc<Server>,
    connections: Connections,
) -> u8 {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors or a connection reset before accept: keep serving.
            Err(err) => {
                eprint_line(&format!("authprobe serve: accept failed: {}", crate::model::error::describe_io(&err)));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        let tls = tls.clone();
        let shutdown = connections.shutdown.clone();
        connections.tracker.spawn(async move {
            match tls {
                None => serve_connection(stream, server, shutdown).await,
                Some(acceptor) => {
                    // A failed handshake (no or a wrong client certificate) is told to the
                    // client by the TLS alert.
                    let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        serve_connection(stream, server, shutdown).await;
                    }
                }
            }
        });
    }
}

async fn serve_connection<S>(stream: S, server: Arc<Server>, shutdown: tokio_util::sync::CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let server = server.clone();
        async move { Ok::<_, Infallible>(server.handle(request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = shutdown.cancelled() => {
            // The request being answered completes; the connection then closes.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

type Answer = Response<Full<Bytes>>;

fn answer(code: StatusCode, content_type: &'static str, body: String) -> Answer {
    // Defence in depth: every body passes the scrubber, whatever produced it (the reports
    // in it were scrubbed field by field; this pass leaves short secrets, which would mask
    // ordinary words of hints).
    let mut response = Response::new(Full::new(Bytes::from(redact::scrub_defensively(&body))));
    *response.status_mut() = code;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

const TEXT: &str = "text/plain; charset=utf-8";
const METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// What a request asks for, decided once from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Status,
    /// `/status/NAME`, the name percent-decoded.
    ProbeStatus(String),
    Probe,
    Metrics,
    Healthz,
    Reload,
    Docs,
    /// `/card/TOKEN`: a check card's page for a credential's owner.
    Card(String),
    NotFound,
}

impl Route {
    fn of(path: &str) -> Route {
        match path {
            "/" => Route::Status,
            "/probe" => Route::Probe,
            "/metrics" => Route::Metrics,
            "/healthz" => Route::Healthz,
            "/-/reload" => Route::Reload,
            "/docs" => Route::Docs,
            _ => match (path.strip_prefix("/status/"), path.strip_prefix("/card/")) {
                (Some(name), _) => {
                    Route::ProbeStatus(percent_encoding::percent_decode_str(name).decode_utf8_lossy().into_owned())
                }
                (_, Some(token)) => Route::Card(token.to_string()),
                _ => Route::NotFound,
            },
        }
    }

    /// The `handler` label of authprobe_serve_requests_total.
    fn label(&self) -> &'static str {
        match self {
            Route::Status => "status",
            Route::ProbeStatus(_) => "probe_status",
            Route::Probe => "probe",
            Route::Metrics => "metrics",
            Route::Healthz => "healthz",
            Route::Reload => "reload",
            Route::Docs => "docs",
            Route::Card(_) => "card",
            Route::NotFound => "other",
        }
    }
}

impl Server {
    async fn handle(&self, request: Request<Incoming>) -> Answer {
        let route = Route::of(request.uri().path());
        let label = route.label();
        // A card's page needs only its link: its owner has no password for serve.
        let open = matches!(route, Route::Healthz | Route::Card(_));
        let response = if !open && !self.authorized(&request) {
            let mut r = answer(StatusCode::UNAUTHORIZED, TEXT, "authentication required\n".into());
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"authprobe\""));
            r
        } else {
            self.route(route, request).await
        };
        self.service.count_request(label, response.status().as_u16());
        response
    }

    async fn route(&self, route: Route, request: Request<Incoming>) -> Answer {
        let method = request.method().clone();
        let reading = method == Method::GET || method == Method::HEAD;
        let query = |name: &str| {
            url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        match route {
            Route::Reload if method == Method::POST || method == Method::PUT => {
                let result = self.service.reload();
                log_reload(&result, "POST /-/reload");
                match result {
                    Ok(n) => answer(StatusCode::OK, TEXT, format!("reloaded: {n} probes\n")),
                    Err(errors) => answer(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        TEXT,
                        format!("reload failed; still serving the previous config:\n{errors}\n"),
                    ),
                }
            }
            Route::Reload => answer(StatusCode::METHOD_NOT_ALLOWED, TEXT, "use POST\n".into()),
            Route::Card(_) if !self.card_pages => answer(
                StatusCode::FORBIDDEN,
                TEXT,
                "card pages take passwords: serve them over HTTPS (--tls-cert, --tls-key), or listen on loopback behind a TLS proxy\n".into(),
            ),
            Route::Card(token) => cards::handle(&self.service, &self.desk, &token, request, self.https).await,
            _ if !reading => answer(StatusCode::METHOD_NOT_ALLOWED, TEXT, "use GET\n".into()),
            Route::Status => {
                let number = |name: &str| query(name).and_then(|v| v.parse::<u64>().ok());
                let page = number("page").unwrap_or(1) as usize;
                // At least 5 s, so that a page left open cannot hammer the probes' results.
                let refresh = number("refresh").map(|s| s.clamp(5, 3600));
                answer(StatusCode::OK, HTML, page::status_page(&self.service, page, refresh))
            }
            Route::ProbeStatus(name) => {
                let key = scrape::SlotKey { probe: name, target: query("target") };
                match page::probe_page(&self.service, &key) {
                    Some(html) => answer(StatusCode::OK, HTML, html),
                    None => answer(StatusCode::NOT_FOUND, TEXT, "no such probe in the config\n".into()),
                }
            }
            Route::Docs => answer(StatusCode::OK, TEXT, include_str!("../../../docs/serve.md").to_string()),
            Route::Healthz => answer(StatusCode::OK, TEXT, "ok\n".into()),
            Route::Metrics => answer(StatusCode::OK, METRICS, render::exporter_metrics(&self.service)),
            Route::Probe => self.probe(&request).await,
            Route::NotFound => answer(
                StatusCode::NOT_FOUND,
                TEXT,
                "not found: try /, /status/NAME, /probe?target=NAME, /metrics, /healthz, /docs\n".into(),
            ),
        }
    }

    async fn probe(&self, request: &Request<Incoming>) -> Answer {
        let mut target = None;
        let mut module = None;
        let mut debug = false;
        for (key, value) in url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "target" => target = Some(value.into_owned()),
                "module" => module = Some(value.into_owned()),
                "debug" => debug = value == "true" || value == "1",
                _ => {}
            }
        }
        let key = match (module, target) {
            (Some(module), Some(target)) if !module.is_empty() => SlotKey { probe: module, target: Some(target) },
            (_, Some(target)) if !target.is_empty() => SlotKey { probe: target, target: None },
            _ => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    TEXT,
                    "target parameter is missing: /probe?target=PROBE, or /probe?module=PROBE&target=HOST\n".into(),
                );
            }
        };
        let budget = scrape_budget(request);
        match self.service.scrape(&key, budget).await {
            Ok((finished, served)) if debug => {
                answer(StatusCode::OK, TEXT, render::probe_debug(&key, &finished, served, &self.service))
            }
            Ok((finished, _)) => answer(StatusCode::OK, METRICS, render::probe_metrics(&finished)),
            Err(ScrapeError::UnknownProbe(name)) => {
                let hint = if key.target.is_some() { "module" } else { "target" };
                answer(
                    StatusCode::BAD_REQUEST,
                    TEXT,
                    format!("unknown {hint}: no probe named `{name}` in the config\n"),
                )
            }
            Err(ScrapeError::TargetNotAllowed(why)) => answer(StatusCode::FORBIDDEN, TEXT, format!("{why}\n")),
            Err(ScrapeError::BadTarget(why)) => answer(StatusCode::BAD_REQUEST, TEXT, format!("bad target: {why}\n")),
            Err(ScrapeError::Lost) => answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                "the probe's run was lost (a bug in authprobe)\n".into(),
            ),
        }
    }

    fn authorized(&self, request: &Request<Incoming>) -> bool {
        let Some(auth) = &self.auth else {
            return true;
        };
        let Some(given) = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some(encoded) = given.strip_prefix("Basic ").or_else(|| given.strip_prefix("basic ")) else {
            return false;
        };
        use base64::Engine;
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let expected = format!("{}:{}", auth.user, auth.password.read_here());
        constant_time_eq(&decoded, expected.as_bytes())
    }
}

/// Compares in constant time (aws-lc's, not a hand-written loop the optimiser may
/// shortcut), over SHA-256 digests so that neither how much matched nor the expected
/// length shows in the timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use aws_lc_rs::digest::{SHA256, digest};
    let (a, b) = (digest(&SHA256, a), digest(&SHA256, b));
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_ref(), b.as_ref()).is_ok()
}

/// How long a run may take for this scrape: Prometheus' scrape timeout less the offset.
fn scrape_budget(request: &Request<Incoming>) -> Option<Duration> {
    let seconds: f64 =
        request.headers().get("x-prometheus-scrape-timeout-seconds")?.to_str().ok()?.trim().parse().ok()?;
    if !seconds.is_finite() || seconds <= 0.0 {
        return None;
    }
    let budget = Duration::from_secs_f64(seconds.min(86_400.0));
    Some(if budget > TIMEOUT_OFFSET * 2 { budget - TIMEOUT_OFFSET } else { budget / 2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_routed_once() {
        assert_eq!(Route::of("/status/orders%2Ddb"), Route::ProbeStatus("orders-db".into()));
        assert_eq!(Route::of("/probe"), Route::Probe);
        assert_eq!(Route::of("/probe/"), Route::NotFound);
        assert_eq!(Route::of("/status/x").label(), "probe_status");
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"user:pw", b"user:pw"));
        assert!(!constant_time_eq(b"user:pw", b"user:px"));
        assert!(!constant_time_eq(b"user:pw", b"user:pw2"));
    }
}
