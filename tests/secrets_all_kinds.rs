//! Canary secrets in the credential fields of every probe kind and of tunnels, driven
//! through the failure modes each kind implements (produced by the harness's real servers
//! and by misbehaving peers), in every format at every verbosity, on stdout, stderr and in
//! report files: no canary may appear, neither plain nor URL-encoded nor base64. The real
//! credentials of the passing probes are held to the same rule.

use base64::Engine;

use crate::util::faults::{self, Fault, Speaks};
use crate::util::*;

fn forms(secret: &str) -> Vec<String> {
    vec![
        secret.to_string(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC).to_string(),
        base64::engine::general_purpose::STANDARD.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    ]
}

fn probe(name: &str, kind: &str, body: &str) -> String {
    // Credentials to the harness's plain-HTTP token services need the probe's consent.
    let consent = if body.contains("http://") { "\nallow_unverified_password = true" } else { "" };
    format!("[[probe]]\nname = \"{name}\"\nkind = \"{kind}\"\n{body}{consent}\n\n")
}

#[tokio::test]
async fn no_credential_of_any_kind_leaks_in_any_format_or_verbosity() {
    let env = harness_env();
    let real: Vec<String> = [
        "AP_PG_PASSWORD",
        "AP_PG_LIMITED_PASSWORD",
        "AP_MYSQL_PASSWORD",
        "AP_MYSQL_X509_PASSWORD",
        "AP_MSSQL_PASSWORD",
        "AP_S3_SECRET_KEY",
        "AP_MOTO_SECRET_KEY",
        "AP_SFTP_PASSWORD",
        "AP_SFTP_KEY_PASSPHRASE",
        "AP_FTP_PASSWORD",
        "AP_BASTION_PASSWORD",
        "AP_BEARER_TOKEN",
        "AP_RDS_SECRET_ACCESS_KEY",
        "AP_AZURE_STORAGE_KEY",
        "AP_AZURE_SAS",
        "AP_AZURE_CLIENT_SECRET",
    ]
    .iter()
    .map(|name| harness_var(&env, name))
    .collect();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let pg_protocol = faults::peer(Speaks::Postgres, Fault::WrongProtocol).await;
    let my_reset = faults::peer(Speaks::Mysql, Fault::ResetAfterHello).await;
    let ms_silent = faults::peer(Speaks::Mssql, Fault::Silent).await;
    let ssh_protocol = faults::peer(Speaks::Ssh, Fault::WrongProtocol).await;
    let s3_trickle = faults::peer(Speaks::Http, Fault::Trickle).await;

    let full = "tls = { mode = \"verify-full\", ca = \"${AP_CA}\" }";
    let pg = |port: &str, user: &str, password: &str, extra: &str| {
        format!("host = \"localhost\"\nport = \"{port}\"\nuser = \"{user}\"\npassword = \"{password}\"\n{extra}")
    };
    let static_s3 = |id: &str, secret: &str| {
        format!("{{ type = \"static\", access_key_id = \"{id}\", secret_access_key = \"{secret}\" }}")
    };
    let sftp = |port: &str, auth: &str, extra: &str| {
        format!("host = \"127.0.0.1\"\nport = \"{port}\"\nuser = \"${{AP_SFTP_USER}}\"\nauth = {auth}\n{extra}")
    };
    let mut cfg = String::from("[defaults]\ntimeout = \"3s\"\n\n");
    cfg += "[[tunnel]]\nname = \"bastion\"\nhost = \"127.0.0.1\"\nport = \"${AP_BASTION_PORT}\"\nuser = \"${AP_BASTION_USER}\"\nauth = { type = \"password\", password = \"${AP_BASTION_PASSWORD}\" }\nhost_key = \"${AP_BASTION_HOST_KEY}\"\n\n";
    cfg += "[[tunnel]]\nname = \"bastion-wrong-password\"\nhost = \"127.0.0.1\"\nport = \"${AP_BASTION_PORT}\"\nuser = \"${AP_BASTION_USER}\"\nauth = { type = \"password\", password = \"CANARY-tunnel-pw-61ad\" }\nhost_key = \"${AP_BASTION_HOST_KEY}\"\n\n";
    cfg += "[[tunnel]]\nname = \"bastion-unknown-key\"\nhost = \"127.0.0.1\"\nport = \"${AP_BASTION_PORT}\"\nuser = \"${AP_BASTION_USER}\"\nauth = { type = \"password\", password = \"CANARY-tunnel-pw2-0b3e\" }\n\n";

    // postgres
    cfg += &probe(
        "pg-ok",
        "postgres",
        &pg("${AP_PG_PORT}", "${AP_PG_USER}", "${AP_PG_PASSWORD}", &format!("database = \"appdb\"\n{full}")),
    );
    cfg += &probe(
        "pg-wrong-password",
        "postgres",
        &pg("${AP_PG_PORT}", "${AP_PG_USER}", "CANARY-pg-pw-2f1c", &format!("database = \"appdb\"\n{full}")),
    );
    cfg += &probe(
        "pg-no-permission",
        "postgres",
        &pg(
            "${AP_PG_PORT}",
            "${AP_PG_LIMITED_USER}",
            "${AP_PG_LIMITED_PASSWORD}",
            &format!("database = \"appdb\"\nquery = \"SELECT * FROM payroll\"\n{full}"),
        ),
    );
    cfg += &probe(
        "pg-no-database",
        "postgres",
        &pg("${AP_PG_PORT}", "${AP_PG_USER}", "CANARY-pg-pw2-77e0", &format!("database = \"nosuchdb\"\n{full}")),
    );
    cfg += &probe(
        "pg-untrusted",
        "postgres",
        &pg(
            "${AP_PG_PORT}",
            "${AP_PG_USER}",
            "CANARY-pg-pw3-3a9d",
            "tls = { mode = \"verify-full\", ca = \"${AP_CERTS}/rogue-ca.crt\" }",
        ),
    );
    cfg += &probe("pg-refused", "postgres", &pg(&closed.to_string(), "u", "CANARY-pg-pw4-d0c2", ""));
    cfg += &probe("pg-not-postgres", "postgres", &pg(&pg_protocol.port().to_string(), "u", "CANARY-pg-pw5-51b8", ""));
    cfg += &probe(
        "pg-via-tunnel-wrong-password",
        "postgres",
        &format!("via = \"bastion\"\n{}", pg("${AP_INNER_PG_PORT}", "${AP_PG_USER}", "CANARY-pg-pw6-e4a7", full)),
    );
    // mysql
    cfg += &probe("mysql-ok", "mysql", &pg("${AP_MYSQL_PORT}", "${AP_MYSQL_USER}", "${AP_MYSQL_PASSWORD}", full));
    cfg +=
        &probe("mysql-wrong-password", "mysql", &pg("${AP_MYSQL_PORT}", "${AP_MYSQL_USER}", "CANARY-my-pw-9c3f", full));
    cfg += &probe(
        "mysql-x509-without-cert",
        "mysql",
        &pg("${AP_MYSQL_PORT}", "${AP_MYSQL_X509_USER}", "${AP_MYSQL_X509_PASSWORD}", full),
    );
    cfg += &probe(
        "mysql-reset",
        "mysql",
        &pg(&my_reset.port().to_string(), "u", "CANARY-my-pw2-4be1", "tls = { mode = \"require\" }"),
    );
    cfg += &probe(
        "mysql-via-tunnel-wrong-password",
        "mysql",
        &format!("via = \"bastion\"\n{}", pg("${AP_INNER_MYSQL_PORT}", "${AP_MYSQL_USER}", "CANARY-my-pw3-07d5", full)),
    );
    // mssql
    cfg += &probe("mssql-ok", "mssql", &pg("${AP_MSSQL_PORT}", "${AP_MSSQL_USER}", "${AP_MSSQL_PASSWORD}", full));
    cfg +=
        &probe("mssql-wrong-password", "mssql", &pg("${AP_MSSQL_PORT}", "${AP_MSSQL_USER}", "CANARY-ms-pw-6e2b", full));
    cfg += &probe(
        "mssql-silent",
        "mssql",
        &format!("{}\ntimeout = \"1s\"", pg(&ms_silent.port().to_string(), "u", "CANARY-ms-pw2-c81f", "")),
    );
    // s3
    cfg += &probe(
        "s3-ok",
        "s3",
        &format!(
            "bucket = \"${{AP_S3_BUCKET}}\"\nendpoint = \"https://localhost:${{AP_S3_TLS_PORT}}\"\ntls = {{ ca = \"${{AP_CA}}\" }}\nauth = {}",
            static_s3("${AP_S3_ACCESS_KEY}", "${AP_S3_SECRET_KEY}")
        ),
    );
    cfg += &probe(
        "s3-wrong-secret",
        "s3",
        &format!(
            "bucket = \"${{AP_S3_BUCKET}}\"\nendpoint = \"http://127.0.0.1:${{AP_S3_PORT}}\"\nauth = {}",
            static_s3("${AP_S3_ACCESS_KEY}", "CANARY-s3-secret-1d4c")
        ),
    );
    cfg += &probe(
        "s3-unknown-key",
        "s3",
        &format!(
            "bucket = \"${{AP_MOTO_ALLOWED_BUCKET}}\"\nendpoint = \"http://127.0.0.1:${{AP_MOTO_PORT}}\"\nauth = {}",
            static_s3("AKIAUNKNOWN000000000", "CANARY-s3-secret2-8f90")
        ),
    );
    cfg += &probe(
        "s3-bogus-session-token",
        "s3",
        "bucket = \"${AP_MOTO_ALLOWED_BUCKET}\"\nendpoint = \"http://127.0.0.1:${AP_MOTO_PORT}\"\nauth = { type = \"static\", access_key_id = \"${AP_MOTO_ACCESS_KEY}\", secret_access_key = \"${AP_MOTO_SECRET_KEY}\", session_token = \"CANARY-s3-token-2e6a\" }",
    );
    cfg += &probe(
        "s3-denied",
        "s3",
        &format!(
            "bucket = \"${{AP_MOTO_DENIED_BUCKET}}\"\nendpoint = \"http://127.0.0.1:${{AP_MOTO_PORT}}\"\nauth = {}",
            static_s3("${AP_MOTO_ACCESS_KEY}", "${AP_MOTO_SECRET_KEY}")
        ),
    );
    cfg += &probe(
        "s3-assume-role-bad-base",
        "s3",
        &format!(
            "bucket = \"${{AP_MOTO_ALLOWED_BUCKET}}\"\nendpoint = \"http://127.0.0.1:${{AP_MOTO_PORT}}\"\nauth = {{ type = \"assume_role\", role_arn = \"${{AP_MOTO_ROLE_ARN}}\", external_id = \"CANARY-s3-external-5b2d\", source = {} }}",
            static_s3("${AP_MOTO_ACCESS_KEY}", "CANARY-s3-secret3-a7c3")
        ),
    );
    cfg += &probe(
        "s3-untrusted",
        "s3",
        &format!(
            "bucket = \"b\"\nendpoint = \"https://localhost:${{AP_S3_TLS_PORT}}\"\nauth = {}",
            static_s3("AKIAX", "CANARY-s3-secret4-3d18")
        ),
    );
    cfg += &probe(
        "s3-trickle",
        "s3",
        &format!(
            "timeout = \"1s\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:{}\"\nauth = {}",
            s3_trickle.port(),
            static_s3("AKIAX", "CANARY-s3-secret5-f2e7")
        ),
    );
    // ftp: a pass, a wrong password, plain FTP without consent, an untrusted certificate
    let ftp = |port: &str, password: &str, extra: &str| {
        format!(
            "host = \"127.0.0.1\"\nport = \"{port}\"\nuser = \"${{AP_FTP_USER}}\"\npassword = \"{password}\"\npath = \"drop\"\n{extra}"
        )
    };
    let ftp_ca = "tls = { ca = \"${AP_CA}\" }";
    cfg += &probe("ftp-ok", "ftp", &ftp("${AP_FTP_PORT}", "${AP_FTP_PASSWORD}", ftp_ca));
    cfg += &probe("ftp-wrong-password", "ftp", &ftp("${AP_FTP_PORT}", "CANARY-ftp-pw-5c2e", ftp_ca));
    cfg += &probe(
        "ftp-plain-refused",
        "ftp",
        &ftp("${AP_FTP_PORT}", "CANARY-ftp-pw2-71ad", "tls = { mode = \"disable\" }"),
    );
    cfg += &probe("ftp-untrusted", "ftp", &ftp("${AP_FTP_UNTRUSTED_PORT}", "CANARY-ftp-pw3-e09b", ftp_ca));
    // sftp
    let host_key = "host_key = \"${AP_SSH_HOST_KEY}\"";
    cfg += &probe(
        "sftp-ok",
        "sftp",
        &sftp("${AP_SSH_PORT}", "{ type = \"password\", password = \"${AP_SFTP_PASSWORD}\" }", host_key),
    );
    cfg += &probe("sftp-key-ok", "sftp", &sftp("${AP_SSH_PORT}", "{ type = \"key\", private_key = \"${AP_SSH_DIR}/client_ed25519_encrypted\", passphrase = \"${AP_SFTP_KEY_PASSPHRASE}\" }", host_key).replace("${AP_SFTP_USER}", "${AP_SFTP_KEY_USER}"));
    cfg += &probe(
        "sftp-wrong-password",
        "sftp",
        &sftp("${AP_SSH_PORT}", "{ type = \"password\", password = \"CANARY-sftp-pw-8a1b\" }", host_key),
    );
    cfg += &probe(
        "sftp-unknown-host-key",
        "sftp",
        &sftp("${AP_SSH_PORT}", "{ type = \"password\", password = \"CANARY-sftp-pw2-c3d9\" }", ""),
    );
    cfg += &probe(
        "sftp-refused",
        "sftp",
        &sftp(&closed.to_string(), "{ type = \"password\", password = \"CANARY-sftp-pw3-1e44\" }", host_key),
    );
    cfg += &probe(
        "sftp-not-ssh",
        "sftp",
        &sftp(
            &ssh_protocol.port().to_string(),
            "{ type = \"password\", password = \"CANARY-sftp-pw4-b9f0\" }",
            host_key,
        ),
    );
    cfg += &probe(
        "sftp-via-tunnel-wrong-password",
        "sftp",
        &format!(
            "via = \"bastion\"\n{}",
            sftp("${AP_INNER_SSH_PORT}", "{ type = \"password\", password = \"CANARY-sftp-pw5-07aa\" }", host_key)
        ),
    );
    // rds_iam (the token is made from the secret; neither may show)
    let rds = |secret: &str| {
        format!(
            "host = \"127.0.0.1\"\nport = \"${{AP_PG_PORT}}\"\nuser = \"${{AP_IAM_DB_USER}}\"\ndatabase = \"appdb\"\ntls = {{ ca = \"${{AP_CA}}\" }}\nauth = {{ type = \"rds_iam\", region = \"${{AP_RDS_REGION}}\", credentials = {} }}",
            static_s3("${AP_RDS_ACCESS_KEY_ID}", secret)
        )
    };
    cfg += &probe("rds-iam-ok", "postgres", &rds("${AP_RDS_SECRET_ACCESS_KEY}"));
    cfg += &probe("rds-iam-wrong-secret", "postgres", &rds("CANARY-rds-secret-5f0e"));
    // gcs
    let gcs = |bucket: &str, endpoint: &str, auth: &str| {
        format!("bucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nauth = {auth}")
    };
    cfg += &probe(
        "gcs-ok",
        "gcs",
        &gcs(
            "${AP_GCS_BUCKET}",
            "http://127.0.0.1:${AP_CLOUD_PORT}",
            "{ type = \"gcp_service_account\", key_file = \"${AP_GCP_KEY_FILE}\" }",
        ),
    );
    cfg += &probe(
        "gcs-hmac-wrong-secret",
        "gcs",
        &gcs(
            "${AP_S3_BUCKET}",
            "http://127.0.0.1:${AP_S3_PORT}",
            "{ type = \"hmac\", access_id = \"${AP_S3_ACCESS_KEY}\", secret = \"CANARY-gcs-hmac-83c1\" }",
        ),
    );
    // azure_blob
    let blob = |auth: &str| {
        format!(
            "account = \"authprobedemo\"\ncontainer = \"${{AP_AZURE_CONTAINER}}\"\nendpoint = \"https://127.0.0.1:${{AP_AZURITE_PORT}}/authprobedemo\"\ntls = {{ ca = \"${{AP_CA}}\" }}\nauth = {auth}"
        )
    };
    cfg += &probe("azure-ok", "azure_blob", &blob("{ type = \"shared_key\", key = \"${AP_AZURE_STORAGE_KEY}\" }"));
    let canary_key = format!("CANARYazureWrongKey0{}", "A".repeat(68));
    cfg +=
        &probe("azure-wrong-key", "azure_blob", &blob(&format!("{{ type = \"shared_key\", key = \"{canary_key}\" }}")));
    cfg += &probe(
        "azure-wrong-sas",
        "azure_blob",
        &blob(
            "{ type = \"sas\", token = \"sv=2019-12-12&ss=b&srt=sco&sp=rl&se=2030-01-01&spr=https&sig=CANARYsas0d4e\" }",
        ),
    );
    cfg += &probe(
        "azure-wrong-client-secret",
        "azure_blob",
        &blob(
            "{ type = \"azure_client_secret\", tenant_id = \"${AP_AZURE_TENANT}\", client_id = \"${AP_AZURE_CLIENT_ID}\", client_secret = \"CANARY-azure-secret-2c7a\", authority = \"http://127.0.0.1:${AP_CLOUD_PORT}\" }",
        ),
    );
    // tunnels failing themselves
    cfg += &probe(
        "tunnel-wrong-password",
        "http",
        "via = \"bastion-wrong-password\"\nurl = \"https://localhost:${AP_INNER_HTTPS_PORT}/bearer\"\nauth = { type = \"bearer\", token = \"CANARY-http-token-4c8e\" }",
    );
    cfg += &probe(
        "tunnel-unknown-host-key",
        "http",
        "via = \"bastion-unknown-key\"\nurl = \"https://localhost:${AP_INNER_HTTPS_PORT}/bearer\"\nauth = { type = \"bearer\", token = \"CANARY-http-token2-95d1\" }",
    );
    cfg += &probe(
        "http-via-tunnel-wrong-token",
        "http",
        "via = \"bastion\"\nurl = \"https://localhost:${AP_INNER_HTTPS_PORT}/bearer\"\nauth = { type = \"bearer\", token = \"CANARY-http-token3-d62f\" }\ntls = { ca = \"${AP_CA}\" }",
    );

    let ws = Workspace::new();
    let path = ws.config(&cfg);
    let p = path.to_str().unwrap();
    let check = |what: &str, text: &str| {
        assert!(!text.contains("CANARY"), "{what} leaks a canary:\n{text}");
        for secret in &real {
            for form in forms(secret) {
                assert!(!text.contains(&form), "{what} leaks a real credential ({form}):\n{text}");
            }
        }
    };
    // The table is the one format that -v and -vv change; the others are checked at -vv,
    // as files, with the summary line on stderr.
    for verbosity in [None, Some("-v"), Some("-vv")] {
        let mut args = vec!["run", "-c", p];
        args.extend(verbosity);
        let out = authprobe_harness(&args, &env).await;
        assert_eq!(out.code, 1, "{verbosity:?}: {}", out.stderr);
        check(&format!("the table at {verbosity:?}"), &out.stdout);
        check(&format!("stderr at {verbosity:?}"), &out.stderr);
    }
    for format in ["json", "junit", "prometheus", "markdown"] {
        let file = ws.path(&format!("report.{format}"));
        let out =
            authprobe_harness(&["run", "-c", p, "--format", format, "--output", file.to_str().unwrap(), "-vv"], &env)
                .await;
        assert_eq!(out.code, 1, "{format}: {}", out.stderr);
        check(&format!("stderr with --format {format}"), &out.stderr);
        let written = std::fs::read_to_string(&file).unwrap();
        check(&format!("the {format} report file"), &written);
        if format == "json" {
            let report: serde_json::Value = serde_json::from_str(&written).unwrap();
            for name in [
                "pg-ok",
                "mysql-ok",
                "mssql-ok",
                "s3-ok",
                "sftp-ok",
                "sftp-key-ok",
                "ftp-ok",
                "rds-iam-ok",
                "gcs-ok",
                "azure-ok",
            ] {
                assert_passed(&report, name);
            }
            assert_eq!(report["summary"]["failed"], 36, "every probe meant to fail must fail:\n{report:#}");
        }
    }
}
