//! Credential hygiene against the harness's real servers: what a database credential may do
//! beyond a probe's need, asked read-only after the login, as findings in JSON (schema
//! checked), warnings in the table and `authprobe_finding_info` in Prometheus' format
//! (promtool); `hygiene = false` asks nothing.

use crate::formats::assert_matches_schema;
use crate::util::*;

fn pg(name: &str, user: &str, password: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${{AP_PG_PORT}}\"\ndatabase = \"appdb\"\n\
         user = \"{user}\"\npassword = \"{password}\"\ntls = {{ ca = \"${{AP_CA}}\" }}\n{extra}\n\n"
    )
}

fn findings(report: &serde_json::Value, name: &str) -> Vec<(String, String)> {
    probe(report, name)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["what"].as_str().unwrap().to_string(), f["severity"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn postgres_roles_that_can_do_more_than_a_probe_needs_are_named() {
    let env = harness_env();
    let ws = Workspace::new();
    let mut cfg = String::new();
    // OpenBao's admin role: CREATEROLE (it makes the dynamic roles).
    cfg += &pg("admin", "vault_admin", "${AP_PG_VAULT_ADMIN_PASSWORD}", "");
    cfg += &pg("admin-unasked", "vault_admin", "${AP_PG_VAULT_ADMIN_PASSWORD}", "hygiene = false");
    // The application's own role owns its database: information, unless it should only read.
    cfg += &pg("owner", "${AP_PG_USER}", "${AP_PG_PASSWORD}", "");
    cfg += &pg("owner-read-only", "${AP_PG_USER}", "${AP_PG_PASSWORD}", "expect_read_only = true");
    cfg += &pg("least", "${AP_PG_LIMITED_USER}", "${AP_PG_LIMITED_PASSWORD}", "query = \"SELECT item FROM orders\"");
    let path = ws.config(&cfg);
    let (out, report) = run_json(&path, &[]).await;
    assert_eq!(out.code, 0, "warnings only: {}", out.stderr);
    let admin = assert_warned(&report, "admin", "CREATEROLE");
    assert!(admin["warnings"][0].as_str().unwrap().contains("far more than this probe needs"), "{admin:#}");
    assert_eq!(findings(&report, "admin"), [("pg_createrole".to_string(), "warning".to_string())]);
    assert_passed(&report, "admin-unasked");
    assert!(findings(&report, "admin-unasked").is_empty());
    assert_passed(&report, "owner");
    assert_eq!(findings(&report, "owner"), [("pg_database_owner".to_string(), "info".to_string())]);
    assert_warned(&report, "owner-read-only", "expect_read_only");
    assert_eq!(findings(&report, "owner-read-only"), [("pg_database_owner".to_string(), "warning".to_string())]);
    assert_passed(&report, "least");
    assert!(findings(&report, "least").is_empty());
    assert_matches_schema(&ws, &serde_json::to_string(&report).unwrap());

    // The same as Prometheus series, one per finding, valid for promtool.
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "prometheus"], &env).await;
    for series in [
        "authprobe_finding_info{probe=\"admin\",kind=\"postgres\",finding=\"pg_createrole\",severity=\"warning\"} 1",
        "authprobe_finding_info{probe=\"owner\",kind=\"postgres\",finding=\"pg_database_owner\",severity=\"info\"} 1",
    ] {
        assert!(out.stdout.contains(series), "{series}\n{}", out.stdout);
    }
    assert!(!out.stdout.contains("probe=\"least\",kind=\"postgres\",finding"), "{}", out.stdout);
    crate::serve::promtool_accepts(&out.stdout);

    // The table shows the warning with the narrower grant.
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--only", "admin"], &env).await;
    assert!(out.stdout.contains("CREATEROLE") && out.stdout.contains("GRANT SELECT"), "{}", out.stdout);
}

fn mariadb(name: &str, user: &str, password: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"mysql\"\nhost = \"localhost\"\nport = \"${{AP_MYSQL_PORT}}\"\n\
         user = \"{user}\"\npassword = \"{password}\"\ntls = {{ ca = \"${{AP_CA}}\" }}\n{extra}\n\n"
    )
}

