//! Approving certificates and host keys as records (`approve`, `approvals list|revoke`,
//! `--trust-new`), against the harness's real servers: nginx, PostgreSQL and MariaDB after
//! their protocol's TLS upgrade, the TDS stand-in, OpenSSH directly and the bastion.

use crate::formats::assert_matches_schema;
use crate::util::*;

/// Probes whose servers present the harness's certificate (or host key) and that do not
/// name its CA: each is refused until approved.
fn untrusted_probes() -> String {
    let mut cfg = String::new();
    cfg += "[[probe]]\nname = \"web\"\nkind = \"http\"\nurl = \"https://localhost:${AP_HTTPS_PORT}/bearer\"\n\
            auth = { type = \"bearer\", token = \"${AP_BEARER_TOKEN}\" }\n\n";
    cfg += "[[probe]]\nname = \"pg\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${AP_PG_PORT}\"\n\
            database = \"appdb\"\nuser = \"${AP_PG_USER}\"\npassword = \"${AP_PG_PASSWORD}\"\ntls = { mode = \"verify-full\" }\n\n";
    cfg += "[[probe]]\nname = \"mariadb\"\nkind = \"mysql\"\nhost = \"localhost\"\nport = \"${AP_MYSQL_PORT}\"\n\
            database = \"appdb\"\nuser = \"${AP_MYSQL_USER}\"\npassword = \"${AP_MYSQL_PASSWORD}\"\ntls = { mode = \"verify-full\" }\n\n";
    cfg += "[[probe]]\nname = \"tds\"\nkind = \"mssql\"\nhost = \"localhost\"\nport = \"${AP_MSSQL_PORT}\"\n\
            user = \"${AP_MSSQL_USER}\"\npassword = \"${AP_MSSQL_PASSWORD}\"\n\n";
    cfg += "[[probe]]\nname = \"sftp\"\nkind = \"sftp\"\nhost = \"127.0.0.1\"\nport = \"${AP_SSH_PORT}\"\n\
            user = \"${AP_SFTP_USER}\"\nauth = { type = \"password\", password = \"${AP_SFTP_PASSWORD}\" }\n\n";
    // Through the bastion, whose host key nothing approves yet; the target's CA is given.
    cfg += "[[tunnel]]\nname = \"bastion\"\nhost = \"127.0.0.1\"\nport = \"${AP_BASTION_PORT}\"\nuser = \"${AP_BASTION_USER}\"\n\
            auth = { type = \"key\", private_key = \"${AP_BASTION_DIR}/jump_ed25519\" }\n\n";
    cfg += "[[probe]]\nname = \"behind-bastion\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = \"${AP_INNER_PG_PORT}\"\n\
            database = \"appdb\"\nuser = \"${AP_PG_USER}\"\npassword = \"${AP_PG_PASSWORD}\"\ntls = { ca = \"${AP_CA}\", server_name = \"localhost\" }\nvia = \"bastion\"\n\n";
    cfg
}

const ALL: [&str; 6] = ["web", "pg", "mariadb", "tds", "sftp", "behind-bastion"];

