//! Cloud tokens as database passwords beyond AWS (issue 20): `auth = { type = "entra" }`
//! (Azure Database for PostgreSQL/MySQL) and `auth = { type = "gcp_iam" }` (Cloud SQL IAM
//! database authentication) against the harness's real PostgreSQL and MariaDB. Both hand
//! the password to PAM, where scripts/harness/clouddb_token_check.py checks it the way the
//! services do: an Entra token's signature (the token service's JWKS), issuer, audience,
//! lifetime and object id against the role's mapping; a Google token through tokeninfo
//! (the service account behind the IAM user, and the scope). The tokens come from the
//! harness's Entra ID (client secret, managed identity, workload identity with a federated
//! service-account token) and Google (service-account key, metadata server) services.

use crate::util::*;

fn db_probe(name: &str, kind: &str, user_var: &str, auth: &str) -> String {
    let port = if kind == "postgres" { "AP_PG_PORT" } else { "AP_MYSQL_PORT" };
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"{kind}\"\nhost = \"localhost\"\nport = \"${{{port}}}\"\nuser = \"${{{user_var}}}\"\ndatabase = \"appdb\"\nquery = \"SELECT item FROM orders\"\ntls = {{ ca = \"${{AP_CA}}\" }}\n# The harness's token services speak plain HTTP.\nallow_unverified_password = true\n{auth}\n\n"
    )
}

const AUTHORITY: &str = "authority = \"http://127.0.0.1:${AP_CLOUD_PORT}\"";

fn entra_secret(extra: &str) -> String {
    format!(
        "auth = {{ type = \"entra\", credentials = {{ type = \"azure_client_secret\", tenant_id = \"${{AP_AZURE_TENANT}}\", client_id = \"${{AP_AZURE_CLIENT_ID}}\", client_secret = \"${{AP_AZURE_CLIENT_SECRET}}\", {AUTHORITY}{extra} }} }}"
    )
}

fn entra_workload(token: &str) -> String {
    format!(
        "auth = {{ type = \"entra\", credentials = {{ type = \"azure_workload_identity\", tenant_id = \"${{AP_AZURE_TENANT}}\", client_id = \"${{AP_AZURE_CLIENT_ID}}\", token_file = \"${{AP_WEB_IDENTITY_DIR}}/{token}\", {AUTHORITY} }} }}"
    )
}

const ENTRA_MI: &str = "auth = { type = \"entra\", credentials = { type = \"azure_managed_identity\", client_id = \"${AP_AZURE_MI_CLIENT_ID}\", endpoint = \"http://127.0.0.1:${AP_CLOUD_PORT}\" } }";
const GCP_KEY: &str = "auth = { type = \"gcp_iam\", credentials = { type = \"gcp_service_account\", key_file = \"${AP_GCP_KEY_FILE}\" } }";
const GCP_METADATA: &str = "auth = { type = \"gcp_iam\", credentials = { type = \"gcp_metadata\", endpoint = \"http://127.0.0.1:${AP_CLOUD_PORT}\" } }";