#[tokio::test]
async fn mariadb_accounts_that_can_do_more_than_a_probe_needs_are_named() {
    let ws = Workspace::new();
    let mut cfg = String::new();
    cfg += &mariadb("root", "root", "${AP_MYSQL_ROOT_PASSWORD}", "");
    cfg += &mariadb("root-unasked", "root", "${AP_MYSQL_ROOT_PASSWORD}", "hygiene = false");
    // ALL on its own database: information, unless it should only read.
    cfg += &mariadb("app", "${AP_MYSQL_USER}", "${AP_MYSQL_PASSWORD}", "database = \"appdb\"");
    cfg += &mariadb(
        "app-read-only",
        "${AP_MYSQL_USER}",
        "${AP_MYSQL_PASSWORD}",
        "database = \"appdb\"\nexpect_read_only = true",
    );
    cfg += &mariadb(
        "least",
        "${AP_MYSQL_LIMITED_USER}",
        "${AP_MYSQL_LIMITED_PASSWORD}",
        "database = \"appdb\"\nquery = \"SELECT item FROM orders\"\nexpect_read_only = true",
    );
    let path = ws.config(&cfg);
    let (out, report) = run_json(&path, &[]).await;
    assert_eq!(out.code, 0, "warnings only: {}", out.stderr);
    assert_warned(&report, "root", "ALL PRIVILEGES");
    let names = |name: &str| findings(&report, name).into_iter().map(|(w, s)| format!("{w}/{s}")).collect::<Vec<_>>();
    assert_eq!(names("root"), ["mysql_all_privileges/warning", "mysql_grant_option/warning"]);
    assert_passed(&report, "root-unasked");
    assert!(names("root-unasked").is_empty());
    assert_passed(&report, "app");
    assert_eq!(names("app"), ["mysql_database_all/info"]);
    assert_warned(&report, "app-read-only", "expect_read_only");
    assert_eq!(names("app-read-only"), ["mysql_writes/warning"]);
    assert_passed(&report, "least");
    assert!(names("least").is_empty());
    // MariaDB's grant lines can carry the password hash: none of them is shown.
    let text = serde_json::to_string(&report).unwrap();
    assert!(!text.contains("IDENTIFIED BY PASSWORD") && !text.contains("GRANT ALL PRIVILEGES ON"), "{text}");
    assert_matches_schema(&ws, &text);
}

fn oauth2(name: &str, auth: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:${{AP_OAUTH2_PORT}}/api/hello\"\n\
         allow_unverified_password = true\nauth = {{ token_url = \"http://127.0.0.1:${{AP_OAUTH2_PORT}}/token\", \
         client_id = \"${{AP_OAUTH2_CLIENT_ID}}\", client_secret = \"${{AP_OAUTH2_CLIENT_SECRET}}\", {auth} }}\n{extra}\n\n"
    )
}

/// oidc-provider grants what the client asks among its allowed scopes: a token granted a
/// scope beyond `expect_scopes` warns naming it; a refresh token (a person's consent) is
/// information.
#[tokio::test]
async fn oauth2_scopes_beyond_the_expected_and_refresh_tokens_are_named() {
    let ws = Workspace::new();
    let cc = "type = \"oauth2_client_credentials\", scope = \"read write\"";
    let mut cfg = String::new();
    cfg += &oauth2("beyond", cc, "expect_scopes = [\"read\"]");
    cfg += &oauth2("within", cc, "expect_scopes = [\"read\", \"write\"]");
    cfg += &oauth2("unasked", cc, "expect_scopes = [\"read\"]\nhygiene = false");
    cfg += &oauth2("no-expectation", cc, "");
    cfg += &oauth2("refresh", "type = \"oauth2_refresh_token\", refresh_token = \"${AP_OAUTH2_REFRESH_TOKEN}\"", "");
    let path = ws.config(&cfg);
    let (out, report) = run_json(&path, &[]).await;
    assert_eq!(out.code, 0, "warnings only: {}", out.stderr);
    let beyond = assert_warned(&report, "beyond", "also grants `write`");
    assert_eq!(findings(&report, "beyond"), [("oauth2_extra_scopes".to_string(), "warning".to_string())]);
    assert!(beyond["warnings"][0].as_str().unwrap().contains("scope = \"read\""), "{beyond:#}");
    for quiet in ["within", "unasked", "no-expectation"] {
        assert_passed(&report, quiet);
        assert!(findings(&report, quiet).is_empty(), "{quiet}");
    }
    assert_passed(&report, "refresh");
    assert_eq!(findings(&report, "refresh"), [("oauth2_refresh_token".to_string(), "info".to_string())]);
    assert_matches_schema(&ws, &serde_json::to_string(&report).unwrap());

    // `-v` says what the token grants even without an expectation.
    let out =
        authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--only", "no-expectation", "-v"], &harness_env())
            .await;
    assert!(out.stdout.contains("grants the scopes `read write`"), "{}", out.stdout);
}