async fn run(cfg: &std::path::Path, env: &[(String, String)], extra: &[&str]) -> (Output, serde_json::Value) {
    let mut args = vec!["run", "-c", cfg.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let out = authprobe_harness(&args, env).await;
    let report = out.json();
    (out, report)
}

#[tokio::test]
async fn approve_records_who_approved_what_and_probes_trust_it_until_revoked() {
    let env = harness_env();
    let ws = Workspace::new();
    let cfg = ws.config(&untrusted_probes());
    let approvals = ws.path("approvals.toml");

    let (_, before) = run(&cfg, &env, &[]).await;
    for (name, stage) in [("web", "tls"), ("pg", "tls"), ("mariadb", "tls"), ("tds", "auth")] {
        // SQL Server encrypts without verifying by default; the password is refused at auth.
        let p = assert_failed(&before, name, stage, "tls_untrusted");
        let command = format!("authprobe approve -c {} {name}", cfg.display());
        assert_eq!(p["approve"], serde_json::json!(command), "{p:#}");
        assert!(p["error"]["hint"].as_str().unwrap().contains(&command), "{p:#}");
    }
    assert_failed(&before, "sftp", "connect", "host_key");
    assert_failed(&before, "behind-bastion", "tunnel_connect", "host_key");
    assert_matches_schema(&ws, &serde_json::to_string(&before).unwrap());

    // Not a terminal and no --yes: nothing is asked, nothing is written.
    let refused = authprobe_harness(&["approve", "-c", cfg.to_str().unwrap(), "web"], &env).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("pass --yes"), "{}", refused.stderr);
    assert!(!approvals.exists());

    // A fingerprint received out of band that is not what the server presents: refused.
    let wrong = vec!["AB"; 32].join(":");
    let mismatch =
        authprobe_harness(&["approve", "-c", cfg.to_str().unwrap(), "web", "--sha256", &wrong, "--by", "alice"], &env)
            .await;
    assert_eq!(mismatch.code, 1, "{mismatch:?}");
    assert!(mismatch.stderr.contains("not the"), "{}", mismatch.stderr);
    assert!(!approvals.exists());

    let mut args = vec!["approve", "-c", cfg.to_str().unwrap()];
    args.extend(ALL);
    args.extend(["--yes", "--by", "alice"]);
    let approved = authprobe_harness(&args, &env).await;
    assert_eq!(approved.code, 0, "{approved:?}");
    for shown in ["subject", "issuer", "SHA-1", "SHA-256", "public key", "key type"] {
        assert!(approved.stderr.contains(shown), "approve shows {shown}: {}", approved.stderr);
    }
    let text = std::fs::read_to_string(&approvals).unwrap();
    for endpoint in [
        format!("localhost:{}", harness_var(&env, "AP_HTTPS_PORT")),
        format!("localhost:{}", harness_var(&env, "AP_PG_PORT")),
        format!("localhost:{}", harness_var(&env, "AP_MYSQL_PORT")),
        format!("localhost:{}", harness_var(&env, "AP_MSSQL_PORT")),
        format!("127.0.0.1:{}", harness_var(&env, "AP_SSH_PORT")),
        format!("127.0.0.1:{}", harness_var(&env, "AP_BASTION_PORT")),
    ] {
        assert!(text.contains(&format!("for = \"{endpoint}\"")), "{endpoint} approved:\n{text}");
    }
    assert!(text.contains("validated_by = \"alice\"") && text.contains("encoded_cert = \"MII"), "{text}");
    for secret in ["AP_PG_PASSWORD", "AP_MYSQL_PASSWORD", "AP_MSSQL_PASSWORD", "AP_SFTP_PASSWORD", "AP_BEARER_TOKEN"] {
        assert!(!text.contains(&harness_var(&env, secret)), "{secret} in the approvals file");
    }

    let (out, after) = run(&cfg, &env, &[]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    for name in ["web", "pg", "mariadb", "tds"] {
        let tls = &assert_passed(&after, name)["tls"];
        assert_eq!(tls["approved"]["by"], "alice", "{tls:#}");
        assert_eq!(tls["verified"], true);
    }
    assert_eq!(assert_passed(&after, "sftp")["host_key"]["approved"]["by"], "alice");
    assert_passed(&after, "behind-bastion");
    assert_matches_schema(&ws, &out.stdout);

    // inspect says whose approval it is; serve's status page too.
    let url = format!("https://localhost:{}/", harness_var(&env, "AP_HTTPS_PORT"));
    let inspect = authprobe_harness(&["inspect", &url, "--approvals", approvals.to_str().unwrap()], &env).await;
    assert_eq!(inspect.code, 0, "{inspect:?}");
    assert!(inspect.stdout.contains("approvals: approved by alice on "), "{}", inspect.stdout);
    let serve = crate::serve::Serve::start(&cfg, &["--min-interval", "0s"], &env).await;
    let (status, body) = serve.get("/probe?target=web").await;
    assert_eq!(status, 200);
    assert!(body.contains("probe_success 1"), "{body}");
    let (_, page) = serve.get("/").await;
    assert!(page.contains("approved by alice on "), "{page}");
    drop(serve);

    // Listed, in both forms; a second approve has nothing to do.
    let list = authprobe_harness(&["approvals", "list", "-c", cfg.to_str().unwrap(), "--format", "json"], &env).await;
    let listed: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 6, "{listed:#}");
    let again = authprobe_harness(&["approve", "-c", cfg.to_str().unwrap(), "web", "--yes"], &env).await;
    assert_eq!(again.code, 0);
    assert!(again.stderr.contains("approved already (by alice"), "{}", again.stderr);

    // Revoked: refused again. An unknown fingerprint exits 2 and lists the known ones.
    let web_sha = after["probes"][0]["tls"]["sha256"].as_str().unwrap().to_string();
    let unknown = authprobe_harness(&["approvals", "revoke", "-c", cfg.to_str().unwrap(), &wrong], &env).await;
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains(&web_sha), "{}", unknown.stderr);
    let revoked = authprobe_harness(&["approvals", "revoke", "-c", cfg.to_str().unwrap(), &web_sha], &env).await;
    assert_eq!(revoked.code, 0, "{revoked:?}");
    let (_, revoked_run) = run(&cfg, &env, &[]).await;
    // The harness serves one certificate everywhere: all four TLS approvals went with it.
    for (name, stage) in [("web", "tls"), ("pg", "tls"), ("mariadb", "tls"), ("tds", "auth")] {
        assert_failed(&revoked_run, name, stage, "tls_untrusted");
    }
    assert_passed(&revoked_run, "sftp");
}

