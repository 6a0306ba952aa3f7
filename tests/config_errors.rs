//! A broken config is reported precisely (file, line, column, probe, key), never shows a
//! secret, and stops the run with exit 2 before any network traffic.

use crate::util::servers;
use crate::util::*;

#[tokio::test]
async fn a_bad_config_exits_2_with_positions_and_sends_nothing() {
    let server = servers::http().await;
    let ws = Workspace::new();
    let good = http_probe("good", &server.url("http", "/health"), "");
    let cfg = format!(
        "{good}[[probe]]\nname = \"typo\"\nkind = \"http\"\nurl = \"{}\"\nmethdo = \"GET\"\n\n[[probe]]\nname = \"good\"\nkind = \"http\"\nurl = \"{}\"\nauth = {{ type = \"bearer\", token = \"${{NOT_SET_ANYWHERE}}\" }}\n",
        server.url("http", "/"),
        server.url("http", "/")
    );
    let path = ws.config(&cfg);
    let p = path.to_str().unwrap();
    for command in [vec!["run", "-c", p], vec!["validate", "-c", p]] {
        let out = authprobe(&command, &[]).await;
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        assert!(
            out.stderr.contains(&format!(
                "{p}:11:1: probe `typo`, key `methdo`: unknown key `methdo` (did you mean `method`?)"
            )),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!(
                "{p}:14:8: probe `good`, key `name`: duplicate probe name (first defined at line 1)"
            )),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("key `auth.token`: environment variable NOT_SET_ANYWHERE is not set"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("3 errors found; nothing was run"), "{}", out.stderr);
    }
    assert_eq!(server.requests(), 0, "a config error must stop the run before any traffic");
}

#[tokio::test]
async fn unreadable_files_and_wrong_types_are_config_errors() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "[defaults]\nconcurrency = \"many\"\n\n[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://127.0.0.1:9/\"\ntags = \"prod\"\ntls = { ca = \"missing-ca.pem\" }\nauth = { type = \"bearer\", token = \"${file:missing-token}\" }\n",
    );
    let out = authprobe(&["validate", "-c", cfg.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 2);
    let err = &out.stderr;
    assert!(err.contains(":2:15: key `defaults.concurrency`: expected an integer, found a string"), "{err}");
    assert!(err.contains(":8:8: probe `a`, key `tags`: expected an array of strings, found a string"), "{err}");
    assert!(err.contains("probe `a`, key `tls.ca`: cannot read") && err.contains("missing-ca.pem"), "{err}");
    assert!(err.contains("probe `a`, key `auth.token`: cannot read") && err.contains("missing-token"), "{err}");
}

