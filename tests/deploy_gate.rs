//! The deploy gate and `check` must not mislead (issue 30): `--wait` keeps its budget and
//! retries only what waiting can cure; a CA alone verifies; targets stay readable and short
//! passwords mask no words; check's errors and hints name its own flags; a port that speaks
//! another protocol says which. Against real servers: the harness's, a Python http.server
//! started late, and a listener that accepts and hangs.

use std::time::{Duration, Instant};

use crate::util::servers;
use crate::util::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn wait_uses_the_time_left_for_a_server_that_comes_up_late() {
    // The case: up 4.5 s after the start under --wait 7s. The old loop gave up at
    // ~4.2 s because its next pause (4 s) would have crossed the deadline.
    let port = free_port();
    let ws = Workspace::new();
    let cfg = ws.config(&http_probe("late", &format!("http://127.0.0.1:{port}/"), ""));
    let dir = ws.dir.path().to_path_buf();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(4_500)).await;
        tokio::process::Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 -m http.server")
    });
    let started = Instant::now();
    let out = authprobe(&["run", "-c", cfg.to_str().unwrap(), "--wait", "7s", "--format", "json"], &[]).await;
    let took = started.elapsed();
    let server = late.await.unwrap();
    drop(server);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = out.json();
    let p = assert_passed(&report, "late");
    assert!(p["attempts"].as_u64().unwrap() >= 5, "{p:#}");
    assert!(took < Duration::from_millis(7_500), "the run took {took:?}");
}

#[tokio::test]
async fn wait_ends_by_its_deadline_cutting_a_hanging_attempt() {
    let silent = servers::silent().await;
    let ws = Workspace::new();
    let cfg = ws.config(&http_probe("hangs", &silent.url("http", "/"), "timeout = \"10s\""));
    let started = Instant::now();
    let out = authprobe(&["run", "-c", cfg.to_str().unwrap(), "--wait", "3s", "--format", "json"], &[]).await;
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{}", out.stderr);
    // The documented grace: the report is written right after the deadline.
    assert!(took < Duration::from_millis(3_500), "--wait 3s ran {took:?}");
    let report = out.json();
    let err = assert_failed(&report, "hangs", "check", "timeout");
    assert!(err["error"]["message"].as_str().unwrap().contains("--wait budget of 3s ran out"), "{err:#}");
}

#[tokio::test]
async fn wait_does_not_retry_a_refused_password_and_says_why() {
    let env = harness_env();
    let ws = Workspace::new();
    let cfg = ws.config(
        "[[probe]]\nname = \"refused\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${AP_PG_PORT}\"\n\
         database = \"appdb\"\nuser = \"${AP_PG_USER}\"\npassword = \"not-the-password\"\n\
         tls = { ca = \"${AP_CA}\" }\n",
    );
    let started = Instant::now();
    let out = authprobe_harness(&["run", "-c", cfg.to_str().unwrap(), "--wait", "5s", "--format", "json"], &env).await;
    assert!(started.elapsed() < Duration::from_secs(2), "a refused password was retried");
    let report = out.json();
    let p = assert_failed(&report, "refused", "auth", "auth_rejected");
    assert_eq!(p["attempts"], 1, "{p:#}");
    assert!(p["not_retried"].as_str().unwrap().contains("lock the account"), "{p:#}");
    let table = authprobe_harness(&["run", "-c", cfg.to_str().unwrap(), "--wait", "5s"], &env).await;
    assert!(table.stdout.contains("not retried: a refused credential stays refused"), "{}", table.stdout);
    // Without --wait there is nothing to explain.
    let plain = authprobe_harness(&["run", "-c", cfg.to_str().unwrap(), "--format", "json"], &env).await.json();
    assert!(probe(&plain, "refused")["not_retried"].is_null());
}

