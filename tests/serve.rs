//! `authprobe serve` over real HTTP: /probe against the harness's servers and in-process
//! ones, coalescing, the minimum interval, the scrape-timeout header, reload, basic auth,
//! mTLS, promtool on every metrics answer, and a real Prometheus scraping it with the
//! blackbox exporter's relabelling.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};

use crate::util::servers::{self, GOOD_TOKEN};
use crate::util::*;

/// A running `authprobe serve`; killed when dropped.
pub struct Serve {
    child: tokio::process::Child,
    pub addr: String,
    log: Arc<Mutex<String>>,
}

impl Serve {
    pub async fn start(config: &std::path::Path, extra: &[&str], env: &[(String, String)]) -> Serve {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(["serve", "-c", config.to_str().unwrap()]);
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(extra)
            .env_remove("AUTHPROBE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn authprobe serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(rest) = line.split("authprobe serve: listening on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap();
                    return addr.split("://").nth(1).unwrap().to_string();
                }
            }
            panic!("authprobe serve exited before listening:\n{}", log.lock().unwrap());
        })
        .await
        .expect("authprobe serve did not start listening within 20 s");
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Serve { child, addr, log }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        request(&self.addr, "GET", path, &[]).await
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Whether the log shows `text` within 2 s (its reader runs on its own task, and may
    /// not have read a dying process's last lines yet).
    pub async fn log_soon_contains(&self, text: &str) -> bool {
        for _ in 0..40 {
            if self.log().contains(text) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// One HTTP/1.1 request over a fresh connection.
async fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect to serve");
    exchange(tcp, addr, method, path, headers).await
}

pub async fn exchange<S>(io: S, addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await.expect("http handshake");
    tokio::spawn(conn);
    let mut builder = http::Request::builder().method(method).uri(path).header("host", addr);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(60),
        sender.send_request(builder.body(Empty::<Bytes>::new()).unwrap()),
    )
    .await
    .expect("serve answered within 60 s")
    .expect("send request");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("read body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

pub fn promtool_accepts(text: &str) {
    let promtool = require_tool("promtool");
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    // promtool exits 3 for lint warnings only (e.g. a counter's name); 1 is a parse error.
    assert!(
        out.status.success(),
        "promtool rejected:\n{text}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn harness_probes() -> String {
    let mut cfg = String::new();
    cfg += "[[probe]]\nname = \"pg-ok\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${AP_PG_PORT}\"\ndatabase = \"appdb\"\nuser = \"${AP_PG_USER}\"\npassword = \"${AP_PG_PASSWORD}\"\ntls = { mode = \"verify-full\", ca = \"${AP_CA}\" }\n\n";
    cfg += "[[probe]]\nname = \"mysql-wrong-password\"\nkind = \"mysql\"\nhost = \"127.0.0.1\"\nport = \"${AP_MYSQL_PORT}\"\nuser = \"${AP_MYSQL_USER}\"\npassword = \"CANARY-serve-mysql-3e9d1c\"\ntls = { mode = \"verify-ca\", ca = \"${AP_CA}\" }\n\n";
    cfg
}

#[tokio::test]
async fn probe_endpoint_answers_for_real_servers_and_never_shows_a_secret() {
    let env = harness_env();
    let api = servers::http().await;
    let ws = Workspace::new();
    let mut cfg = harness_probes();
    cfg += &http_probe(
        "api-ok",
        &api.url("http", "/bearer"),
        &format!("auth = {{ type = \"bearer\", token = \"{GOOD_TOKEN}\" }}"),
    );
    cfg += &http_probe(
        "api-stale-token",
        &api.url("http", "/bearer"),
        "auth = { type = \"bearer\", token = \"CANARY-serve-stale-71b2e0\" }",
    );
    let config = ws.config(&cfg);
    let serve = Serve::start(&config, &["--min-interval", "0s"], &env).await;

    let mut seen = String::new();
    for (name, success, failure) in [
        ("pg-ok", 1.0, None),
        ("api-ok", 1.0, None),
        ("api-stale-token", 0.0, Some(("auth", "auth_rejected"))),
        ("mysql-wrong-password", 0.0, Some(("auth", "auth_rejected"))),
    ] {
        let (status, body) = serve.get(&format!("/probe?target={name}")).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(value(&body, "probe_success"), Some(success), "{name}:\n{body}");
        assert!(value(&body, "probe_duration_seconds").is_some_and(|d| (0.0..10.0).contains(&d)), "{body}");
        if let Some((stage, class)) = failure {
            let kind = if name.starts_with("mysql") { "mysql" } else { "http" };
            let series = format!(
                "authprobe_probe_failure_info{{probe=\"{name}\",kind=\"{kind}\",stage=\"{stage}\",class=\"{class}\"}}"
            );
            assert_eq!(value(&body, &series), Some(1.0), "{name}:\n{body}");
        }
        promtool_accepts(&body);
        seen += &body;
        let (status, debug) = serve.get(&format!("/probe?target={name}&debug=true")).await;
        assert_eq!(status, 200);
        assert!(debug.contains(&format!("Probe `{name}`")) && debug.contains("Metrics a scrape gets"), "{debug}");
        seen += &debug;
    }
    // TLS probes report the certificate under the blackbox exporter's name too.
    let (_, pg) = serve.get("/probe?target=pg-ok").await;
    assert!(value(&pg, "probe_ssl_earliest_cert_expiry").is_some_and(|t| t > 1.7e9), "{pg}");
    let (_, debug) = serve.get("/probe?target=mysql-wrong-password&debug=true").await;
    assert!(debug.contains("auth: auth_rejected") && debug.contains("hint:"), "{debug}");

    let (status, metrics) = serve.get("/metrics").await;
    assert_eq!(status, 200);
    promtool_accepts(&metrics);
    assert!(
        value(&metrics, "authprobe_serve_probe_runs_total{probe=\"pg-ok\",result=\"success\"}")
            .is_some_and(|n| n >= 2.0),
        "{metrics}"
    );
    assert!(
        value(
            &metrics,
            "authprobe_serve_probe_failures_total{probe=\"api-stale-token\",stage=\"auth\",class=\"auth_rejected\"}"
        )
        .is_some_and(|n| n >= 2.0),
        "{metrics}"
    );
    assert_eq!(value(&metrics, "authprobe_serve_probes_in_flight"), Some(0.0), "{metrics}");
    assert!(value(&metrics, "process_resident_memory_bytes").is_some(), "{metrics}");
    seen += &metrics;

    let (status, page) = serve.get("/").await;
    assert_eq!(status, 200);
    for name in ["pg-ok", "api-ok", "api-stale-token", "mysql-wrong-password"] {
        assert!(page.contains(&format!("data-probe=\"{name}\"")), "{page}");
    }
    assert!(page.contains("<span class=\"summary\">2 failing</span>"), "{page}");
    assert!(page.contains("<article class=\"fail\"") && page.contains("<article class=\"pass\""), "{page}");
    assert!(page.contains("auth: auth_rejected"), "{page}");
    seen += &page;

    assert_eq!(serve.get("/healthz").await, (200, "ok\n".to_string()));
    let (status, body) = serve.get("/probe?target=no-such-probe").await;
    assert!(status == 400 && body.contains("no probe named `no-such-probe`"), "{status} {body}");
    let (status, _) = serve.get("/probe").await;
    assert_eq!(status, 400);
    let (status, _) = serve.get("/nowhere").await;
    assert_eq!(status, 404);

    seen += &serve.log();
    let mut canaries = servers::all_canaries();
    canaries.extend(["CANARY-serve-mysql-3e9d1c".into(), "CANARY-serve-stale-71b2e0".into()]);
    canaries.push(harness_var(&env, "AP_PG_PASSWORD"));
    for canary in canaries {
        assert!(!seen.contains(&canary), "secret `{canary}` leaked:\n{seen}");
    }
}

#[tokio::test]
async fn module_and_target_aim_a_probe_only_where_it_allows() {
    let api = servers::http().await;
    let other = servers::http().await;
    let ws = Workspace::new();
    let cfg = http_probe(
        "health",
        &api.url("http", "/health"),
        "allowed_targets = [\"127.0.0.1:*\", \"http://127.0.0.1:*/health\"]",
    ) + &http_probe("pinned", &api.url("http", "/health"), "");
    let config = ws.config(&cfg);
    let serve = Serve::start(&config, &["--min-interval", "0s"], &[]).await;

    // host:port keeps the probe's scheme and path; a URL replaces it.
    let (status, body) = serve.get(&format!("/probe?module=health&target=127.0.0.1:{}", other.port())).await;
    assert_eq!((status, value(&body, "probe_success")), (200, Some(1.0)), "{body}");
    assert_eq!(other.requests(), 1);
    let url = other.url("http", "/health");
    let (status, body) =
        serve.get(&format!("/probe?module=health&target={}", url.replace(':', "%3A").replace('/', "%2F"))).await;
    assert_eq!((status, value(&body, "probe_success")), (200, Some(1.0)), "{body}");
    assert_eq!(other.requests(), 2);
    assert_eq!(api.requests(), 0, "the module's own URL was not used");

    let (status, body) = serve.get("/probe?module=health&target=10.1.2.3:80").await;
    assert!(status == 403 && body.contains("allowed_targets"), "{status} {body}");
    let (status, body) = serve.get(&format!("/probe?module=pinned&target=127.0.0.1:{}", other.port())).await;
    assert!(status == 403 && body.contains("allowed_targets"), "{status} {body}");
    assert!(body.contains("the path is part of the pattern"), "{body}");
    let (status, body) = serve.get("/probe?module=health&target=127.0.0.1:notaport").await;
    assert!(status == 400 && body.contains("not a port number"), "{status} {body}");
    let (status, body) = serve.get("/probe?module=nope&target=127.0.0.1:80").await;
    assert!(status == 400 && body.contains("unknown module"), "{status} {body}");
    assert_eq!(other.requests(), 2);

    // The status page lists retargeted runs under the module's name.
    let (_, page) = serve.get("/").await;
    assert!(page.contains(&format!("127.0.0.1:{}", other.port())), "{page}");
    // The probe page's stage table says `ok` as every other surface does.
    let (_, detail) = serve.get(&format!("/status/health?target=127.0.0.1:{}", other.port())).await;
    assert!(detail.contains("<td>ok</td>") && !detail.contains("<td>Ok</td>"), "{detail}");
}

#[tokio::test]
async fn concurrent_scrapes_share_one_run_and_the_minimum_interval_protects_the_target() {
    let api = servers::http().await;
    let ws = Workspace::new();
    let config = ws.config(&http_probe("slow", &api.url("http", "/slow?ms=600"), ""));
    let serve = Arc::new(Serve::start(&config, &["--min-interval", "30s"], &[]).await);

    let mut scrapes = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let serve = serve.clone();
        scrapes.spawn(async move { serve.get("/probe?target=slow").await });
    }
    while let Some(done) = scrapes.join_next().await {
        let (status, body) = done.unwrap();
        assert_eq!((status, value(&body, "probe_success")), (200, Some(1.0)), "{body}");
    }
    assert_eq!(api.requests(), 1, "20 concurrent scrapes must reach the target once");

    // Within the minimum interval, the last result is served again, saying how old it is.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, body) = serve.get("/probe?target=slow").await;
    assert!(value(&body, "authprobe_probe_result_age_seconds").is_some_and(|age| age >= 0.2), "{body}");
    assert_eq!(api.requests(), 1);

    let (_, metrics) = serve.get("/metrics").await;
    assert_eq!(value(&metrics, "authprobe_serve_scrapes_total{served=\"ran\"}"), Some(1.0), "{metrics}");
    assert_eq!(value(&metrics, "authprobe_serve_scrapes_total{served=\"coalesced\"}"), Some(19.0), "{metrics}");
    assert_eq!(value(&metrics, "authprobe_serve_scrapes_total{served=\"cached\"}"), Some(1.0), "{metrics}");
}

/// `--probe-interval`: serve as a standalone monitor. Without a scraper the status page
/// shows results; a scrape right after a tick is served the fresh result.
#[tokio::test]
async fn probe_interval_runs_the_probes_without_a_scraper() {
    let api = servers::http().await;
    let ws = Workspace::new();
    let config = ws.config(&http_probe("monitored", &api.url("http", "/health"), ""));
    let serve = Serve::start(&config, &["--probe-interval", "1s", "--min-interval", "800ms"], &[]).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let before = api.requests();
    assert!(before >= 2, "two ticks in 2.5 s should have probed twice, probed {before} times");
    let (status, page) = serve.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains("1 passing · 0 not probed yet"), "{page}");
    let (_, body) = serve.get("/probe?target=monitored").await;
    assert_eq!(value(&body, "probe_success"), Some(1.0), "{body}");
    assert!(api.requests() <= before + 1, "the scrape shared the monitor's result");
    // Off by default: no traffic without a scrape.
    let idle = servers::http().await;
    let quiet = ws.write("quiet.toml", &http_probe("quiet", &idle.url("http", "/health"), ""));
    let _off = Serve::start(&quiet, &[], &[]).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(idle.requests(), 0);
}

#[tokio::test]
async fn the_scrape_timeout_header_bounds_a_hung_probe() {
    let hung = servers::silent().await;
    let ws = Workspace::new();
    let cfg = format!(
        "[[probe]]\nname = \"hung\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{}/\"\ntimeout = \"60s\"\n",
        hung.port()
    );
    let config = ws.config(&cfg);
    let serve = Serve::start(&config, &[], &[]).await;
    let started = Instant::now();
    let (status, body) =
        request(&serve.addr, "GET", "/probe?target=hung", &[("X-Prometheus-Scrape-Timeout-Seconds", "2.5")]).await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(value(&body, "probe_success"), Some(0.0), "{body}");
    assert!(body.contains("class=\"timeout\""), "{body}");
    // 2.5 s less the 0.5 s offset: the answer arrives before Prometheus gives up.
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_millis(2400), "took {took:?}");
}

#[tokio::test]
async fn reload_keeps_serving_the_old_config_when_the_new_one_is_invalid() {
    let api = servers::http().await;
    let ws = Workspace::new();
    let good = http_probe("first", &api.url("http", "/health"), "");
    let config = ws.config(&good);
    let serve = Serve::start(&config, &["--min-interval", "0s"], &[]).await;
    assert_eq!(value(&serve.get("/probe?target=first").await.1, "probe_success"), Some(1.0));

    // At startup, a bad config or a taken address is exit 2, before anything listens.
    let broken = ws.write("broken.toml", "[[probe]]\nname = \"x\"\nkind = \"http\"\nurll = \"http://127.0.0.1/\"\n");
    let out = authprobe(&["serve", "-c", broken.to_str().unwrap(), "--listen", "127.0.0.1:0"], &[]).await;
    assert!(out.code == 2 && out.stderr.contains("broken.toml:4:1") && !out.stderr.contains("listening"), "{out:?}");
    let out = authprobe(&["serve", "-c", config.to_str().unwrap(), "--listen", &serve.addr], &[]).await;
    assert!(out.code == 2 && out.stderr.contains("cannot listen on"), "{out:?}");

    // A typo: the reload fails with file, line and key; the old probes go on being served.
    ws.config(&(good.clone() + "[[probe]]\nname = \"second\"\nkind = \"http\"\nurll = \"http://127.0.0.1/\"\n"));
    let (status, body) = request(&serve.addr, "POST", "/-/reload", &[]).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("probes.toml:") && body.contains("urll") && body.contains("still serving"), "{body}");
    assert_eq!(value(&serve.get("/probe?target=first").await.1, "probe_success"), Some(1.0));
    let (_, metrics) = serve.get("/metrics").await;
    assert_eq!(value(&metrics, "authprobe_serve_config_last_reload_successful"), Some(0.0), "{metrics}");
    let (_, page) = serve.get("/").await;
    assert!(page.contains("The last reload failed") && page.contains("urll"), "{page}");
    assert!(serve.log().contains("failed; still serving the previous config"), "{}", serve.log());

    // Fixed, and reloaded by SIGHUP this time.
    ws.config(&(good + &http_probe("second", &api.url("http", "/health"), "")));
    let pid = serve.child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = serve.get("/probe?target=second").await;
        if status == 200 {
            assert_eq!(value(&body, "probe_success"), Some(1.0), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload the config:\n{}", serve.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, metrics) = serve.get("/metrics").await;
    assert_eq!(value(&metrics, "authprobe_serve_config_last_reload_successful"), Some(1.0), "{metrics}");
    assert_eq!(value(&metrics, "authprobe_serve_config_probes"), Some(2.0), "{metrics}");
    assert_eq!(request(&serve.addr, "GET", "/-/reload", &[]).await.0, 405);
}

#[tokio::test]
async fn basic_auth_and_mutual_tls_guard_every_endpoint_but_healthz() {
    use base64::Engine;
    let api = servers::http().await;
    let ws = Workspace::new();
    let config = ws.config(&http_probe("api", &api.url("http", "/health"), ""));
    let password = "CANARY-serve-basic-5d0a47";
    let env = vec![("SERVE_PASSWORD".to_string(), password.to_string())];
    let serve =
        Serve::start(&config, &["--basic-auth-user", "prom", "--basic-auth-password-env", "SERVE_PASSWORD"], &env)
            .await;
    let good = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("prom:{password}")));
    let bad = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("prom:guess"));
    for path in ["/probe?target=api", "/metrics", "/"] {
        assert_eq!(serve.get(path).await.0, 401, "{path}");
        assert_eq!(request(&serve.addr, "GET", path, &[("authorization", &bad)]).await.0, 401, "{path}");
        let (status, body) = request(&serve.addr, "GET", path, &[("authorization", &good)]).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(!body.contains(password));
    }
    assert_eq!(serve.get("/healthz").await.0, 200);
    assert_eq!(request(&serve.addr, "POST", "/-/reload", &[]).await.0, 401);
    drop(serve);

    // Mutual TLS: no client certificate, or one from another CA, gets no answer at all.
    let pki = certs::pki();
    let args = [
        "--tls-cert",
        pki.server.cert_path.to_str().unwrap(),
        "--tls-key",
        pki.server.key_path.to_str().unwrap(),
        "--client-ca",
        pki.ca_path.to_str().unwrap(),
    ];
    let serve = Serve::start(&config, &args, &[]).await;
    assert!(serve.log().contains("listening on https://"), "{}", serve.log());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let roots = Arc::new(roots);
    let tls_get = |client: Option<&certs::Leaf>| {
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots.clone());
        let config = match client {
            Some(leaf) => builder.with_client_auth_cert(leaf.chain.clone(), leaf.key()).unwrap(),
            None => builder.with_no_client_auth(),
        };
        let addr = serve.addr.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let stream = connector.connect(name, tcp).await.ok()?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.ok()?;
            tokio::spawn(conn);
            let req = http::Request::get("/probe?target=api")
                .header("host", "localhost")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let response = sender.send_request(req).await.ok()?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.ok()?.to_bytes();
            Some((status, String::from_utf8_lossy(&body).into_owned()))
        }
    };
    let (status, body) = tls_get(Some(&pki.client)).await.expect("a trusted client certificate is served");
    assert_eq!((status, value(&body, "probe_success")), (200, Some(1.0)), "{body}");
    assert!(tls_get(None).await.is_none(), "served a client without a certificate");
    assert!(tls_get(Some(&pki.rogue_client)).await.is_none(), "served a client certificate from another CA");
    assert_eq!(api.requests(), 2, "one run with basic auth, one over mutual TLS");
}

