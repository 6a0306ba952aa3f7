//! Proxies, against the harness's real ones: squid (HTTP CONNECT and absolute-form, basic
//! auth, a rule against AP_PROXY_DENIED_PORT) and danted (SOCKS5 with a system user's
//! password, the same rule). Every kind goes through each; every failure class a proxy can
//! cause is produced by them; the proxies' logs prove the traffic went through them.

use crate::util::*;

fn squid(env: &[(String, String)], with_credentials: bool) -> String {
    let port = harness_var(env, "AP_SQUID_PORT");
    if with_credentials {
        format!(
            "http://{}:{}@127.0.0.1:{port}",
            harness_var(env, "AP_PROXY_USER"),
            harness_var(env, "AP_PROXY_PASSWORD")
        )
    } else {
        format!("http://127.0.0.1:{port}")
    }
}

fn socks(env: &[(String, String)], scheme: &str, password: &str) -> String {
    format!(
        "{scheme}://{}:{password}@127.0.0.1:{}",
        harness_var(env, "AP_PROXY_USER"),
        harness_var(env, "AP_SOCKS_PORT")
    )
}

fn log_len(env: &[(String, String)], var: &str) -> usize {
    std::fs::read_to_string(harness_var(env, var)).map(|t| t.lines().count()).unwrap_or(0)
}

/// The example config (every kind, tunnels included) with `[defaults] proxy` set.
fn example_through(proxy_reference: &str) -> String {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/probes.toml.example")).unwrap();
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/");
    example
        .replacen("[defaults]", &format!("[defaults]\nproxy = \"{proxy_reference}\""), 1)
        .replace("${file:demo/", &format!("${{file:{demo}"))
}

/// Runs the example through a proxy: every probe that passes directly passes; the proxy saw
/// the traffic; its password
/// shows nowhere, in any format or verbosity.
async fn example_passes_through(env: Vec<(String, String)>, proxy_reference: &str, log_var: &str, kind_of_proxy: &str) {
    let ws = Workspace::new();
    let config = ws.config(&example_through(proxy_reference));
    let config = config.to_str().unwrap();
    let before = log_len(&env, log_var);
    let out = authprobe_harness(&["run", "-c", config, "--format", "json", "-v"], &env).await;
    let report = out.json();
    let mut kinds = std::collections::BTreeSet::new();
    for p in report["probes"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let uses_proxy = p["stages"].as_array().unwrap().iter().any(|s| s["name"] == "proxy" && s["status"] == "ok");
        if !name.starts_with("broken-") {
            assert_passed(&report, name);
            kinds.insert(p["kind"].as_str().unwrap().to_string());
            // Tunnelled probes reach their bastion through the proxy, inside tunnel_connect.
            let tunnelled = p["stages"].as_array().unwrap().iter().any(|s| s["name"] == "tunnel_connect");
            assert!(uses_proxy || tunnelled, "{name} did not go through the {kind_of_proxy} proxy: {p:#}");
        }
    }
    for kind in ["http", "postgres", "mysql", "mssql", "s3", "sftp", "gcs", "azure_blob"] {
        assert!(kinds.contains(kind), "no passing {kind} probe through the {kind_of_proxy} proxy: {kinds:?}");
    }
    assert!(log_len(&env, log_var) > before + 10, "the {kind_of_proxy} proxy's log shows no traffic");
    let password = harness_var(&env, "AP_PROXY_PASSWORD");
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", harness_var(&env, "AP_PROXY_USER")))
    };
    let mut seen = out.stdout + &out.stderr;
    for format in ["table", "markdown", "junit", "prometheus"] {
        let out = authprobe_harness(&["run", "-c", config, "--format", format, "-vv", "--only", "api-*"], &env).await;
        seen += &out.stdout;
        seen += &out.stderr;
    }
    assert!(!seen.contains(&password) && !seen.contains(&basic), "the proxy password leaked");
}

#[tokio::test]
async fn every_kind_goes_through_squid() {
    let mut env = harness_env();
    env.push(("AP_TEST_PROXY".into(), squid(&env, true)));
    example_passes_through(env, "${AP_TEST_PROXY}", "AP_SQUID_LOG", "HTTP").await;
}