/// A server that presents another certificate or host key than the approved one fails,
/// naming who approved which; the untrusted-CA server stands for "restarted with a new
/// certificate" by carrying the approval made for the main nginx port.
#[tokio::test]
async fn a_changed_certificate_or_host_key_names_the_approval_it_no_longer_matches() {
    let env = harness_env();
    let ws = Workspace::new();
    let https = harness_var(&env, "AP_HTTPS_PORT");
    let other = harness_var(&env, "AP_UNTRUSTED_PORT");
    let cfg = ws.config(&format!(
        "[[probe]]\nname = \"web\"\nkind = \"http\"\nurl = \"https://localhost:{https}/\"\n\n\
         [[probe]]\nname = \"rebuilt\"\nkind = \"http\"\nurl = \"https://localhost:{other}/\"\n\n\
         [[probe]]\nname = \"sftp\"\nkind = \"sftp\"\nhost = \"127.0.0.1\"\nport = \"${{AP_SSH_PORT}}\"\n\
         user = \"${{AP_SFTP_USER}}\"\nauth = {{ type = \"password\", password = \"${{AP_SFTP_PASSWORD}}\" }}\n\n\
         [[probe]]\nname = \"bastion-as-sftp\"\nkind = \"sftp\"\nhost = \"127.0.0.1\"\nport = \"${{AP_BASTION_PORT}}\"\n\
         user = \"${{AP_SFTP_USER}}\"\nauth = {{ type = \"password\", password = \"${{AP_SFTP_PASSWORD}}\" }}\n"
    ));
    let approved =
        authprobe_harness(&["approve", "-c", cfg.to_str().unwrap(), "web", "sftp", "--yes", "--by", "alice"], &env)
            .await;
    assert_eq!(approved.code, 0, "{approved:?}");
    // The records now say the other servers are these endpoints' own (as if they were
    // rebuilt with new certificates and keys since).
    let approvals = ws.path("approvals.toml");
    let text = std::fs::read_to_string(&approvals).unwrap();
    let bastion = harness_var(&env, "AP_BASTION_PORT");
    let moved = text.replace(&format!("for = \"localhost:{https}\""), &format!("for = \"localhost:{other}\"")).replace(
        &format!("for = \"127.0.0.1:{}\"", harness_var(&env, "AP_SSH_PORT")),
        &format!("for = \"127.0.0.1:{bastion}\""),
    );
    std::fs::write(&approvals, moved).unwrap();
    let (_, report) = run(&cfg, &env, &[]).await;
    let rebuilt = assert_failed(&report, "rebuilt", "tls", "tls_untrusted");
    let message = rebuilt["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("the certificate changed: approved SHA-256 "), "{message}");
    assert!(
        message.contains("by alice on ") && message.contains("now presents") && message.contains("issuer"),
        "{message}"
    );
    assert!(rebuilt["error"]["hint"].as_str().unwrap().contains("authprobe approve -c"), "{rebuilt:#}");
    let key = assert_failed(&report, "bastion-as-sftp", "connect", "host_key");
    let message = key["error"]["message"].as_str().unwrap();
    assert!(message.contains("changed: approved ssh-") && message.contains("by alice on "), "{message}");
    // The approval of the approvals' own endpoints moved away: those are simply unknown.
    assert_failed(&report, "web", "tls", "tls_untrusted");

    // The owner's report: what awaits approval, every field, and the command.
    let markdown = authprobe_harness(&["run", "-c", cfg.to_str().unwrap(), "--format", "markdown"], &env).await;
    assert!(markdown.stdout.contains("### Awaiting approval"), "{}", markdown.stdout);
    for field in ["Subject", "Issuer", "Valid", "SHA-1", "SHA-256", "Public key", "Approve with"] {
        assert!(markdown.stdout.contains(field), "{field}: {}", markdown.stdout);
    }
    // A connector's setup tests: one per probe, the certificate awaiting approval in details.
    let setup = authprobe_harness(&["run", "-c", cfg.to_str().unwrap(), "--format", "setup-tests"], &env).await;
    let tests: serde_json::Value = serde_json::from_str(&setup.stdout).unwrap();
    let rebuilt = tests.as_array().unwrap().iter().find(|t| t["title"] == "rebuilt (http)").unwrap();
    assert_eq!(rebuilt["status"], "FAILED");
    let cert = &rebuilt["details"]["certificate"];
    for field in ["hash", "name", "public_key", "sha1", "sha256", "type"] {
        assert!(cert[field].as_str().is_some_and(|v| !v.is_empty()), "{field}: {rebuilt:#}");
    }
    assert_eq!(cert["type"], "TLS");
}

/// `--trust-new` approves what it sees first and records it once; a change is never
/// approved that way.
#[tokio::test]
async fn trust_new_records_once_and_never_approves_a_change() {
    let env = harness_env();
    let ws = Workspace::new();
    let https = harness_var(&env, "AP_HTTPS_PORT");
    let cfg = ws.config(&format!(
        "[[probe]]\nname = \"web\"\nkind = \"http\"\nurl = \"https://localhost:{https}/\"\n\n\
         [[probe]]\nname = \"sftp\"\nkind = \"sftp\"\nhost = \"127.0.0.1\"\nport = \"${{AP_SSH_PORT}}\"\n\
         user = \"${{AP_SFTP_USER}}\"\nauth = {{ type = \"password\", password = \"${{AP_SFTP_PASSWORD}}\" }}\n"
    ));
    let approvals = ws.path("approvals.toml");
    let (first, report) = run(&cfg, &env, &["--trust-new"]).await;
    assert!(first.stderr.contains("--trust-new approved 2"), "{}", first.stderr);
    assert_eq!(probe(&report, "web")["tls"]["approved"]["by"], "trust-new", "{report:#}");
    assert_eq!(probe(&report, "sftp")["host_key"]["approved"]["by"], "trust-new");
    let recorded = std::fs::read_to_string(&approvals).unwrap();
    assert_eq!(recorded.matches("\n[[approved]]\n").count(), 2, "{recorded}");
    let (second, _) = run(&cfg, &env, &["--trust-new"]).await;
    assert!(!second.stderr.contains("--trust-new approved"), "nothing new: {}", second.stderr);
    assert_eq!(std::fs::read_to_string(&approvals).unwrap(), recorded, "the file is not written again");

    // The web endpoint's record now names another certificate: a change, refused.
    let tls_entry = recorded.find("type = \"tls\"").unwrap();
    let at = recorded[tls_entry..].find("sha256 = \"").unwrap() + tls_entry + "sha256 = \"".len();
    let mut edited = recorded.clone();
    let other = if &recorded[at..at + 2] == "00" { "11" } else { "00" };
    edited.replace_range(at..at + 2, other);
    std::fs::write(&approvals, &edited).unwrap();
    let (_, report) = run(&cfg, &env, &["--trust-new"]).await;
    let web = assert_failed(&report, "web", "tls", "tls_untrusted");
    assert!(web["error"]["message"].as_str().unwrap().contains("changed"), "{web:#}");
    assert_eq!(std::fs::read_to_string(&approvals).unwrap(), edited, "a change is never approved by --trust-new");
}

/// Two `approve` runs at once each read the file under its lock and add their own entry:
/// neither is lost.
#[tokio::test]
async fn concurrent_approvals_keep_both_entries() {
    let env = harness_env();
    let ws = Workspace::new();
    let cfg = ws.config(&untrusted_probes());
    let cfg = cfg.to_str().unwrap();
    let first = ["approve", "-c", cfg, "web", "--yes", "--by", "alice"];
    let second = ["approve", "-c", cfg, "sftp", "--yes", "--by", "bob"];
    let (a, b) = tokio::join!(authprobe_harness(&first, &env), authprobe_harness(&second, &env));
    assert_eq!((a.code, b.code), (0, 0), "{a:?} {b:?}");
    let text = std::fs::read_to_string(ws.path("approvals.toml")).unwrap();
    assert!(text.contains("validated_by = \"alice\"") && text.contains("validated_by = \"bob\""), "{text}");
    // A malformed file is a config error: nothing runs.
    std::fs::write(ws.path("approvals.toml"), "[[approved]]\ntype = \"tls\"\nfor = \"x:1\"\nsha256 = \"zz\"\n")
        .unwrap();
    let out = authprobe_harness(&["run", "-c", cfg], &env).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("approvals.toml:4:"), "{}", out.stderr);
}