#[tokio::test]
async fn entra_and_cloud_sql_iam_tokens_are_accepted_and_refused_by_the_database() {
    let env = harness_env();
    let ws = Workspace::new();
    let mut cfg = String::new();
    for kind in ["postgres", "mysql"] {
        let gcp_user = if kind == "postgres" { "AP_GCP_PG_DB_USER" } else { "AP_GCP_MYSQL_DB_USER" };
        cfg += &db_probe(&format!("{kind}-entra-secret"), kind, "AP_ENTRA_DB_USER", &entra_secret(""));
        cfg += &db_probe(&format!("{kind}-entra-managed-identity"), kind, "AP_ENTRA_MI_DB_USER", ENTRA_MI);
        cfg += &db_probe(&format!("{kind}-entra-workload"), kind, "AP_ENTRA_DB_USER", &entra_workload("azure-token"));
        cfg += &db_probe(&format!("{kind}-gcp-key"), kind, gcp_user, GCP_KEY);
        cfg += &db_probe(&format!("{kind}-gcp-metadata"), kind, gcp_user, GCP_METADATA);
        // The app's token presented as the managed identity's role: the object id differs.
        cfg += &db_probe(&format!("{kind}-entra-wrong-role"), kind, "AP_ENTRA_MI_DB_USER", &entra_secret(""));
        // A token for Storage, not for the database service.
        let storage = ", scope = \"https://storage.azure.com/.default\"";
        cfg += &db_probe(&format!("{kind}-entra-wrong-audience"), kind, "AP_ENTRA_DB_USER", &entra_secret(storage));
        // A Google token whose scope Cloud SQL does not take.
        let narrow = "auth = { type = \"gcp_iam\", credentials = { type = \"gcp_service_account\", key_file = \"${AP_GCP_KEY_FILE}\", scopes = [\"https://www.googleapis.com/auth/devstorage.read_only\"] } }";
        cfg += &db_probe(&format!("{kind}-gcp-wrong-scope"), kind, gcp_user, narrow);
    }
    let mi_on_pg = db_probe("postgres-entra-unverified-server", "postgres", "AP_ENTRA_MI_DB_USER", ENTRA_MI);
    cfg += &mi_on_pg.replace("tls = { ca = \"${AP_CA}\" }\n", "");
    cfg += &db_probe("workload-token-expired", "postgres", "AP_ENTRA_DB_USER", &entra_workload("azure-token-expired"));
    cfg += &db_probe(
        "workload-other-service-account",
        "postgres",
        "AP_ENTRA_DB_USER",
        &entra_workload("azure-token-other-sa"),
    );
    cfg += &db_probe("workload-token-missing", "postgres", "AP_ENTRA_DB_USER", &entra_workload("no-such-token"));
    let rotated = GCP_KEY.replace("AP_GCP_KEY_FILE", "AP_GCP_ROTATED_KEY_FILE");
    cfg += &db_probe("gcp-rotated-key", "mysql", "AP_GCP_MYSQL_DB_USER", &rotated);
    let config = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    for kind in ["postgres", "mysql"] {
        for source in ["entra-secret", "entra-managed-identity", "entra-workload", "gcp-key", "gcp-metadata"] {
            let ok = assert_passed(&report, &format!("{kind}-{source}"));
            let stages: Vec<&str> =
                ok["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
            assert_eq!(stages, ["dns", "connect", "tls", "token", "auth", "check"], "{ok:#}");
            assert_eq!(ok["tls"]["verified"], true, "{ok:#}");
        }
        for refused in ["entra-wrong-role", "entra-wrong-audience"] {
            let p = assert_failed(&report, &format!("{kind}-{refused}"), "auth", "auth_rejected");
            let hint = p["error"]["hint"].as_str().unwrap();
            assert!(
                hint.contains("the Entra ID token (azure_client_secret) was refused")
                    && hint.contains("pgaadauth_create_principal"),
                "{p:#}"
            );
        }
        let p = assert_failed(&report, &format!("{kind}-gcp-wrong-scope"), "auth", "auth_rejected");
        assert!(p["error"]["hint"].as_str().unwrap().contains("cloudsql.instances.login"), "{p:#}");
    }
    // Verified TLS by default: without the CA the token is never fetched, let alone sent.
    let p = assert_failed(&report, "postgres-entra-unverified-server", "tls", "tls_untrusted");
    let token = p["stages"].as_array().unwrap().iter().find(|s| s["name"] == "token").unwrap();
    assert_eq!(token["status"], "skipped", "{p:#}");
    let expired = assert_failed(&report, "workload-token-expired", "token", "auth_rejected");
    assert!(expired["error"]["message"].as_str().unwrap().contains("AADSTS700024"), "{expired:#}");
    let other = assert_failed(&report, "workload-other-service-account", "token", "auth_rejected");
    assert!(other["error"]["message"].as_str().unwrap().contains("no federated credential"), "{other:#}");
    assert!(other["error"]["hint"].as_str().unwrap().contains("api://AzureADTokenExchange"), "{other:#}");
    let missing = assert_failed(&report, "workload-token-missing", "token", "config");
    assert!(missing["error"]["hint"].as_str().unwrap().contains("AZURE_FEDERATED_TOKEN_FILE"), "{missing:#}");
    assert_failed(&report, "gcp-rotated-key", "token", "auth_rejected");

    // The servers' verdicts, as the token checker logged them.
    let state = std::path::Path::new(&harness_var(&env, "AP_CERTS")).parent().unwrap().to_path_buf();
    let log = std::fs::read_to_string(state.join("logs/clouddb.log")).unwrap_or_default();
    for reason in [
        "is not the one this role is mapped to",
        "(not https://ossrdbms-aad.database.windows.net)",
        "neither sqlservice.login nor cloud-platform",
    ] {
        assert!(log.contains(reason), "the token checker never logged `{reason}`:\n{log}");
    }

    let verbose = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "-vv"], &env).await;
    let markdown = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "--format", "markdown"], &env).await;
    let seen = [out.stdout, out.stderr, verbose.stdout, verbose.stderr, markdown.stdout, markdown.stderr].concat();
    assert!(seen.contains("token: an Entra ID access token for https://ossrdbms-aad.database.windows.net/ from azure_workload_identity"), "{seen}");
    let issued = std::fs::read_to_string(harness_var(&env, "AP_CLOUD_ISSUED")).unwrap_or_default();
    let secret = harness_var(&env, "AP_AZURE_CLIENT_SECRET");
    for token in issued.lines().filter(|l| l.len() > 20).chain([secret.as_str()]) {
        assert!(!seen.contains(token), "an issued token or the client secret leaked:\n{seen}");
    }
}

