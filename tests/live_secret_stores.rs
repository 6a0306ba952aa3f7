//! Secrets read from a store at each attempt (issue 31): the harness's real OpenBao (Vault's
//! API, TLS with the harness CA), its KV v1 and v2 mounts, token, AppRole and userpass
//! logins, and every class the `secret` stage claims, produced by the server.

use std::time::Duration;

use crate::util::*;

/// A `[[secret_store]]` table for the harness's OpenBao with `auth`.
fn store(name: &str, auth: &str) -> String {
    format!(
        "[[secret_store]]\nname = \"{name}\"\ntype = \"vault\"\naddress = \"${{AP_VAULT_ADDR}}\"\ntls = {{ ca = \"${{AP_CA}}\" }}\nauth = {auth}\n\n"
    )
}

/// An http probe of the harness's bearer endpoint whose token is `reference`.
fn bearer(name: &str, reference: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"https://localhost:${{AP_HTTPS_PORT}}/bearer\"\ntls = {{ ca = \"${{AP_CA}}\" }}\nauth = {{ type = \"bearer\", token = \"${{{reference}}}\" }}\n\n"
    )
}

fn stage<'a>(probe: &'a serde_json::Value, name: &str) -> &'a str {
    probe["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .map(|s| s["status"].as_str().unwrap())
        .unwrap_or("absent")
}