/// OpenBao's KV v2 says when the secret's current version was written: older than
/// `max_age` (per probe or in `[defaults]`) warns; KV v1 says nothing (unknown age is not a
/// warning). A dynamic credential's lease is listed with the credentials that expire.
#[tokio::test]
async fn secret_store_ages_and_leases_are_read_from_openbao() {
    let ws = Workspace::new();
    let bearer = |name: &str, reference: &str, extra: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"https://localhost:${{AP_HTTPS_PORT}}/bearer\"\n\
             tls = {{ ca = \"${{AP_CA}}\" }}\nauth = {{ type = \"bearer\", token = \"${{{reference}}}\" }}\n{extra}\n\n"
        )
    };
    let mut cfg = String::from(
        "[defaults]\nmax_age = \"3650d\"\n\n[[secret_store]]\nname = \"bao\"\ntype = \"vault\"\naddress = \"${AP_VAULT_ADDR}\"\n\
         tls = { ca = \"${AP_CA}\" }\nauth = { type = \"token\", token = \"${AP_VAULT_TOKEN}\" }\n\n",
    );
    // Written when the harness started, more than a second ago.
    cfg += &bearer("kv2-old", "bao:secret/app#api_token", "max_age = \"1s\"");
    cfg += &bearer("kv2-young", "bao:secret/app#api_token", "");
    cfg += &bearer("kv2-unasked", "bao:secret/app#api_token", "max_age = \"1s\"\nhygiene = false");
    cfg += &bearer("kv1", "bao:kv1/app#api_token", "max_age = \"1s\"");
    cfg += "[[probe]]\nname = \"leased\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${AP_PG_PORT}\"\n\
            database = \"appdb\"\nuser = \"${bao:database/creds/readonly#username}\"\n\
            password = \"${bao:database/creds/readonly#password}\"\nquery = \"SELECT item FROM orders\"\n\
            tls = { ca = \"${AP_CA}\" }\n\n";
    let path = ws.config(&cfg);
    let (out, report) = run_json(&path, &[]).await;
    assert_eq!(out.code, 0, "warnings only: {}", out.stderr);
    let old = assert_warned(&report, "kv2-old", "beyond max_age 1s");
    assert!(old["warnings"][0].as_str().unwrap().contains("the secret `secret/app` (version"), "{old:#}");
    assert_eq!(findings(&report, "kv2-old"), [("credential_too_old".to_string(), "warning".to_string())]);
    for quiet in ["kv2-young", "kv2-unasked", "kv1"] {
        assert_passed(&report, quiet);
        assert!(findings(&report, quiet).is_empty(), "{quiet}");
    }
    let leased = assert_passed(&report, "leased");
    let credentials = leased["credentials"].as_array().unwrap();
    let lease =
        credentials.iter().find(|c| c["what"].as_str().unwrap().contains("the lease on `database/creds/readonly`"));
    let lease = lease.unwrap_or_else(|| panic!("{leased:#}"));
    assert!(lease["seconds_left"].as_i64().unwrap() > 0, "{lease:#}");
    assert_matches_schema(&ws, &serde_json::to_string(&report).unwrap());

    // The age is a `-v` line even within max_age.
    let out =
        authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--only", "kv2-young", "-v"], &harness_env()).await;
    assert!(out.stdout.contains("in secret store `bao` was created"), "{}", out.stdout);
}

fn moto_s3(name: &str, bucket: &str, auth: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"http://127.0.0.1:${{AP_MOTO_PORT}}\"\nauth = {auth}\n{extra}\n\n"
    )
}