/// Prometheus' config from examples/kubernetes/prometheus.yml, aimed at this test's serve.
fn example_scrape_config(ws: &Workspace, serve_addr: &str, password_file: &std::path::Path) -> std::path::PathBuf {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes/prometheus.yml");
    let script = r#"
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
addr, password_file = sys.argv[2], sys.argv[3]
config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s"}
probes, exporter = config["scrape_configs"]
probes["static_configs"] = [{"targets": ["api-ok", "api-stale"]}]
assert probes["relabel_configs"][-1]["target_label"] == "__address__"
probes["relabel_configs"][-1]["replacement"] = addr
exporter["static_configs"] = [{"targets": [addr]}]
for job in (probes, exporter):
    job["basic_auth"]["password_file"] = password_file
print(yaml.safe_dump(config))
"#;
    let out = std::process::Command::new(require_tool("python3"))
        .args(["-c", script])
        .arg(&example)
        .arg(serve_addr)
        .arg(password_file)
        .output()
        .expect("run python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    ws.write("prometheus.yml", &String::from_utf8_lossy(&out.stdout))
}

async fn prometheus_query(web_addr: &str, query: &str) -> Option<serde_json::Value> {
    let tcp =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(web_addr)).await.ok()?.ok()?;
    let encoded: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
    let (status, body) = exchange(tcp, web_addr, "GET", &format!("/api/v1/query?query={encoded}"), &[]).await;
    (status == 200).then(|| serde_json::from_str(&body).ok()).flatten()
}

