//! Probes through SSH tunnels, against the harness's bastion: a real OpenSSH in a network
//! namespace of its own, whose targets (the other servers, bridged in) listen on the
//! namespace's loopback and so are reachable only through the bastion.

use std::process::Command;

use crate::util::*;

fn tunnel(name: &str, extra: &str) -> String {
    format!("[[tunnel]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = \"${{AP_BASTION_PORT}}\"\n{extra}\n\n")
}

const JUMP_KEY: &str =
    "user = \"${AP_BASTION_USER}\"\nauth = { type = \"key\", private_key = \"${AP_BASTION_DIR}/jump_ed25519\" }";
const BASTION_KEY: &str = "host_key = \"${AP_BASTION_HOST_KEY}\"";

fn stage_names(p: &serde_json::Value) -> Vec<String> {
    p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn every_tcp_kind_reaches_targets_only_the_bastion_can_reach() {
    let env = harness_env();
    let ws = Workspace::new();
    // A key of this test's own, so that the bastion's log tells how many SSH connections
    // this run opened, whatever other tests do at the same time.
    let key = ws.path("run_key");
    let keygen = Command::new(require_tool("ssh-keygen"))
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "tunnel-sharing-test", "-f", key.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(keygen.success());
    let bastion_dir = harness_var(&env, "AP_BASTION_DIR");
    let user = harness_var(&env, "AP_BASTION_USER");
    let public = std::fs::read_to_string(ws.path("run_key.pub")).unwrap();
    let authorized = format!("{bastion_dir}/authorized_keys/{user}");
    let mut keys = std::fs::read_to_string(&authorized).unwrap();
    keys.push_str(&public);
    std::fs::write(&authorized, keys).unwrap();
    let fingerprint =
        Command::new(require_tool("ssh-keygen")).args(["-l", "-E", "sha256", "-f"]).arg(&key).output().unwrap();
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout).split_whitespace().nth(1).unwrap().to_string();
    let log = format!("{}/logs/bastion.log", std::path::Path::new(&bastion_dir).parent().unwrap().display());
    let logins = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().filter(|l| l.starts_with("Accepted publickey") && l.contains(&fingerprint)).count()
    };

    let mut cfg = tunnel(
        "bastion",
        &format!(
            "user = \"${{AP_BASTION_USER}}\"\nauth = {{ type = \"key\", private_key = \"{}\" }}\n{BASTION_KEY}",
            key.display()
        ),
    );
    let tls = "tls = { mode = \"verify-full\", ca = \"${AP_CA}\" }";
    cfg += &format!(
        "[[probe]]\nname = \"postgres\"\nkind = \"postgres\"\nvia = \"bastion\"\nhost = \"localhost\"\nport = \"${{AP_INNER_PG_PORT}}\"\nuser = \"${{AP_PG_USER}}\"\npassword = \"${{AP_PG_PASSWORD}}\"\ndatabase = \"${{AP_PG_DATABASE}}\"\n{tls}\n\n"
    );
    cfg += "[[probe]]\nname = \"https\"\nkind = \"http\"\nvia = \"bastion\"\nurl = \"https://localhost:${AP_INNER_HTTPS_PORT}/bearer\"\nauth = { type = \"bearer\", token = \"${AP_BEARER_TOKEN}\" }\ntls = { ca = \"${AP_CA}\" }\n\n";
    cfg += &format!(
        "[[probe]]\nname = \"mysql\"\nkind = \"mysql\"\nvia = \"bastion\"\nhost = \"localhost\"\nport = \"${{AP_INNER_MYSQL_PORT}}\"\nuser = \"${{AP_MYSQL_USER}}\"\npassword = \"${{AP_MYSQL_PASSWORD}}\"\ndatabase = \"${{AP_MYSQL_DATABASE}}\"\n{tls}\n\n"
    );
    cfg += &format!(
        "[[probe]]\nname = \"mssql\"\nkind = \"mssql\"\nvia = \"bastion\"\nhost = \"localhost\"\nport = \"${{AP_INNER_MSSQL_PORT}}\"\nuser = \"${{AP_MSSQL_USER}}\"\npassword = \"${{AP_MSSQL_PASSWORD}}\"\n{tls}\n\n"
    );
    cfg += "[[probe]]\nname = \"sftp\"\nkind = \"sftp\"\nvia = \"bastion\"\nhost = \"127.0.0.1\"\nport = \"${AP_INNER_SSH_PORT}\"\nuser = \"${AP_SFTP_USER}\"\nauth = { type = \"password\", password = \"${AP_SFTP_PASSWORD}\" }\nhost_key = \"${AP_SSH_HOST_KEY}\"\npath = \"data\"\n\n";
    cfg += "[[probe]]\nname = \"s3\"\nkind = \"s3\"\nvia = \"bastion\"\nbucket = \"${AP_S3_BUCKET}\"\nendpoint = \"http://127.0.0.1:${AP_INNER_S3_PORT}\"\nauth = { type = \"static\", access_key_id = \"${AP_S3_ACCESS_KEY}\", secret_access_key = \"${AP_S3_SECRET_KEY}\" }\n\n";
    // The same PostgreSQL address without the tunnel: nothing there on this side.
    cfg += "[[probe]]\nname = \"postgres-direct\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${AP_INNER_PG_PORT}\"\nuser = \"${AP_PG_USER}\"\npassword = \"${AP_PG_PASSWORD}\"\n\n";
    let path = ws.config(&cfg);
    let before = logins();
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json", "-v"], &env).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let report = out.json();
    for name in ["postgres", "https", "mysql", "mssql", "sftp", "s3"] {
        let p = assert_passed(&report, name);
        let stages = stage_names(p);
        assert_eq!(&stages[..2], ["tunnel_connect", "tunnel_auth"], "{p:#}");
        assert!(!stages.contains(&"dns".to_string()), "the bastion resolves the target: {p:#}");
        if !["sftp", "s3"].contains(&name) {
            assert_eq!(p["tls"]["verified"], true, "{p:#}");
        }
    }
    assert_eq!(probe(&report, "sftp")["host_key"]["sha256"], harness_var(&env, "AP_SSH_HOST_KEY").as_str());
    assert_failed(&report, "postgres-direct", "connect", "connect_refused");
    // sshd logs each login once: six probes, one SSH connection.
    assert_eq!(logins() - before, 1, "expected one SSH login to the bastion for the whole run ({log})");
}

