//! The ready-made integrations in `examples/`, exercised as far as this machine allows:
//! the GitHub Actions step and the cron recipe run for real against the harness's servers
//! (the cron recipe's metrics served by a real node_exporter), and the workflow, Kubernetes
//! manifests, alert rules and Dockerfile checked by their own validators.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// The directory holding the authprobe binary under test, for PATH.
fn bin_dir() -> String {
    Path::new(BIN).parent().unwrap().display().to_string()
}

fn path_with_authprobe() -> String {
    format!("{}:{}", bin_dir(), std::env::var("PATH").unwrap_or_default())
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Evaluates a Python expression over a YAML document (PyYAML), printing strings as they are.
fn yaml_query(file: &Path, expression: &str) -> String {
    let script = format!(
        "import sys, yaml\ndocs = list(yaml.safe_load_all(open(sys.argv[1])))\nvalue = {expression}\nprint(value if isinstance(value, str) else '\\n'.join(value), end='')"
    );
    let out = run(Command::new(require_tool("python3")).args(["-c", &script]).arg(file));
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// Two http probes against the harness's nginx: the bearer token comes from the
/// environment, as a workflow's or a CronJob's secret would.
fn api_config(ws: &Workspace, env: &[(String, String)], name: &str) -> PathBuf {
    let url = format!("https://localhost:{}", harness_var(env, "AP_HTTPS_PORT"));
    let ca = harness_var(env, "AP_CA");
    ws.write(
        name,
        &format!(
            "[[probe]]\nname = \"health\"\nkind = \"http\"\nurl = \"{url}/health\"\ntls = {{ ca = \"{ca}\" }}\n\n[[probe]]\nname = \"orders-api\"\nkind = \"http\"\nurl = \"{url}/bearer\"\nauth = {{ type = \"bearer\", token = \"${{ORDERS_API_TOKEN}}\" }}\ntls = {{ ca = \"{ca}\" }}\n"
        ),
    )
}

#[test]
fn the_github_actions_step_writes_the_job_summary_and_fails_the_job() {
    let env = harness_env();
    let workflow = examples().join("github-actions/deploy-gate.yml");
    let check = run(Command::new(require_tool("check-jsonschema"))
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(&workflow));
    assert!(check.status.success(), "{}{}", text(&check.stdout), text(&check.stderr));
    let script = yaml_query(
        &workflow,
        "[s for s in docs[0]['jobs']['preflight']['steps'] if s.get('id') == 'authprobe'][0]['run']",
    );
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("deploy")).unwrap();
    api_config(&ws, &env, "deploy/probes.toml");
    let good_token = harness_var(&env, "AP_BEARER_TOKEN");
    let step = |token: &str| {
        let summary = ws.path("summary.md");
        let _ = std::fs::remove_file(&summary);
        let out = run(Command::new("bash")
            .args(["-e", "-c", &script])
            .current_dir(ws.dir.path())
            .env("PATH", path_with_authprobe())
            .env("AUTHPROBE_CONFIG", "deploy/probes.toml")
            .env("AUTHPROBE_WAIT", "1s")
            .env("ORDERS_API_TOKEN", token)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("NO_COLOR", "1"));
        (out, std::fs::read_to_string(&summary).unwrap_or_default())
    };

    let (out, summary) = step(&good_token);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(summary.starts_with("## Credentials pre-flight\n\n"), "{summary}");
    assert!(summary.contains("orders-api") && summary.contains("pass"), "{summary}");
    assert!(!summary.contains(&good_token), "the token reached the job summary");

    let stale = "CANARY-stale-ci-token-4e2a";
    let (out, summary) = step(stale);
    assert_eq!(out.status.code(), Some(1), "a failed check must fail the job");
    assert!(text(&out.stdout).contains("::error title=authprobe::a credential check failed"), "{out:?}");
    assert!(summary.contains("auth_rejected"), "{summary}");
    assert!(!summary.contains(stale) && !text(&out.stdout).contains(stale) && !text(&out.stderr).contains(stale));
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// GETs a loopback URL path with plain HTTP/1.0.
async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).await.ok()?;
    let mut body = Vec::new();
    tcp.read_to_end(&mut body).await.ok()?;
    Some(text(&body))
}