/// moto answers what AWS would: a bucket whose policy lets anyone read it is public; STS
/// names the caller (an IAM user: information for a production probe); IAM lists the key's
/// creation date (older than `max_age` warns); an assumed role's credentials are listed
/// with their expiry.
#[tokio::test]
async fn aws_public_buckets_identities_and_key_ages_are_asked_of_moto() {
    let ws = Workspace::new();
    let key = "{ type = \"static\", access_key_id = \"${AP_MOTO_ACCESS_KEY}\", secret_access_key = \"${AP_MOTO_SECRET_KEY}\" }";
    let role = format!(
        "{{ type = \"assume_role\", role_arn = \"${{AP_MOTO_ROLE_ARN}}\", session_name = \"hygiene\", source = {key} }}"
    );
    let mut cfg = String::new();
    cfg += &moto_s3("public", "${AP_MOTO_PUBLIC_BUCKET}", key, "");
    cfg += &moto_s3("public-unasked", "${AP_MOTO_PUBLIC_BUCKET}", key, "hygiene = false");
    cfg += &moto_s3("public-by-acl", "${AP_MOTO_PUBLIC_BUCKET}-acl", key, "");
    cfg += &moto_s3("private", "${AP_MOTO_ALLOWED_BUCKET}", key, "");
    // The key was made when moto started, more than a second ago.
    cfg += &moto_s3("old-key-in-prod", "${AP_MOTO_ALLOWED_BUCKET}", key, "max_age = \"1s\"\ntags = [\"prod\"]");
    cfg += &moto_s3("young-key", "${AP_MOTO_ALLOWED_BUCKET}", key, "max_age = \"90d\"");
    cfg += &moto_s3("role", "${AP_MOTO_ALLOWED_BUCKET}", &role, "max_age = \"1s\"\ntags = [\"prod\"]");
    let path = ws.config(&cfg);
    let (out, report) = run_json(&path, &[]).await;
    assert_eq!(out.code, 0, "warnings only: {}", out.stderr);
    let public = assert_warned(&report, "public", "is public");
    assert!(
        public["warnings"][0].as_str().unwrap().contains("put-public-access-block --bucket team-public"),
        "{public:#}"
    );
    assert_eq!(findings(&report, "public"), [("s3_bucket_public".to_string(), "warning".to_string())]);
    let by_acl = assert_warned(&report, "public-by-acl", "public through its ACL (READ granted");
    assert!(
        by_acl["warnings"][0].as_str().unwrap().contains("put-bucket-acl --bucket team-public-acl --acl private"),
        "{by_acl:#}"
    );
    assert_eq!(findings(&report, "public-by-acl"), [("s3_bucket_acl_public".to_string(), "warning".to_string())]);
    for quiet in ["public-unasked", "private", "young-key"] {
        assert_passed(&report, quiet);
        assert!(findings(&report, quiet).is_empty(), "{quiet}: {:?}", findings(&report, quiet));
    }
    let old = assert_warned(&report, "old-key-in-prod", "beyond max_age 1s");
    let key_id = harness_var(&harness_env(), "AP_MOTO_ACCESS_KEY");
    let text = serde_json::to_string(old).unwrap();
    assert!(text.contains(&format!("the access key …{}", &key_id[key_id.len() - 4..])), "{old:#}");
    assert!(!text.contains(&key_id), "only the key id's last four characters are shown: {old:#}");
    assert_eq!(
        findings(&report, "old-key-in-prod"),
        [
            ("aws_iam_user_key".to_string(), "info".to_string()),
            ("credential_too_old".to_string(), "warning".to_string())
        ]
    );
    // The key's age is listed with the credentials (it has no end of its own), and as a
    // Prometheus series.
    let last4 = &key_id[key_id.len() - 4..];
    let aged = old["credentials"].as_array().unwrap().iter().find(|c| c["what"] == format!("the access key …{last4}"));
    let aged = aged.unwrap_or_else(|| panic!("{old:#}"));
    assert!(aged["not_after"].is_null() && aged["age_seconds"].as_i64().unwrap() >= 1, "{aged:#}");
    let prom = authprobe_harness(
        &["run", "-c", path.to_str().unwrap(), "--only", "old-key-in-prod", "--format", "prometheus"],
        &harness_env(),
    )
    .await;
    let series = format!(
        "authprobe_credential_age_seconds{{probe=\"old-key-in-prod\",kind=\"s3\",credential=\"the access key …{last4}\"}} "
    );
    assert!(prom.stdout.contains(&series), "{}", prom.stdout);
    crate::serve::promtool_accepts(&prom.stdout);
    // A role's credentials are temporary: no key age, not personal; their end is listed.
    let role = assert_passed(&report, "role");
    assert!(findings(&report, "role").is_empty());
    let temporary = &role["credentials"][0];
    assert_eq!(temporary["what"], "the temporary AWS credentials", "{role:#}");
    assert!(temporary["seconds_left"].as_i64().unwrap() > 3000, "{role:#}");
    assert_matches_schema(&ws, &serde_json::to_string(&report).unwrap());

    let out =
        authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--only", "private", "-v"], &harness_env()).await;
    assert!(out.stdout.contains("the credentials are arn:aws:iam::123456789012:user/probe-user"), "{}", out.stdout);
    assert!(out.stdout.contains("the bucket has no policy"), "{}", out.stdout);
}

fn mssql(name: &str, user: &str, password: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"mssql\"\nhost = \"localhost\"\nport = \"${{AP_MSSQL_PORT}}\"\ndatabase = \"appdb\"\n\
         user = \"{user}\"\npassword = \"{password}\"\ntls = {{ ca = \"${{AP_CA}}\" }}\n{extra}\n\n"
    )
}