#[tokio::test]
async fn secrets_come_from_openbao_at_each_attempt_and_every_failure_is_the_stores() {
    let env = harness_env();
    let ws = Workspace::new();
    let mut cfg = String::new();
    cfg += &store("bao", "{ type = \"token\", token = \"${AP_VAULT_TOKEN}\" }");
    cfg += &store(
        "bao-approle",
        "{ type = \"approle\", role_id = \"${AP_VAULT_ROLE_ID}\", secret_id = \"${AP_VAULT_SECRET_ID}\" }",
    );
    cfg += &store(
        "bao-user",
        "{ type = \"userpass\", username = \"probe-user\", password = \"${AP_VAULT_USER_PASSWORD}\" }",
    );
    let jwt_store =
        |var: &str| format!("{{ type = \"jwt\", role = \"ci\", jwt = \"${{file:{}}}\" }}", harness_var(&env, var));
    cfg += &store("bao-jwt", &jwt_store("AP_VAULT_JWT_FILE"));
    cfg += &store("bao-expired-jwt", &jwt_store("AP_VAULT_EXPIRED_JWT_FILE"));
    cfg += &store("bao-wrong-audience", &jwt_store("AP_VAULT_WRONG_AUDIENCE_JWT_FILE"));
    // Kubernetes auth: a pod's projected service-account token; OpenBao asks the cluster's
    // TokenReview about it (the cloud token service plays the API server).
    let pod_store = |file: &str| {
        let path = format!("{}/{file}", harness_var(&env, "AP_WEB_IDENTITY_DIR"));
        format!("{{ type = \"kubernetes\", role = \"pipeline\", token_path = \"{path}\" }}")
    };
    cfg += &store("bao-pod", &pod_store("token"));
    cfg += &store("bao-pod-expired", &pod_store("token-expired"));
    cfg += &store("bao-pod-other-sa", &pod_store("token-untrusted-sa"));
    cfg += &store("bao-pod-forged", &pod_store("token-forged"));
    cfg += &store("bao-not-in-a-pod", "{ type = \"kubernetes\", role = \"pipeline\" }");
    cfg += &store("bao-revoked", "{ type = \"token\", token = \"${AP_VAULT_REVOKED_TOKEN}\" }");
    cfg += &store("bao-expired", "{ type = \"token\", token = \"${AP_VAULT_SHORT_TOKEN}\" }");
    cfg += &store(
        "bao-bad-secret-id",
        "{ type = \"approle\", role_id = \"${AP_VAULT_ROLE_ID}\", secret_id = \"not-the-secret-id\" }",
    );
    cfg += &store(
        "bao-no-access",
        "{ type = \"approle\", role_id = \"${AP_VAULT_NOACCESS_ROLE_ID}\", secret_id = \"${AP_VAULT_NOACCESS_SECRET_ID}\" }",
    );
    cfg += &store("bao-plain-http", "{ type = \"token\", token = \"${AP_VAULT_TOKEN}\" }")
        .replace("address = \"${AP_VAULT_ADDR}\"", "address = \"http://127.0.0.1:${AP_VAULT_PORT}\"");
    cfg += &store("bao-down", "{ type = \"token\", token = \"${AP_VAULT_TOKEN}\" }")
        .replace("address = \"${AP_VAULT_ADDR}\"", "address = \"https://localhost:1\"");
    cfg += &bearer("kv2-token", "bao:secret/app#api_token");
    cfg += &bearer("kv1-approle", "bao-approle:kv1/app#api_token");
    cfg += &bearer("kv2-userpass", "bao-user:secret/app#api_token");
    cfg += &bearer("kv2-jwt", "bao-jwt:secret/app#api_token");
    cfg += &bearer("expired-jwt", "bao-expired-jwt:secret/app#api_token");
    cfg += &bearer("jwt-for-someone-else", "bao-wrong-audience:secret/app#api_token");
    cfg += &bearer("kv2-kubernetes", "bao-pod:secret/app#api_token");
    cfg += &bearer("expired-pod-token", "bao-pod-expired:secret/app#api_token");
    cfg += &bearer("service-account-not-bound", "bao-pod-other-sa:secret/app#api_token");
    cfg += &bearer("forged-pod-token", "bao-pod-forged:secret/app#api_token");
    cfg += &bearer("not-in-a-pod", "bao-not-in-a-pod:secret/app#api_token");
    // The built-in store, from the environment as the vault and bao CLIs read it.
    cfg += &bearer("builtin-from-env", "vault:secret/app#api_token");
    cfg += "[[probe]]\nname = \"postgres-from-vault\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${AP_PG_PORT}\"\n\
            database = \"appdb\"\nuser = \"${bao:secret/app#pg_user}\"\npassword = \"${bao:secret/app#pg_password}\"\n\
            tls = { ca = \"${AP_CA}\" }\n\n";
    cfg += &bearer("revoked-token", "bao-revoked:secret/app#api_token");
    // Issued with a 2 s TTL when the harness started: expired by now.
    cfg += &bearer("expired-token", "bao-expired:secret/app#api_token");
    cfg += &bearer("wrong-secret-id", "bao-bad-secret-id:secret/app#api_token");
    cfg += &bearer("policy-forbids", "bao-no-access:secret/app#api_token");
    cfg += &bearer("no-such-field", "bao:secret/app#no_such_field");
    // The whole URL from the store: read at each attempt like any value; its credential
    // query value is masked, the rest shows once an attempt has read it.
    cfg += &bearer("url-from-store", "bao:secret/app#api_token")
        .replace("url = \"https://localhost:${AP_HTTPS_PORT}/bearer\"", "url = \"${bao:secret/hooks#url}\"");
    cfg += &bearer("no-such-secret", "bao:secret/gone#api_token");
    cfg += &bearer("plain-http-store", "bao-plain-http:secret/app#api_token");
    cfg += &bearer("store-down", "bao-down:secret/app#api_token");
    let path = ws.config(&cfg);
    let mut env = env.clone();
    env.push(("VAULT_ADDR".into(), harness_var(&env, "AP_VAULT_ADDR")));
    env.push(("VAULT_TOKEN".into(), harness_var(&env, "AP_VAULT_TOKEN")));
    env.push(("VAULT_CACERT".into(), harness_var(&env, "AP_CA")));
    let validate = authprobe_harness(&["validate", "-c", path.to_str().unwrap()], &env).await;
    assert_eq!(validate.code, 0, "validate sends nothing and accepts the references: {}", validate.stderr);

    let (out, report) = run_json(&path, &env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>()).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for name in [
        "kv2-token",
        "kv1-approle",
        "kv2-userpass",
        "kv2-jwt",
        "kv2-kubernetes",
        "builtin-from-env",
        "postgres-from-vault",
        "url-from-store",
    ] {
        let p = assert_passed(&report, name);
        assert_eq!(stage(p, "secret"), "ok", "{p:#}");
        assert_eq!(p["stages"][0]["name"], "secret", "the secret stage comes first: {p:#}");
    }
    for (name, class) in [
        ("revoked-token", "auth_rejected"),
        ("expired-token", "auth_rejected"),
        ("expired-jwt", "auth_rejected"),
        ("jwt-for-someone-else", "auth_rejected"),
        ("expired-pod-token", "auth_rejected"),
        ("service-account-not-bound", "auth_rejected"),
        ("forged-pod-token", "auth_rejected"),
        ("not-in-a-pod", "config"),
        ("wrong-secret-id", "auth_rejected"),
        ("policy-forbids", "permission_denied"),
        ("no-such-field", "not_found"),
        ("no-such-secret", "not_found"),
        ("plain-http-store", "tls_handshake"),
        ("store-down", "connect_refused"),
    ] {
        let p = assert_failed(&report, name, "secret", class);
        // The target was never contacted: its stages are skipped.
        assert_eq!(stage(p, "connect"), "skipped", "{p:#}");
        let message = p["error"]["message"].as_str().unwrap();
        assert!(message.contains("secret store `bao"), "the store is named: {message}");
    }
    // A given token's end is listed (the reader token lives 24 h from the harness's start);
    // a login's token is renewed by logging in again and is not.
    let token_of = |name: &str| {
        probe(&report, name)["credentials"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["what"].as_str().is_some_and(|w| w.starts_with("the token of secret store `")))
            .cloned()
    };
    for name in ["kv2-token", "builtin-from-env"] {
        let token = token_of(name).unwrap_or_else(|| panic!("{name}: no token listed: {report:#}"));
        let left = token["seconds_left"].as_i64().unwrap();
        assert!((3_600..=86_400).contains(&left), "{token:#}");
        assert!(token["age_seconds"].as_i64().unwrap() >= 0, "{token:#}");
    }
    assert_eq!(token_of("kv1-approle"), None);
    let hook = probe(&report, "url-from-store")["target"].as_str().unwrap().to_string();
    assert!(hook.starts_with("https://localhost:") && hook.contains("/bearer?token=********"), "{hook}");
    let forbids = probe(&report, "policy-forbids");
    assert!(forbids["error"]["hint"].as_str().unwrap().contains("path \"secret/data/app\""), "{forbids:#}");
    let fields = probe(&report, "no-such-field")["error"]["message"].as_str().unwrap().to_string();
    assert!(fields.contains("api_token") && fields.contains("no_such_field"), "{fields}");

    // Nothing secret in any format, at any verbosity: the values, the store tokens, the
    // AppRole's secret_id, the userpass password.
    let secrets: Vec<String> = [
        "AP_BEARER_TOKEN",
        "AP_PG_PASSWORD",
        "AP_VAULT_TOKEN",
        "AP_VAULT_SECRET_ID",
        "AP_VAULT_USER_PASSWORD",
        "AP_VAULT_REVOKED_TOKEN",
    ]
    .iter()
    .map(|k| harness_var(&env, k))
    .chain(std::iter::once(
        std::fs::read_to_string(format!("{}/token", harness_var(&env, "AP_WEB_IDENTITY_DIR"))).unwrap(),
    ))
    .collect();
    for format in ["table", "json", "markdown", "junit", "prometheus"] {
        let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", format, "-vv"], &env).await;
        for secret in &secrets {
            assert!(
                !out.stdout.contains(secret.as_str()) && !out.stderr.contains(secret.as_str()),
                "{format} shows a secret"
            );
        }
    }
}

