//! The sftp probe against the harness's real OpenSSH: every login method, every class it
//! claims (produced by sshd for real), and host keys checked by pins and known_hosts files
//! written by OpenSSH's own tools.

use std::process::Command;

use crate::util::*;

/// An sftp probe on the harness's sshd with the given extra lines.
fn sftp_probe(name: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"sftp\"\nhost = \"127.0.0.1\"\nport = \"${{AP_SSH_PORT}}\"\n{extra}\n\n"
    )
}

const PINNED: &str = "host_key = \"${AP_SSH_HOST_KEY}\"";
const PASSWORD_USER: &str = "user = \"${AP_SFTP_USER}\"";
const KEY_USER: &str = "user = \"${AP_SFTP_KEY_USER}\"";
const PASSWORD: &str = "auth = { type = \"password\", password = \"${AP_SFTP_PASSWORD}\" }";

fn key_auth(file: &str) -> String {
    format!("auth = {{ type = \"key\", private_key = \"${{AP_SSH_DIR}}/{file}\" }}")
}

/// Runs an OpenSSH tool and returns its stdout; a failure fails the test.
fn tool(name: &str, args: &[&str], env: &[(String, String)]) -> String {
    let out = Command::new(require_tool(name))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(out.status.success(), "{name} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn sftp_logins_and_directories_are_judged_by_openssh() {
    let env = harness_env();
    let ws = Workspace::new();
    let ssh_dir = harness_var(&env, "AP_SSH_DIR");
    // A copy of a valid key that group and others may read: ssh refuses such keys, so the
    // probe warns.
    let loose = ws.path("loose_ed25519");
    std::fs::copy(format!("{ssh_dir}/client_ed25519"), &loose).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let wrong_password = "CANARY-sftp-wrong-pw-3f9a1c";
    let mut cfg = String::new();
    cfg += &sftp_probe("password", &format!("{PASSWORD_USER}\n{PASSWORD}\n{PINNED}\npath = \"data\""));
    cfg += &sftp_probe(
        "wrong-password",
        &format!("{PASSWORD_USER}\nauth = {{ type = \"password\", password = \"{wrong_password}\" }}\n{PINNED}"),
    );
    cfg +=
        &sftp_probe("key-ed25519", &format!("{KEY_USER}\n{}\n{PINNED}\npath = \"data\"", key_auth("client_ed25519")));
    cfg += &sftp_probe(
        "key-encrypted",
        &format!(
            "{KEY_USER}\nauth = {{ type = \"key\", private_key = \"${{AP_SSH_DIR}}/client_ed25519_encrypted\", passphrase = \"${{AP_SFTP_KEY_PASSPHRASE}}\" }}\n{PINNED}"
        ),
    );
    cfg +=
        &sftp_probe("key-rsa-pem", &format!("{KEY_USER}\n{}\n{PINNED}\npath = \"/tmp\"", key_auth("client_rsa_pem")));
    cfg += &sftp_probe("key-not-authorized", &format!("{KEY_USER}\n{}\n{PINNED}", key_auth("stranger_ed25519")));
    cfg += &sftp_probe(
        "key-loose-permissions",
        &format!("{KEY_USER}\nauth = {{ type = \"key\", private_key = \"{}\" }}\n{PINNED}", loose.display()),
    );
    cfg += &sftp_probe("missing-directory", &format!("{PASSWORD_USER}\n{PASSWORD}\n{PINNED}\npath = \"no/such/dir\""));
    cfg += &sftp_probe("unreadable-directory", &format!("{PASSWORD_USER}\n{PASSWORD}\n{PINNED}\npath = \"private\""));
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json", "-vv"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for secret in
        [harness_var(&env, "AP_SFTP_PASSWORD"), harness_var(&env, "AP_SFTP_KEY_PASSPHRASE"), wrong_password.to_string()]
    {
        assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret), "a secret leaked:\n{}", out.stdout);
    }
    let report = out.json();
    let host_key = harness_var(&env, "AP_SSH_HOST_KEY");
    for name in ["password", "key-ed25519", "key-encrypted", "key-rsa-pem"] {
        let p = assert_passed(&report, name);
        assert_eq!(p["host_key"]["algorithm"], "ssh-ed25519", "{p:#}");
        assert_eq!(p["host_key"]["sha256"], host_key.as_str(), "{p:#}");
        assert_eq!(p["host_key"]["verified"], true, "{p:#}");
        assert_eq!(p["host_key"]["host"], format!("127.0.0.1:{}", harness_var(&env, "AP_SSH_PORT")), "{p:#}");
        assert!(p["tls"].is_null(), "{p:#}");
        let stages: Vec<&str> = p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(stages, ["dns", "connect", "auth", "check"], "{p:#}");
    }
    let loose_probe = probe(&report, "key-loose-permissions");
    assert_eq!(loose_probe["status"], "warn", "{loose_probe:#}");
    assert!(loose_probe["warnings"][0].as_str().unwrap().contains("mode 0644"), "{loose_probe:#}");

    let wrong = assert_failed(&report, "wrong-password", "auth", "auth_rejected");
    let message = wrong["error"]["message"].as_str().unwrap();
    assert!(message.contains("refused the password for `sftp_pw`"), "{message}");
    assert!(message.contains("the server offers: publickey, gssapi-with-mic, password"), "{message}");
    let stranger = assert_failed(&report, "key-not-authorized", "auth", "auth_rejected");
    assert!(stranger["error"]["message"].as_str().unwrap().contains("stranger_ed25519"), "{stranger:#}");
    let missing = assert_failed(&report, "missing-directory", "check", "not_found");
    assert!(missing["error"]["message"].as_str().unwrap().contains("`no/such/dir` does not exist"), "{missing:#}");
    assert_failed(&report, "unreadable-directory", "check", "permission_denied");
}

