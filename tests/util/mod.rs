//! Shared helpers: run the authprobe binary against a config, parse its JSON report.

pub mod certs;
pub mod faults;
pub mod servers;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_authprobe");

/// What one invocation produced.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }
}

/// A temp dir holding a config file (and whatever else a test puts there).
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Workspace { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write file");
        p
    }

    pub fn config(&self, text: &str) -> PathBuf {
        keep_for_the_schema_check(text);
        self.write("probes.toml", text)
    }
}

/// With AUTHPROBE_SCHEMA_CORPUS set (scripts/test.sh sets it), every config a test writes is
/// kept there too: after the tests, each one authprobe accepts is checked against the
/// published schema, so that the schema never refuses what authprobe takes.
fn keep_for_the_schema_check(text: &str) {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let Some(dir) = std::env::var_os("AUTHPROBE_SCHEMA_CORPUS") else { return };
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = std::fs::write(Path::new(&dir).join(format!("{}-{n}.toml", std::process::id())), text);
}

/// Runs authprobe with `args` and extra environment, with a hard limit so that a hang fails
/// the test instead of stalling the suite.
pub async fn authprobe(args: &[&str], env: &[(&str, &str)]) -> Output {
    authprobe_in(None, args, env).await
}

pub async fn authprobe_in(cwd: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd.env_remove("AUTHPROBE_CONFIG").env("NO_COLOR", "1");
    // Credentials the developer's own shell may hold never reach the binary: every test
    // passes what it means to use.
    for (name, _) in std::env::vars() {
        let ambient = name.starts_with("AWS_")
            || ["SSH_AUTH_SOCK", "SSHPASS", "PGPASSWORD", "PGUSER", "MYSQL_PWD", "MSSQL_PASSWORD", "FTP_PASSWORD"]
                .contains(&name.as_str());
        if ambient {
            cmd.env_remove(&name);
        }
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn authprobe");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("authprobe did not finish within 60 s")
        .expect("wait for authprobe");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Starts authprobe, sends it SIGINT (Ctrl-C) after `after`, and returns what it printed
/// and its exit code.
pub async fn interrupted_after(args: &[&str], after: Duration) -> Output {
    let child = tokio::process::Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("AUTHPROBE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn authprobe");
    tokio::time::sleep(after).await;
    let pid = child.id().expect("still running").to_string();
    let kill = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("run kill");
    assert!(kill.success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("authprobe did not exit within 10 s of SIGINT")
        .expect("wait for authprobe");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the config with `--format json` and returns the output and the report.
pub async fn run_json(config: &Path, env: &[(&str, &str)]) -> (Output, serde_json::Value) {
    let path = config.to_str().expect("utf-8 path");
    let out = authprobe(&["run", "-c", path, "--format", "json"], env).await;
    let json = out.json();
    (out, json)
}

/// The report entry of one probe.
pub fn probe<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["probes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no probe `{name}` in report:\n{report:#}"))
}

/// Asserts a probe failed with this stage and class, and returns it.
#[track_caller]
pub fn assert_failed<'a>(report: &'a serde_json::Value, name: &str, stage: &str, class: &str) -> &'a serde_json::Value {
    let p = probe(report, name);
    assert_eq!(p["status"], "fail", "probe {name}: {p:#}");
    assert_eq!(p["error"]["stage"], stage, "probe {name}: {p:#}");
    assert_eq!(p["error"]["class"], class, "probe {name}: {p:#}");
    p
}

#[track_caller]
pub fn assert_passed<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let p = probe(report, name);
    assert_eq!(p["status"], "pass", "probe {name}: {p:#}");
    assert!(p["error"].is_null(), "probe {name}: {p:#}");
    p
}

/// A probe that passed with a warning containing `warning`.
pub fn assert_warned<'a>(report: &'a serde_json::Value, name: &str, warning: &str) -> &'a serde_json::Value {
    let p = probe(report, name);
    assert_eq!(p["status"], "warn", "probe {name}: {p:#}");
    assert!(p["error"].is_null(), "probe {name}: {p:#}");
    let warnings = p["warnings"].as_array().map(|w| w.iter().filter_map(|w| w.as_str()).collect::<Vec<_>>());
    assert!(
        warnings.unwrap_or_default().iter().any(|w| w.contains(warning)),
        "probe {name} lacks warning `{warning}`: {p:#}"
    );
    p
}

/// A `[[probe]]` table for an http probe with extra lines.
/// A credential sent to a plain `http://` test server needs the probe's explicit consent
/// (the credential release rule, tested on its own in http_auth and hostile); the in-process
/// servers and the harness's token services speak plain HTTP, so the helper gives it.
pub fn http_probe(name: &str, url: &str, extra: &str) -> String {
    let extra = if url.starts_with("http://") && (extra.contains("auth = ") || extra.contains("headers = ")) {
        format!("{extra}\nallow_unverified_password = true")
    } else {
        extra.to_string()
    };
    format!("[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\n{extra}\n\n")
}

/// A `tls` inline table trusting the test CA.
pub fn tls_ca(pki: &certs::Pki) -> String {
    format!("tls = {{ ca = \"{}\" }}", pki.ca_path.display())
}

/// Finds an external tool the tests rely on, or fails loudly: a missing tool must never
/// turn into a silently skipped check.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{name}` is not installed; run the test suite with scripts/test.sh, which installs everything it needs");
}

/// The endpoints and credentials of the harness's servers (scripts/servers.sh), from the
/// environment, else from the env file the harness wrote. Missing servers fail the test
/// loudly: a test that needs a server never passes without one.
pub fn harness_env() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("AP_")).collect();
    if !vars.iter().any(|(k, _)| k == "AP_SERVERS") {
        let state = std::env::var("AUTHPROBE_STATE").unwrap_or_else(|_| "/tmp/authprobe-servers".into());
        let file = std::path::Path::new(&state).join("servers.env");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|_| {
            panic!(
                "the test servers are not running ({} is missing): start them with scripts/servers.sh up",
                file.display()
            )
        });
        vars = text
            .lines()
            .filter_map(|l| l.split_once('='))
            // Values with shell metacharacters (SAS tokens) are single-quoted.
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('\'').to_string()))
            .collect();
    }
    vars
}

/// Reads one harness variable.
pub fn harness_var(env: &[(String, String)], name: &str) -> String {
    env.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{name} is not set by the harness"))
}

/// Runs authprobe with the harness environment.
pub async fn authprobe_harness(args: &[&str], env: &[(String, String)]) -> Output {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    authprobe(args, &pairs).await
}
