//! The Python package for real: the wheel built with maturin from this tree, installed into
//! a fresh venv (offline, from the harness's wheelhouse) beside the Fivetran Connector SDK;
//! the package's own pytest suite; and the example connector under `fivetran debug`,
//! `fivetran configuration --test` and `fivetran package`, against the harness's servers.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

struct Venv {
    bin: PathBuf,
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A fresh venv with maturin, pytest and the Connector SDK, and the wheel built and installed.
fn fresh_venv(env: &[(String, String)], ws: &Workspace) -> Venv {
    let python = harness_var(env, "AP_SYSTEM_PYTHON");
    let wheelhouse = harness_var(env, "AP_WHEELHOUSE");
    let dir = ws.path("venv");
    let (ok, text) = run(Command::new(&python).args(["-m", "venv"]).arg(&dir));
    assert!(ok, "python3 -m venv: {text}");
    let bin = dir.join("bin");
    let (ok, text) = run(Command::new(bin.join("pip")).args([
        "install",
        "-q",
        "--disable-pip-version-check",
        "--no-index",
        "--find-links",
        &wheelhouse,
        "maturin==1.16.0",
        "pytest==8.3.5",
        "fivetran-connector-sdk==3.0.0",
    ]));
    assert!(ok, "the wheelhouse (scripts/servers.sh clients collects it) lacks a package: {text}");
    let wheels = ws.path("wheels");
    // The test build's own target directory: the binary the tests run was built there with
    // the same profile, features and flags (Cargo.toml unifies them), so cargo finds it fresh
    // and maturin only packs it (a separate directory was a second cold build of every
    // dependency). It must stay an unstripped dev build: `--strip` changes the flags and would
    // relink the binary. maturin still takes it away while packing it, so this test runs
    // alone (.config/nextest.toml).
    let binary = Path::new(env!("CARGO_BIN_EXE_authprobe"));
    let target_dir = binary.parent().and_then(Path::parent).expect("the binary lies in <target>/debug");
    let before = std::fs::metadata(binary).and_then(|m| m.modified()).ok();
    let (ok, text) = run(Command::new(bin.join("maturin"))
        .args(["build", "--profile", "dev", "--quiet", "-o"])
        .arg(&wheels)
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(REPO));
    assert!(ok, "maturin build: {text}");
    let after = std::fs::metadata(binary).and_then(|m| m.modified()).ok();
    assert_eq!(before, after, "maturin relinked the binary the other tests run: its build differs from the test build");
    let wheel = std::fs::read_dir(&wheels).unwrap().map(|e| e.unwrap().path()).find(|p| {
        p.extension().is_some_and(|e| e == "whl") && p.file_name().unwrap().to_string_lossy().starts_with("authprobe-")
    });
    let wheel = wheel.expect("maturin wrote a wheel");
    assert!(wheel.to_string_lossy().contains("manylinux"), "a platform wheel: {}", wheel.display());
    let (ok, text) = run(Command::new(bin.join("pip")).args(["install", "-q", "--no-index", "--no-deps"]).arg(&wheel));
    assert!(ok, "pip install the wheel: {text}");
    Venv { bin }
}

fn with_env<'a>(cmd: &'a mut Command, env: &[(String, String)]) -> &'a mut Command {
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The Connector SDK's CLI in the venv, with no network: no telemetry, and a version check
/// that was "just done".
fn fivetran(venv: &Venv, home: &Path, project: &Path, env: &[(String, String)], args: &[&str]) -> (bool, String) {
    let sdk_dir = home.join(".fivetran/connector_sdk");
    std::fs::create_dir_all(&sdk_dir).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    std::fs::write(sdk_dir.join("_last_version_check"), now.to_string()).unwrap();
    let path = format!("{}:{}", venv.bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new(venv.bin.join("fivetran"));
    with_env(&mut cmd, env)
        .args(args)
        .current_dir(project)
        .env("HOME", home)
        .env("DO_NOT_TRACK", "1")
        .env("PATH", path)
        .env_remove("AUTHPROBE_BIN")
        .stdin(std::process::Stdio::null());
    run(&mut cmd)
}

fn configuration(env: &[(String, String)], mssql_password: &str) -> String {
    let v = |name: &str| harness_var(env, name);
    serde_json::json!({
        "api_url": format!("https://localhost:{}/bearer", v("AP_HTTPS_PORT")),
        "api_key": v("AP_BEARER_TOKEN"),
        "mssql_host": "localhost",
        "mssql_port": v("AP_MSSQL_PORT"),
        "mssql_user": v("AP_MSSQL_USER"),
        "mssql_password": mssql_password,
        "s3_bucket": v("AP_S3_BUCKET"),
        "s3_endpoint": format!("http://127.0.0.1:{}", v("AP_S3_PORT")),
        "s3_region": "us-east-1",
        "s3_access_key_id": v("AP_S3_ACCESS_KEY"),
        "s3_secret_access_key": v("AP_S3_SECRET_KEY"),
        "ca_file": v("AP_CA"),
    })
    .to_string()
}

/// Every file under `dir`, read whole (the SDK's logs, crash reports, packages).
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

#[test]
fn the_wheel_its_api_and_a_fivetran_connector_work_for_real() {
    let env = harness_env();
    let ws = Workspace::new();
    let venv = fresh_venv(&env, &ws);

    // The API's own tests.
    let mut pytest = Command::new(venv.bin.join("python"));
    with_env(&mut pytest, &env)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(Path::new(REPO).join("python/tests"))
        .env("AUTHPROBE_EXAMPLE_CONFIG", Path::new(REPO).join("probes.toml.example"))
        .env_remove("AUTHPROBE_BIN")
        .current_dir(ws.path(""));
    let (ok, text) = run(&mut pytest);
    assert!(ok, "pytest python/tests:\n{text}");

    // The example connector, configured for the harness's servers.
    let project = ws.path("connector");
    std::fs::create_dir_all(&project).unwrap();
    for file in ["connector.py", "requirements.txt"] {
        std::fs::copy(Path::new(REPO).join("examples/fivetran").join(file), project.join(file)).unwrap();
    }
    let home = ws.path("home");
    let good = configuration(&env, &harness_var(&env, "AP_MSSQL_PASSWORD"));
    std::fs::write(project.join("configuration.json"), &good).unwrap();
    let (ok, text) = fivetran(&venv, &home, &project, &env, &["debug", "--configuration", "configuration.json"]);
    assert!(ok && text.contains("SYNC SUCCEEDED"), "fivetran debug:\n{text}");
    for probe in ["api", "sql_server", "bucket"] {
        assert!(text.contains(&format!("authprobe: {probe} works")), "{probe}:\n{text}");
    }
    let (ok, text) = fivetran(&venv, &home, &project, &env, &["configuration", "--test"]);
    assert!(ok && text.contains("All tests passed"), "fivetran configuration --test:\n{text}");

    let wrong = "wrong-mssql-pw-4e1d";
    std::fs::write(project.join("configuration.json"), configuration(&env, wrong)).unwrap();
    let (ok, debug) = fivetran(&venv, &home, &project, &env, &["debug", "--configuration", "configuration.json"]);
    assert!(!ok && debug.contains("SYNC FAILED"), "fivetran debug with a wrong password:\n{debug}");
    assert!(debug.contains("sql_server does not work: auth: auth_rejected"), "{debug}");
    assert!(!debug.contains("Upserts         | 3"), "no sync work was done: {debug}");
    let (ok, tests) = fivetran(&venv, &home, &project, &env, &["configuration", "--test"]);
    assert!(
        !ok && tests.contains("[authprobe_sql_server - The SQL Server login works]: sql_server: auth: auth_rejected"),
        "{tests}"
    );

    // Packaged with the binary (run bit kept), and no secret anywhere the SDK wrote.
    std::fs::write(project.join("configuration.json"), &good).unwrap();
    let (ok, text) = run(Command::new(venv.bin.join("python"))
        .args(["-m", "authprobe.fivetran", "vendor"])
        .arg(&project)
        .env_remove("AUTHPROBE_BIN"));
    assert!(ok, "vendor: {text}");
    let (ok, text) = fivetran(&venv, &home, &project, &env, &["package", ".", "--yes"]);
    assert!(ok, "fivetran package:\n{text}");
    let listing = "import glob, sys, zipfile\n\
                   z = zipfile.ZipFile(glob.glob(sys.argv[1] + '/files/*.zip')[0])\n\
                   for i in z.infolist(): print(i.filename, oct(i.external_attr >> 16))";
    let (ok, zipped) = run(Command::new(venv.bin.join("python")).args(["-c", listing]).arg(&project));
    assert!(ok, "{zipped}");
    assert!(zipped.contains("authprobe-bin/authprobe 0o100755"), "the binary, executable:\n{zipped}");
    assert!(!zipped.contains("configuration.json"), "{zipped}");
    let secrets: Vec<String> = ["AP_BEARER_TOKEN", "AP_MSSQL_PASSWORD", "AP_S3_SECRET_KEY"]
        .iter()
        .map(|k| harness_var(&env, k))
        .chain([wrong.to_string()])
        .collect();
    for output in [&debug, &tests] {
        for secret in &secrets {
            assert!(!output.contains(secret.as_str()), "a secret in the SDK's output");
        }
    }
    for (path, bytes) in all_bytes(&project.join("files")).into_iter().chain(all_bytes(&project.join("crash-reports")))
    {
        let is_package = path.extension().is_some_and(|e| e == "zip");
        for secret in &secrets {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "a secret in {} (package: {is_package})", path.display());
        }
    }
}