#[tokio::test]
async fn host_keys_are_checked_against_pins_and_known_hosts() {
    let env = harness_env();
    let ws = Workspace::new();
    let port = harness_var(&env, "AP_SSH_PORT");
    let host_key = harness_var(&env, "AP_SSH_HOST_KEY");
    let ssh_dir = harness_var(&env, "AP_SSH_DIR");
    // known_hosts files written by OpenSSH's own tools.
    let scanned = tool("ssh-keyscan", &["-p", &port, "-t", "ed25519", "127.0.0.1"], &[]);
    assert!(scanned.starts_with(&format!("[127.0.0.1]:{port} ssh-ed25519 ")), "{scanned}");
    ws.write("known_hosts", &scanned);
    ws.write("known_hosts_hashed", &scanned);
    tool("ssh-keygen", &["-H", "-f", ws.path("known_hosts_hashed").to_str().unwrap()], &[]);
    let hashed = std::fs::read_to_string(ws.path("known_hosts_hashed")).unwrap();
    assert!(hashed.starts_with("|1|"), "{hashed}");
    // The same host listed with another ed25519 key: the server's key "changed".
    let stranger = std::fs::read_to_string(format!("{ssh_dir}/stranger_ed25519.pub")).unwrap();
    let stranger_key: Vec<&str> = stranger.split_whitespace().take(2).collect();
    ws.write("known_hosts_changed", &format!("# rebuilt?\n[127.0.0.1]:{port} {}\n", stranger_key.join(" ")));
    // Listed on port 22 only: another host entry than the server's port.
    ws.write("known_hosts_other_port", &scanned.replacen(&format!("[127.0.0.1]:{port}"), "127.0.0.1", 1));
    ws.write("known_hosts_revoked", &format!("@revoked {scanned}"));
    let stranger_fp =
        tool("ssh-keygen", &["-l", "-E", "sha256", "-f", &format!("{ssh_dir}/stranger_ed25519.pub")], &[]);
    let stranger_fp = stranger_fp.split_whitespace().nth(1).unwrap().to_string();

    let login = format!("{PASSWORD_USER}\n{PASSWORD}");
    let known = |file: &str| format!("{login}\nknown_hosts = \"{}\"", ws.path(file).display());
    let mut cfg = String::new();
    cfg += &sftp_probe("no-host-key-configured", &login);
    cfg += &sftp_probe("pin-mismatch", &format!("{login}\nhost_key = \"{stranger_fp}\""));
    cfg += &sftp_probe(
        "pin-with-algorithm",
        &format!("{login}\nhost_key = [\"{stranger_fp}\", \"ssh-ed25519 {host_key}\"]"),
    );
    cfg += &sftp_probe("known-hosts", &known("known_hosts"));
    cfg += &sftp_probe("known-hosts-hashed", &known("known_hosts_hashed"));
    cfg += &sftp_probe("known-hosts-changed", &known("known_hosts_changed"));
    cfg += &sftp_probe("known-hosts-other-port", &known("known_hosts_other_port"));
    cfg += &sftp_probe("known-hosts-revoked", &known("known_hosts_revoked"));
    let path = ws.config(&cfg);
    let (out, report) = run_json(&path, &env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>()).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for name in ["pin-with-algorithm", "known-hosts", "known-hosts-hashed"] {
        assert_passed(&report, name);
    }
    let approve = format!("host_key = \"{host_key}\"");
    let unknown = assert_failed(&report, "no-host-key-configured", "connect", "host_key");
    assert!(unknown["error"]["message"].as_str().unwrap().contains(&format!("ssh-ed25519 {host_key}")), "{unknown:#}");
    assert_eq!(unknown["error"]["hint"].as_str().unwrap().matches(&approve).count(), 1, "{unknown:#}");
    assert_eq!(unknown["host_key"]["sha256"], host_key.as_str(), "{unknown:#}");
    assert_eq!(unknown["host_key"]["verified"], false, "{unknown:#}");
    let mismatch = assert_failed(&report, "pin-mismatch", "connect", "host_key");
    assert!(mismatch["error"]["message"].as_str().unwrap().contains("matches no pinned host_key"), "{mismatch:#}");
    assert!(mismatch["error"]["hint"].as_str().unwrap().contains(&approve), "{mismatch:#}");
    let changed = assert_failed(&report, "known-hosts-changed", "connect", "host_key");
    let message = changed["error"]["message"].as_str().unwrap();
    assert!(message.contains("has CHANGED") && message.contains("line 2"), "{message}");
    assert!(changed["error"]["hint"].as_str().unwrap().contains("ssh-keygen -R"), "{changed:#}");
    let other_port = assert_failed(&report, "known-hosts-other-port", "connect", "host_key");
    assert!(
        other_port["error"]["message"].as_str().unwrap().contains(&format!("[127.0.0.1]:{port} is not in")),
        "{other_port:#}"
    );
    assert!(other_port["error"]["hint"].as_str().unwrap().contains(scanned.trim()), "{other_port:#}");
    let revoked = assert_failed(&report, "known-hosts-revoked", "connect", "host_key");
    assert!(revoked["error"]["message"].as_str().unwrap().contains("@revoked"), "{revoked:#}");
    // No credential was sent to a server whose key was refused: the check never got as far.
    assert_eq!(unknown["stages"][2]["status"], "skipped", "{unknown:#}");
}