/// SQL Server (the stand-in, whose role answers python-tds and FreeTDS read alike in
/// tests/harness_servers.rs; SQL Server itself under docker-compose): the administrator is
/// in sysadmin, a warning; the application's login is in no role. The question rides in the
/// check query's own batch, so a refused check query is still the check's failure.
#[tokio::test]
async fn sql_server_sysadmin_logins_are_named() {
    let ws = Workspace::new();
    let mut cfg = String::new();
    cfg += &mssql("admin", "${AP_MSSQL_ADMIN_USER}", "${AP_MSSQL_ADMIN_PASSWORD}", "");
    cfg += &mssql("admin-unasked", "${AP_MSSQL_ADMIN_USER}", "${AP_MSSQL_ADMIN_PASSWORD}", "hygiene = false");
    cfg += &mssql(
        "app",
        "${AP_MSSQL_USER}",
        "${AP_MSSQL_PASSWORD}",
        "query = \"SELECT item FROM orders\"\nexpect_read_only = true",
    );
    cfg += &mssql(
        "app-denied",
        "${AP_MSSQL_USER}",
        "${AP_MSSQL_PASSWORD}",
        "query = \"SELECT * FROM ${AP_MSSQL_DENIED_TABLE}\"",
    );
    let path = ws.config(&cfg);
    let (out, report) = run_json(&path, &[]).await;
    assert_eq!(out.code, 1, "one probe fails: {}", out.stderr);
    let admin = assert_warned(&report, "admin", "sysadmin server role");
    assert!(admin["warnings"][0].as_str().unwrap().contains("CREATE USER probe FOR LOGIN probe"), "{admin:#}");
    assert_eq!(findings(&report, "admin"), [("mssql_sysadmin".to_string(), "warning".to_string())]);
    for quiet in ["admin-unasked", "app"] {
        assert_passed(&report, quiet);
        assert!(findings(&report, quiet).is_empty(), "{quiet}");
    }
    assert_failed(&report, "app-denied", "check", "permission_denied");
    assert_matches_schema(&ws, &serde_json::to_string(&report).unwrap());
}

/// The MIT KDC's tickets: the TGT and the service ticket are listed with the probe's
/// credentials, with their ends; the short-lived principal's (a 5-second maximum life)
/// ends within seconds and, issued just now, does not warn.
#[tokio::test]
async fn kerberos_ticket_ends_are_listed() {
    let ws = Workspace::new();
    let negotiate = |name: &str, user: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"https://localhost:${{AP_NEGOTIATE_PORT}}/krb/ok.txt\"\n\
             tls = {{ ca = \"${{AP_CA}}\" }}\nauth = {{ type = \"kerberos\", principal = \"{user}@${{AP_KRB_REALM}}\", \
             password = \"${{AP_KRB_PASSWORD}}\", krb5_conf = \"${{AP_KRB5_CONFIG}}\" }}\n\n"
        )
    };
    let cfg = negotiate("user", "${AP_KRB_USER}") + &negotiate("short", "${AP_KRB_SHORT_USER}");
    let (out, report) = run_json(&ws.config(&cfg), &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let env = harness_env();
    let realm = harness_var(&env, "AP_KRB_REALM");
    for (name, user) in [("user", harness_var(&env, "AP_KRB_USER")), ("short", harness_var(&env, "AP_KRB_SHORT_USER"))]
    {
        let p = assert_passed(&report, name);
        let ends: Vec<(String, i64)> = p["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["what"].as_str().unwrap().to_string(), c["seconds_left"].as_i64().unwrap()))
            .collect();
        let tgt = ends.iter().find(|(what, _)| *what == format!("the Kerberos TGT of {user}@{realm}"));
        let service = ends.iter().find(|(what, _)| what.starts_with("the Kerberos service ticket for HTTP/localhost@"));
        let (Some(tgt), Some(service)) = (tgt, service) else { panic!("{name}: {ends:?}") };
        if name == "short" {
            assert!(tgt.1 <= 5 && service.1 <= 5, "{ends:?}");
        } else {
            assert!(tgt.1 > 3600 && service.1 > 3600, "{ends:?}");
        }
    }
    assert_matches_schema(&ws, &serde_json::to_string(&report).unwrap());
}

/// OpenSSH user certificates from a CA sshd trusts (their keys are in no authorized_keys):
/// found beside the key as ssh finds them, presented, listed with their end; one in its last
/// days warns, an ended one is not sent (OpenSSH's sftp is refused with it too:
/// tests/harness_servers.rs).
#[tokio::test]
async fn ssh_user_certificates_are_used_and_their_ends_read() {
    let ws = Workspace::new();
    let sftp = |name: &str, auth: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"sftp\"\nhost = \"127.0.0.1\"\nport = \"${{AP_SSH_PORT}}\"\nuser = \"${{AP_SFTP_KEY_USER}}\"\n\
             path = \"data\"\nhost_key = \"${{AP_SSH_HOST_KEY}}\"\nauth = {{ type = \"key\", {auth} }}\n\n"
        )
    };
    let mut cfg = sftp("beside-the-key", "private_key = \"${AP_SSH_DIR}/client_cert_ed25519\"");
    cfg += &sftp(
        "named",
        "private_key = \"${AP_SSH_DIR}/client_expired_cert_ed25519\", certificate = \"${AP_SSH_DIR}/client_expired_cert_ed25519-cert.pub\"",
    );
    cfg += &sftp(
        "another-keys-certificate",
        "private_key = \"${AP_SSH_DIR}/client_ed25519\", certificate = \"${AP_SSH_DIR}/client_cert_ed25519-cert.pub\"",
    );
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["validate", "-c", path.to_str().unwrap()], &harness_env()).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("certifies another key than"), "{}", out.stderr);

    let mut cfg = cfg.split("[[probe]]\nname = \"another-keys-certificate\"").next().unwrap().to_string();
    // An ended certificate found beside the key, not named: the bare key is offered, as ssh
    // does (this key is in no authorized_keys, so sshd refuses it).
    cfg += &sftp("ended-beside-the-key", "private_key = \"${AP_SSH_DIR}/client_expired_cert_ed25519\"");
    let (out, report) = run_json(&ws.config(&cfg), &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let valid = assert_warned(&report, "beside-the-key", "expires in 2 days");
    assert_eq!(
        valid["credentials"][0]["what"].as_str().unwrap().split(" (").next(),
        Some("the SSH certificate `authprobe-test-cert`")
    );
    let ended = assert_failed(&report, "named", "auth", "auth_rejected");
    assert!(ended["error"]["message"].as_str().unwrap().contains("authprobe did not send it"), "{ended:#}");
    assert!(ended["credentials"][0]["seconds_left"].as_i64().unwrap() < 0, "{ended:#}");
    let bare = assert_failed(&report, "ended-beside-the-key", "auth", "auth_rejected");
    assert!(bare["warnings"][0].as_str().unwrap().contains("the bare key is offered instead"), "{bare:#}");
    assert_matches_schema(&ws, &serde_json::to_string(&report).unwrap());
}

