//! Every `console` example in README.md and docs/*.md is real output: each block's `$ ` command runs
//! against the harness's servers and must print what the block shows, up to what changes
//! from run to run (timings, certificate and key fingerprints of the per-run test PKI,
//! dates). `AUTHPROBE_README_UPDATE=1` rewrites the blocks with fresh output instead.

use std::path::Path;

use regex::Regex;

use crate::util::*;

struct Example {
    /// Line index of the block's opening fence.
    fence: usize,
    command: String,
    shown: Vec<String>,
}

fn examples(readme: &str) -> Vec<Example> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut found = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        if lines[at].trim_end() == "```console" {
            let end =
                (at + 1..lines.len()).find(|&i| lines[i].trim_end() == "```").expect("an unterminated console block");
            let body = &lines[at + 1..end];
            let command = body.first().and_then(|l| l.strip_prefix("$ ")).expect("a console block starts with `$ `");
            found.push(Example {
                fence: at,
                command: command.to_string(),
                shown: body[1..].iter().map(|l| l.to_string()).collect(),
            });
            at = end;
        }
        at += 1;
    }
    found
}

/// What is the same from run to run.
fn normalize(text: &str) -> Vec<String> {
    let rules: [(&str, &str); 9] = [
        (r"\x1b\[[0-9;]*m", ""),
        (r"\b[0-9A-F]{2}(:[0-9A-F]{2}){15,31}\b", "<FP>"),
        (r"SHA256:[A-Za-z0-9+/]{43}", "SHA256:<FP>"),
        (r"AAAA[A-Za-z0-9+/=]{20,}", "<KEY>"),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "<DATE>"),
        (r"-?\d+ days", "<N> days"),
        (r"\b\d+(\.\d+)?(ms|s)\b", "<T>"),
        (r"(^|[^\d.])\d+\.\d{2,}([^\d.]|$)", "${1}<NUM>${2}"),
        // Unix timestamps (a certificate's expiry in the Prometheus format).
        (r"\b\d{9,}\b", "<NUM>"),
    ];
    let mut text = text.to_string();
    for (pattern, replacement) in rules {
        text = Regex::new(pattern).unwrap().replace_all(&text, replacement).into_owned();
    }
    let spaces = Regex::new(r"[ \t]+").unwrap();
    let mut lines: Vec<String> =
        text.lines().map(|l| spaces.replace_all(l.trim_end(), " ").trim_start().to_string()).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

#[tokio::test]
async fn every_console_example_in_the_readme_is_real_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    let mut total = 0;
    let mut mismatches = Vec::new();
    for page in &pages {
        let (count, wrong) = check_page(page).await;
        total += count;
        mismatches.extend(wrong);
    }
    assert!(total >= 8, "the documentation should show real output ({total} examples)");
    assert!(mismatches.is_empty(), "documentation examples differ from real output:\n\n{}", mismatches.join("\n\n"));
}

/// Output of a harness in another slot (scripts/test.sh, ports shifted), with the ports the
/// pages show: each of the harness's ports put back to its default.
fn as_in_slot_zero(text: &str, env: &[(String, String)]) -> String {
    let defaults = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/harness/defaults.env"))
        .unwrap_or_default();
    let mut text = text.to_string();
    for line in defaults.lines() {
        let Some((name, default)) = line.split_once('=') else { continue };
        if !name.ends_with("_PORT") {
            continue;
        }
        if let Some((_, value)) = env.iter().find(|(n, v)| n == name && v != default) {
            let port = Regex::new(&format!(r"\b{value}\b")).unwrap();
            text = port.replace_all(&text, default).into_owned();
        }
    }
    text
}

/// Runs one page's examples; returns how many it has and what differs (or rewrites the
/// page with `AUTHPROBE_README_UPDATE=1`).
async fn check_page(page: &Path) -> (usize, Vec<String>) {
    let env = harness_env();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme_path = page.to_path_buf();
    let shown_name = page.strip_prefix(root).unwrap_or(page).display().to_string();
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let found = examples(&readme);
    // No ~/.ssh/known_hosts, no ambient credentials: what the README shows is what a
    // fresh shell with the harness's variables sees.
    let home = Workspace::new();
    let path = format!("{}:{}", Path::new(BIN).parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let update = std::env::var_os("AUTHPROBE_README_UPDATE").is_some();
    let mut lines: Vec<String> = readme.lines().map(str::to_string).collect();
    let mut mismatches = Vec::new();
    for example in found.iter().rev() {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", &example.command]).current_dir(root).env("PATH", &path).env("HOME", home.dir.path());
        cmd.env("NO_COLOR", "1").env_remove("AUTHPROBE_CONFIG").env_remove("SSH_AUTH_SOCK");
        for (name, value) in &env {
            cmd.env(name, value);
        }
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("`{}` did not finish", example.command))
            .unwrap();
        let mut actual = String::from_utf8_lossy(&out.stdout).into_owned();
        actual.push_str(&String::from_utf8_lossy(&out.stderr));
        let actual = as_in_slot_zero(&actual, &env);
        if update {
            let shown: Vec<String> = actual.trim_end().lines().map(|l| l.trim_end().to_string()).collect();
            let start = example.fence + 2;
            lines.splice(start..start + example.shown.len(), shown);
            continue;
        }
        let (want, got) = (normalize(&example.shown.join("\n")), normalize(&actual));
        if want != got {
            let first = want.iter().zip(&got).position(|(w, g)| w != g).unwrap_or(want.len().min(got.len()));
            mismatches.push(format!(
                "`{}` ({shown_name} line {}): first difference at output line {}:\n  shown:  {:?}\n  actual: {:?}\nwhole output:\n{actual}",
                example.command,
                example.fence + 1,
                first + 1,
                want.get(first),
                got.get(first)
            ));
        }
    }
    if update {
        std::fs::write(&readme_path, lines.join("\n") + "\n").unwrap();
    }
    (found.len(), mismatches)
}

#[test]
fn normalizing_keeps_what_matters() {
    let a = normalize(
        " x   pass  21ms  sha256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89 on 2026-11-23T15:57:12Z\n",
    );
    let b = normalize(
        "x pass 3ms sha256 01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF on 2027-01-01T00:00:00Z",
    );
    assert_eq!(a, b);
    assert_ne!(normalize("x FAIL 3ms"), normalize("x pass 3ms"));
    assert_eq!(normalize("TLSv1.3 at 127.0.0.1 took 0.004213"), ["TLSv1.3 at 127.0.0.1 took <NUM>"]);
}
