//! The kind registry (`probes::KINDS`) is the one list of kinds: every registered kind
//! validates in the example config, every URL scheme it claims works with `check` against
//! the harness's real server, every scheme it claims for `inspect` shows that server's
//! certificate or host key, and the docs' kind lists are the registry's.

use authprobe::probes::{InspectHow, KINDS};

use crate::util::*;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/probes.toml.example");

#[tokio::test]
async fn every_kind_has_a_validating_example() {
    let example = std::fs::read_to_string(EXAMPLE).expect("probes.toml.example");
    for kind in KINDS {
        assert!(
            example.contains(&format!("kind = \"{}\"", kind.name)),
            "probes.toml.example has no `{}` probe: add one (it is the README's demo and validate's corpus)",
            kind.name
        );
    }
    let env = harness_env();
    let out = authprobe_harness(&["validate", "-c", EXAMPLE], &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// A `check` URL, the flags and the environment variables it needs.
type CheckTarget = (String, Vec<String>, Vec<(String, String)>);

/// A `check` URL against the harness for a scheme, with the flags and variables it needs.
fn check_target(scheme: &str, env: &[(String, String)]) -> Option<CheckTarget> {
    let var = |name: &str| harness_var(env, name);
    let ca = var("AP_CA");
    let tls_args = vec!["--ca".to_string(), ca.clone()];
    let secret = |name: &str, value: &str| vec![(name.to_string(), var(value))];
    Some(match scheme {
        "http" => (format!("http://127.0.0.1:{}/health", var("AP_HTTP_PORT")), vec![], vec![]),
        "https" => (
            format!("https://localhost:{}/bearer", var("AP_HTTPS_PORT")),
            vec!["--bearer-env".into(), "AP_BEARER_TOKEN".into(), "--ca".into(), ca],
            vec![],
        ),
        "postgres" | "postgresql" => (
            format!("{scheme}://app_user@localhost:{}/appdb?sslmode=verify-full&sslrootcert={ca}", var("AP_PG_PORT")),
            vec![],
            secret("PGPASSWORD", "AP_PG_PASSWORD"),
        ),
        "mysql" | "mariadb" => (
            format!("{scheme}://app_user@localhost:{}/appdb?ssl-mode=verify-full&ssl-ca={ca}", var("AP_MYSQL_PORT")),
            vec![],
            secret("MYSQL_PWD", "AP_MYSQL_PASSWORD"),
        ),
        "mssql" | "sqlserver" => (
            format!("{scheme}://app_user@localhost:{}/?encrypt=verify-full&ssl-ca={ca}", var("AP_MSSQL_PORT")),
            vec![],
            secret("MSSQL_PASSWORD", "AP_MSSQL_PASSWORD"),
        ),
        "s3" => (
            format!(
                "s3://{}/?endpoint=https://localhost:{}&region=us-east-1",
                var("AP_S3_BUCKET"),
                var("AP_S3_TLS_PORT")
            ),
            tls_args,
            [secret("AWS_ACCESS_KEY_ID", "AP_S3_ACCESS_KEY"), secret("AWS_SECRET_ACCESS_KEY", "AP_S3_SECRET_KEY")]
                .concat(),
        ),
        "sftp" => (
            format!("sftp://sftp_pw@127.0.0.1:{}/~/data", var("AP_SSH_PORT")),
            vec!["--host-key".into(), var("AP_SSH_HOST_KEY")],
            secret("SSHPASS", "AP_SFTP_PASSWORD"),
        ),
        "ftp" => (
            format!("ftp://{}@localhost:{}/drop", var("AP_FTP_USER"), var("AP_FTP_PORT")),
            tls_args,
            secret("FTP_PASSWORD", "AP_FTP_PASSWORD"),
        ),
        "ftps" => (
            format!("ftps://{}@localhost:{}/drop", var("AP_FTP_USER"), var("AP_FTPS_PORT")),
            tls_args,
            secret("FTP_PASSWORD", "AP_FTP_PASSWORD"),
        ),
        _ => return None,
    })
}

#[tokio::test]
async fn every_check_scheme_of_every_kind_passes_against_its_real_server() {
    let env = harness_env();
    let mut checked = 0;
    for kind in KINDS {
        let Some(check) = &kind.check else { continue };
        for scheme in check.schemes {
            let Some((url, args, vars)) = check_target(scheme, &env) else {
                panic!("kind `{}` claims {scheme}:// for check: add a harness target for it here", kind.name);
            };
            let mut full_env = env.clone();
            full_env.extend(vars);
            let mut argv = vec!["check", url.as_str(), "--format", "json"];
            argv.extend(args.iter().map(String::as_str));
            let out = authprobe_harness(&argv, &full_env).await;
            assert_eq!(out.code, 0, "check {url}:\n{}{}", out.stdout, out.stderr);
            let report = out.json();
            assert_eq!(report["probes"][0]["kind"], kind.name, "check {url}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} check schemes were exercised");
}

#[tokio::test]
async fn every_inspect_scheme_of_every_kind_shows_what_its_real_server_presents() {
    let env = harness_env();
    let var = |name: &str| harness_var(&env, name);
    let ca = var("AP_CA");
    let mut inspected = 0;
    for kind in KINDS {
        let Some(inspect) = &kind.inspect else { continue };
        for scheme in inspect.schemes {
            let port = match kind.name {
                "http" => var("AP_HTTPS_PORT"),
                "postgres" => var("AP_PG_PORT"),
                "mysql" => var("AP_MYSQL_PORT"),
                "mssql" => var("AP_MSSQL_PORT"),
                "sftp" => var("AP_SSH_PORT"),
                "s3" => var("AP_S3_TLS_PORT"),
                "ftp" if *scheme == "ftps" => var("AP_FTPS_PORT"),
                "ftp" => var("AP_FTP_PORT"),
                other => panic!("kind `{other}` claims inspect: add its harness port here"),
            };
            let target = match inspect.how {
                InspectHow::Endpoint(_) => {
                    format!("{scheme}://{}/?endpoint=https://localhost:{port}", var("AP_S3_BUCKET"))
                }
                _ => format!("{scheme}://localhost:{port}"),
            };
            let out = match inspect.how {
                InspectHow::SshHostKeys => {
                    let out = authprobe_harness(&["inspect", &target], &env).await;
                    assert!(
                        out.stdout.contains(&format!("host_key = \"{}\"", var("AP_SSH_HOST_KEY"))),
                        "inspect {target}:\n{}{}",
                        out.stdout,
                        out.stderr
                    );
                    out
                }
                _ => {
                    let out = authprobe_harness(&["inspect", &target, "--ca", &ca], &env).await;
                    assert_eq!(out.code, 0, "inspect {target}:\n{}{}", out.stdout, out.stderr);
                    assert!(out.stdout.contains(&var("AP_SERVER_SHA256")), "inspect {target}:\n{}", out.stdout);
                    out
                }
            };
            assert!(out.stdout.contains(&format!("({}", inspect.label)), "inspect {target}:\n{}", out.stdout);
            inspected += 1;
        }
    }
    assert!(inspected >= 10, "only {inspected} inspect schemes were exercised");
}

/// The kinds table of docs/probes.md, as the registry renders it.
fn kinds_table() -> String {
    let schemes = |list: Option<&[&str]>| match list {
        Some(list) => list.iter().map(|s| format!("`{s}://`")).collect::<Vec<_>>().join(", "),
        None => "—".into(),
    };
    let mut table = String::from("| kind | checks | `check` URLs | `inspect` targets |\n|---|---|---|---|\n");
    for kind in KINDS {
        table += &format!(
            "| `{}` | {} | {} | {} |\n",
            kind.name,
            kind.description,
            schemes(kind.check.as_ref().map(|c| c.schemes)),
            schemes(kind.inspect.as_ref().map(|i| i.schemes)),
        );
    }
    table
}

#[test]
fn the_docs_list_the_registered_kinds() {
    let root = env!("CARGO_MANIFEST_DIR");
    let probes_md = std::fs::read_to_string(format!("{root}/docs/probes.md")).expect("docs/probes.md");
    let table = kinds_table();
    assert!(probes_md.contains(&table), "docs/probes.md must carry the registry's kinds table:\n\n{table}");
    let names: Vec<String> = KINDS.iter().map(|k| format!("`{}`", k.name)).collect();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let config_md = std::fs::read_to_string(format!("{root}/docs/config.md")).expect("docs/config.md");
    for (file, text, line_start) in
        [("README.md", &readme, "Probe kinds: "), ("docs/config.md", &config_md, "| `kind` | string | required | ")]
    {
        let line = text.lines().find(|l| l.starts_with(line_start)).unwrap_or_else(|| panic!("{file}: no kind list"));
        let listed = line.matches("`").count() / 2;
        for name in &names {
            assert!(line.contains(name.as_str()), "{file}'s kind list lacks {name}: {line}");
        }
        assert!(listed >= names.len(), "{file}'s kind list: {line}");
    }
}