#[tokio::test]
async fn an_ssh_agent_holds_the_key() {
    let env = harness_env();
    let ws = Workspace::new();
    let ssh_dir = harness_var(&env, "AP_SSH_DIR");
    let socket = ws.path("agent.sock");
    let mut agent = Command::new(require_tool("ssh-agent"))
        .args(["-D", "-a", socket.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start ssh-agent");
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let agent_env = vec![("SSH_AUTH_SOCK".to_string(), socket.display().to_string())];
    tool("ssh-add", &["-q", &format!("{ssh_dir}/stranger_ed25519")], &agent_env);
    tool("ssh-add", &["-q", &format!("{ssh_dir}/client_ed25519")], &agent_env);
    let mut cfg = String::new();
    cfg += &sftp_probe("agent", &format!("{KEY_USER}\nauth = {{ type = \"agent\" }}\n{PINNED}"));
    cfg += &sftp_probe(
        "agent-wrong-user",
        &format!("user = \"${{AP_SFTP_USER}}\"\nauth = {{ type = \"agent\" }}\n{PINNED}"),
    );
    let path = ws.config(&cfg);
    let mut with_agent = env.clone();
    with_agent.extend(agent_env);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &with_agent).await;
    let report = out.json();
    assert_passed(&report, "agent");
    let refused = assert_failed(&report, "agent-wrong-user", "auth", "auth_rejected");
    assert!(refused["error"]["message"].as_str().unwrap().contains("every key the SSH agent holds"), "{refused:#}");
    // Without an agent the probe says what is missing, before sending anything.
    let out =
        authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json", "--only", "agent"], &env).await;
    let report = out.json();
    let missing = assert_failed(&report, "agent", "auth", "config");
    assert!(missing["error"]["message"].as_str().unwrap().contains("SSH_AUTH_SOCK"), "{missing:#}");
    let _ = agent.kill();
    let _ = agent.wait();
}

#[tokio::test]
async fn check_and_inspect_sftp_urls() {
    let env = harness_env();
    let port = harness_var(&env, "AP_SSH_PORT");
    let host_key = harness_var(&env, "AP_SSH_HOST_KEY");
    let ssh_dir = harness_var(&env, "AP_SSH_DIR");
    let password = harness_var(&env, "AP_SFTP_PASSWORD");
    let mut with_pass = env.clone();
    with_pass.push(("SSHPASS".into(), password.clone()));
    let url = format!("sftp://sftp_pw@127.0.0.1:{port}/~/data");
    let out = authprobe_harness(&["check", &url, "--host-key", &host_key, "--format", "json"], &with_pass).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.json()["probes"][0]["target"], url.as_str());
    let missing = format!("sftp://sftp_pw@127.0.0.1:{port}/srv/none");
    let out = authprobe_harness(&["check", &missing, "--host-key", &host_key, "--format", "json"], &with_pass).await;
    assert_eq!(out.code, 1);
    assert_failed(&out.json(), "check", "check", "not_found");
    let key = format!("{ssh_dir}/client_ed25519");
    let home = Workspace::new();
    let mut no_defaults = env.clone();
    no_defaults.push(("HOME".into(), home.dir.path().display().to_string()));
    let key_url = format!("sftp://sftp_key@127.0.0.1:{port}/");
    let out = authprobe_harness(&["check", &key_url, "-i", &key, "--host-key", &host_key], &no_defaults).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    // No host key given and no ~/.ssh/known_hosts: refused, with the flag's value shown.
    let out = authprobe_harness(&["check", &key_url, "-i", &key, "--format", "json"], &no_defaults).await;
    let report = out.json();
    let refused = assert_failed(&report, "check", "connect", "host_key");
    assert!(refused["error"]["hint"].as_str().unwrap().contains(&host_key), "{refused:#}");
    assert!(!out.stdout.contains(&password) && !out.stderr.contains(&password));

    // inspect lists every host key with the lines ssh-keyscan would write.
    // No known_hosts to approve the key: shown, and exit 1 (not verified).
    let out = authprobe_harness(&["inspect", &format!("sftp://127.0.0.1:{port}")], &no_defaults).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stdout.contains(&format!("host_key = \"{host_key}\"")), "{}", out.stdout);
    let scanned = tool("ssh-keyscan", &["-p", &port, "127.0.0.1"], &[]);
    for line in scanned.lines().filter(|l| !l.starts_with('#')) {
        assert!(out.stdout.contains(line), "missing `{line}` in:\n{}", out.stdout);
    }
}