#[tokio::test]
async fn a_rotation_in_the_store_is_seen_by_the_next_attempt() {
    let env = harness_env();
    let ws = Workspace::new();
    // A secret of its own, written with the root token, so that other tests are not affected.
    let root = harness_var(&env, "AP_VAULT_ROOT_TOKEN");
    let addr = harness_var(&env, "AP_VAULT_ADDR");
    let ca = harness_var(&env, "AP_CA");
    let write = |value: String| {
        let (root, addr, ca) = (root.clone(), addr.clone(), ca.clone());
        async move {
            let body = format!("{{\"data\":{{\"token\":\"{value}\"}}}}");
            let out = tokio::process::Command::new("curl")
                .args(["-sf", "--cacert", &ca, "-H", &format!("X-Vault-Token: {root}"), "-X", "POST", "-d", &body])
                .arg(format!("{addr}/v1/secret/data/rotating"))
                .output()
                .await
                .expect("curl");
            assert!(out.status.success(), "writing the secret: {}", String::from_utf8_lossy(&out.stderr));
        }
    };
    let good = harness_var(&env, "AP_BEARER_TOKEN");
    write(good.clone()).await;
    let cfg = ws.config(
        &(store("bao", "{ type = \"token\", token = \"${AP_VAULT_ROOT_TOKEN}\" }")
            + &bearer("rotating", "bao:secret/rotating#token")),
    );
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (_, report) = run_json(&cfg, &pairs).await;
    assert_passed(&report, "rotating");
    write("rotated-to-a-stale-value-77".into()).await;
    let (_, report) = run_json(&cfg, &pairs).await;
    // The store answered; the API refused the new value: the target's own stage and class.
    assert_failed(&report, "rotating", "auth", "auth_rejected");
    // And back, within one --wait: a 401 is not retried, so the rotation shows on the next run.
    write(good).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, report) = run_json(&cfg, &pairs).await;
    assert_passed(&report, "rotating");
}