#[tokio::test]
async fn a_ca_alone_verifies_the_database_server() {
    let env = harness_env();
    let ca = harness_var(&env, "AP_CA");
    let cases = [
        (
            "PGPASSWORD",
            "AP_PG_PASSWORD",
            format!("postgres://app_user@localhost:{}/appdb", harness_var(&env, "AP_PG_PORT")),
        ),
        (
            "MYSQL_PWD",
            "AP_MYSQL_PASSWORD",
            format!("mysql://app_user@localhost:{}/appdb", harness_var(&env, "AP_MYSQL_PORT")),
        ),
        // The TDS stand-in: in `prefer` the password was refused to an unverified server.
        (
            "MSSQL_PASSWORD",
            "AP_MSSQL_PASSWORD",
            format!("mssql://app_user@localhost:{}/appdb", harness_var(&env, "AP_MSSQL_PORT")),
        ),
    ];
    for (var, from, url) in cases {
        let mut with = env.clone();
        with.push((var.into(), harness_var(&env, from)));
        let out = authprobe_harness(&["check", &url, "--ca", &ca, "--format", "json"], &with).await;
        let report = out.json();
        let p = assert_passed(&report, "check");
        assert_eq!(p["tls"]["verified"], true, "{url}: {p:#}");
        assert_eq!(p["warnings"].as_array().unwrap().len(), 0, "{url}: {p:#}");
    }
    // The same from a config file: `tls = { ca = … }` without a mode verifies, and a CA
    // that did not issue the certificate fails, where `prefer` passed with a warning.
    let ws = Workspace::new();
    let pg = |name: &str, ca: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = \"${{AP_PG_PORT}}\"\n\
             database = \"appdb\"\nuser = \"${{AP_PG_USER}}\"\npassword = \"${{AP_PG_PASSWORD}}\"\ntls = {{ ca = \"{ca}\" }}\n\n"
        )
    };
    let cfg = ws.config(&(pg("right-ca", "${AP_CA}") + &pg("other-ca", "${AP_CERTS}/rogue-ca.crt")));
    let report = authprobe_harness(&["run", "-c", cfg.to_str().unwrap(), "--format", "json"], &env).await.json();
    assert_eq!(assert_passed(&report, "right-ca")["tls"]["verified"], true);
    assert_failed(&report, "other-ca", "tls", "tls_untrusted");
}