/// An approved certificate that has expired still fails `tls_expired`; `--ca-of-chain`
/// approves the issuing CA, so the server's own certificate is trusted through it; a URL is
/// approved without a config, into ./approvals.toml.
#[tokio::test]
async fn expired_approvals_fail_and_a_ca_of_the_chain_or_a_url_can_be_approved() {
    let env = harness_env();
    let ws = Workspace::new();
    let expired = harness_var(&env, "AP_EXPIRED_PORT");
    let https = harness_var(&env, "AP_HTTPS_PORT");
    let cfg = ws.config(&format!(
        "[[probe]]\nname = \"expired\"\nkind = \"http\"\nurl = \"https://localhost:{expired}/\"\n\n\
         [[probe]]\nname = \"pg\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${{AP_PG_PORT}}\"\n\
         database = \"appdb\"\nuser = \"${{AP_PG_USER}}\"\npassword = \"${{AP_PG_PASSWORD}}\"\ntls = {{ mode = \"verify-full\" }}\n"
    ));
    let cfg = cfg.to_str().unwrap();
    let approved = authprobe_harness(&["approve", "-c", cfg, "expired", "--yes", "--by", "alice"], &env).await;
    assert_eq!(approved.code, 0, "{approved:?}");
    // PostgreSQL sends its certificate's issuer too (nginx here sends only its own).
    let by_ca = authprobe_harness(&["approve", "-c", cfg, "pg", "--ca-of-chain", "--yes", "--by", "carol"], &env).await;
    assert_eq!(by_ca.code, 0, "{by_ca:?}");
    assert!(by_ca.stderr.contains("approving the chain's top certificate: CN=authprobe Test CA"), "{}", by_ca.stderr);
    let text = std::fs::read_to_string(ws.path("approvals.toml")).unwrap();
    assert!(text.contains("name = \"CN=authprobe Test CA, O=authprobe tests\""), "{text}");

    let (_, report) = run(std::path::Path::new(cfg), &env, &[]).await;
    assert_failed(&report, "expired", "tls", "tls_expired");
    let pg = assert_passed(&report, "pg");
    assert_eq!(pg["tls"]["approved"]["by"], "carol", "{pg:#}");

    // Without a config: the URL's probe, recorded beside where the command runs.
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = ws.path("elsewhere");
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("https://localhost:{https}/");
    let out = authprobe_in(Some(&dir), &["approve", &url, "--yes", "--by", "dave"], &pairs).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(std::fs::read_to_string(dir.join("approvals.toml")).unwrap().contains("validated_by = \"dave\""));
    let check = authprobe_in(Some(&dir), &["check", &url, "--expect-status", "404", "--format", "json"], &pairs).await;
    assert_eq!(check.json()["probes"][0]["tls"]["approved"]["by"], "dave", "{}", check.stdout);
}