#[tokio::test]
async fn store_references_are_checked_without_traffic() {
    let env = harness_env();
    let ws = Workspace::new();
    let unknown = ws.write("unknown.toml", &bearer("x", "nostore:secret/app#token"));
    let out = authprobe_harness(&["validate", "-c", unknown.to_str().unwrap()], &env).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown.toml:") && out.stderr.contains("`nostore` is not a secret store"),
        "{}",
        out.stderr
    );
    let malformed = ws.write("malformed.toml", &bearer("x", "vault:"));
    let out = authprobe_harness(&["validate", "-c", malformed.to_str().unwrap()], &env).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("${STORE:REF}"), "{}", out.stderr);
    let bad_type = ws.write(
        "type.toml",
        &(store("s", "{ type = \"token\", token = \"x\" }").replace("type = \"vault\"", "type = \"vaultt\"")
            + &bearer("x", "s:a#b")),
    );
    let out = authprobe_harness(&["validate", "-c", bad_type.to_str().unwrap()], &env).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("unknown store type `vaultt`"), "{}", out.stderr);
}

/// Dynamic database credentials: OpenBao's database secrets engine creates a PostgreSQL
/// role at the read; both fields come from that one lease; the lease is revoked when the
/// probe is done, so the role no longer exists afterwards.
#[tokio::test]
async fn dynamic_database_credentials_are_used_once_and_given_back() {
    let env = harness_env();
    let ws = Workspace::new();
    let cfg = ws.config(
        &(store("bao", "{ type = \"token\", token = \"${AP_VAULT_TOKEN}\" }")
            + "[[probe]]\nname = \"dynamic-pg\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${AP_PG_PORT}\"\n\
               database = \"appdb\"\nuser = \"${bao:database/creds/readonly#username}\"\n\
               password = \"${bao:database/creds/readonly#password}\"\nquery = \"SELECT item FROM orders\"\n\
               tls = { ca = \"${AP_CA}\" }\n"),
    );
    let out = authprobe_harness(&["run", "-c", cfg.to_str().unwrap(), "--format", "json", "-v"], &env).await;
    let report = out.json();
    let p = assert_passed(&report, "dynamic-pg");
    let role = leased_user(p);
    assert_eq!(p["stages"][0]["name"], "secret", "{p:#}");
    let table = authprobe_harness(&["run", "-c", cfg.to_str().unwrap(), "-v"], &env).await;
    assert!(table.stdout.contains("is leased (database/creds/readonly/"), "{}", table.stdout);
    assert!(table.stdout.contains("lease revoked"), "{}", table.stdout);
    assert!(!pg_role_exists(&env, &role).await, "the probe's role {role} was dropped with its lease");
}