#[tokio::test]
async fn targets_and_hints_stay_readable_and_secrets_stay_masked_in_every_format() {
    let env = harness_env();
    let https_port = harness_var(&env, "AP_HTTPS_PORT");
    let ws = Workspace::new();
    let cfg = ws.config(&format!(
        "[[probe]]\nname = \"base-from-variable\"\nkind = \"http\"\nurl = \"${{API_BASE}}/health\"\ntls = {{ ca = \"${{AP_CA}}\" }}\n\n\
         [[probe]]\nname = \"literal\"\nkind = \"http\"\nurl = \"https://localhost:{https_port}/health\"\ntls = {{ ca = \"${{AP_CA}}\" }}\n\n\
         [[probe]]\nname = \"webhook\"\nkind = \"http\"\nurl = \"${{HOOK_URL}}\"\nurl_is_secret = true\ntls = {{ ca = \"${{AP_CA}}\" }}\n\n\
         [[probe]]\nname = \"short-password\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${{AP_PG_PORT}}\"\n\
         database = \"appdb\"\nuser = \"${{AP_PG_USER}}\"\npassword = \"${{SHORT_PW}}\"\ntls = {{ ca = \"${{AP_CA}}\" }}\n"
    ));
    let mut with = env.clone();
    with.push(("API_BASE".into(), format!("https://localhost:{https_port}")));
    with.push(("HOOK_URL".into(), format!("https://localhost:{https_port}/hooks/T0SECRETPATH")));
    with.push(("SHORT_PW".into(), "wrong".into()));
    let report = authprobe_harness(&["run", "-c", cfg.to_str().unwrap(), "--format", "json"], &with).await.json();
    let base = probe(&report, "base-from-variable");
    assert_eq!(base["target"], format!("https://localhost:{https_port}/health"));
    assert_eq!(probe(&report, "literal")["target"], format!("https://localhost:{https_port}/health"));
    assert!(!probe(&report, "webhook")["target"].as_str().unwrap().contains("T0SECRETPATH"));
    let pw = assert_failed(&report, "short-password", "auth", "auth_rejected");
    let hint = pw["error"]["hint"].as_str().unwrap();
    assert!(hint.contains("is wrong or expired"), "a short password masked a word of the hint: {hint}");
    // The status page renders the same reports.
    let serve = crate::serve::Serve::start(&cfg, &["--probe-interval", "1s"], &with).await;
    let mut page = String::new();
    for _ in 0..50 {
        page = serve.get("/").await.1;
        if page.contains("0 not probed yet") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(page.contains(&format!("https://localhost:{https_port}/health")), "{page}");
    assert!(page.contains("is wrong or expired"), "{page}");
    assert!(!page.contains("T0SECRETPATH"), "the webhook's path is on the status page");
    for format in ["table", "json", "markdown", "junit", "prometheus"] {
        let out = authprobe_harness(&["run", "-c", cfg.to_str().unwrap(), "--format", format, "-vv"], &with).await;
        assert!(!out.stdout.contains("T0SECRETPATH"), "{format}: the secret webhook path leaked");
        assert!(!out.stderr.contains("T0SECRETPATH"), "{format}: the secret webhook path leaked");
        if matches!(format, "table" | "json" | "markdown") {
            assert!(out.stdout.contains(&format!("localhost:{https_port}/health")), "{format}: {}", out.stdout);
        }
    }
}

#[tokio::test]
async fn a_password_equal_to_the_user_name_is_a_warning_not_a_mask() {
    let env = harness_env();
    let ws = Workspace::new();
    let cfg = ws.config(
        "[[probe]]\nname = \"same\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${AP_PG_PORT}\"\n\
         database = \"appdb\"\nuser = \"${AP_PG_USER}\"\npassword = \"${AP_PG_USER}\"\ntls = { ca = \"${AP_CA}\" }\n",
    );
    let validate = authprobe_harness(&["validate", "-c", cfg.to_str().unwrap()], &env).await;
    assert_eq!(validate.code, 0, "{}", validate.stderr);
    assert!(validate.stderr.contains("key `password`: the password equals the user name"), "{}", validate.stderr);
    assert!(validate.stderr.contains(":8:"), "the warning names the line: {}", validate.stderr);
    let report = authprobe_harness(&["run", "-c", cfg.to_str().unwrap(), "--format", "json"], &env).await.json();
    let user = harness_var(&env, "AP_PG_USER");
    assert!(probe(&report, "same")["target"].as_str().unwrap().contains(&format!("{user}@")), "{report:#}");
}

#[tokio::test]
async fn check_errors_and_hints_name_checks_own_flags() {
    let env = harness_env();
    let ca = harness_var(&env, "AP_CA");
    let https = harness_var(&env, "AP_HTTPS_PORT");
    let bearer = format!("https://localhost:{https}/bearer");
    let out = authprobe_harness(&["check", &bearer, "--ca", &ca, "--bearer-env", "NOT_SET_VAR"], &env).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("error: --bearer-env NOT_SET_VAR: the variable is not set"), "{}", out.stderr);
    assert!(!out.stderr.contains("<check URL>"), "{}", out.stderr);
    let no_auth = authprobe_harness(&["check", &bearer, "--ca", &ca], &env).await;
    assert!(no_auth.stdout.contains("pass --bearer-env NAME"), "{}", no_auth.stdout);
    assert!(!no_auth.stdout.contains("`auth` table"), "{}", no_auth.stdout);
    let wrong_host = format!("https://localhost:{}/health", harness_var(&env, "AP_WRONG_HOST_PORT"));
    let refused = authprobe_harness(&["check", &wrong_host, "--ca", &ca], &env).await;
    assert!(refused.stdout.contains("--server-name"), "{}", refused.stdout);
    assert!(!refused.stdout.contains("tls.server_name"), "{}", refused.stdout);
    let named =
        authprobe_harness(&["check", &wrong_host, "--ca", &ca, "--server-name", "wrong.example.com"], &env).await;
    assert_eq!(named.code, 0, "{}", named.stdout);
    // Database hints name the URL's parts, never `database` or tls.mode.
    let mut with = env.clone();
    with.push(("PGPASSWORD".into(), harness_var(&env, "AP_PG_PASSWORD")));
    let pg = format!("postgres://app_user@localhost:{}/nosuchdb", harness_var(&env, "AP_PG_PORT"));
    let db = authprobe_harness(&["check", &pg, "--ca", &ca, "--format", "json"], &with).await.json();
    let hint = probe(&db, "check")["error"]["hint"].as_str().unwrap().to_string();
    assert!(hint.contains("the URL's database (its path)") && !hint.contains("`database`"), "{hint}");
}

#[tokio::test]
async fn check_expands_references_in_header_values() {
    let env = harness_env();
    let ca = harness_var(&env, "AP_CA");
    let url = format!("https://localhost:{}/apikey", harness_var(&env, "AP_HTTPS_PORT"));
    let key = harness_var(&env, "AP_API_KEY");
    let out = authprobe_harness(&["check", &url, "--ca", &ca, "-H", "X-API-Key: ${AP_API_KEY}", "-vv"], &env).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(!out.stdout.contains(&key) && !out.stderr.contains(&key));
    let ws = Workspace::new();
    let file = ws.write("api.key", &format!("{key}\n"));
    let header = format!("X-API-Key: ${{file:{}}}", file.display());
    let from_file = authprobe_harness(&["check", &url, "--ca", &ca, "-H", &header], &env).await;
    assert_eq!(from_file.code, 0, "{}", from_file.stdout);
    let unset = authprobe_harness(&["check", &url, "--ca", &ca, "-H", "X-API-Key: ${NOT_SET_KEY}"], &env).await;
    assert_eq!(unset.code, 2);
    assert!(unset.stderr.contains("-H 'X-API-Key: …': the variable NOT_SET_KEY is not set"), "{}", unset.stderr);
}

