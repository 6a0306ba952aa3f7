//! `serve` as a drop-in for blackbox_exporter users: Debian's prometheus-blackbox-exporter
//! (0.23, its binary unpacked by scripts/servers.sh, never installed) and `authprobe serve`
//! probe the same targets with the same intent; every `probe_*` metric blackbox answers with
//! must be in authprobe's answer with the same label names, and the values that must agree
//! do (success, status code, HTTP version, TLS, certificate expiry and identity, IP).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use crate::serve::{Serve, promtool_accepts};
use crate::util::*;

type Samples = BTreeMap<String, Vec<(BTreeMap<String, String>, String)>>;

/// `probe_*` samples by metric name: each with its labels and value.
fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text.lines().filter(|l| l.starts_with("probe_")) {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while let Some((key, after)) = rest.split_once("=\"") {
            let mut value = String::new();
            let mut chars = after.char_indices();
            let mut end = after.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            value.push(next);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            map.insert(key.trim_start_matches(',').to_string(), value);
            rest = &after[end..];
        }
        out.entry(name.to_string()).or_default().push((map, value.to_string()));
    }
    out
}

struct Blackbox {
    _child: tokio::process::Child,
    addr: String,
}

impl Blackbox {
    async fn start(ws: &Workspace, env: &[(String, String)]) -> Blackbox {
        let binary = harness_var(env, "AP_BLACKBOX_EXPORTER");
        assert!(
            std::path::Path::new(&binary).is_file(),
            "the blackbox exporter is missing ({binary:?}): scripts/servers.sh clients fetches it"
        );
        let ca = harness_var(env, "AP_CA");
        let config = ws.write(
            "blackbox.yml",
            &format!(
                "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n      tls_config:\n        ca_file: {ca}\n"
            ),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let child = tokio::process::Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the blackbox exporter");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                return Blackbox { _child: child, addr };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the blackbox exporter did not listen on {addr} within 10 s");
    }

    async fn probe(&self, target: &str) -> String {
        let path = format!(
            "/probe?module=http_2xx&target={}",
            url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        );
        let tcp = tokio::net::TcpStream::connect(&self.addr).await.expect("connect to blackbox");
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(conn);
        let request = http::Request::builder()
            .uri(path)
            .header("host", &self.addr)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.expect("blackbox answers");
        use http_body_util::BodyExt;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    }
}

fn one<'a>(samples: &'a Samples, name: &str) -> Option<&'a (BTreeMap<String, String>, String)> {
    samples.get(name).and_then(|v| v.first())
}