/// Azurite answers Get Container Properties as Azure does: a container whose public access
/// level is `container` warns; the private one says so at `-v` only.
#[tokio::test]
async fn azure_public_containers_are_named() {
    let ws = Workspace::new();
    let azure = |name: &str, container: &str, auth: &str, extra: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"azure_blob\"\naccount = \"${{AP_AZURE_STORAGE_ACCOUNT}}\"\ncontainer = \"{container}\"\n\
             endpoint = \"https://127.0.0.1:${{AP_AZURITE_PORT}}/${{AP_AZURE_STORAGE_ACCOUNT}}\"\ntls = {{ ca = \"${{AP_CA}}\" }}\nauth = {auth}\n{extra}\n\n"
        )
    };
    let key = "{ type = \"shared_key\", key = \"${AP_AZURE_STORAGE_KEY}\" }";
    let sas = "{ type = \"sas\", token = \"${AP_AZURE_SAS}\" }";
    let mut cfg = azure("public-by-key", "${AP_AZURE_CONTAINER}-public", key, "");
    cfg += &azure("public-by-sas", "${AP_AZURE_CONTAINER}-public", sas, "");
    cfg += &azure("public-unasked", "${AP_AZURE_CONTAINER}-public", key, "hygiene = false");
    cfg += &azure("private", "${AP_AZURE_CONTAINER}", key, "");
    let path = ws.config(&cfg);
    let (out, report) = run_json(&path, &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for public in ["public-by-key", "public-by-sas"] {
        let p = assert_warned(&report, public, "is public (access level `container`");
        assert!(p["warnings"][0].as_str().unwrap().contains("--public-access off"), "{p:#}");
        assert_eq!(findings(&report, public), [("azure_container_public".to_string(), "warning".to_string())]);
    }
    for quiet in ["public-unasked", "private"] {
        assert_passed(&report, quiet);
        assert!(findings(&report, quiet).is_empty(), "{quiet}");
    }
    assert_matches_schema(&ws, &serde_json::to_string(&report).unwrap());
    let out =
        authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--only", "private", "-v"], &harness_env()).await;
    assert!(out.stdout.contains("the container is private"), "{}", out.stdout);
}