#[tokio::test]
async fn every_kind_goes_through_dante() {
    let mut env = harness_env();
    let password = harness_var(&env, "AP_PROXY_PASSWORD");
    env.push(("AP_TEST_PROXY".into(), socks(&env, "socks5h", &password)));
    example_passes_through(env, "${AP_TEST_PROXY}", "AP_SOCKS_LOG", "SOCKS5").await;
}

#[tokio::test]
async fn the_environment_chooses_the_proxy_as_curl_does_and_no_proxy_bypasses_it() {
    let env = harness_env();
    let https = format!("https://localhost:{}/health", harness_var(&env, "AP_HTTPS_PORT"));
    let ca = harness_var(&env, "AP_CA");
    let password = harness_var(&env, "AP_PROXY_PASSWORD");
    let with = |pairs: &[(&str, String)]| {
        let mut e = env.clone();
        e.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
        e
    };
    // HTTPS_PROXY for https://, with the password in the variable.
    let e = with(&[("HTTPS_PROXY", squid(&env, true))]);
    let out = authprobe_harness(&["check", &https, "--ca", &ca, "-v"], &e).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("(from HTTPS_PROXY)") && !out.stdout.contains(&password), "{}", out.stdout);
    // ALL_PROXY for a database; socks5 (resolving here) as well as socks5h.
    let pg = format!(
        "postgres://app_user@localhost:{}/appdb?sslmode=verify-full&sslrootcert={ca}",
        harness_var(&env, "AP_PG_PORT")
    );
    for scheme in ["socks5", "socks5h"] {
        let e =
            with(&[("ALL_PROXY", socks(&env, scheme, &password)), ("PGPASSWORD", harness_var(&env, "AP_PG_PASSWORD"))]);
        let out = authprobe_harness(&["check", &pg, "--format", "json", "-v"], &e).await;
        assert_eq!(out.code, 0, "{scheme}: {}{}", out.stdout, out.stderr);
        let stages: Vec<String> = out.json()["probes"][0]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().into())
            .collect();
        assert!(stages.contains(&"proxy".to_string()), "{stages:?}");
    }
    // A dead proxy in the environment, bypassed by NO_PROXY: direct, and -v says why.
    let e = with(&[("HTTPS_PROXY", "http://127.0.0.1:1".into()), ("NO_PROXY", "example.com,localhost".into())]);
    let out = authprobe_harness(&["check", &https, "--ca", &ca, "-v"], &e).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("none: NO_PROXY matches localhost:"), "{}", out.stdout);
    // --no-proxy goes direct whatever the environment says; --proxy wins over it.
    let e = with(&[("HTTPS_PROXY", "http://127.0.0.1:1".into())]);
    let out = authprobe_harness(&["check", &https, "--ca", &ca, "--no-proxy"], &e).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out =
        authprobe_harness(&["check", &https, "--ca", &ca, "--proxy", &socks(&env, "socks5h", &password), "-q"], &e)
            .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // A broken variable is a config failure naming it, before any traffic.
    let e = with(&[("HTTPS_PROXY", "ftp://proxy".into())]);
    let out = authprobe_harness(&["check", &https, "--ca", &ca, "--format", "json"], &e).await;
    let report = out.json();
    let failed = assert_failed(&report, "check", "proxy", "config");
    assert!(failed["error"]["message"].as_str().unwrap().contains("HTTPS_PROXY"), "{failed:#}");
    // inspect goes through the proxy too, and shows the origin's certificate.
    let e = with(&[("HTTPS_PROXY", squid(&env, true))]);
    let out = authprobe_harness(
        &["inspect", &format!("https://localhost:{}", harness_var(&env, "AP_HTTPS_PORT")), "--ca", &ca],
        &e,
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&harness_var(&env, "AP_SERVER_SHA256")), "{}", out.stdout);
}