/// The user a probe logged in as (its target names it: names are not secrets), here the
/// role OpenBao's database engine made for the lease.
fn leased_user(probe: &serde_json::Value) -> String {
    let target = probe["target"].as_str().unwrap();
    let user = target.split_once("://").and_then(|(_, rest)| rest.split_once('@')).map(|(user, _)| user);
    let user = user.unwrap_or_else(|| panic!("no user in {target}")).to_string();
    assert!(user.starts_with("v-"), "a role OpenBao made: {user}");
    user
}

/// Whether the harness PostgreSQL still has a role (checked as the engine's admin user).
async fn pg_role_exists(env: &[(String, String)], role: &str) -> bool {
    let out = tokio::process::Command::new(require_tool("psql"))
        .args(["-h", "127.0.0.1", "-p", &harness_var(env, "AP_PG_PORT"), "-U", "vault_admin", "-d", "appdb", "-tAc"])
        .arg(format!("SELECT count(*) FROM pg_roles WHERE rolname = '{}'", role.replace('\'', "''")))
        .env("PGPASSWORD", harness_var(env, "AP_PG_VAULT_ADMIN_PASSWORD"))
        .output()
        .await
        .expect("psql");
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim() != "0"
}

/// An attempt cut by its timeout (the target accepts and never answers) still gives its
/// lease back: the database role made for it is gone when `run` exits.
#[tokio::test]
async fn a_lease_is_given_back_when_the_attempt_is_cut() {
    let env = harness_env();
    let ws = Workspace::new();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let cfg = ws.config(&format!(
        "{}[[probe]]\nname = \"dynamic-pg-silent\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         database = \"appdb\"\nuser = \"${{bao:database/creds/readonly#username}}\"\n\
         password = \"${{bao:database/creds/readonly#password}}\"\ntimeout = \"1500ms\"\n\
         tls = {{ ca = \"${{AP_CA}}\" }}\n",
        store("bao", "{ type = \"token\", token = \"${AP_VAULT_TOKEN}\" }")
    ));
    let out = authprobe_harness(&["run", "-c", cfg.to_str().unwrap(), "--format", "json"], &env).await;
    let report = out.json();
    let p = assert_failed(&report, "dynamic-pg-silent", "tls", "timeout");
    assert_eq!(stage(p, "secret"), "ok", "{p:#}");
    let role = leased_user(p);
    assert!(!pg_role_exists(&env, &role).await, "the cut attempt's role {role} was dropped with its lease");
}