#[tokio::test]
async fn unusable_keys_are_config_errors_that_never_show_the_passphrase() {
    let env = harness_env();
    let ws = Workspace::new();
    let wrong = "CANARY-wrong-passphrase-9b3e";
    let mut cfg = String::new();
    cfg += &sftp_probe("no-passphrase", &format!("{KEY_USER}\n{}\n{PINNED}", key_auth("client_ed25519_encrypted")));
    cfg += &sftp_probe(
        "wrong-passphrase",
        &format!(
            "{KEY_USER}\nauth = {{ type = \"key\", private_key = \"${{AP_SSH_DIR}}/client_ed25519_encrypted\", passphrase = \"{wrong}\" }}\n{PINNED}"
        ),
    );
    cfg += &sftp_probe("not-a-key", &format!("{KEY_USER}\n{}\n{PINNED}", key_auth("client_ed25519.pub")));
    cfg += &sftp_probe("missing-key", &format!("{KEY_USER}\n{}\n{PINNED}", key_auth("no_such_key")));
    cfg += &sftp_probe(
        "bad-pin",
        &format!("{PASSWORD_USER}\n{PASSWORD}\nhost_key = \"MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48\""),
    );
    cfg += &sftp_probe("no-auth", PASSWORD_USER);
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["validate", "-c", path.to_str().unwrap()], &env).await;
    assert_eq!(out.code, 2, "{out:?}");
    let err = &out.stderr;
    assert!(!err.contains(wrong), "the passphrase leaked: {err}");
    assert!(
        err.contains("probe `no-passphrase`, key `auth.private_key`")
            && err.contains("the key is encrypted: set `passphrase`"),
        "{err}"
    );
    assert!(
        err.contains("probe `wrong-passphrase`, key `auth.private_key`") && err.contains("is the passphrase right?"),
        "{err}"
    );
    assert!(
        err.contains("probe `not-a-key`, key `auth.private_key`") && err.contains("not a usable private key"),
        "{err}"
    );
    assert!(err.contains("probe `missing-key`, key `auth.private_key`: cannot read"), "{err}");
    assert!(err.contains("probe `bad-pin`, key `host_key`: MD5 fingerprints are not accepted"), "{err}");
    assert!(err.contains("probe `no-auth`") && err.contains("missing required key `auth`"), "{err}");
}

