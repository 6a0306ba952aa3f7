//! The published schema of probes.toml (`schemas/probes.schema.json`, `authprobe schema`):
//! current, read by a validator not written here (check-jsonschema), and true to the
//! readers both ways — what it accepts authprobe knows, and what authprobe accepts it does.

use std::path::Path;

use serde_json::Value;

use crate::util::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn committed() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("schemas/probes.schema.json")).unwrap()).unwrap()
}

/// check-jsonschema over TOML files: (passed, its output).
fn check_jsonschema(files: &[&Path]) -> (bool, String) {
    check_jsonschema_as("toml", files)
}

fn check_jsonschema_as(filetype: &str, files: &[&Path]) -> (bool, String) {
    let tool = require_tool("check-jsonschema");
    let out = std::process::Command::new(tool)
        .args(["--default-filetype", filetype, "--schemafile"])
        .arg(root().join("schemas/probes.schema.json"))
        .args(files)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_committed_schema_is_the_one_authprobe_prints() {
    let out = authprobe(&["schema"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        printed == committed(),
        "schemas/probes.schema.json is out of date: run `cargo run -q -- schema > schemas/probes.schema.json`"
    );
}

/// Every TOML example of the README and the docs, as files.
fn documented_configs(ws: &Workspace) -> Vec<std::path::PathBuf> {
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "md") {
            pages.push(entry.path());
        }
    }
    let mut files = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        for (i, block) in text.split("```toml\n").skip(1).enumerate() {
            let body = block.split("```").next().unwrap_or_default();
            if body.contains("[[approved]]") {
                continue; // an approvals file (docs/approvals.md), not a probes file
            }
            let name = format!("{}-{i}.toml", page.file_stem().unwrap().to_string_lossy());
            files.push(ws.write(&name, body));
        }
    }
    files
}

#[test]
fn an_outside_validator_accepts_the_examples_and_rejects_typos() {
    let ws = Workspace::new();
    let mut files = vec![root().join("probes.toml.example")];
    files.extend(documented_configs(&ws));
    assert!(files.len() >= 6, "{files:?}");
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let (ok, said) = check_jsonschema(&paths);
    assert!(ok, "{said}");

    let probe = |extra: &str| {
        format!("[[probe]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"db\"\nuser = \"app\"\n{extra}\n")
    };
    for (name, config, expected) in [
        ("misspelt-key", probe("pasword = \"${PW}\""), "'pasword' was unexpected"),
        ("another-kinds-key", probe("bucket = \"reports\""), "'bucket' was unexpected"),
        ("misspelt-kind", "[[probe]]\nname = \"x\"\nkind = \"postgress\"\n".into(), "'postgress' is not one of"),
        ("misspelt-auth-type", probe("auth = { type = \"rds-iam\" }"), "'rds-iam' is not one of"),
        (
            "misspelt-tls-key",
            probe("tls = { mode = \"verify-full\", ca_file = \"ca.pem\" }"),
            "'ca_file' was unexpected",
        ),
        ("wrong-type", probe("port = [5432]"), "is not valid"),
    ] {
        let file = ws.write(&format!("{name}.toml"), &config);
        let (ok, said) = check_jsonschema(&[&file]);
        assert!(!ok && said.contains(expected), "{name}: {said}");
    }
    // References stand for numbers, booleans and words.
    let file = ws.write(
        "references.toml",
        &probe("port = \"${DB_PORT}\"\nhygiene = \"${HYGIENE}\"\nchannel_binding = \"${BINDING}\""),
    );
    let (ok, said) = check_jsonschema(&[&file]);
    assert!(ok, "{said}");
}

/// The JSON form of probes.toml (what the Python API sends) is the same document: the same
/// schema holds for it.
#[test]
fn the_schema_holds_for_the_json_form_too() {
    let ws = Workspace::new();
    let example: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("probes.toml.example")).unwrap()).unwrap();
    let good = ws.write("example.json", &serde_json::to_string(&example).unwrap());
    let (ok, said) = check_jsonschema_as("json", &[&good]);
    assert!(ok, "{said}");
    let typo = ws.write(
        "typo.json",
        r#"{"probe": [{"name": "db", "kind": "postgres", "host": "db", "user": "app", "pasword": "${PW}"}]}"#,
    );
    let (ok, said) = check_jsonschema_as("json", &[&typo]);
    assert!(!ok && said.contains("'pasword' was unexpected"), "{said}");
}

/// A value of the right shape for a key the schema declares, good enough for the reader to
/// look at it (files that exist, URLs that parse, durations, ports).
fn sample(name: &str, schema: &Value, files: &Path) -> Option<String> {
    let file = |n: &str| Some(format!("\"{}\"", files.join(n).display()));
    let kind = schema["type"].as_str().or_else(|| schema["anyOf"][0]["type"].as_str());
    Some(match name {
        "ca" | "client_cert" => return file("cert.pem"),
        "client_key" => return file("key.pem"),
        "private_key" => return file("id_ed25519"),
        "server_public_key" => return file("rsa.pub"),
        "key_file" | "token_file" | "token_path" | "keytab" | "krb5_conf" | "known_hosts" | "outbox" | "approvals"
        | "certificate" => return file("any"),
        "url" | "token_url" | "endpoint" | "sts_endpoint" | "authority" | "address" | "public_url" | "redirect_uri" => {
            "\"https://example.test/\"".into()
        }
        "port" => "5432".into(),
        "timeout" | "max_age" | "expires" | "cache" => "\"5s\"".into(),
        "status" => "200".into(),
        "kdc" => "\"kdc.example.test\"".into(),
        "mode" => "\"verify-full\"".into(),
        "key" => "\"c2VjcmV0LWtleS1iYXNlNjQ=\"".into(),
        "token" => "\"sv=2024&sp=rl&sig=abc\"".into(),
        _ => match (kind, schema["type"].as_array().map(|t| t[0].as_str())) {
            (_, Some(Some("boolean"))) => "false".into(),
            (_, Some(Some("integer"))) => "7".into(),
            (Some("array"), _) => "[\"a\"]".into(),
            (Some("object"), _) if schema.get("properties").is_none() => "{}".into(),
            (Some("object"), _) => return None,
            _ => match schema["anyOf"][0]["enum"][0].as_str() {
                Some(word) => format!("\"{word}\""),
                None => "\"value\"".into(),
            },
        },
    })
}