/// AWS Secrets Manager and SSM Parameter Store, against moto with IAM enforced: a plain
/// string, a JSON secret's keys, a SecureString parameter, the built-in stores from the
/// environment, and each class for real (moto's own codes).
#[tokio::test]
async fn aws_secrets_manager_and_ssm_through_moto() {
    let env = harness_env();
    let ws = Workspace::new();
    let aws_store = |name: &str, kind: &str, key: &str, secret: &str| {
        format!(
            "[[secret_store]]\nname = \"{name}\"\ntype = \"{kind}\"\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:${{AP_MOTO_PORT}}\"\n\
             auth = {{ type = \"static\", access_key_id = \"{key}\", secret_access_key = \"{secret}\" }}\n\n"
        )
    };
    let mut cfg = String::new();
    cfg += &aws_store("sm", "aws_secrets_manager", "${AP_MOTO_ACCESS_KEY}", "${AP_MOTO_SECRET_KEY}");
    cfg += &aws_store("ssm", "aws_ssm", "${AP_MOTO_ACCESS_KEY}", "${AP_MOTO_SECRET_KEY}");
    cfg += &aws_store(
        "sm-nobody",
        "aws_secrets_manager",
        "${AP_MOTO_NOSECRETS_ACCESS_KEY}",
        "${AP_MOTO_NOSECRETS_SECRET_KEY}",
    );
    cfg += &aws_store("sm-wrong-key", "aws_secrets_manager", "${AP_MOTO_ACCESS_KEY}", "not-the-secret-key");
    cfg += &bearer("sm-string", "sm:probe/api-token");
    cfg += &bearer("ssm-securestring", "ssm:/probe/api-token");
    cfg += &bearer("builtin-aws-sm", "aws-sm:probe/api-token");
    cfg += "[[probe]]\nname = \"sm-json-keys\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${AP_PG_PORT}\"\n\
            database = \"appdb\"\nuser = \"${sm:probe/db#username}\"\npassword = \"${sm:probe/db#password}\"\n\
            tls = { ca = \"${AP_CA}\" }\n\n";
    cfg += &bearer("sm-no-such-secret", "sm:probe/nothing");
    cfg += &bearer("sm-no-such-key", "sm:probe/db#nokey");
    cfg += &bearer("ssm-no-such-parameter", "ssm:/probe/nothing");
    cfg += &bearer("sm-denied-by-iam", "sm-nobody:probe/api-token");
    cfg += &bearer("sm-wrong-secret-key", "sm-wrong-key:probe/api-token");
    let path = ws.config(&cfg);
    let mut env = env.clone();
    // The built-in aws-sm store reads the environment as the AWS CLI does.
    env.push(("AWS_REGION".into(), "us-east-1".into()));
    env.push(("AWS_ENDPOINT_URL".into(), format!("http://127.0.0.1:{}", harness_var(&env, "AP_MOTO_PORT"))));
    env.push(("AWS_ACCESS_KEY_ID".into(), harness_var(&env, "AP_MOTO_ACCESS_KEY")));
    env.push(("AWS_SECRET_ACCESS_KEY".into(), harness_var(&env, "AP_MOTO_SECRET_KEY")));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (_, report) = run_json(&path, &pairs).await;
    for name in ["sm-string", "ssm-securestring", "builtin-aws-sm", "sm-json-keys"] {
        assert_eq!(stage(assert_passed(&report, name), "secret"), "ok");
    }
    for (name, class) in [
        ("sm-no-such-secret", "not_found"),
        ("sm-no-such-key", "not_found"),
        ("ssm-no-such-parameter", "not_found"),
        ("sm-denied-by-iam", "permission_denied"),
        ("sm-wrong-secret-key", "auth_rejected"),
    ] {
        let p = assert_failed(&report, name, "secret", class);
        assert_eq!(stage(p, "connect"), "skipped", "{p:#}");
    }
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json", "-vv"], &env).await;
    for key in ["AP_BEARER_TOKEN", "AP_PG_PASSWORD", "AP_MOTO_SECRET_KEY"] {
        let value = harness_var(&env, key);
        assert!(!out.stdout.contains(&value) && !out.stderr.contains(&value), "{key} leaked");
    }
}

/// A command store with a fake `op` (1Password's CLI shape: `op read REF`): success, exit 1
/// with a message, a hang past the timeout (killed), a 10 MB output (refused), and no shell.
#[tokio::test]
async fn a_command_store_runs_a_program_bounded_in_time_and_output() {
    let env = harness_env();
    let ws = Workspace::new();
    let op = ws.write(
        "op",
        "#!/bin/sh\n[ \"$1\" = read ] || exit 64\necho \"$2\" >> \"$(dirname \"$0\")/asked.log\"\ncase \"$2\" in\n\
         'op://vault/pair#one'|'op://vault/pair#two') printf '%s\\n' \"$AP_BEARER_TOKEN\" ;;\n\
         'op://vault/api/token') printf '%s\\n' \"$AP_BEARER_TOKEN\" ;;\n\
         'op://vault/missing/token') echo '[ERROR] \"missing\" isn'\"'\"'t an item in the \"vault\" vault' >&2; exit 1 ;;\n\
         'op://vault/hang/token') echo $$ > \"$(dirname \"$0\")/hang.pid\"; exec sleep 30 ;;\n\
         'op://vault/big/token') head -c 10000000 /dev/zero | tr '\\0' a ;;\n\
         *) echo \"unexpected: $2\" >&2; exit 2 ;;\nesac\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&op, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = format!(
        "[[secret_store]]\nname = \"op\"\ntype = \"command\"\ncommand = [\"{}\", \"read\"]\ntimeout = \"1s\"\n\n",
        op.display()
    );
    cfg += &bearer("from-op", "op:op://vault/api/token");
    cfg += &bearer("op-says-no", "op:op://vault/missing/token");
    cfg += &bearer("op-hangs", "op:op://vault/hang/token");
    cfg += &bearer("op-floods", "op:op://vault/big/token");
    // `;` and `$(…)` reach the program as one argument: there is no shell.
    cfg += &bearer("no-shell", "op:op://vault/api/token; touch injected");
    // Two references that differ after `#` are two programs' runs, not one read's fields.
    cfg += &bearer("two-arguments", "op:op://vault/pair#one")
        .replace("auth = {", "headers = { \"X-Second\" = \"${op:op://vault/pair#two}\" }\nauth = {");
    let path = ws.config(&cfg);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let started = std::time::Instant::now();
    let (_, report) = run_json(&path, &pairs).await;
    assert!(started.elapsed() < Duration::from_secs(5), "the hang was not cut at the store's timeout");
    assert_eq!(stage(assert_passed(&report, "from-op"), "secret"), "ok");
    let no = assert_failed(&report, "op-says-no", "secret", "unexpected_response");
    assert!(no["error"]["message"].as_str().unwrap().contains("isn't an item"), "stderr is shown: {no:#}");
    assert_failed(&report, "op-hangs", "secret", "timeout");
    assert_failed(&report, "op-floods", "secret", "protocol");
    assert_failed(&report, "no-shell", "secret", "unexpected_response");
    assert!(!ws.path("injected").exists(), "a shell ran the reference");
    assert_passed(&report, "two-arguments");
    let asked = std::fs::read_to_string(ws.path("asked.log")).unwrap();
    assert!(asked.contains("op://vault/pair#one\n") && asked.contains("op://vault/pair#two\n"), "{asked}");
    // The hanging program was killed, not left behind.
    let pid = std::fs::read_to_string(ws.path("hang.pid")).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(), "the hanging program still runs");
}