#[tokio::test]
async fn serve_answers_with_the_blackbox_exporters_metrics_and_agrees_with_it() {
    let env = harness_env();
    let ws = Workspace::new();
    let https = harness_var(&env, "AP_HTTPS_PORT");
    let cases = [
        ("https-ok", format!("https://localhost:{https}/health")),
        ("http-ok", format!("http://127.0.0.1:{}/health", harness_var(&env, "AP_HTTP_PORT"))),
        ("https-not-found", format!("https://localhost:{https}/no-such-page")),
        ("https-forbidden", format!("https://localhost:{https}/forbidden")),
        ("expired-certificate", format!("https://localhost:{}/health", harness_var(&env, "AP_EXPIRED_PORT"))),
    ];
    let mut cfg = String::new();
    for (name, url) in &cases {
        cfg += &format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ntls = {{ ca = \"${{AP_CA}}\" }}\n\n"
        );
    }
    let config = ws.config(&cfg);
    let serve = Serve::start(&config, &["--min-interval", "0s"], &env).await;
    let blackbox = Blackbox::start(&ws, &env).await;
    // Values that must agree; the others (durations, hashes of the moment) need only exist.
    let agree = [
        "probe_success",
        "probe_http_status_code",
        "probe_http_version",
        "probe_http_ssl",
        "probe_http_redirects",
        "probe_http_content_length",
        "probe_http_uncompressed_body_length",
        "probe_failed_due_to_regex",
        "probe_ip_protocol",
        "probe_ip_addr_hash",
        "probe_ssl_earliest_cert_expiry",
        "probe_ssl_last_chain_expiry_timestamp_seconds",
    ];
    for (name, url) in &cases {
        let theirs_text = blackbox.probe(url).await;
        let (code, ours_text) = serve.get(&format!("/probe?target={name}")).await;
        assert_eq!(code, 200, "{ours_text}");
        promtool_accepts(&ours_text);
        let (theirs, ours) = (parse(&theirs_text), parse(&ours_text));
        let missing: BTreeSet<&String> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
        assert!(
            missing.is_empty(),
            "{name}: blackbox answers {missing:?} and authprobe does not.\nblackbox:\n{theirs_text}\nauthprobe:\n{ours_text}"
        );
        for (metric, samples) in &theirs {
            let their_labels: BTreeSet<BTreeSet<&String>> = samples.iter().map(|(l, _)| l.keys().collect()).collect();
            let mut our_labels: BTreeSet<BTreeSet<&String>> =
                ours[metric].iter().map(|(l, _)| l.keys().collect()).collect();
            if metric == "probe_ssl_last_chain_info" {
                our_labels = our_labels
                    .into_iter()
                    .map(|set| set.into_iter().filter(|l| *l != "serialnumber").collect())
                    .collect();
            }
            assert_eq!(their_labels, our_labels, "{name}: label names of {metric}");
            if agree.contains(&metric.as_str()) {
                let number = |s: &Samples| one(s, metric).and_then(|(_, v)| v.parse::<f64>().ok());
                assert_eq!(
                    number(&theirs),
                    number(&ours),
                    "{name}: {metric}\nblackbox:\n{theirs_text}\nauthprobe:\n{ours_text}"
                );
            }
        }
        // The labels' values agree (authprobe adds serialnumber, as blackbox 0.24 and later do).
        for labelled in ["probe_tls_version_info", "probe_ssl_last_chain_info"] {
            let theirs_labels = one(&theirs, labelled).map(|s| s.0.clone());
            if theirs_labels.is_none() {
                continue; // a failed handshake: blackbox has no certificate metrics (see below)
            }
            let ours_labels = one(&ours, labelled).map(|s| {
                let mut labels = s.0.clone();
                labels.retain(|k, _| theirs_labels.as_ref().is_none_or(|t| t.contains_key(k)));
                labels
            });
            assert_eq!(
                theirs_labels, ours_labels,
                "{name}: {labelled}\nblackbox:\n{theirs_text}\nauthprobe:\n{ours_text}"
            );
        }
        let phases = |s: &Samples| -> BTreeSet<String> {
            s.get("probe_http_duration_seconds")
                .into_iter()
                .flatten()
                .filter_map(|(l, _)| l.get("phase").cloned())
                .collect()
        };
        assert_eq!(phases(&theirs), phases(&ours), "{name}: phases");
    }

    // Where authprobe differs on purpose: the expiry of a certificate that failed
    // verification is still reported (blackbox has none), so an expiry alert fires for it.
    let (_, expired) = serve.get("/probe?target=expired-certificate").await;
    let expiry =
        crate::serve::value(&expired, "probe_ssl_earliest_cert_expiry").expect("the expired certificate's expiry");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(expiry < now, "{expired}");
    assert_eq!(crate::serve::value(&expired, "probe_success"), Some(0.0), "{expired}");

    // The DNS, IP and TLS metrics for every kind that resolves, connects and speaks TLS: a
    // database after its TLS upgrade, an S3 endpoint, an FTPS server after AUTH TLS; and authprobe's own metrics beside them.
    let db = ws.config(
        "[[probe]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${AP_PG_PORT}\"\nuser = \"${AP_PG_USER}\"\npassword = \"${AP_PG_PASSWORD}\"\ndatabase = \"${AP_PG_DATABASE}\"\ntls = { mode = \"verify-full\", ca = \"${AP_CA}\" }\n\n[[probe]]\nname = \"bucket\"\nkind = \"s3\"\nbucket = \"${AP_S3_BUCKET}\"\nendpoint = \"https://localhost:${AP_S3_TLS_PORT}\"\ntls = { ca = \"${AP_CA}\" }\nauth = { type = \"static\", access_key_id = \"${AP_S3_ACCESS_KEY}\", secret_access_key = \"${AP_S3_SECRET_KEY}\" }\n\n[[probe]]\nname = \"file-drop\"\nkind = \"ftp\"\nhost = \"localhost\"\nport = \"${AP_FTP_PORT}\"\nuser = \"${AP_FTP_USER}\"\npassword = \"${AP_FTP_PASSWORD}\"\npath = \"drop\"\ntls = { ca = \"${AP_CA}\" }\n",
    );
    let serve = Serve::start(&db, &["--min-interval", "0s"], &env).await;
    let https_ok = parse(&blackbox.probe(&cases[0].1).await);
    for probe in ["db", "bucket", "file-drop"] {
        let (code, text) = serve.get(&format!("/probe?target={probe}")).await;
        assert_eq!(code, 200, "{text}");
        promtool_accepts(&text);
        let samples = parse(&text);
        for metric in [
            "probe_success",
            "probe_dns_lookup_time_seconds",
            "probe_ip_protocol",
            "probe_ip_addr_hash",
            "probe_ssl_earliest_cert_expiry",
            "probe_ssl_last_chain_expiry_timestamp_seconds",
            "probe_ssl_last_chain_info",
            "probe_tls_version_info",
        ] {
            assert!(samples.contains_key(metric), "{probe}: no {metric} in:\n{text}");
        }
        assert!(!samples.contains_key("probe_http_status_code"), "{probe}: HTTP metrics for a non-http kind:\n{text}");
        assert_eq!(one(&samples, "probe_success").map(|s| s.1.as_str()), Some("1"), "{text}");
        // The same server certificate as nginx's: the same identity labels blackbox gives it.
        let chain =
            |s: &Samples| one(s, "probe_ssl_last_chain_info").map(|(l, _)| (l["subject"].clone(), l["issuer"].clone()));
        assert_eq!(chain(&samples), chain(&https_ok), "{probe}");
        assert!(text.contains("authprobe_stage_duration_seconds{"), "{probe}: authprobe's own metrics:\n{text}");
    }
}

/// The alert rules blackbox users write (examples/prometheus/blackbox-alerts.yml), in a real
/// Prometheus scraping serve: each fires for the target that should fire, and no other.
#[tokio::test]
async fn blackbox_style_alert_rules_fire_for_the_right_targets() {
    use crate::util::servers::{self, ClientCerts};
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/prometheus/blackbox-alerts.yml");
    let check =
        std::process::Command::new(require_tool("promtool")).args(["check", "rules"]).arg(&rules).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let pki = crate::util::certs::pki();
    let good = servers::https(&pki.server, ClientCerts::None).await;
    let soon = servers::https(&pki.expiring_soon, ClientCerts::None).await;
    let ws = Workspace::new();
    let tls = tls_ca(&pki);
    let mut cfg = http_probe("healthy", &good.url("https", "/health"), &tls);
    cfg += &http_probe("expiring", &soon.url("https", "/health"), &tls);
    cfg += &http_probe("not-found", &good.url("https", "/no-such-page"), &tls);
    cfg += &http_probe("slow", &good.url("https", "/slow?ms=600"), &tls);
    let config = ws.config(&cfg);
    let serve = Serve::start(&config, &[], &[]).await;
    let (_prom, web) =
        crate::serve::prometheus_scraping(&ws, &serve, &["healthy", "expiring", "not-found", "slow"], &rules);
    let expected: BTreeSet<(String, String, String)> = [
        ("BlackboxSslCertificateWillExpireSoon", "expiring", "firing"),
        ("BlackboxProbeHttpFailure", "not-found", "firing"),
        // `for: 5m`: pending until then, which is Prometheus' part.
        ("BlackboxProbeFailed", "not-found", "pending"),
        ("BlackboxSlowHttpProcessing", "slow", "firing"),
    ]
    .iter()
    .map(|(a, i, s)| (a.to_string(), i.to_string(), s.to_string()))
    .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = BTreeSet::new();
    while std::time::Instant::now() < deadline {
        if let Ok(Ok(tcp)) = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(&web)).await {
            let (status, body) = crate::serve::exchange(tcp, &web, "GET", "/api/v1/alerts", &[]).await;
            if status == 200 {
                let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
                seen = answer["data"]["alerts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        let label = |k: &str| a["labels"][k].as_str().unwrap_or_default().to_string();
                        (label("alertname"), label("instance"), a["state"].as_str().unwrap_or_default().to_string())
                    })
                    .collect();
                if seen == expected {
                    // Stable over a few more evaluations: nothing else starts firing.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    let tcp = tokio::net::TcpStream::connect(&web).await.unwrap();
                    let (_, body) = crate::serve::exchange(tcp, &web, "GET", "/api/v1/alerts", &[]).await;
                    let again: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let names: BTreeSet<(String, String)> = again["data"]["alerts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| {
                            (
                                a["labels"]["alertname"].as_str().unwrap_or_default().to_string(),
                                a["labels"]["instance"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect();
                    let wanted: BTreeSet<(String, String)> =
                        expected.iter().map(|(a, i, _)| (a.clone(), i.clone())).collect();
                    assert_eq!(names, wanted, "alerts changed after settling");
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "alerts never settled on the expected set within 60 s:\nexpected {expected:#?}\nseen {seen:#?}\nserve:\n{}",
        serve.log()
    );
}

/// `authprobe from-blackbox`: a blackbox.yml exercising every option the converter knows
/// (and some it does not) becomes a probes.toml that validates, copies no credential, lists
/// what it left out, and runs against the harness like blackbox would.
#[tokio::test]
async fn from_blackbox_converts_a_blackbox_config_and_the_result_runs() {
    let env = harness_env();
    let ws = Workspace::new();
    let ca = harness_var(&env, "AP_CA");
    let token_file = ws.write("bearer-token", &harness_var(&env, "AP_BEARER_TOKEN"));
    let basic_password = harness_var(&env, "AP_BASIC_PASSWORD");
    let yml = ws.write(
        "blackbox.yml",
        &format!(
            r#"modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      valid_status_codes: [200]
      method: GET
      fail_if_body_not_matches_regexp: ["healthy"]
      no_follow_redirects: true
      tls_config:
        ca_file: {ca}
        server_name: localhost
  basic:
    prober: http
    http:
      basic_auth:
        username: {user}
        password: {basic_password}
      no_follow_redirects: true
      tls_config:
        ca_file: {ca}
  bearer_from_file:
    prober: http
    http:
      bearer_token_file: {token_file}
      follow_redirects: false
      tls_config:
        ca_file: {ca}
  not_found_expected:
    prober: http
    http:
      valid_status_codes: [404]
      valid_http_versions: ["HTTP/1.1", "HTTP/2.0"]
      fail_if_body_matches_regexp: ["error.*"]
      headers:
        X-Api-Key: CANARY-blackbox-header-6a1f
      tls_config:
        ca_file: {ca}
        min_version: TLS12
  oauth:
    prober: http
    http:
      method: POST
      body: '{{"ping": true}}'
      oauth2:
        client_id: authprobe-client
        client_secret: CANARY-blackbox-oauth-2c9e
        token_url: https://login.example.com/token
        scopes: [read, write]
        endpoint_params: {{audience: api}}
      proxy_url: http://127.0.0.1:3128
  tcp_tls:
    prober: tcp
    tcp:
      tls: true
"#,
            user = harness_var(&env, "AP_BASIC_USER"),
            token_file = token_file.display()
        ),
    );
    // The file is a config the real blackbox exporter accepts.
    let check = std::process::Command::new(harness_var(&env, "AP_BLACKBOX_EXPORTER"))
        .arg(format!("--config.file={}", yml.display()))
        .arg("--config.check")
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let https = format!("https://localhost:{}", harness_var(&env, "AP_HTTPS_PORT"));
    let targets = [
        format!("http_2xx={https}/health"),
        format!("http_2xx=https://127.0.0.1:{}/health", harness_var(&env, "AP_HTTPS_PORT")),
        format!("basic={https}/basic"),
        format!("bearer_from_file={https}/bearer"),
        format!("not_found_expected={https}/no-such-page"),
    ];
    let mut args = vec!["from-blackbox".to_string(), yml.display().to_string()];
    for t in &targets {
        args.extend(["--target".to_string(), t.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = authprobe(&args, &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for secret in [
        basic_password.as_str(),
        "CANARY-blackbox-header-6a1f",
        "CANARY-blackbox-oauth-2c9e",
        &harness_var(&env, "AP_BEARER_TOKEN"),
    ] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "a credential was copied:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
    for warning in [
        "module http_2xx: http.preferred_ip_protocol is not converted",
        "module not_found_expected: http.valid_http_versions is not converted",
        "module not_found_expected: http.fail_if_body_matches_regexp is not converted",
        "module not_found_expected: tls_config.min_version is not converted",
        "module not_found_expected: redirects: blackbox follows them, authprobe does not",
        "module oauth: oauth2.endpoint_params is not converted",
        "module oauth: no --target given",
        "module tcp_tls: prober `tcp` not converted",
        "converted 5 modules;",
    ] {
        assert!(out.stderr.contains(warning), "no `{warning}` in:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("module basic: redirects"), "no_follow_redirects: true converts:\n{}", out.stderr);
    let config = ws.write("probes.toml", &out.stdout);
    let variables = [
        ("BLACKBOX_BASIC_PASSWORD", basic_password.clone()),
        ("BLACKBOX_NOT_FOUND_EXPECTED_HEADER_X_API_KEY", "anything".to_string()),
        ("BLACKBOX_OAUTH_CLIENT_SECRET", "anything".to_string()),
        ("BLACKBOX_OAUTH_BODY", "{}".to_string()),
    ];
    for (variable, _) in &variables {
        assert!(out.stdout.contains(&format!("# needs {variable}:")), "{variable} is not listed:\n{}", out.stdout);
    }
    let vars: Vec<(&str, &str)> = variables.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let validated = authprobe(&["validate", "-c", config.to_str().unwrap()], &vars).await;
    assert_eq!(validated.code, 0, "{}\n{}", validated.stderr, out.stdout);
    let ran = authprobe(
        &[
            "run",
            "-c",
            config.to_str().unwrap(),
            "--format",
            "json",
            "--only",
            "http_2xx",
            "--only",
            "basic",
            "--only",
            "bearer_from_file",
            "--only",
            "not_found_expected",
        ],
        &vars,
    )
    .await;
    let report = ran.json();
    for name in ["http_2xx", "basic", "bearer_from_file", "not_found_expected"] {
        assert_passed(&report, name);
    }
    assert_eq!(ran.code, 0, "{}", ran.stdout);
    // The module's other target, as Prometheus would send it to serve.
    let mut serve_env = env.clone();
    serve_env.extend(variables.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let serve = Serve::start(&config, &["--min-interval", "0s"], &serve_env).await;
    let target = format!("https://127.0.0.1:{}/health", harness_var(&env, "AP_HTTPS_PORT"));
    let (code, body) = serve
        .get(&format!(
            "/probe?module=http_2xx&target={}",
            url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        ))
        .await;
    assert_eq!((code, crate::serve::value(&body, "probe_success")), (200, Some(1.0)), "{body}");
}