#[tokio::test]
async fn a_real_prometheus_scrapes_it_like_the_blackbox_exporter() {
    // Missing tools fail the test before anything starts.
    require_tool("prometheus");
    let pki = certs::pki();
    let api = servers::https(&pki.server, servers::ClientCerts::None).await;
    let ws = Workspace::new();
    let tls = tls_ca(&pki);
    let cfg = http_probe(
        "api-ok",
        &api.url("https", "/bearer"),
        &format!("auth = {{ type = \"bearer\", token = \"{GOOD_TOKEN}\" }}\n{tls}"),
    ) + &http_probe(
        "api-stale",
        &api.url("https", "/bearer"),
        &format!("auth = {{ type = \"bearer\", token = \"CANARY-prom-stale-2c4f88\" }}\n{tls}"),
    );
    let config = ws.config(&cfg);
    let password = "CANARY-prom-basic-8e1f30";
    let password_file = ws.write("password", password);
    let env = vec![("SERVE_PASSWORD".to_string(), password.to_string())];
    let args = ["--basic-auth-user", "prometheus", "--basic-auth-password-env", "SERVE_PASSWORD"];
    let serve = Serve::start(&config, &args, &env).await;

    let prom_config = example_scrape_config(&ws, &serve.addr, &password_file);
    let check = std::process::Command::new(require_tool("promtool"))
        .args(["check", "config"])
        .arg(&prom_config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let (_prom, web_addr) = start_prometheus(&ws, &prom_config);

    let deadline = Instant::now() + Duration::from_secs(60);
    let results = loop {
        let ready = prometheus_query(&web_addr, "probe_success").await;
        let exporter = prometheus_query(&web_addr, "authprobe_serve_probe_runs_total").await;
        let count =
            |v: &Option<serde_json::Value>| v.as_ref().and_then(|j| j["data"]["result"].as_array().map(Vec::len));
        if count(&ready) == Some(2) && count(&exporter).is_some_and(|n| n >= 2) {
            break ready.unwrap()["data"]["result"].as_array().cloned().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not get probe_success for both probes and the exporter's metrics within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let success = |instance: &str| {
        results
            .iter()
            .find(|r| r["metric"]["instance"] == instance)
            .map(|r| r["value"][1].as_str().unwrap().to_string())
    };
    assert_eq!(success("api-ok").as_deref(), Some("1"), "{results:?}");
    assert_eq!(success("api-stale").as_deref(), Some("0"), "{results:?}");
    assert!(results.iter().all(|r| r["metric"]["job"] == "authprobe"), "{results:?}");

    // Every query of the Grafana dashboard runs on this Prometheus, and the panels about
    // probes have data.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grafana/authprobe-dashboard.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$probe", ".*").replace("$__rate_interval", "1m");
            let answer =
                prometheus_query(&web_addr, &expr).await.unwrap_or_else(|| panic!("Prometheus refused `{expr}`"));
            assert_eq!(answer["status"], "success", "{expr}: {answer}");
            let title = panel["title"].as_str().unwrap();
            let needs_data = [
                "Pass / fail by probe",
                "Failing now: stage and class",
                "Stage latency",
                "Certificate expiry (days left)",
            ];
            if needs_data.contains(&title) {
                assert!(
                    answer["data"]["result"].as_array().is_some_and(|r| !r.is_empty()),
                    "panel `{title}`: `{expr}` has no data: {answer}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_kind_can_be_aimed_at_another_server_through_module_and_target() {
    let env = harness_env();
    let port = |name: &str| harness_var(&env, name);
    let ws = Workspace::new();
    // Each module points at a closed loopback port: only the target makes it pass.
    let nowhere = "host = \"127.0.0.9\"\nport = 9";
    let mut cfg = String::new();
    cfg += &format!(
        "[[probe]]\nname = \"pg\"\nkind = \"postgres\"\n{nowhere}\ndatabase = \"appdb\"\nuser = \"${{AP_PG_USER}}\"\npassword = \"${{AP_PG_PASSWORD}}\"\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CA}}\" }}\nallowed_targets = [\"localhost:*\"]\n\n"
    );
    cfg += &format!(
        "[[probe]]\nname = \"mysql\"\nkind = \"mysql\"\n{nowhere}\nuser = \"${{AP_MYSQL_USER}}\"\npassword = \"${{AP_MYSQL_PASSWORD}}\"\ntls = {{ mode = \"verify-ca\", ca = \"${{AP_CA}}\" }}\nallowed_targets = [\"127.0.0.1:*\"]\n\n"
    );
    cfg += &format!(
        "[[probe]]\nname = \"mssql\"\nkind = \"mssql\"\n{nowhere}\nuser = \"${{AP_MSSQL_USER}}\"\npassword = \"${{AP_MSSQL_PASSWORD}}\"\ntls = {{ mode = \"disable\", ca = \"${{AP_CA}}\" }}\nallowed_targets = [\"localhost:*\"]\n\n"
    );
    cfg += "[[probe]]\nname = \"s3\"\nkind = \"s3\"\nbucket = \"${AP_S3_BUCKET}\"\nendpoint = \"http://127.0.0.9:9\"\nauth = { type = \"static\", access_key_id = \"${AP_S3_ACCESS_KEY}\", secret_access_key = \"${AP_S3_SECRET_KEY}\" }\nallowed_targets = [\"127.0.0.1:*\"]\n\n";
    cfg += &format!(
        "[[probe]]\nname = \"sftp\"\nkind = \"sftp\"\n{nowhere}\nuser = \"${{AP_SFTP_USER}}\"\nauth = {{ type = \"password\", password = \"${{AP_SFTP_PASSWORD}}\" }}\nhost_key = \"${{AP_SSH_HOST_KEY}}\"\nallowed_targets = [\"127.0.0.1:*\"]\n\n"
    );
    let config = ws.config(&cfg);
    let serve = Serve::start(&config, &["--min-interval", "0s"], &env).await;
    for (module, target) in [
        ("pg", format!("localhost:{}", port("AP_PG_PORT"))),
        ("mysql", format!("127.0.0.1:{}", port("AP_MYSQL_PORT"))),
        ("mssql", format!("localhost:{}", port("AP_MSSQL_PORT"))),
        ("s3", format!("127.0.0.1:{}", port("AP_S3_PORT"))),
        ("sftp", format!("127.0.0.1:{}", port("AP_SSH_PORT"))),
    ] {
        let (status, body) = serve.get(&format!("/probe?module={module}&target={target}&debug=true")).await;
        assert_eq!(status, 200, "{module}: {body}");
        assert!(body.contains("\nprobe_success 1\n"), "{module} aimed at {target}:\n{body}");
        assert!(body.contains(&target), "{module}: the report names the target it was aimed at:\n{body}");
        // Without a target, the module's own (closed) address is probed and fails.
        let (_, own) = serve.get(&format!("/probe?target={module}")).await;
        assert_eq!(value(&own, "probe_success"), Some(0.0), "{module}:\n{own}");
    }
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Every spelling that moved a glob across the parts of a URL (the audit's four and their
/// relatives) is refused before anything is sent; the probe's bearer token never leaves.
#[tokio::test]
async fn every_allow_list_bypass_shape_is_refused() {
    let catcher = servers::http().await;
    let port = catcher.port();
    let ws = Workspace::new();
    let token = "canary-serve-bearer-3d8f0a";
    let cfg = http_probe(
        "api",
        "https://api.internal.test/health",
        &format!(
            "auth = {{ type = \"bearer\", token = \"{token}\" }}\nallow_unverified_password = true\nallowed_targets = [\"http://*.internal.test/health\", \"db-*.internal.test:*\", \"http://127.0.0.1:{port}/health\"]"
        ),
    );
    let config = ws.config(&cfg);
    let serve = Serve::start(&config, &["--min-interval", "0s"], &[]).await;
    let shapes = [
        format!("http://127.0.0.1:{port}/?.internal.test/health"),
        format!("http://127.0.0.1:{port}/#.internal.test/health"),
        format!("http://x.internal.test@127.0.0.1:{port}/health"),
        format!("http://127.0.0.1:{port}/.internal.test/health"),
        format!("http://127.0.0.1:{port}\\.internal.test/health"),
        format!("http://127.0.0.1:{port}%2F.internal.test/health"),
        format!("http://127.0.0.1%3A{port}%2F.internal.test/health"),
        format!("http://127.0.0.1:{port}/%2e%2e/health"),
        format!("http://127.0.0.1:{port}/health/..%2Fhealth"),
        format!("http://127.0.0.1:{port}/health?x=.internal.test"),
        format!("http://[::ffff:127.0.0.1]:{port}/health"),
        format!("http://[::1]:{port}/health"),
        format!("http://2130706433:{port}/health"),
        format!("http://0x7f.1:{port}/health"),
        format!("http://127.1:{port}/health"),
        format!("http://127.0.0.1.:{port}/health/"),
        format!("http://127.0.0.1:{}/health", port.wrapping_add(1)),
        format!("http://127.0.0.1:0{port}/health"),
        format!("https://127.0.0.1:{port}/health"),
        format!("http://127.0.0.1:{port}/health\n"),
        format!("127.0.0.1:{port}"),
        format!("db-1.internal.test.127.0.0.1.nip.io:{port}"),
        format!("http://127.0.0.1:{port}/health#"),
        "http://evil.test/.internal.test/health".to_string(),
        "http://evil.test\\@a.internal.test/health".to_string(),
    ];
    for shape in &shapes {
        // Once decoded by the query string, and once more for shapes that hide encodings.
        for sent in [encode(shape), encode(&encode(shape))] {
            let (status, body) = serve.get(&format!("/probe?module=api&target={sent}")).await;
            assert!(status == 403 || status == 400, "{shape:?} -> {status} {body}");
            assert!(!body.contains(token), "{body}");
        }
    }
    assert_eq!(catcher.requests(), 0, "a bypass reached the catching server");
    // The one allowed spelling, in any case, is aimed at its canonical form.
    let (status, body) =
        serve.get(&format!("/probe?module=api&target={}", encode(&format!("HTTP://127.0.0.1:{port}/health")))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(catcher.requests(), 1);
    let (_, page) = serve.get("/").await;
    assert!(page.contains(&format!("http://127.0.0.1:{port}/health")), "{page}");
    assert!(!serve.log().contains(token));
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// 100,000 distinct targets (each a real probe run, refused by a loopback address): the
/// kept results stay within their bound, memory stays flat, and the status page is paged.
#[tokio::test]
async fn a_hundred_thousand_targets_keep_memory_and_the_status_page_bounded() {
    let ws = Workspace::new();
    let cfg = "[[probe]]\nname = \"pg\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = 1\nuser = \"u\"\npassword = \"p\"\ntimeout = \"2s\"\nallowed_targets = [\"127.*:1\"]\n";
    let config = ws.config(cfg);
    let serve = Arc::new(Serve::start(&config, &["--min-interval", "0s"], &[]).await);
    let pid = serve.child.id().unwrap();
    const TARGETS: u32 = 100_000;
    const WORKERS: u32 = 16;
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let serve = serve.clone();
        workers.spawn(async move {
            let tcp = tokio::net::TcpStream::connect(&serve.addr).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
            tokio::spawn(conn);
            let mut ok = 0u32;
            for n in (w..TARGETS).step_by(WORKERS as usize) {
                let target = format!("127.{}.{}.{}:1", 1 + n / 65_536, (n / 256) % 256, n % 256);
                let request = http::Request::builder()
                    .uri(format!("/probe?module=pg&target={target}"))
                    .header("host", "serve")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                sender.ready().await.unwrap();
                let response = sender.send_request(request).await.unwrap();
                ok += u32::from(response.status() == 200);
                response.into_body().collect().await.unwrap();
            }
            ok
        });
    }
    let mut answered = 0;
    while let Some(done) = workers.join_next().await {
        answered += done.unwrap();
    }
    assert_eq!(answered, TARGETS);
    let (_, metrics) = serve.get("/metrics").await;
    let slots = value(&metrics, "authprobe_serve_slots").unwrap();
    assert!(slots <= 10_001.0, "{slots} slots kept");
    let rss = rss_bytes(pid);
    assert!(rss < 200 << 20, "serve holds {} MiB after 100,000 targets", rss >> 20);
    let (status, page) = serve.get("/").await;
    assert_eq!(status, 200);
    assert!(page.len() < 1 << 20, "status page is {} bytes", page.len());
    assert!(page.contains("page 1 of"), "{}", &page[page.len().saturating_sub(400)..]);
    let (status, last) = serve.get("/?page=1000000").await;
    assert_eq!(status, 200);
    assert!(last.len() < 1 << 20);
}

/// SIGTERM: serve stops accepting at once, lets the scrape under way finish and answer,
/// and exits 0; past --shutdown-grace it exits 0 without waiting any longer.
#[tokio::test]
async fn sigterm_finishes_scrapes_under_way_then_exits_0() {
    let slow = servers::http().await;
    let ws = Workspace::new();
    let cfg = ws.config(&format!(
        "{}{}",
        http_probe("slow", &slow.url("http", "/slow?ms=1500"), ""),
        http_probe("slower", &slow.url("http", "/slow?ms=8000"), "timeout = \"20s\"")
    ));
    for (grace, probe, finishes) in [("10s", "slow", true), ("500ms", "slower", false)] {
        let mut serve = Serve::start(&cfg, &["--min-interval", "0s", "--shutdown-grace", grace], &[]).await;
        let addr = serve.addr.clone();
        let path = format!("/probe?target={probe}");
        let scrape = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect to serve");
            let (sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.expect("handshake");
            tokio::spawn(conn);
            let mut sender = sender;
            let request = http::Request::builder().uri(path).header("host", &addr).body(Empty::<Bytes>::new()).unwrap();
            match sender.send_request(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    Some((status, String::from_utf8_lossy(&body).into_owned()))
                }
                Err(_) => None,
            }
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        let pid = serve.child.id().expect("serve runs").to_string();
        let signalled = Instant::now();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            tokio::net::TcpStream::connect(&serve.addr).await.is_err(),
            "serve still accepts connections after SIGTERM:\n{}",
            serve.log()
        );
        let status = tokio::time::timeout(Duration::from_secs(15), serve.child.wait())
            .await
            .expect("serve exited within 15 s of SIGTERM")
            .expect("wait for serve");
        assert_eq!(status.code(), Some(0), "{}", serve.log());
        let answer = scrape.await.unwrap();
        if finishes {
            let (code, body) = answer.expect("the scrape under way was answered");
            assert_eq!(code, 200, "{body}");
            assert_eq!(value(&body, "probe_success"), Some(1.0), "{body}");
            assert!(serve.log_soon_contains("authprobe serve: stopped\n").await, "{}", serve.log());
        } else {
            assert!(answer.is_none(), "a scrape outlived --shutdown-grace: {answer:?}");
            assert!(
                signalled.elapsed() < Duration::from_secs(4),
                "serve waited past its grace: {:?}",
                signalled.elapsed()
            );
            assert!(
                serve.log_soon_contains("stopped with 1 connections unfinished after 500ms").await,
                "{}",
                serve.log()
            );
        }
    }
}

/// A TCP relay between serve and the bastion that the test can silence (connections stay
/// open but nothing passes, as when a NAT forgets them) or cut.
struct Relay {
    port: u16,
    frozen: Arc<tokio::sync::Notify>,
    cut: Arc<tokio::sync::Notify>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(tokio::sync::Notify::new());
        let cut = Arc::new(tokio::sync::Notify::new());
        let (f, c) = (frozen.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                let (frozen, cut) = (f.clone(), c.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = frozen.notified() => {
                            // Silent: both sockets stay open, nothing passes, until cut.
                            cut.notified().await;
                        }
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        Relay { port, frozen, cut }
    }
}

/// serve keeps a `[[tunnel]]`'s SSH connection between scrapes: one bastion login for many
/// scrapes; a kept connection that went silent fails its ping and is reopened, as is one
/// that was cut.
#[tokio::test]
async fn serve_keeps_tunnels_between_scrapes_and_reopens_dead_ones() {
    let env = harness_env();
    let ws = Workspace::new();
    // A key of this test's own, so that the bastion's log tells this test's logins apart.
    let key = ws.path("serve_key");
    let keygen = std::process::Command::new(require_tool("ssh-keygen"))
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "serve-tunnel-test", "-f", key.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(keygen.success());
    let bastion_dir = harness_var(&env, "AP_BASTION_DIR");
    let authorized = format!("{bastion_dir}/authorized_keys/{}", harness_var(&env, "AP_BASTION_USER"));
    let mut keys = std::fs::read_to_string(&authorized).unwrap();
    keys.push_str(&std::fs::read_to_string(ws.path("serve_key.pub")).unwrap());
    std::fs::write(&authorized, keys).unwrap();
    let listed = std::process::Command::new(require_tool("ssh-keygen"))
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&listed.stdout).split_whitespace().nth(1).unwrap().to_string();
    let log = format!("{}/logs/bastion.log", std::path::Path::new(&bastion_dir).parent().unwrap().display());
    let logins = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().filter(|l| l.starts_with("Accepted publickey") && l.contains(&fingerprint)).count()
    };
    let relay = Relay::start(format!("127.0.0.1:{}", harness_var(&env, "AP_BASTION_PORT"))).await;
    let cfg = ws.config(&format!(
        "[[tunnel]]\nname = \"bastion\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"${{AP_BASTION_USER}}\"\nauth = {{ type = \"key\", private_key = \"{}\" }}\nhost_key = \"${{AP_BASTION_HOST_KEY}}\"\n\n[[probe]]\nname = \"db\"\nkind = \"postgres\"\nvia = \"bastion\"\nhost = \"localhost\"\nport = \"${{AP_INNER_PG_PORT}}\"\nuser = \"${{AP_PG_USER}}\"\npassword = \"${{AP_PG_PASSWORD}}\"\ndatabase = \"${{AP_PG_DATABASE}}\"\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CA}}\" }}\n",
        relay.port,
        key.display()
    ));
    let serve = Serve::start(&cfg, &["--min-interval", "0s"], &env).await;
    let before = logins();
    let scrape = || async {
        let (code, body) = serve.get("/probe?target=db&debug=true").await;
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("probe_success 1"), "{body}");
        body
    };
    scrape().await;
    for _ in 0..4 {
        let body = scrape().await;
        assert!(body.contains("(connection kept, opened "), "{body}");
    }
    assert_eq!(logins() - before, 1, "five scrapes, one login to the bastion ({log})");

    relay.frozen.notify_waiters();
    let started = Instant::now();
    let body = scrape().await;
    assert!(body.contains("the kept connection did not answer a ping within 2s: reopened"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(6), "the liveness check took {:?}", started.elapsed());
    assert_eq!(logins() - before, 2, "a silent tunnel is logged into again ({log})");

    relay.cut.notify_waiters();
    tokio::time::sleep(Duration::from_millis(300)).await;
    scrape().await;
    assert_eq!(logins() - before, 3, "a cut tunnel is logged into again ({log})");
    let body = scrape().await;
    assert!(body.contains("(connection kept, opened "), "{body}");
    assert_eq!(logins() - before, 3, "{log}");
}

/// A real Prometheus scraping `serve`'s `/probe?target=` for each of `targets` every 2 s
/// (each series labelled `instance` with its target) and evaluating `rules` every second.
/// Returns the process (killed on drop) and its web address.
pub fn prometheus_scraping(
    ws: &Workspace,
    serve: &Serve,
    targets: &[&str],
    rules: &std::path::Path,
) -> (tokio::process::Child, String) {
    let prom_config = ws.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n  evaluation_interval: 1s\nrule_files: [{}]\nscrape_configs:\n  - job_name: authprobe\n    metrics_path: /probe\n    static_configs:\n      - targets: [{}]\n    relabel_configs:\n      - source_labels: [__address__]\n        target_label: __param_target\n      - source_labels: [__param_target]\n        target_label: instance\n      - target_label: __address__\n        replacement: {}\n",
            rules.display(),
            targets.join(", "),
            serve.addr
        ),
    );
    start_prometheus(ws, &prom_config)
}

/// A real Prometheus with `config`, its data in the workspace, on a free port. Returns the
/// process (killed on drop) and its web address.
fn start_prometheus(ws: &Workspace, config: &std::path::Path) -> (tokio::process::Child, String) {
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let child = tokio::process::Command::new(require_tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", ws.path("tsdb").display()))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start prometheus");
    (child, web)
}
