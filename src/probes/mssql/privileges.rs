//! What a SQL Server login may do beyond a probe's need, asked read-only in the check
//! query's own batch (no round trip of its own): membership of the `sysadmin` server role
//! (a warning) and of the database's `db_owner` role — an application's normal state
//! (information), a warning when the probe says the credential should only read.

use crate::probes::db::Found;

/// Sent before the check query in one batch; answers one row of two integers (1, 0, or
/// NULL for a role the server does not know).
pub const QUERY: &str = "SELECT IS_SRVROLEMEMBER('sysadmin'), IS_MEMBER('db_owner');";

/// The findings for `row` (the answer to [`QUERY`]) of `login` in `database`.
pub fn findings(row: &[Option<i64>], login: &str, database: &str, expect_read_only: bool) -> Vec<Found> {
    let yes = |i: usize| row.get(i).copied().flatten() == Some(1);
    let mut out = Vec::new();
    if yes(0) {
        out.push(Found::beyond_need(
            "mssql_sysadmin",
            format!("login `{login}` is in the sysadmin server role (it can do anything on the server)"),
            &format!(
                "give the probe a login of its own: CREATE LOGIN probe WITH PASSWORD = '…'; in {database}: CREATE USER probe FOR LOGIN probe; GRANT SELECT ON the tables it reads; or set hygiene = false on the probe"
            ),
        ));
    } else if yes(1) {
        // A sysadmin is dbo everywhere: db_owner says nothing more about it.
        let hint = format!(
            "login `{login}` is in db_owner of `{database}` (it may change or drop anything in it); for a read-only credential use a user in db_datareader only (ALTER ROLE db_datareader ADD MEMBER …)"
        );
        out.push(Found::unless_read_only("mssql_db_owner", hint, expect_read_only));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysadmin_warns_and_db_owner_depends_on_the_expectation() {
        let names =
            |found: Vec<Found>| found.into_iter().map(|f| (f.finding.what, f.finding.severity)).collect::<Vec<_>>();
        assert_eq!(names(findings(&[Some(1), Some(1)], "sa", "appdb", false)), [("mssql_sysadmin".into(), "warning")]);
        assert_eq!(names(findings(&[Some(0), Some(1)], "app", "appdb", false)), [("mssql_db_owner".into(), "info")]);
        assert_eq!(names(findings(&[Some(0), Some(1)], "app", "appdb", true)), [("mssql_db_owner".into(), "warning")]);
        assert!(findings(&[Some(0), Some(0)], "reader", "appdb", true).is_empty());
        assert!(findings(&[None, None], "reader", "appdb", true).is_empty(), "NULL: a role the server does not know");
        assert!(findings(&[], "reader", "appdb", true).is_empty());
    }
}