/// The GCS emulator keeps bucket IAM policies as GCS does (the token service's front checks
/// the bearer token first): a bucket whose policy grants `allUsers` a role warns.
#[tokio::test]
async fn gcs_public_buckets_are_named() {
    let ws = Workspace::new();
    let gcs = |name: &str, bucket: &str, extra: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"gcs\"\nbucket = \"{bucket}\"\nendpoint = \"http://127.0.0.1:${{AP_CLOUD_PORT}}\"\n\
             auth = {{ type = \"gcp_service_account\", key_file = \"${{AP_GCP_KEY_FILE}}\" }}\nallow_unverified_password = true\n{extra}\n\n"
        )
    };
    let mut cfg = gcs("public", "${AP_GCS_PUBLIC_BUCKET}", "");
    cfg += &gcs("public-unasked", "${AP_GCS_PUBLIC_BUCKET}", "hygiene = false");
    cfg += &gcs("private", "${AP_GCS_BUCKET}", "");
    // A metadata server's access token: its expires_in is listed with the credentials.
    cfg += &gcs("private", "${AP_GCS_BUCKET}", "").replace("name = \"private\"", "name = \"metadata-token\"").replace(
        "{ type = \"gcp_service_account\", key_file = \"${AP_GCP_KEY_FILE}\" }",
        "{ type = \"gcp_metadata\", endpoint = \"http://127.0.0.1:${AP_CLOUD_PORT}\" }",
    );
    // The key's certificate on Google's page (the token service's copy) began 100 days ago.
    cfg += &gcs("key-older-than-90-days", "${AP_GCS_BUCKET}", "max_age = \"90d\"");
    cfg += &gcs("key-within-a-year", "${AP_GCS_BUCKET}", "max_age = \"365d\"");
    let path = ws.config(&cfg);
    let (out, report) = run_json(&path, &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let old = assert_warned(&report, "key-older-than-90-days", "beyond max_age 90 days");
    assert!(old["warnings"][0].as_str().unwrap().contains("gcloud iam service-accounts keys create"), "{old:#}");
    let aged = old["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["what"].as_str().unwrap().starts_with("the service-account key …"));
    let aged = aged.unwrap_or_else(|| panic!("{old:#}"));
    assert!(aged["age_seconds"].as_i64().unwrap() >= 100 * 86_400 - 60 && aged["not_after"].is_null(), "{aged:#}");
    assert_passed(&report, "key-within-a-year");
    assert!(findings(&report, "key-within-a-year").is_empty());
    let metadata = assert_passed(&report, "metadata-token");
    assert_eq!(
        metadata["credentials"][0]["what"], "the access token from the GCP metadata server (expires_in)",
        "{metadata:#}"
    );
    assert!(metadata["credentials"][0]["seconds_left"].as_i64().unwrap() > 3000, "{metadata:#}");
    let public = assert_warned(&report, "public", "grants roles/storage.objectViewer to allUsers");
    assert!(public["warnings"][0].as_str().unwrap().contains("remove-iam-policy-binding gs://"), "{public:#}");
    assert_eq!(findings(&report, "public"), [("gcs_bucket_public".to_string(), "warning".to_string())]);
    for quiet in ["public-unasked", "private"] {
        assert_passed(&report, quiet);
        assert!(findings(&report, quiet).is_empty(), "{quiet}");
    }
    assert_matches_schema(&ws, &serde_json::to_string(&report).unwrap());
}

/// The alert rules of examples/cron/alerts.yml in a real Prometheus scraping `serve`: a
/// credential older than `max_age` fires CredentialTooOld, a certificate in its last days
/// CredentialExpiringSoon, a too-powerful one is pending for CredentialTooPowerful (`for:
/// 1h`), and a probe with nothing to say fires nothing.
#[tokio::test]
async fn hygiene_alert_rules_fire_in_prometheus() {
    use std::collections::BTreeSet;
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cron/alerts.yml");
    let ws = Workspace::new();
    let mut cfg = String::from(
        "[[secret_store]]\nname = \"bao\"\ntype = \"vault\"\naddress = \"${AP_VAULT_ADDR}\"\ntls = { ca = \"${AP_CA}\" }\n\
         auth = { type = \"token\", token = \"${AP_VAULT_TOKEN}\" }\n\n\
         [[probe]]\nname = \"old\"\nkind = \"http\"\nurl = \"https://localhost:${AP_HTTPS_PORT}/bearer\"\ntls = { ca = \"${AP_CA}\" }\n\
         auth = { type = \"bearer\", token = \"${bao:secret/app#api_token}\" }\nmax_age = \"1s\"\n\n\
         [[probe]]\nname = \"certificate\"\nkind = \"sftp\"\nhost = \"127.0.0.1\"\nport = \"${AP_SSH_PORT}\"\nuser = \"${AP_SFTP_KEY_USER}\"\n\
         path = \"data\"\nhost_key = \"${AP_SSH_HOST_KEY}\"\nauth = { type = \"key\", private_key = \"${AP_SSH_DIR}/client_cert_ed25519\" }\n\n",
    );
    cfg += &pg("powerful", "vault_admin", "${AP_PG_VAULT_ADMIN_PASSWORD}", "");
    cfg += &pg("fine", "${AP_PG_LIMITED_USER}", "${AP_PG_LIMITED_PASSWORD}", "query = \"SELECT item FROM orders\"");
    let config = ws.config(&cfg);
    let serve = crate::serve::Serve::start(&config, &[], &harness_env()).await;
    let (_prom, web) =
        crate::serve::prometheus_scraping(&ws, &serve, &["old", "certificate", "powerful", "fine"], &rules);
    let expected: BTreeSet<(String, String, String)> = [
        ("CredentialTooOld", "old", "firing"),
        // The store's token (OpenBao's reader token lives 24 h) is a credential with an end.
        ("CredentialExpiringSoon", "old", "firing"),
        ("CredentialExpiringSoon", "certificate", "firing"),
        ("CredentialTooPowerful", "powerful", "pending"),
    ]
    .iter()
    .map(|(a, p, s)| (a.to_string(), p.to_string(), s.to_string()))
    .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = BTreeSet::new();
    while std::time::Instant::now() < deadline && seen != expected {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let Ok(tcp) = tokio::net::TcpStream::connect(&web).await else { continue };
        let (status, body) = crate::serve::exchange(tcp, &web, "GET", "/api/v1/alerts", &[]).await;
        if status != 200 {
            continue;
        }
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        seen = answer["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let label = |k: &str| a["labels"][k].as_str().unwrap_or_default().to_string();
                (label("alertname"), label("probe"), a["state"].as_str().unwrap_or_default().to_string())
            })
            .collect();
    }
    assert_eq!(seen, expected);
}

