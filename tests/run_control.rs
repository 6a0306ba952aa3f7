//! The runner: selection, ordering, concurrency, fail-fast, wait mode, Ctrl-C, output
//! destinations and exit codes.

use std::time::{Duration, Instant};

use crate::util::servers;
use crate::util::*;

fn names(report: &serde_json::Value) -> Vec<String> {
    report["probes"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn only_and_skip_match_names_and_tags_with_globs_and_keep_config_order() {
    let server = servers::http().await;
    let url = server.url("http", "/slow?ms=50");
    let ws = Workspace::new();
    let mut cfg = String::new();
    cfg += &http_probe("prod-api", &url, "tags = [\"prod\", \"api\"]");
    cfg += &http_probe("staging-api", &url, "tags = [\"staging\", \"api\"]");
    cfg += &http_probe("prod-db", &url, "tags = [\"prod\"]");
    cfg += &http_probe("prod-slowest", &server.url("http", "/slow?ms=300"), "tags = [\"prod\"]");
    let path = ws.config(&cfg);
    let p = path.to_str().unwrap();
    let run = |args: Vec<&'static str>| {
        let mut full = vec!["run", "-c", p, "--format", "json"];
        full.extend(args);
        async move { authprobe(&full, &[]).await.json() }
    };
    assert_eq!(names(&run(vec![]).await), ["prod-api", "staging-api", "prod-db", "prod-slowest"]);
    assert_eq!(names(&run(vec!["--only", "prod"]).await), ["prod-api", "prod-db", "prod-slowest"]);
    assert_eq!(names(&run(vec!["--only", "*-api"]).await), ["prod-api", "staging-api"]);
    assert_eq!(names(&run(vec!["--only", "prod", "--skip", "prod-s*"]).await), ["prod-api", "prod-db"]);
    assert_eq!(names(&run(vec!["--only", "staging", "--only", "prod-db"]).await), ["staging-api", "prod-db"]);
}

#[tokio::test]
async fn probes_run_concurrently_up_to_the_bound() {
    let server = servers::http().await;
    let ws = Workspace::new();
    let mut cfg = String::new();
    for i in 0..4 {
        cfg += &http_probe(&format!("slow-{i}"), &server.url("http", "/slow?ms=400"), "");
    }
    let path = ws.config(&cfg);
    let p = path.to_str().unwrap();
    let started = Instant::now();
    let out = authprobe(&["run", "-c", p, "--concurrency", "4"], &[]).await;
    let parallel = started.elapsed();
    assert_eq!(out.code, 0, "{out:?}");
    let started = Instant::now();
    let out = authprobe(&["run", "-c", p, "--concurrency", "1"], &[]).await;
    let serial = started.elapsed();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(serial >= Duration::from_millis(1600), "four 400 ms probes one at a time took {serial:?}");
    assert!(parallel < Duration::from_millis(1200), "four 400 ms probes at once took {parallel:?}");
}

#[tokio::test]
async fn fail_fast_cancels_the_rest() {
    let server = servers::http().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ws = Workspace::new();
    let mut cfg = http_probe("broken", &format!("http://127.0.0.1:{closed}/"), "");
    cfg += &http_probe("slow", &server.url("http", "/slow?ms=5000"), "");
    cfg += &http_probe("queued", &server.url("http", "/health"), "");
    let path = ws.config(&cfg);
    let started = Instant::now();
    let out =
        authprobe(&["run", "-c", path.to_str().unwrap(), "--fail-fast", "--concurrency", "2", "--format", "json"], &[])
            .await;
    assert!(started.elapsed() < Duration::from_secs(3), "fail-fast waited for the slow probe");
    assert_eq!(out.code, 1);
    let report = out.json();
    assert_failed(&report, "broken", "connect", "connect_refused");
    assert_eq!(probe(&report, "slow")["status"], "cancelled");
    // Tasks reach the two slots in no fixed order: `queued` either waited (and was
    // cancelled) or ran before `broken` took a slot (and passed); it never runs after.
    let queued = probe(&report, "queued")["status"].as_str().unwrap_or_default().to_string();
    let cancelled = report["summary"]["cancelled"].as_u64().unwrap_or_default();
    assert!((queued == "cancelled" && cancelled == 2) || (queued == "pass" && cancelled == 1), "{report:#}");
}

#[tokio::test]
async fn wait_retries_until_the_server_comes_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ws = Workspace::new();
    let cfg = ws.config(&http_probe("late", &format!("http://127.0.0.1:{port}/health"), ""));
    let late_server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(900)).await;
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
        }
    });
    let out = authprobe(&["run", "-c", cfg.to_str().unwrap(), "--wait", "20s", "--format", "json"], &[]).await;
    late_server.abort();
    assert_eq!(out.code, 0, "{}", out.stdout);
    let report = out.json();
    let p = assert_passed(&report, "late");
    assert!(p["attempts"].as_u64().unwrap() >= 2, "{p:#}");
}

