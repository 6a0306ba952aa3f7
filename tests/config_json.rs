//! The JSON form of probes.toml (what the Python API sends, what tools that write JSON
//! give): the same keys, the same reader, the same checks; errors name the probe and the
//! key (JSON has no positions worth showing), and nothing is sent when one is wrong.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::util::servers::{self, GOOD_TOKEN};
use crate::util::*;

fn bearer_probe(name: &str, url: &str, token: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "kind": "http",
        "url": url,
        "auth": { "type": "bearer", "token": token },
        "allow_unverified_password": true,
        "expect": { "status": [200, "2xx"] },
        "tls": null,
    })
}

/// A TOML file as the JSON document with the same tables.
fn as_json(toml_text: &str) -> String {
    let value: toml::Value = toml::from_str(toml_text).unwrap();
    serde_json::to_string_pretty(&value).unwrap()
}

#[tokio::test]
async fn a_json_config_runs_with_references_like_the_toml_one() {
    let server = servers::http().await;
    let ws = Workspace::new();
    let doc = serde_json::json!({
        "defaults": { "timeout": "5s" },
        "probe": [
            bearer_probe("good", &server.url("http", "/bearer"), "${JSON_TEST_TOKEN}"),
            bearer_probe("bad", &server.url("http", "/bearer"), servers::BAD_TOKEN),
        ],
    });
    let path = ws.write("probes.json", &doc.to_string());
    let (out, report) = run_json(&path, &[("JSON_TEST_TOKEN", GOOD_TOKEN)]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_passed(&report, "good");
    assert_failed(&report, "bad", "auth", "auth_rejected");
    for canary in servers::all_canaries() {
        assert!(!out.stdout.contains(&canary) && !out.stderr.contains(&canary), "{canary} leaked: {out:?}");
    }
}

#[tokio::test]
async fn json_errors_name_the_probe_and_key_and_stop_before_any_traffic() {
    let server = servers::http().await;
    let ws = Workspace::new();
    let mut typo = bearer_probe("typo", &server.url("http", "/bearer"), "${NOT_SET_ANYWHERE}");
    typo["methdo"] = "GET".into();
    let doc = serde_json::json!({
        "probe": [bearer_probe("fine", &server.url("http", "/bearer"), GOOD_TOKEN), typo,
                  { "name": "fine", "kind": "http", "url": server.url("http", "/health"), "timeout": 5 }],
    });
    let path = ws.write("probes.json", &doc.to_string());
    let p = path.to_str().unwrap();
    let out = authprobe(&["run", "-c", p], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    let err = &out.stderr;
    assert!(
        err.contains(&format!("{p}: probe `typo`, key `methdo`: unknown key `methdo` (did you mean `method`?)")),
        "{err}"
    );
    assert!(err.contains("probe `typo`, key `auth.token`: environment variable NOT_SET_ANYWHERE is not set"), "{err}");
    assert!(
        err.contains("key `name`: duplicate probe name\n") || err.contains("key `name`: duplicate probe name"),
        "{err}"
    );
    assert!(!err.contains("line 0"), "no position is made up: {err}");
    assert!(err.contains("key `timeout`: expected a duration string"), "{err}");
    assert!(!err.contains(GOOD_TOKEN), "{err}");
    assert_eq!(server.requests(), 0, "a config error must stop the run before any traffic");

    let broken = ws.write("broken.json", "{\"probe\": [ {\"name\": \"x\",, } ]}");
    let out = authprobe(&["validate", "-c", broken.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("not valid JSON") && out.stderr.contains("line 1 column"), "{}", out.stderr);
}

#[tokio::test]
async fn json_on_standard_input_is_read_as_json() {
    let server = servers::http().await;
    let doc = serde_json::json!({ "probe": [bearer_probe("stdin", &server.url("http", "/bearer"), GOOD_TOKEN)] });
    let mut child = tokio::process::Command::new(BIN)
        .args(["run", "-c", "-", "--format", "json"])
        .env_remove("AUTHPROBE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(doc.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out =
        tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_passed(&report, "stdin");
    assert!(!stdout.contains(GOOD_TOKEN));
}

/// The example config as JSON: the same probes, the same verdict, the same errors.
#[tokio::test]
async fn the_example_config_as_json_is_the_same_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let ws = Workspace::new();
    let toml_text = std::fs::read_to_string(root.join("probes.toml.example")).unwrap();
    // Beside the files it refers to by relative path, as in the repository.
    std::fs::create_dir(ws.path("demo")).unwrap();
    std::fs::copy(root.join("demo/stale-token.txt"), ws.path("demo/stale-token.txt")).unwrap();
    let toml_path = ws.write("example.toml", &toml_text);
    let json_path = ws.write("example.json", &as_json(&toml_text));
    let validate = |path: std::path::PathBuf, env: Vec<(String, String)>| async move {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        authprobe(&["validate", "-c", path.to_str().unwrap()], &env).await
    };
    // With the harness's variables: both are the same 39 probes.
    let (a, b) = (validate(toml_path.clone(), harness_env()).await, validate(json_path.clone(), harness_env()).await);
    assert_eq!(a.code, 0, "{a:?}");
    assert_eq!(b.code, 0, "{b:?}");
    assert_eq!(a.stdout.replace("example.toml", "F"), b.stdout.replace("example.json", "F"));
    assert!(a.stdout.contains("OK, 39 probes"), "{}", a.stdout);
    // With each of them empty: the same errors, each naming the probe and key (TOML adds
    // positions).
    let empty: Vec<(String, String)> = harness_env().into_iter().map(|(k, _)| (k, String::new())).collect();
    let (a, b) = (validate(toml_path, empty.clone()).await, validate(json_path, empty).await);
    assert_eq!(a.code, 2, "{a:?}");
    let errors = |out: &Output| -> Vec<String> {
        let mut found: Vec<String> =
            out.stderr.lines().filter_map(|l| l.split_once(": probe `").map(|(_, rest)| rest.to_string())).collect();
        found.sort();
        found
    };
    assert!(errors(&a).len() > 10, "{a:?}");
    assert_eq!(errors(&a), errors(&b));
}