#[tokio::test]
async fn tunnel_failures_are_the_tunnels_not_the_targets() {
    let env = harness_env();
    let ws = Workspace::new();
    let wrong_password = "CANARY-tunnel-wrong-pw-8d2e44";
    let mut cfg = String::new();
    cfg += &tunnel("ok", &format!("{JUMP_KEY}\n{BASTION_KEY}"));
    cfg += &tunnel(
        "wrong-password",
        &format!(
            "user = \"${{AP_BASTION_USER}}\"\nauth = {{ type = \"password\", password = \"{wrong_password}\" }}\n{BASTION_KEY}"
        ),
    );
    cfg += &tunnel("unknown-host-key", JUMP_KEY);
    cfg += &tunnel(
        "no-forwarding",
        &format!(
            "user = \"${{AP_BASTION_NOFWD_USER}}\"\nauth = {{ type = \"password\", password = \"${{AP_BASTION_PASSWORD}}\" }}\n{BASTION_KEY}"
        ),
    );
    cfg += &format!(
        "[[tunnel]]\nname = \"nothing-listens\"\nhost = \"127.0.0.1\"\nport = 9\n{JUMP_KEY}\n{BASTION_KEY}\n\n"
    );
    let pg = |name: &str, via: &str, host: &str, port: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"postgres\"\nvia = \"{via}\"\nhost = \"{host}\"\nport = \"{port}\"\nuser = \"${{AP_PG_USER}}\"\npassword = \"${{AP_PG_PASSWORD}}\"\n\n"
        )
    };
    let inner = "${AP_INNER_PG_PORT}";
    cfg += &pg("tunnel-wrong-password", "wrong-password", "localhost", inner);
    cfg += &pg("tunnel-wrong-password-shared", "wrong-password", "localhost", inner);
    cfg += &pg("tunnel-unknown-host-key", "unknown-host-key", "localhost", inner);
    cfg += &pg("tunnel-down", "nothing-listens", "localhost", inner);
    cfg += &pg("forwarding-prohibited", "no-forwarding", "localhost", inner);
    cfg += &pg("target-refuses", "ok", "127.0.0.1", "29999");
    cfg += &pg("target-unknown-to-bastion", "ok", "db.invalid", "5432");
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json", "-vv"], &env).await;
    assert_eq!(out.code, 1);
    assert!(!out.stdout.contains(wrong_password) && !out.stderr.contains(wrong_password), "a secret leaked");
    let report = out.json();
    for name in ["tunnel-wrong-password", "tunnel-wrong-password-shared"] {
        let p = assert_failed(&report, name, "tunnel_auth", "auth_rejected");
        let message = p["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("tunnel `wrong-password`: "), "{message}");
        assert!(message.contains("refused the password for `ap_jump`"), "{message}");
        assert_eq!(p["stages"][1]["name"], "tunnel_auth");
        assert_eq!(p["stages"][1]["status"], "fail", "{p:#}");
        assert_eq!(p["stages"][2]["status"], "skipped", "{p:#}");
    }
    let bastion_key = harness_var(&env, "AP_BASTION_HOST_KEY");
    let unknown = assert_failed(&report, "tunnel-unknown-host-key", "tunnel_connect", "host_key");
    assert!(
        unknown["error"]["hint"]
            .as_str()
            .unwrap()
            .contains(&format!("[[tunnel]] `unknown-host-key`: host_key = \"{bastion_key}\"")),
        "{unknown:#}"
    );
    assert_eq!(unknown["host_key"]["sha256"], bastion_key.as_str(), "{unknown:#}");
    let down = assert_failed(&report, "tunnel-down", "tunnel_connect", "connect_refused");
    assert!(
        down["error"]["message"].as_str().unwrap().starts_with("tunnel `nothing-listens`: 127.0.0.1:9"),
        "{down:#}"
    );
    let prohibited = assert_failed(&report, "forwarding-prohibited", "connect", "permission_denied");
    assert!(prohibited["error"]["hint"].as_str().unwrap().contains("AllowTcpForwarding"), "{prohibited:#}");
    let refused = assert_failed(&report, "target-refuses", "connect", "connect_refused");
    assert!(refused["error"]["message"].as_str().unwrap().contains("Connection refused"), "{refused:#}");
    let dns = assert_failed(&report, "target-unknown-to-bastion", "connect", "dns");
    assert!(dns["error"]["message"].as_str().unwrap().contains("cannot resolve db.invalid"), "{dns:#}");
}

#[tokio::test]
async fn via_must_name_a_defined_tunnel() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "[[tunnel]]\nname = \"bastion\"\nhost = \"127.0.0.1\"\nuser = \"jump\"\nauth = { type = \"agent\" }\nhost_kye = \"SHA256:x\"\n\n[[probe]]\nname = \"a\"\nkind = \"postgres\"\nvia = \"bastoin\"\nhost = \"db\"\nuser = \"u\"\n\n[[probe]]\nname = \"b\"\nkind = \"http\"\nvia = \"nowhere\"\nurl = \"http://x/\"\n",
    );
    let out = authprobe(&["validate", "-c", cfg.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    let err = &out.stderr;
    assert!(
        err.contains("tunnel `bastion`, key `host_kye`: unknown key `host_kye` (did you mean `host_key`?)"),
        "{err}"
    );
    assert!(err.contains("probe `a`, key `via`: no [[tunnel]] named `bastoin` (did you mean `bastion`?)"), "{err}");
    assert!(err.contains("probe `b`, key `via`: no [[tunnel]] named `nowhere`; defined tunnels: bastion"), "{err}");
}