#[tokio::test]
async fn each_proxy_failure_is_blamed_on_whoever_caused_it() {
    let env = harness_env();
    let password = harness_var(&env, "AP_PROXY_PASSWORD");
    let https_port = harness_var(&env, "AP_HTTPS_PORT");
    let denied = harness_var(&env, "AP_PROXY_DENIED_PORT");
    let ok = format!("https://localhost:{https_port}/health");
    let cases = [
        ("squid without credentials", squid(&env, false), ok.clone(), "proxy", "auth_rejected", "asks for Basic"),
        (
            "squid, wrong password",
            format!("http://ap_proxy:wrong@127.0.0.1:{}", harness_var(&env, "AP_SQUID_PORT")),
            ok.clone(),
            "proxy",
            "auth_rejected",
            "refused the credentials for ap_proxy",
        ),
        (
            "squid, denied port",
            squid(&env, true),
            format!("https://localhost:{denied}/"),
            "proxy",
            "permission_denied",
            "refused to connect you to localhost:",
        ),
        (
            "squid, nothing at the target",
            squid(&env, true),
            "https://localhost:1/".into(),
            "connect",
            "network",
            "could not reach localhost:1",
        ),
        (
            "dante, wrong password",
            socks(&env, "socks5h", "wrong"),
            ok.clone(),
            "proxy",
            "auth_rejected",
            "refused the user name and password",
        ),
        (
            "dante, ruleset",
            socks(&env, "socks5h", &password),
            format!("https://localhost:{denied}/"),
            "proxy",
            "permission_denied",
            "not allowed by ruleset",
        ),
        (
            "dante, refused",
            socks(&env, "socks5h", &password),
            "https://localhost:1/".into(),
            "connect",
            "connect_refused",
            "could not reach localhost:1",
        ),
        ("no proxy listening", "http://127.0.0.1:1".into(), ok.clone(), "proxy", "connect_refused", "is unreachable"),
    ];
    for (what, proxy, url, stage, class, says) in cases {
        let out = authprobe_harness(&["check", &url, "--proxy", &proxy, "--format", "json", "-q"], &env).await;
        assert_eq!(out.code, 1, "{what}: {}{}", out.stdout, out.stderr);
        let report = out.json();
        let failed = assert_failed(&report, "check", stage, class);
        let message = failed["error"]["message"].as_str().unwrap();
        assert!(message.contains(says) && message.contains("(from --proxy)"), "{what}: {message}");
        assert!(!out.stdout.contains("wrong@") && !out.stdout.contains(&password), "{what}: a proxy password shows");
    }
    // Plain http through squid goes in absolute-form; its 407 is the proxy's, not the API's.
    let plain = format!("http://127.0.0.1:{}/health", harness_var(&env, "AP_HTTP_PORT"));
    let out = authprobe_harness(&["check", &plain, "--proxy", &squid(&env, false), "--format", "json"], &env).await;
    assert_failed(&out.json(), "check", "proxy", "auth_rejected");
    let out = authprobe_harness(&["check", &plain, "--proxy", &squid(&env, true), "-q"], &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// A fake proxy on a free port that does `behave` with every connection.
async fn fake_proxy(behave: fn(tokio::net::TcpStream) -> tokio::task::JoinHandle<()>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            behave(stream);
        }
    });
    port
}

#[tokio::test]
async fn hostile_proxies_end_at_the_proxy_stage_within_the_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = harness_env();
    let target = format!("https://localhost:{}/health", harness_var(&env, "AP_HTTPS_PORT"));
    let silent = fake_proxy(|mut s| {
        tokio::spawn(async move {
            let mut sink = [0u8; 1024];
            while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
        })
    })
    .await;
    let endless = fake_proxy(|mut s| {
        tokio::spawn(async move {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
            let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
            for _ in 0..100_000 {
                if s.write_all(line).await.is_err() {
                    break;
                }
            }
        })
    })
    .await;
    let ssh = fake_proxy(|mut s| {
        tokio::spawn(async move {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        })
    })
    .await;
    for (port, scheme, class) in [
        (silent, "http", "timeout"),
        (silent, "socks5h", "timeout"),
        (endless, "http", "protocol"),
        (ssh, "http", "protocol"),
        (ssh, "socks5h", "protocol"),
    ] {
        let proxy = format!("{scheme}://127.0.0.1:{port}");
        let started = std::time::Instant::now();
        let out =
            authprobe_harness(&["check", &target, "--proxy", &proxy, "--timeout", "2s", "--format", "json"], &env)
                .await;
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{proxy}: took {:?}", started.elapsed());
        assert_failed(&out.json(), "check", "proxy", class);
    }
}