/// `serve` reuses a static value within the store's `cache` (no store request per scrape),
/// shows its reads in /metrics, and never shows a value, even with ?debug=true.
#[tokio::test]
async fn serve_caches_static_values_and_counts_its_reads() {
    let env = harness_env();
    let ws = Workspace::new();
    let cfg = ws.config(
        &(store("bao", "{ type = \"token\", token = \"${AP_VAULT_TOKEN}\" }")
            .replace("\nauth =", "\ncache = \"60s\"\nauth =")
            + &bearer("vault-backed", "bao:secret/app#api_token")),
    );
    let serve = crate::serve::Serve::start(&cfg, &["--min-interval", "0s"], &env).await;
    for _ in 0..20 {
        let (status, body) = serve.get("/probe?target=vault-backed").await;
        assert_eq!(status, 200);
        assert!(body.contains("probe_success 1"), "{body}");
    }
    let (_, metrics) = serve.get("/metrics").await;
    assert!(metrics.contains("authprobe_secret_fetch_total{store=\"bao\",result=\"ok\"} 1\n"), "{metrics}");
    assert!(metrics.contains("authprobe_secret_fetch_total{store=\"bao\",result=\"cached\"} 19\n"), "{metrics}");
    assert!(metrics.contains("authprobe_secret_fetch_duration_seconds_count{store=\"bao\"} 1\n"), "{metrics}");
    let (_, debug) = serve.get("/probe?target=vault-backed&debug=true").await;
    for key in ["AP_BEARER_TOKEN", "AP_VAULT_TOKEN"] {
        assert!(!debug.contains(&harness_var(&env, key)), "{key} in the debug output");
    }
    let (_, page) = serve.get("/").await;
    assert!(!page.contains(&harness_var(&env, "AP_BEARER_TOKEN")));
}