/// The form of `definition` (a tagged table) for `tag`: its properties.
fn form<'a>(schema: &'a Value, definition: &str, tag_key: &str, tag: &str) -> &'a serde_json::Map<String, Value> {
    schema["definitions"][definition]["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["if"]["properties"][tag_key]["const"] == tag)
        .and_then(|f| f["then"]["properties"].as_object())
        .unwrap_or_else(|| panic!("{definition}: no form {tag}"))
}

fn tags(schema: &Value, definition: &str, tag_key: &str) -> Vec<String> {
    schema["definitions"][definition]["properties"][tag_key]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// A table's entries: every declared key given a sample value, `nested` filled in by name.
fn entries(properties: &serde_json::Map<String, Value>, files: &Path, nested: &[(&str, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, schema) in properties {
        if name == "type" || name == "kind" {
            continue; // the tag, written first
        }
        if let Some((_, table)) = nested.iter().find(|(n, _)| n == name) {
            out.push(format!("{name} = {table}"));
        } else if let Some(value) = sample(name, schema, files) {
            out.push(format!("{name} = {value}"));
        }
    }
    out
}

/// Every key the schema declares, in every form of every kind and of each kind's `auth`,
/// is one authprobe's readers know: `validate` says "unknown key" about none of them.
/// (The values are samples: other errors are expected and not looked at.)
#[tokio::test]
async fn every_declared_key_is_one_authprobe_reads() {
    let schema = committed();
    let ws = Workspace::new();
    let files = ws.dir.path();
    for name in ["cert.pem", "key.pem", "rsa.pub", "any"] {
        ws.write(name, "not a real file\n");
    }
    // A key the SSH reader can load, so that it goes on to the keys read after it.
    let keygen = std::process::Command::new(require_tool("ssh-keygen"))
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(files.join("id_ed25519"))
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", text(&keygen.stderr));
    let mut configs = Vec::new();
    for kind in tags(&schema, "probe", "kind") {
        let probe = form(&schema, "probe", "kind", &kind);
        let tls = schema["definitions"]["tls"]["properties"].as_object().unwrap();
        let tls_table = format!("{{ {} }}", entries(tls, files, &[]).join(", "));
        let auth_definition = probe.get("auth").and_then(|a| a["$ref"].as_str()).map(|r| r.rsplit('/').next().unwrap());
        let auth_forms: Vec<String> = match auth_definition {
            Some(definition) => tags(&schema, definition, "type")
                .into_iter()
                .map(|tag| {
                    let keys = form(&schema, definition, "type", &tag);
                    let credentials = keys.get("credentials").and_then(|c| c["$ref"].as_str()).map(|r| {
                        let inner = r.rsplit('/').next().unwrap();
                        let first = &tags(&schema, inner, "type")[0];
                        let inner_keys = form(&schema, inner, "type", first);
                        format!("{{ type = \"{first}\", {} }}", entries(inner_keys, files, &[]).join(", "))
                    });
                    let source = "{ type = \"env\" }".to_string();
                    let mut nested = vec![("source", source)];
                    nested.extend(credentials.map(|c| ("credentials", c)));
                    let body = entries(keys, files, &nested).join(", ");
                    format!("{{ type = \"{tag}\", {body} }}")
                })
                .collect(),
            None => vec![String::new()],
        };
        for (i, auth) in auth_forms.iter().enumerate() {
            let mut nested = vec![
                ("tls", tls_table.clone()),
                ("name", format!("\"{kind}-{i}\"")),
                ("expect", "{ status = 200, body_contains = \"ok\" }".to_string()),
            ];
            if !auth.is_empty() {
                nested.push(("auth", auth.clone()));
            }
            let mut lines = vec!["[[probe]]".to_string(), format!("kind = \"{kind}\"")];
            lines.extend(entries(probe, files, &nested));
            configs.push(lines.join("\n"));
        }
    }
    assert!(configs.len() > 30, "{}", configs.len());
    let mut unknown = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let path = ws.write(&format!("every-key-{i}.toml"), &format!("{config}\n"));
        let out = authprobe(&["validate", "-c", path.to_str().unwrap()], &[]).await;
        assert!(!out.stderr.contains("not valid TOML"), "{}\n{config}", out.stderr);
        for line in out.stderr.lines().filter(|l| l.contains("unknown key")) {
            unknown.push(format!("{line}\n  in:\n{config}"));
        }
    }
    assert!(unknown.is_empty(), "declared keys authprobe does not know:\n{}", unknown.join("\n\n"));
}
