//! What a PostgreSQL role may do beyond a probe's need, asked read-only in one query after
//! the login (`pg_roles` and `pg_database`, which every role may read): superuser,
//! CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS — each a warning — and owning the database,
//! which is an application role's normal state (information), and a warning only when the
//! probe says the credential is meant to be read-only (`expect_read_only = true`).

use crate::probes::db::Found;

/// One round trip; answers one row of booleans (`t`/`f`).
pub const QUERY: &str = "SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls, \
     d.datdba = r.oid FROM pg_catalog.pg_roles r, pg_catalog.pg_database d \
     WHERE r.rolname = current_user AND d.datname = current_database()";

/// The findings for `row` (the answer to [`QUERY`]) of role `user` on `database`.
pub fn findings(row: &[Option<String>], user: &str, database: &str, expect_read_only: bool) -> Vec<Found> {
    let yes = |i: usize| row.get(i).and_then(|v| v.as_deref()) == Some("t");
    let narrower = format!(
        "give the probe a role of its own with only what it checks: CREATE ROLE probe LOGIN PASSWORD '…'; GRANT CONNECT ON DATABASE {database} TO probe; GRANT SELECT ON the tables it reads; or set hygiene = false on the probe"
    );
    let mut out = Vec::new();
    let mut warn = |what: &str, meaning: String| out.push(Found::beyond_need(what, meaning, &narrower));
    if yes(0) {
        warn(
            "pg_superuser",
            format!("role `{user}` is a superuser (reads and changes everything, runs programs on the server)"),
        );
    }
    if yes(1) {
        warn("pg_createrole", format!("role `{user}` has CREATEROLE (makes and changes other roles)"));
    }
    if yes(2) {
        warn("pg_createdb", format!("role `{user}` has CREATEDB"));
    }
    if yes(3) {
        warn("pg_replication", format!("role `{user}` has REPLICATION (streams every change of the cluster)"));
    }
    if yes(4) {
        warn("pg_bypassrls", format!("role `{user}` has BYPASSRLS (row-level security does not apply to it)"));
    }
    if yes(5) {
        let hint = format!(
            "role `{user}` owns database `{database}` (it may drop it and grant anything in it); for a read-only credential use a role that owns nothing"
        );
        out.push(Found::unless_read_only("pg_database_owner", hint, expect_read_only));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|v| Some(v.to_string())).collect()
    }

    #[test]
    fn each_attribute_is_its_own_finding() {
        let all = findings(&row(&["t", "t", "t", "t", "t", "t"]), "admin", "orders", false);
        let names: Vec<&str> = all.iter().map(|f| f.finding.what.as_str()).collect();
        assert_eq!(
            names,
            ["pg_superuser", "pg_createrole", "pg_createdb", "pg_replication", "pg_bypassrls", "pg_database_owner"]
        );
        assert!(all[0].warning.as_deref().unwrap().contains("superuser"));
        assert_eq!(all[5].finding.severity, "info", "owning the database is an application role's normal state");
        assert!(all[5].warning.is_none());
        assert!(findings(&row(&["f", "f", "f", "f", "f", "f"]), "app", "orders", true).is_empty());
        assert!(findings(&[], "app", "orders", true).is_empty(), "no row: nothing said");
    }

    #[test]
    fn owning_the_database_warns_when_the_credential_should_only_read() {
        let owner = findings(&row(&["f", "f", "f", "f", "f", "t"]), "app", "orders", true);
        assert_eq!(owner[0].finding.severity, "warning");
        assert!(owner[0].warning.as_deref().unwrap().starts_with("expect_read_only:"));
    }
}
