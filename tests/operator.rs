//! What the people running authprobe see beyond the report: the live progress line on a
//! terminal, and how much `-v` and `-vv` add.

use std::process::Command;

use crate::util::servers;
use crate::util::*;

/// Runs authprobe under a pseudo-terminal (util-linux `script`), as a person at a
/// terminal would, and returns everything the terminal received.
fn on_a_terminal(args: &[&str]) -> String {
    let mut line = String::from(BIN);
    for arg in args {
        line.push_str(&format!(" '{arg}'"));
    }
    let out = Command::new(require_tool("script"))
        .args(["-qfec", &line, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env_remove("AUTHPROBE_CONFIG")
        .output()
        .expect("run script");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_progress_line_on_a_terminal_and_nowhere_else() {
    let silent = servers::silent().await;
    let quick = servers::http().await;
    let ws = Workspace::new();
    let mut cfg = http_probe("quick", &quick.url("http", "/health"), "");
    cfg += &http_probe("hung-api", &silent.url("http", "/health"), "timeout = \"1500ms\"");
    let path = ws.config(&cfg);
    let p = path.to_str().unwrap();

    let seen = tokio::task::spawn_blocking({
        let p = p.to_string();
        move || on_a_terminal(&["run", "-c", &p])
    })
    .await
    .unwrap();
    let progress = "\r\x1b[2Kauthprobe: 1/2 done · 1 running · slowest: hung-api (check, ";
    assert!(seen.contains(progress), "no progress line in:\n{seen:?}");
    // The line is cleared before the report, so the table starts on a clean line.
    assert!(seen.contains("\r\x1b[2K PROBE "), "the progress line was not cleared:\n{seen:?}");

    let quiet = tokio::task::spawn_blocking({
        let p = p.to_string();
        move || on_a_terminal(&["run", "-c", &p, "-q"])
    })
    .await
    .unwrap();
    assert!(!quiet.contains("authprobe: "), "-q must not draw progress:\n{quiet:?}");

    // Not a terminal (a pipe, a CI log): no progress at all.
    let out = authprobe(&["run", "-c", p], &[]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.is_empty(), "{:?}", out.stderr);
}

#[tokio::test]
async fn verbose_adds_timings_and_very_verbose_what_the_drivers_saw() {
    let env = harness_env();
    let root = env!("CARGO_MANIFEST_DIR");
    let example = format!("{root}/probes.toml.example");
    let only = ["api-bearer", "db-orders", "db-mariadb", "sftp-drop-password", "bucket-over-tls"];
    let mut args = vec!["run", "-c", example.as_str()];
    for name in only {
        args.extend(["--only", name]);
    }
    let plain = authprobe_harness(&args, &env).await;
    assert_eq!(plain.code, 0, "{}", plain.stdout);
    args.push("-v");
    let verbose = authprobe_harness(&args, &env).await;
    *args.last_mut().unwrap() = "-vv";
    let very = authprobe_harness(&args, &env).await;
    for out in [&plain, &verbose, &very] {
        assert_eq!(out.code, 0, "{}", out.stdout);
    }
    assert!(!plain.stdout.contains("dns "), "{}", plain.stdout);
    for text in ["dns ", "tls: TLSv1.", "host key: ssh-ed25519 SHA256:", "credentials: static key"] {
        assert!(verbose.stdout.contains(text), "-v lacks `{text}`:\n{}", verbose.stdout);
    }
    let drivers = [
        "http: GET /bearer -> HTTP/2.0 200 OK; server: nginx",
        "postgres: server_version 15",
        "mysql: server version 10.11",
        "ssh: server SSH-2.0-OpenSSH_",
        "sftp: protocol version 3, extensions:",
        "http: GET /demo-bucket/ -> HTTP/1.1 200 OK",
        ", ALPN h2, 1 certificate presented",
    ];
    for text in drivers {
        assert!(!verbose.stdout.contains(text), "-v already has `{text}`");
        assert!(very.stdout.contains(text), "-vv lacks `{text}`:\n{}", very.stdout);
    }
    for secret in ["AP_BEARER_TOKEN", "AP_PG_PASSWORD", "AP_SFTP_PASSWORD", "AP_S3_SECRET_KEY"] {
        let value = harness_var(&env, secret);
        assert!(!very.stdout.contains(&value) && !very.stderr.contains(&value), "{secret} leaked at -vv");
    }
}