/// A private sshd for this test alone, with the harness's users, its own host key and the
/// given MaxStartups; stopped when dropped.
struct PrivateSshd {
    port: u16,
    host_key: String,
    child: std::process::Child,
    _dir: Workspace,
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn private_sshd(env: &[(String, String)], max_startups: &str) -> PrivateSshd {
    let dir = Workspace::new();
    let key = dir.path("host_ed25519");
    tool("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()], &[]);
    let host_key = tool("ssh-keygen", &["-l", "-E", "sha256", "-f", &format!("{}.pub", key.display())], &[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.write(
        "sshd_config",
        &format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM yes\nAllowUsers {}\nSubsystem sftp internal-sftp\nMaxStartups {max_startups}\n",
            key.display(),
            dir.path("sshd.pid").display(),
            harness_var(env, "AP_SFTP_USER")
        ),
    );
    std::fs::create_dir_all("/run/sshd").unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f", config.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sshd");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    PrivateSshd { port, host_key: host_key.split_whitespace().nth(1).unwrap().to_string(), child, _dir: dir }
}

#[tokio::test]
async fn many_probes_against_one_ssh_server_queue_for_its_max_startups() {
    let env = harness_env();
    let ws = Workspace::new();
    let probes = |server: &PrivateSshd, n: usize| {
        let mut cfg = String::new();
        for i in 0..n {
            cfg += &format!(
                "[[probe]]\nname = \"drop-{i}\"\nkind = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\n{PASSWORD_USER}\n{PASSWORD}\nhost_key = \"{}\"\n\n",
                server.port, server.host_key
            );
        }
        cfg
    };
    // Just under the limit authprobe keeps to (8 logins at once per server): 24 probes
    // all pass instead of a third being dropped.
    let tolerant = private_sshd(&env, "9");
    let path = ws.write("tolerant.toml", &probes(&tolerant, 24));
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    let report = out.json();
    assert_eq!(report["summary"]["passed"], 24, "{}", out.stdout);

    // A server that takes fewer: what it drops is reported as what it is, not as a
    // protocol error.
    let strict = private_sshd(&env, "2");
    let path = ws.write("strict.toml", &probes(&strict, 12));
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    let report = out.json();
    let dropped: Vec<&serde_json::Value> =
        report["probes"].as_array().unwrap().iter().filter(|p| p["status"] == "fail").collect();
    assert!(!dropped.is_empty(), "expected MaxStartups 2 to drop some of 12 concurrent logins");
    for p in dropped {
        assert_eq!(p["error"]["class"], "network", "{p:#}");
        assert!(p["error"]["message"].as_str().unwrap().contains("Exceeded MaxStartups"), "{p:#}");
        assert!(p["error"]["hint"].as_str().unwrap().contains("MaxStartups"), "{p:#}");
    }
}