/// A moto of the test's own (its account's settings are the test's to change): S3 Block
/// Public Access makes a public policy or ACL moot. A bucket's own setting is asked beside
/// the listing; the account's (S3 Control) only when the bucket still looks public, and once
/// set there it quiets the buckets that warned before.
#[tokio::test]
async fn s3_block_public_access_of_the_bucket_and_the_account_is_heeded() {
    struct Moto(std::process::Child);
    impl Drop for Moto {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let python = require_tool("python3");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _moto = Moto(
        std::process::Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto.server (the harness's Python environment)"),
    );
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "moto did not start on {port}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let boto = |script: &str| {
        let setup = format!(
            "import boto3, json\nkw = dict(endpoint_url='http://127.0.0.1:{port}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
             s3 = boto3.client('s3', **kw)\n\
             anyone = lambda b: json.dumps({{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', 'Principal': '*', 'Action': 's3:GetObject', 'Resource': f'arn:aws:s3:::{{b}}/*'}}]}})\n{script}"
        );
        let out = std::process::Command::new(&python).args(["-c", &setup]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    boto(
        "for b in ['open-policy', 'blocked-policy']:\n    s3.create_bucket(Bucket=b)\n    s3.put_bucket_policy(Bucket=b, Policy=anyone(b))\n\
         s3.create_bucket(Bucket='open-acl', ACL='public-read')\n\
         s3.put_public_access_block(Bucket='blocked-policy', PublicAccessBlockConfiguration={'RestrictPublicBuckets': True})",
    );
    let ws = Workspace::new();
    let key = "{ type = \"static\", access_key_id = \"test\", secret_access_key = \"test\" }";
    let s3 = |bucket: &str| {
        format!(
            "[[probe]]\nname = \"{bucket}\"\nkind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"http://127.0.0.1:{port}\"\nauth = {key}\n\n"
        )
    };
    let path = ws.config(&(s3("open-policy") + &s3("open-acl") + &s3("blocked-policy")));
    let (out, report) = run_json(&path, &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(findings(&report, "open-policy"), [("s3_bucket_public".to_string(), "warning".to_string())]);
    assert_eq!(findings(&report, "open-acl"), [("s3_bucket_acl_public".to_string(), "warning".to_string())]);
    assert_passed(&report, "blocked-policy");
    assert!(findings(&report, "blocked-policy").is_empty(), "{report:#}");
    let table = authprobe(&["run", "-c", path.to_str().unwrap(), "--only", "blocked-policy", "-v"], &[]).await;
    assert!(table.stdout.contains("the bucket's Block Public Access restricts it"), "{}", table.stdout);

    boto(
        // S3 Control by hand: boto3 puts the account id in the host name, which an endpoint
        // on 127.0.0.1 cannot take.
        "import urllib.request\nfrom botocore.auth import S3SigV4Auth\nfrom botocore.awsrequest import AWSRequest\nfrom botocore.credentials import Credentials\n\
         body = b'<PublicAccessBlockConfiguration><IgnorePublicAcls>true</IgnorePublicAcls><RestrictPublicBuckets>true</RestrictPublicBuckets></PublicAccessBlockConfiguration>'\n\
         url = kw['endpoint_url'] + '/v20180820/configuration/publicAccessBlock'\n\
         request = AWSRequest(method='PUT', url=url, data=body, headers={'x-amz-account-id': '123456789012', 'Content-Type': 'application/xml'})\n\
         S3SigV4Auth(Credentials('test', 'test'), 's3', 'us-east-1').add_auth(request)\n\
         urllib.request.urlopen(urllib.request.Request(url, data=body, headers=dict(request.headers), method='PUT'))",
    );
    let (out, report) = run_json(&path, &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for bucket in ["open-policy", "open-acl"] {
        assert_passed(&report, bucket);
        assert!(findings(&report, bucket).is_empty(), "{bucket}: {report:#}");
    }
    let table = authprobe(&["run", "-c", path.to_str().unwrap(), "--only", "open-acl", "-v"], &[]).await;
    assert!(table.stdout.contains("the account's Block Public Access ignores public ACLs"), "{}", table.stdout);
}