#[tokio::test]
async fn workload_identity_serves_every_azure_kind() {
    let env = harness_env();
    let ws = Workspace::new();
    let identity = |scope: &str| {
        format!(
            "{{ type = \"azure_workload_identity\", tenant_id = \"${{AP_AZURE_TENANT}}\", client_id = \"${{AP_AZURE_CLIENT_ID}}\", token_file = \"${{AP_WEB_IDENTITY_DIR}}/azure-token\", {AUTHORITY}{scope} }}"
        )
    };
    let mut cfg = format!(
        "[[probe]]\nname = \"blob\"\nkind = \"azure_blob\"\naccount = \"${{AP_AZURE_STORAGE_ACCOUNT}}\"\ncontainer = \"${{AP_AZURE_CONTAINER}}\"\nendpoint = \"https://127.0.0.1:${{AP_AZURITE_PORT}}/${{AP_AZURE_STORAGE_ACCOUNT}}\"\ntls = {{ ca = \"${{AP_CA}}\" }}\nallow_unverified_password = true\nauth = {}\n\n",
        identity("")
    );
    cfg += &format!(
        "[[probe]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://127.0.0.1:${{AP_CLOUD_PORT}}/azure/api\"\nallow_unverified_password = true\nauth = {}\n\n",
        identity(", scope = \"https://api.authprobe.test/.default\"")
    );
    let config = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report = out.json();
    assert_passed(&report, "blob");
    assert_passed(&report, "api");
}

#[tokio::test]
async fn cloud_token_misconfigurations_are_refused_before_any_traffic() {
    let ws = Workspace::new();
    let probe = |name: &str, kind: &str, extra: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"{kind}\"\nhost = \"127.0.0.1\"\nport = 1\nuser = \"u\"\n{extra}\n\n"
        )
    };
    let entra = "auth = { type = \"entra\", credentials = { type = \"azure_client_secret\", tenant_id = \"t\", client_id = \"c\", client_secret = \"CANARY-entra-config-5c1d\" } }";
    let cases = [
        ("mssql", probe("sqlserver", "mssql", entra), "entra is for postgres and mysql"),
        (
            "no credentials",
            probe("bare", "postgres", "auth = { type = \"entra\" }"),
            "entra needs `credentials = { type = \"…\" }`, one of: azure_managed_identity",
        ),
        (
            "an AWS source",
            probe("aws", "mysql", "auth = { type = \"entra\", credentials = { type = \"static\" } }"),
            "`static` is not an identity entra can use",
        ),
        (
            "an ID token",
            probe(
                "id",
                "postgres",
                "auth = { type = \"gcp_iam\", credentials = { type = \"gcp_metadata\", audience = \"x\" } }",
            ),
            "Cloud SQL takes an access token",
        ),
        (
            "unencrypted",
            probe("plain", "postgres", &format!("tls = {{ mode = \"prefer\" }}\n{entra}")),
            "entra sends its token only over TLS",
        ),
        (
            "with a password",
            probe("both", "mysql", &format!("password = \"p\"\n{entra}")),
            "entra logs in with a token made at each attempt",
        ),
        ("a typo", probe("typo", "mysql", "auth = { type = \"gcp-iam\" }"), "(did you mean `gcp_iam`?)"),
    ];
    for (what, cfg, expected) in cases {
        let config = ws.config(&cfg);
        let out = authprobe(&["validate", "-c", config.to_str().unwrap()], &[]).await;
        assert_eq!(out.code, 2, "{what}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{what}: expected `{expected}` in:\n{}", out.stderr);
        assert!(!out.stderr.contains("CANARY-entra-config-5c1d"), "{what}: the secret leaked");
    }
}