#[tokio::test]
async fn validate_accepts_a_good_config_without_showing_secrets() {
    let ws = Workspace::new();
    ws.write("token", "CANARY-file-secret-112233\n");
    let cfg =
        ws.config(&http_probe("a", "https://127.0.0.1:9/", "auth = { type = \"bearer\", token = \"${file:token}\" }"));
    let out = authprobe(&["validate", "-c", cfg.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("OK, 1 probe (1 http)"), "{out:?}");
    assert!(!out.stdout.contains("CANARY") && !out.stderr.contains("CANARY"), "{out:?}");
}

#[tokio::test]
async fn the_config_path_comes_from_the_environment_or_the_working_directory() {
    let ws = Workspace::new();
    ws.config(&http_probe("a", "http://127.0.0.1:9/", ""));
    let out = authprobe_in(Some(ws.dir.path()), &["validate"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let elsewhere = Workspace::new();
    let named = ws.path("probes.toml");
    let out =
        authprobe_in(Some(elsewhere.dir.path()), &["validate"], &[("AUTHPROBE_CONFIG", named.to_str().unwrap())]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = authprobe_in(Some(elsewhere.dir.path()), &["validate"], &[]).await;
    assert_eq!(out.code, 2);
    // No position for a file that is not there, and the way out: -c, the variable, the example.
    assert!(out.stderr.contains("error: probes.toml: there is no such config file"), "{}", out.stderr);
    assert!(out.stderr.contains("-c FILE") && out.stderr.contains("probes.toml.example"), "{}", out.stderr);
    assert!(!out.stderr.contains(":0:0"), "{}", out.stderr);
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let out = authprobe(&["run", "--format", "yaml"], &[]).await;
    assert_eq!(out.code, 2);
    let out = authprobe(&["run", "--timeout", "soon"], &[]).await;
    assert_eq!(out.code, 2);
    let ws = Workspace::new();
    let cfg = ws.config(&http_probe("a", "http://127.0.0.1:9/", ""));
    let out = authprobe(&["run", "-c", cfg.to_str().unwrap(), "--only", "nothing-matches"], &[]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no probe"), "{}", out.stderr);
}

/// A config whose environment was not loaded gets one line saying so, and a type error in
/// one key does not make the keys after it look unknown; a status written as a string is
/// what it says.
#[tokio::test]
async fn a_missing_environment_and_a_bad_value_are_told_plainly() {
    let ws = Workspace::new();
    let cfg = "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://x.test/${ONE}\"\nheaders = { X-Three = \"${THREE}\" }\nbody = \"${TWO}\"\n";
    let out = authprobe(&["validate", "-c", ws.config(cfg).to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("hint: 3 environment variables the config refers to are not set (ONE, THREE, TWO)"),
        "{}",
        out.stderr
    );
    let cfg = "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://x.test/\"\nexpect = { status = \"two hundred\" }\ntls = { insecure = true }\nauth = { type = \"none\" }\n";
    let out = authprobe(&["validate", "-c", ws.config(cfg).to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("expected an integer, e.g. 200"), "{}", out.stderr);
    assert!(!out.stderr.contains("unknown key"), "{}", out.stderr);
    let cfg = "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://x.test/\"\nexpect = { status = \"204\" }\n";
    let out = authprobe(&["validate", "-c", ws.config(cfg).to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// `tls.mode = "strict"` is SQL Server's TDS 8: accepted for mssql, a config error elsewhere.
#[tokio::test]
async fn strict_tls_mode_belongs_to_mssql_only() {
    let ws = Workspace::new();
    let db = |kind: &str| {
        format!(
            "[[probe]]\nname = \"{kind}\"\nkind = \"{kind}\"\nhost = \"127.0.0.1\"\nuser = \"u\"\npassword = \"p\"\ntls = {{ mode = \"strict\" }}\n\n"
        )
    };
    let path = ws.config(&format!("{}{}{}", db("mssql"), db("postgres"), db("mysql")));
    let out = authprobe(&["validate", "-c", path.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("probe `postgres`, key `tls`: tls.mode = \"strict\" is SQL Server's TDS 8"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("probe `mysql`, key `tls`"), "{}", out.stderr);
    assert!(!out.stderr.contains("probe `mssql`") && out.stderr.contains("2 errors found"), "{}", out.stderr);
}

/// Numbers and switches written as strings (a reference, or a form whose values are all
/// strings, as the Python API's dict probes are) read as what they say; anything else is
/// still a type error naming the key.
#[tokio::test]
async fn numbers_and_switches_may_be_strings_that_say_them() {
    let ws = Workspace::new();
    let good = ws.config(
        "[defaults]\nconcurrency = \"4\"\n\n[[probe]]\nname = \"a\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = \"5432\"\n\
         user = \"u\"\npassword = \"p\"\nwarn_expiry_days = \" 30 \"\nallow_unverified_password = \"true\"\n",
    );
    let out = authprobe(&["validate", "-c", good.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let bad = ws.config(
        "[[probe]]\nname = \"a\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nuser = \"u\"\npassword = \"p\"\n\
         warn_expiry_days = \"soon\"\nallow_unverified_password = \"yes\"\n",
    );
    let out = authprobe(&["validate", "-c", bad.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("key `warn_expiry_days`: expected an integer, found a string"), "{}", out.stderr);
    assert!(
        out.stderr.contains("key `allow_unverified_password`: expected true or false, found a string"),
        "{}",
        out.stderr
    );
}

/// One credential used by a production probe and a test one is a warning at the later
/// key, naming both probes and never the value; within one environment, or for untagged
/// probes, it is nothing. A secret store's reference counts as its value.
#[tokio::test]
async fn production_and_test_sharing_a_secret_is_a_warning_without_the_value() {
    let ws = Workspace::new();
    let pg = |name: &str, password: &str, tags: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nuser = \"app\"\n\
             password = \"{password}\"\ntags = [{tags}]\n\n"
        )
    };
    let cfg = ws.config(
        &[
            pg("orders-prod", "${SHARED_PW}", "\"team-a\", \"prod\""),
            pg("orders-prod-replica", "${SHARED_PW}", "\"production\""),
            pg("orders-staging", "${SHARED_PW}", "\"staging\""),
            pg("untagged", "${SHARED_PW}", ""),
            pg("vault-prod", "${vault:secret/orders#password}", "\"prod\""),
            pg("vault-sandbox", "${vault:secret/orders#password}", "\"sandbox\""),
            pg("vault-other-path", "${vault:secret/orders-test#password}", "\"dev\""),
            "[[probe]]\nname = \"api-dev\"\nkind = \"http\"\nurl = \"https://u:${SHARED_PW}@127.0.0.1/\"\ntags = [\"dev\"]\n"
                .to_string(),
        ]
        .concat(),
    );
    let secret = "correct-horse-battery";
    let env = [("SHARED_PW", secret), ("VAULT_ADDR", "https://127.0.0.1:8200"), ("VAULT_TOKEN", "t")];
    let out = authprobe(&["validate", "-c", cfg.to_str().unwrap()], &env).await;
    assert_eq!(out.code, 0, "a warning never stops a run: {out:?}");
    let warnings: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("warning:")).collect();
    assert!(
        warnings.iter().any(|w| w.contains(":22:12: probe `orders-staging`, key `password`: the same secret as probe `orders-prod` (key `password`, production) is used here in test")),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("probe `vault-sandbox`, key `password`: the same secret as probe `vault-prod`")),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("probe `api-dev`, key `url`: the same secret as probe `orders-prod`")),
        "{warnings:#?}"
    );
    assert_eq!(warnings.len(), 3, "same environment, untagged and other paths say nothing: {warnings:#?}");
    assert!(!out.stderr.contains(secret) && !out.stdout.contains(secret), "{out:?}");
    // `[defaults] environments` replaces the tags that mean production and test.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let custom =
        ws.config(&format!("[defaults]\nenvironments = {{ live = [\"team-a\"], rest = [\"production\"] }}\n\n{text}"));
    let out = authprobe(&["validate", "-c", custom.to_str().unwrap()], &env).await;
    assert!(out.stderr.contains("probe `orders-prod-replica`, key `password`: the same secret as probe `orders-prod` (key `password`, live) is used here in rest"), "{}", out.stderr);
}
