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
