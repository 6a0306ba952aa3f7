//! What a MySQL or MariaDB account may do beyond a probe's need, asked read-only after the
//! login with `SHOW GRANTS FOR CURRENT_USER()`: every privilege on every database (`ALL
//! PRIVILEGES ON *.*`), SUPER, the right to grant (`WITH GRANT OPTION`) — each a warning —
//! and all privileges on the checked database, an application account's normal state
//! (information), a warning with writes only when the probe says the credential should only
//! read (`expect_read_only = true`). The grant lines themselves are never shown: MariaDB's
//! may carry the account's password hash.

use crate::probes::db::Found;

pub const QUERY: &str = "SHOW GRANTS FOR CURRENT_USER()";

/// One grant line: its privileges (upper case, comma-separated as written), what it is on
/// (`*.*`, `` `db`.* ``…) and whether it carries the grant option.
struct Grant {
    privileges: String,
    on: String,
    grant_option: bool,
}

fn parse(line: &str) -> Option<Grant> {
    let rest = line.strip_prefix("GRANT ")?;
    let (privileges, rest) = rest.split_once(" ON ")?;
    let (on, rest) = rest.split_once(" TO ")?;
    Some(Grant {
        privileges: privileges.to_ascii_uppercase(),
        on: on.replace('`', ""),
        grant_option: rest.contains("WITH GRANT OPTION"),
    })
}

const WRITES: [&str; 8] = ["ALL", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "TRUNCATE"];

/// The findings for the answer to [`QUERY`] (one grant per row) of `user` on `database`.
pub fn findings(
    rows: &[Vec<Option<String>>],
    user: &str,
    database: Option<&str>,
    expect_read_only: bool,
) -> Vec<Found> {
    let grants: Vec<Grant> = rows.iter().filter_map(|r| r.first()?.as_deref()).filter_map(parse).collect();
    let narrower = format!(
        "give the probe an account of its own with only what it checks: CREATE USER 'probe'@'…' IDENTIFIED BY '…'; GRANT SELECT ON {}.* TO 'probe'@'…'; or set hygiene = false on the probe",
        database.unwrap_or("db")
    );
    let mut out = Vec::new();
    let mut warn = |what: &str, meaning: String| out.push(Found::beyond_need(what, meaning, &narrower));
    let global: Vec<&Grant> = grants.iter().filter(|g| g.on == "*.*").collect();
    if global.iter().any(|g| g.privileges.starts_with("ALL")) {
        warn("mysql_all_privileges", format!("account `{user}` has ALL PRIVILEGES on *.* (every database)"));
    } else if global.iter().any(|g| g.privileges.split(',').any(|p| p.trim() == "SUPER")) {
        warn("mysql_super", format!("account `{user}` has SUPER"));
    }
    if grants.iter().any(|g| g.grant_option) {
        warn("mysql_grant_option", format!("account `{user}` may grant its privileges to others (WITH GRANT OPTION)"));
    }
    let on_database = |g: &&Grant| database.is_some_and(|db| g.on == format!("{db}.*"));
    let writes = grants
        .iter()
        .filter(|g| g.on == "*.*" || on_database(g))
        .any(|g| g.privileges.split(',').any(|p| WRITES.iter().any(|w| p.trim().starts_with(w))));
    let all_on_database = grants.iter().filter(on_database).any(|g| g.privileges.starts_with("ALL"));
    if expect_read_only && writes {
        let hint = format!(
            "account `{user}` may change the data (write privileges on the database); for a read-only credential grant SELECT only"
        );
        out.push(Found::unless_read_only("mysql_writes", hint, true));
    } else if all_on_database {
        let hint = format!(
            "account `{user}` has all privileges on its database; for a read-only credential grant SELECT only"
        );
        out.push(Found::unless_read_only("mysql_database_all", hint, false));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(lines: &[&str]) -> Vec<Vec<Option<String>>> {
        lines.iter().map(|l| vec![Some(l.to_string())]).collect()
    }

    fn names(found: &[Found]) -> Vec<&str> {
        found.iter().map(|f| f.finding.what.as_str()).collect()
    }

    #[test]
    fn root_like_accounts_and_narrow_ones() {
        let root = rows(&[
            "GRANT ALL PRIVILEGES ON *.* TO `root`@`127.0.0.1` IDENTIFIED BY PASSWORD '*AB12' WITH GRANT OPTION",
            "GRANT PROXY ON ''@'%' TO 'root'@'127.0.0.1' WITH GRANT OPTION",
        ]);
        let found = findings(&root, "root", None, false);
        assert_eq!(names(&found), ["mysql_all_privileges", "mysql_grant_option"]);
        assert!(found.iter().all(|f| !f.warning.as_deref().unwrap_or("").contains("*AB12")), "never the hash");
        let super_only = rows(&["GRANT SUPER, PROCESS ON *.* TO `ops`@`%`"]);
        assert_eq!(names(&findings(&super_only, "ops", None, false)), ["mysql_super"]);
        let app = rows(&["GRANT USAGE ON *.* TO `app`@`%`", "GRANT ALL PRIVILEGES ON `appdb`.* TO `app`@`%`"]);
        let found = findings(&app, "app", Some("appdb"), false);
        assert_eq!(names(&found), ["mysql_database_all"]);
        assert_eq!(found[0].finding.severity, "info");
        assert_eq!(names(&findings(&app, "app", Some("appdb"), true)), ["mysql_writes"]);
        let reader = rows(&["GRANT USAGE ON *.* TO `r`@`%`", "GRANT SELECT ON `appdb`.`orders` TO `r`@`%`"]);
        assert!(findings(&reader, "r", Some("appdb"), true).is_empty());
    }
}