#[tokio::test]
async fn a_port_that_speaks_another_protocol_says_which() {
    let env = harness_env();
    let ssh = harness_var(&env, "AP_SSH_PORT");
    let pg = harness_var(&env, "AP_PG_PORT");
    let mut with = env.clone();
    with.push(("PGPASSWORD".into(), "x".into()));
    with.push(("MYSQL_PWD".into(), "x".into()));
    with.push(("MSSQL_PASSWORD".into(), "x".into()));
    let cases = [
        (format!("postgres://u@127.0.0.1:{ssh}/db"), "this port speaks SSH, not PostgreSQL"),
        (format!("mysql://u@127.0.0.1:{ssh}/db"), "this port speaks SSH, not MySQL or MariaDB"),
        (format!("mysql://u@127.0.0.1:{pg}/db"), "this port speaks PostgreSQL, not MySQL or MariaDB"),
        (format!("mssql://u@127.0.0.1:{ssh}/db"), "this port speaks SSH, not SQL Server"),
        (
            format!("mssql://u@127.0.0.1:{}/db", harness_var(&env, "AP_MYSQL_PORT")),
            "this port speaks MySQL or MariaDB, not SQL Server",
        ),
    ];
    for (url, said) in cases {
        let started = Instant::now();
        let report = authprobe_harness(&["check", &url, "--format", "json", "--timeout", "20s"], &with).await.json();
        let p = probe(&report, "check");
        assert_eq!(p["error"]["class"], "protocol", "{url}: {p:#}");
        assert!(p["error"]["message"].as_str().unwrap().contains(said), "{url}: {p:#}");
        // A silent PostgreSQL is asked after the greeting's 3 s, not at the 20 s timeout.
        assert!(started.elapsed() < Duration::from_secs(5), "{url} took {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn smaller_things_found_by_the_new_user() {
    let env = harness_env();
    let ws = Workspace::new();
    let https = harness_var(&env, "AP_HTTPS_PORT");
    let cfg = ws.config(&format!(
        "[[probe]]\nname = \"warehouse-pg\"\nkind = \"http\"\nurl = \"https://localhost:{https}/health\"\ntls = {{ ca = \"${{AP_CA}}\" }}\nexpect = {{ status = [\"2xx\"] }}\n\n\
         [[probe]]\nname = \"warehouse-api\"\nkind = \"http\"\nurl = \"https://localhost:{https}/nothing-here\"\ntls = {{ ca = \"${{AP_CA}}\" }}\nexpect = {{ status = [\"4xx\"] }}\n"
    ));
    let p = cfg.to_str().unwrap();
    let none = authprobe_harness(&["run", "-c", p, "--only", "warehouse"], &env).await;
    assert_eq!(none.code, 2);
    assert!(none.stderr.contains("--only 'warehouse*'"), "{}", none.stderr);
    let ran = authprobe_harness(&["run", "-c", p, "--only", "warehouse*", "--format", "json"], &env).await;
    assert_eq!(ran.code, 0, "{}", ran.stdout);
    let wrong = authprobe_harness(
        &[
            "check",
            &format!("https://localhost:{https}/nothing-here"),
            "--ca",
            &harness_var(&env, "AP_CA"),
            "--expect-status",
            "2xx",
        ],
        &env,
    )
    .await;
    assert!(wrong.stdout.contains("(expected 2xx)"), "{}", wrong.stdout);
    // The markdown report says a known_hosts-approved host key is trusted.
    let key = harness_var(&env, "AP_SSH_HOST_KEY");
    let mut with = env.clone();
    with.push(("SSHPASS".into(), harness_var(&env, "AP_SFTP_PASSWORD")));
    let url = format!("sftp://sftp_pw@127.0.0.1:{}/~/data", harness_var(&env, "AP_SSH_PORT"));
    let md = authprobe_harness(&["check", &url, "--host-key", &key, "--format", "markdown"], &with).await;
    assert!(md.stdout.contains("| SSH host key | ssh-ed25519 | | yes |"), "{}", md.stdout);
    // An absolute sftp path that does not exist: the hint says how to write the home's.
    let missing = format!("sftp://sftp_pw@127.0.0.1:{}/data", harness_var(&env, "AP_SSH_PORT"));
    let out = authprobe_harness(&["check", &missing, "--host-key", &key, "--format", "json"], &with).await.json();
    let hint = probe(&out, "check")["error"]["hint"].as_str().unwrap_or_default().to_string();
    assert!(hint.contains("~/data"), "{out:#}");
}