#[tokio::test]
async fn the_cron_recipe_publishes_metrics_that_node_exporter_serves() {
    let env = harness_env();
    let ws = Workspace::new();
    let textfile = ws.path("textfile");
    std::fs::create_dir_all(&textfile).unwrap();
    let config = api_config(&ws, &env, "probes.toml");
    let recipe = examples().join("cron/authprobe-textfile.sh");
    let lock = ws.path("authprobe.lock");
    let cron_run = |config: &Path, token: &str| {
        run(Command::new("sh")
            .arg(&recipe)
            .env("AUTHPROBE", BIN)
            .env("AUTHPROBE_CONFIG", config)
            .env("TEXTFILE_DIR", &textfile)
            .env("AUTHPROBE_LOCK", &lock)
            .env("ORDERS_API_TOKEN", token))
    };
    let out = cron_run(&config, "CANARY-cron-wrong-token-1d7f");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "cron mails whatever is printed: {}", text(&out.stderr));
    let prom = textfile.join("authprobe.prom");
    let check = run(Command::new(require_tool("promtool"))
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&prom).unwrap()));
    assert!(check.status.success(), "{}{}", text(&check.stdout), text(&check.stderr));
    let leftovers: Vec<_> = std::fs::read_dir(&textfile).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["authprobe.prom"], "only the finished file may be left in the textfile directory");

    // A real node_exporter serves the file.
    let port = free_port();
    let mut exporter = tokio::process::Command::new(require_tool("prometheus-node-exporter"))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--collector.textfile.directory={}", textfile.display()))
        .args(["--collector.disable-defaults", "--collector.textfile"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start node_exporter");
    let mut metrics = String::new();
    for _ in 0..100 {
        if let Some(body) = http_get(port, "/metrics").await
            && body.contains("authprobe_probe_success")
        {
            metrics = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = exporter.kill().await;
    assert!(metrics.contains("authprobe_probe_success{kind=\"http\",probe=\"health\"} 1"), "{metrics}");
    assert!(metrics.contains("authprobe_probe_success{kind=\"http\",probe=\"orders-api\"} 0"), "{metrics}");
    assert!(
        metrics.contains(
            "authprobe_probe_failure_info{class=\"auth_rejected\",kind=\"http\",probe=\"orders-api\",stage=\"auth\"} 1"
        ),
        "{metrics}"
    );
    assert!(!metrics.contains("CANARY-cron-wrong-token-1d7f"));

    // A broken config leaves the last good file in place (its age is what alerts.yml watches).
    let before = std::fs::read_to_string(&prom).unwrap();
    let broken = ws.write("broken.toml", "[[probe]]\nname = \"x\"\nkind = \"htp\"\n");
    assert_eq!(cron_run(&broken, "x").status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&prom).unwrap(), before);

    // An overlapping run is skipped, not stacked: this test holds the lock as a still
    // running cron job would.
    let held = std::fs::File::create(&lock).unwrap();
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor this test owns.
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    }
    let out = cron_run(&config, "x");
    drop(held);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("still going; skipped"), "{}", text(&out.stderr));

    let rules =
        run(Command::new(require_tool("promtool")).args(["check", "rules"]).arg(examples().join("cron/alerts.yml")));
    assert!(rules.status.success(), "{}{}", text(&rules.stdout), text(&rules.stderr));
}