#[tokio::test]
async fn ctrl_c_prints_a_partial_report_and_exits_130() {
    let server = servers::http().await;
    let silent = servers::silent().await;
    let ws = Workspace::new();
    let mut cfg = http_probe("quick", &server.url("http", "/health"), "");
    cfg += &http_probe("hung", &silent.url("http", "/"), "timeout = \"60s\"");
    let path = ws.config(&cfg);
    let out =
        interrupted_after(&["run", "-c", path.to_str().unwrap(), "--format", "json"], Duration::from_millis(700)).await;
    assert_eq!(out.code, 130);
    let report = out.json();
    assert_passed(&report, "quick");
    assert_eq!(probe(&report, "hung")["status"], "cancelled");
}

#[tokio::test]
async fn output_is_written_atomically_with_a_summary_on_stderr() {
    let server = servers::http().await;
    let ws = Workspace::new();
    let cfg = ws.config(&http_probe("a", &server.url("http", "/health"), ""));
    let target = ws.path("report.json");
    let out =
        authprobe(&["run", "-c", cfg.to_str().unwrap(), "--format", "json", "--output", target.to_str().unwrap()], &[])
            .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.contains("1 passed, 0 failed"), "{out:?}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_passed(&report, "a");
    let leftovers: Vec<_> = std::fs::read_dir(ws.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[tokio::test]
async fn a_closed_pipe_is_not_an_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ws = Workspace::new();
    // Enough rows that the report is far larger than a pipe buffer.
    let mut cfg = String::from("[defaults]\nconcurrency = 64\n\n");
    for i in 0..600 {
        cfg += &http_probe(
            &format!("probe-number-{i:04}"),
            &format!("http://127.0.0.1:{closed}/some/longer/path/{i}"),
            "",
        );
    }
    let path = ws.config(&cfg);
    let script = format!("set -o pipefail; {BIN} run -c {} | head -1", path.display());
    let out = tokio::process::Command::new("bash").args(["-c", &script]).env("NO_COLOR", "1").output().await.unwrap();
    // 1: probes failed (the closed port), not 2 or a SIGPIPE death.
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(" PROBE"), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn completions_and_man_page_are_generated_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let out = authprobe(&["completions", shell], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("inspect") && out.stdout.contains("fail-fast"), "{shell}: {}", out.stdout);
    }
    let bash = authprobe(&["completions", "bash"], &[]).await;
    let ws = Workspace::new();
    let script = ws.write("authprobe.bash", &bash.stdout);
    let syntax = std::process::Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    let man = authprobe(&["man"], &[]).await;
    assert_eq!(man.code, 0);
    assert!(man.stdout.contains(".TH authprobe 1") && man.stdout.contains("validate"), "{}", man.stdout);
    // One complete page: every command with its options, and the sections a man page has.
    for part in [
        "authprobe run\"",
        "authprobe check\"",
        "\\-\\-wait",
        "\\-\\-server\\-name",
        ".SH EXIT STATUS",
        ".SH ENVIRONMENT",
        ".SH FILES",
    ] {
        assert!(man.stdout.contains(part), "{part} missing from the man page");
    }
    // groff, as man(1) uses it, reads it without a warning.
    let page = ws.write("authprobe.1", &man.stdout);
    let groff = std::process::Command::new(require_tool("groff"))
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(groff.stderr.is_empty(), "{}", String::from_utf8_lossy(&groff.stderr));
    let dir = ws.path("man1");
    let out = authprobe(&["man", "--dir", dir.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for page in ["authprobe.1", "authprobe-run.1", "authprobe-check.1", "authprobe-serve.1"] {
        assert!(dir.join(page).exists(), "{page} not written");
    }
}

/// The deploy gate, interrupted: `--wait` with `--only`, a probe that never comes up, and
/// Ctrl-C during the wait. Every format shows the attempts made so far; exit 130.
#[tokio::test]
async fn wait_with_only_and_ctrl_c_reports_the_attempts_in_every_format() {
    let server = servers::http().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ws = Workspace::new();
    let mut cfg = http_probe("up", &server.url("http", "/health"), "");
    cfg += &http_probe("never-up", &format!("http://127.0.0.1:{closed}/health"), "");
    cfg += &http_probe("not-selected", &format!("http://127.0.0.1:{closed}/other"), "");
    let path = ws.config(&cfg);
    for (format, attempts_shown) in [
        ("json", "\"attempts\": "),
        ("table", "attempts: "),
        ("junit", "attempts: "),
        ("prometheus", "authprobe_probe_attempts{probe=\"never-up\",kind=\"http\"} "),
        ("markdown", " attempts"),
    ] {
        let args = [
            "run",
            "-c",
            path.to_str().unwrap(),
            "--wait",
            "60s",
            "--only",
            "up",
            "--only",
            "never-*",
            "--format",
            format,
        ];
        let out = interrupted_after(&args, Duration::from_millis(1500)).await;
        assert_eq!(out.code, 130, "{format}");
        let stdout = &out.stdout;
        assert!(stdout.contains("never-up") && !stdout.contains("not-selected"), "{format}:\n{stdout}");
        let at = stdout.find(attempts_shown).unwrap_or_else(|| panic!("{format} shows no attempts:\n{stdout}"));
        if format == "json" {
            let report = out.json();
            let never = probe(&report, "never-up");
            assert_eq!(never["status"], "fail", "{never:#}");
            assert!(never["attempts"].as_u64().unwrap() >= 3, "retried with backoff for 1.5 s: {never:#}");
            assert_eq!(probe(&report, "up")["attempts"], 1);
        } else {
            assert!(!stdout[at..].is_empty());
        }
    }
}

/// Ten thousand probes, all at once asked for, under a low open-file limit: they queue
/// instead of failing with "too many open files" blamed on the target.
#[tokio::test]
async fn a_low_open_file_limit_queues_probes_instead_of_failing_them() {
    let server = servers::http().await;
    let ws = Workspace::new();
    let url = server.url("http", "/health");
    let mut cfg = String::with_capacity(10_000 * 80);
    for i in 0..10_000 {
        cfg += &format!("[[probe]]\nname = \"p{i}\"\nkind = \"http\"\nurl = \"{url}\"\n\n");
    }
    let path = ws.config(&cfg);
    let script = format!("ulimit -n 128 && exec {BIN} run -c {} --concurrency 10000 --format json", path.display());
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("sh").args(["-c", &script]).env("NO_COLOR", "1").output(),
    )
    .await
    .expect("10,000 probes finished within 2 minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(report["summary"]["passed"], 10_000, "{}", &stdout[..stdout.len().min(2000)]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(server.requests(), 10_000);
}

/// Ctrl-C that cuts a retry mid-attempt still says why the probe was failing: the report
/// shows the previous attempt's error (not a bare "cancelled") and names the cut attempt.
/// The server here accepts and never answers, and the interrupt is sent once it has seen
/// the second attempt's connection, so the cut lands inside that attempt every time.
#[tokio::test]
async fn ctrl_c_during_a_retry_reports_the_previous_attempts_failure() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
            let _ = seen_tx.send(held.len());
        }
    });
    let ws = Workspace::new();
    let path = ws.config(&http_probe("silent", &format!("http://127.0.0.1:{port}/health"), "timeout = \"1s\""));
    let child = tokio::process::Command::new(BIN)
        .args(["run", "-c", path.to_str().unwrap(), "--wait", "60s", "--format", "json"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn authprobe");
    let second = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(count) = seen_rx.recv().await {
            if count >= 2 {
                return;
            }
        }
    });
    second.await.expect("the second attempt never connected");
    let pid = child.id().expect("still running").to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let silent = &report["probes"][0];
    assert_eq!(silent["status"], "fail", "{silent:#}");
    assert_eq!(silent["error"]["class"], "timeout", "{silent:#}");
    assert_eq!(silent["attempts"], 2, "{silent:#}");
    let why = silent["not_retried"].as_str().unwrap_or_default();
    assert!(why.contains("interrupted during attempt 2") && why.contains("from attempt 1"), "{silent:#}");
}