/// `serve` keeps a login's token between scrapes and logs in again before its TTL runs
/// out (the role's tokens last 3 s), not after the store has refused it.
#[tokio::test]
async fn serve_logs_in_again_before_the_token_expires() {
    let env = harness_env();
    let ws = Workspace::new();
    let token_path = format!("{}/token", harness_var(&env, "AP_WEB_IDENTITY_DIR"));
    let cfg = ws.config(
        &(store(
            "pod",
            &format!("{{ type = \"kubernetes\", role = \"pipeline-short\", token_path = \"{token_path}\" }}"),
        )
        .replace("\nauth =", "\ncache = \"0s\"\nauth =")
            + &bearer("pod-backed", "pod:secret/app#api_token")),
    );
    let serve = crate::serve::Serve::start(&cfg, &["--min-interval", "0s"], &env).await;
    let scrape = || async {
        let (status, body) = serve.get("/probe?target=pod-backed&debug=true").await;
        assert_eq!(status, 200);
        assert!(body.contains("probe_success 1"), "{body}");
        body
    };
    let first = scrape().await;
    assert!(first.contains("logged in with kubernetes") && first.contains("token TTL 3s"), "{first}");
    let second = scrape().await;
    assert!(!second.contains("logged in with"), "the token is kept between scrapes: {second}");
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    let third = scrape().await;
    assert!(third.contains("near the end of its TTL; logging in again"), "{third}");
    // The store's refusals, as the probe words them (a bare "403" would match digits of a
    // duration or a date in the page).
    for refused in ["does not accept the token", "may not read", "answered HTTP 403"] {
        assert!(!third.contains(refused), "the store never had to refuse the token: {third}");
    }
}

/// The same with MariaDB: the user OpenBao creates at the read logs in, and is dropped
/// from mysql.user when its lease is revoked after the probe.
#[tokio::test]
async fn dynamic_mariadb_credentials_are_given_back() {
    let env = harness_env();
    let ws = Workspace::new();
    let cfg = ws.config(
        &(store("bao", "{ type = \"token\", token = \"${AP_VAULT_TOKEN}\" }")
            + "[[probe]]\nname = \"dynamic-mariadb\"\nkind = \"mysql\"\nhost = \"localhost\"\nport = \"${AP_MYSQL_PORT}\"\n\
               database = \"appdb\"\nuser = \"${bao:database/creds/readonly-mariadb#username}\"\n\
               password = \"${bao:database/creds/readonly-mariadb#password}\"\nquery = \"SELECT item FROM orders\"\n\
               tls = { ca = \"${AP_CA}\" }\n"),
    );
    let dynamic_users = || async {
        let out = tokio::process::Command::new(require_tool("mariadb"))
            .args(["-h", "127.0.0.1", "-P", &harness_var(&env, "AP_MYSQL_PORT"), "-u", "root", "-N", "-B", "-e"])
            .arg("SELECT count(*) FROM mysql.user WHERE user LIKE 'v-%'")
            .env("MYSQL_PWD", harness_var(&env, "AP_MYSQL_ROOT_PASSWORD"))
            .output()
            .await
            .expect("mariadb");
        assert!(out.status.success(), "mariadb: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().unwrap_or(u32::MAX)
    };
    let before = dynamic_users().await;
    let out = authprobe_harness(&["run", "-c", cfg.to_str().unwrap(), "-v"], &env).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("is leased (database/creds/readonly-mariadb/"), "{}", out.stdout);
    assert!(out.stdout.contains("lease revoked"), "{}", out.stdout);
    assert_eq!(dynamic_users().await, before, "the user OpenBao made for the probe was dropped with its lease");
}

/// `check` with a URL's password and a store reference in a header: the probe is read
/// again with the store's value, and with the URL's password (which `check` keeps out of
/// the process environment).
#[tokio::test]
async fn check_reads_a_store_reference_beside_a_url_password() {
    let mut env = harness_env();
    env.push(("VAULT_ADDR".into(), harness_var(&env, "AP_VAULT_ADDR")));
    env.push(("VAULT_TOKEN".into(), harness_var(&env, "AP_VAULT_TOKEN")));
    env.push(("VAULT_CACERT".into(), harness_var(&env, "AP_CA")));
    let url = format!(
        "https://demo:{}@localhost:{}/basic",
        harness_var(&env, "AP_BASIC_PASSWORD"),
        harness_var(&env, "AP_HTTPS_PORT")
    );
    let ca = harness_var(&env, "AP_CA");
    let out = authprobe_harness(
        &["check", &url, "-H", "X-Api: ${vault:secret/app#api_token}", "--ca", &ca, "--format", "json"],
        &env,
    )
    .await;
    let report = out.json();
    let p = assert_passed(&report, "check");
    assert_eq!(stage(p, "secret"), "ok", "{p:#}");
    assert!(!out.stdout.contains(&harness_var(&env, "AP_BEARER_TOKEN")), "{}", out.stdout);
}