#[tokio::test]
async fn the_kubernetes_manifests_and_the_dockerfile_are_valid() {
    let manifests = examples().join("kubernetes/cronjob.yaml");
    let out = run(Command::new(require_tool("kubernetes-validate")).args(["--strict"]).arg(&manifests));
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout).matches(" passed for resource ").count(), 3, "{}", text(&out.stdout));

    // The ConfigMap's probes.toml is a valid config once the Secret's variables are set, and
    // the Secret holds every variable it refers to.
    let config = yaml_query(&manifests, "[d for d in docs if d['kind'] == 'ConfigMap'][0]['data']['probes.toml']");
    let keys = yaml_query(&manifests, "sorted([d for d in docs if d['kind'] == 'Secret'][0]['stringData'])");
    let ws = Workspace::new();
    let path = ws.write("probes.toml", &config);
    let vars: Vec<(&str, &str)> = keys.lines().map(|k| (k, "from-the-secret")).collect();
    let out = authprobe(&["validate", "-c", path.to_str().unwrap()], &vars).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let args = yaml_query(
        &manifests,
        "[d for d in docs if d['kind'] == 'CronJob'][0]['spec']['jobTemplate']['spec']['template']['spec']['containers'][0]['args']",
    );
    assert_eq!(args.lines().collect::<Vec<_>>(), ["run", "-c", "/etc/authprobe/probes.toml", "--format", "json"]);

    // The serve manifests: Deployment, Service, ConfigMap and Secret, each valid; the
    // probes.toml validates with the Secret's variables, and the container serves it with
    // basic auth from that Secret.
    let manifests = examples().join("kubernetes/serve.yaml");
    let out = run(Command::new(require_tool("kubernetes-validate")).args(["--strict"]).arg(&manifests));
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout).matches(" passed for resource ").count(), 4, "{}", text(&out.stdout));
    let config = yaml_query(&manifests, "[d for d in docs if d['kind'] == 'ConfigMap'][0]['data']['probes.toml']");
    let keys = yaml_query(&manifests, "sorted([d for d in docs if d['kind'] == 'Secret'][0]['stringData'])");
    let path = ws.write("serve-probes.toml", &config);
    let vars: Vec<(&str, &str)> = keys.lines().map(|k| (k, "from-the-secret")).collect();
    let out = authprobe(&["validate", "-c", path.to_str().unwrap()], &vars).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let args = yaml_query(
        &manifests,
        "[d for d in docs if d['kind'] == 'Deployment'][0]['spec']['template']['spec']['containers'][0]['args']",
    );
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(args[..3], ["serve", "-c", "/etc/authprobe/probes.toml"]);
    let password_var = args.iter().position(|a| *a == "--basic-auth-password-env").map(|i| args[i + 1]);
    assert!(password_var.is_some_and(|v| keys.lines().any(|k| k == v)), "{args:?} / {keys}");
    // The kubelet waits longer than serve's own grace, so a rolling update loses no scrape.
    let grace = args.iter().position(|a| *a == "--shutdown-grace").map(|i| humantime::parse_duration(args[i + 1]));
    let period = yaml_query(
        &manifests,
        "str([d for d in docs if d['kind'] == 'Deployment'][0]['spec']['template']['spec']['terminationGracePeriodSeconds'])",
    );
    let period = std::time::Duration::from_secs(period.trim().parse().expect("terminationGracePeriodSeconds"));
    assert!(grace.is_some_and(|g| g.is_ok_and(|g| g < period)), "{args:?}, terminationGracePeriodSeconds {period:?}");

    // Check cards on two replicas: the manifests are valid, the config validates with the
    // Secret's key, both replicas mount one ReadWriteMany volume holding the outbox and the
    // approvals file, and serve speaks HTTPS (card pages take passwords).
    let manifests = examples().join("kubernetes/serve-cards.yaml");
    let out = run(Command::new(require_tool("kubernetes-validate")).args(["--strict"]).arg(&manifests));
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout).matches(" passed for resource ").count(), 5, "{}", text(&out.stdout));
    let config = yaml_query(&manifests, "[d for d in docs if d['kind'] == 'ConfigMap'][0]['data']['probes.toml']");
    let path = ws.write("cards-probes.toml", &config);
    let key = "0123456789abcdef".repeat(4);
    let out = authprobe(&["validate", "-c", path.to_str().unwrap()], &[("CARD_KEY", &key)]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let deployment = "[d for d in docs if d['kind'] == 'Deployment'][0]['spec']";
    assert_eq!(yaml_query(&manifests, &format!("str({deployment}['replicas'])")), "2");
    let mounts = yaml_query(
        &manifests,
        &format!(
            "[m['mountPath'] + ' ' + m['name'] for m in {deployment}['template']['spec']['containers'][0]['volumeMounts']]"
        ),
    );
    assert!(mounts.lines().any(|l| l == "/var/lib/authprobe state"), "{mounts}");
    assert!(
        config.contains("outbox = \"/var/lib/authprobe/cards\"")
            && config.contains("approvals = \"/var/lib/authprobe/approvals.toml\"")
    );
    let modes =
        yaml_query(&manifests, "[d for d in docs if d['kind'] == 'PersistentVolumeClaim'][0]['spec']['accessModes']");
    assert_eq!(modes, "ReadWriteMany");
    let args = yaml_query(&manifests, &format!("{deployment}['template']['spec']['containers'][0]['args']"));
    assert!(args.lines().any(|a| a == "--tls-cert"), "{args}");

    // The Dockerfile parses (BuildKit's own parser), ends in an empty base running the
    // static binary as a non-root user.
    let dockerfile = examples().join("docker/Dockerfile");
    let script = "import sys, dockerfile\nfor c in dockerfile.parse_file(sys.argv[1]):\n    print(c.cmd.upper(), ' '.join(c.value))";
    let out = run(Command::new(require_tool("python3")).args(["-c", script]).arg(&dockerfile));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let instructions = text(&out.stdout);
    let final_stage: Vec<&str> =
        instructions.rsplit_once("FROM ").map(|(_, s)| s.lines().collect()).unwrap_or_default();
    assert_eq!(final_stage[0], "scratch", "{instructions}");
    assert!(final_stage.contains(&"USER 65532:65532"), "{instructions}");
    assert!(final_stage.contains(&"ENTRYPOINT /authprobe"), "{instructions}");
    assert!(instructions.contains("RUN cargo build --release --locked --bin authprobe"), "{instructions}");
    // The build stage has every folder the manifest builds from (the wire crates and the
    // patched russh are path dependencies: a missing one fails only inside `docker build`).
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).expect("Cargo.toml");
    let folders: std::collections::BTreeSet<&str> =
        manifest.split("path = \"").skip(1).filter_map(|rest| rest.split(['/', '"']).next()).chain(["src"]).collect();
    for folder in folders {
        assert!(instructions.contains(&format!("COPY {folder} {folder}")), "{folder} is not copied: {instructions}");
    }
}