/// A server restarted with a new certificate: `openssl s_server` on one port, first with
/// one self-signed certificate (approved by alice), then with another.
#[tokio::test]
async fn a_server_restarted_with_a_new_certificate_names_who_approved_the_old_one() {
    let env = harness_env();
    let ws = Workspace::new();
    let openssl = require_tool("openssl");
    for name in ["old", "new"] {
        let made = std::process::Command::new(&openssl)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30"])
            .args(["-subj", &format!("/CN=localhost/O={name}"), "-addext", "subjectAltName=DNS:localhost"])
            .args(["-keyout", ws.path(&format!("{name}.key")).to_str().unwrap()])
            .args(["-out", ws.path(&format!("{name}.pem")).to_str().unwrap()])
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let serve = |name: &str| {
        let child = tokio::process::Command::new(&openssl)
            .args(["s_server", "-quiet", "-www", "-accept", &format!("127.0.0.1:{port}")])
            .args(["-cert", ws.path(&format!("{name}.pem")).to_str().unwrap()])
            .args(["-key", ws.path(&format!("{name}.key")).to_str().unwrap()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        async move {
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                    return child;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("openssl s_server did not listen on {port}");
        }
    };
    let cfg = ws.config(&format!("[[probe]]\nname = \"drop\"\nkind = \"http\"\nurl = \"https://localhost:{port}/\"\n"));
    let cfg = cfg.to_str().unwrap();
    let mut server = serve("old").await;
    let approved = authprobe_harness(&["approve", "-c", cfg, "drop", "--yes", "--by", "alice"], &env).await;
    assert_eq!(approved.code, 0, "{approved:?}");
    let (_, report) = run(std::path::Path::new(cfg), &env, &[]).await;
    assert_eq!(assert_passed(&report, "drop")["tls"]["approved"]["by"], "alice");
    let old_sha = report["probes"][0]["tls"]["sha256"].as_str().unwrap().to_string();
    server.kill().await.unwrap();
    let _server = serve("new").await;
    let (_, report) = run(std::path::Path::new(cfg), &env, &[]).await;
    let failed = assert_failed(&report, "drop", "tls", "tls_untrusted");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("approved SHA-256 {old_sha} by alice on ")), "{message}");
    assert!(message.contains("issuer CN=localhost, O=new"), "{message}");
    // Approved again by bob: the new approval replaces alice's.
    let again = authprobe_harness(&["approve", "-c", cfg, "drop", "--yes", "--by", "bob"], &env).await;
    assert!(again.stderr.contains(&format!("replaces the approval of SHA-256 {old_sha} by alice")), "{}", again.stderr);
    let (_, report) = run(std::path::Path::new(cfg), &env, &[]).await;
    assert_eq!(assert_passed(&report, "drop")["tls"]["approved"]["by"], "bob");
}
