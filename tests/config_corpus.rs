//! The corpus of broken configs in tests/configs/invalid: each must stop with exit 2, send
//! nothing, and report exactly the errors written at its end, each with file, line and
//! column. No input may make authprobe panic.

use std::path::Path;

use crate::util::*;

#[tokio::test]
async fn every_broken_config_gets_its_exact_errors_and_exit_2() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/invalid");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 40, "the corpus shrank: {}", names.len());
    let mut problems = Vec::new();
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let expected: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# error: ")).collect();
        assert!(!expected.is_empty(), "{name} states no expected error");
        let out = authprobe_in(Some(&dir), &["validate", "-c", name], &[]).await;
        let reported: Vec<&str> = out.stderr.lines().filter_map(|l| l.strip_prefix("error: ")).collect();
        if out.code != 2 || !out.stdout.is_empty() || reported != expected || out.stderr.contains("panicked") {
            problems.push(format!("{name}: exit {}\n  expected {expected:#?}\n  reported {reported:#?}", out.code));
            continue;
        }
        for line in &reported {
            let position = line.strip_prefix(&format!("{name}:")).and_then(|rest| rest.split_once(": "));
            let numbers = position.map(|(at, _)| at.split(':').all(|n| n.parse::<usize>().is_ok_and(|n| n > 0)));
            if numbers != Some(true) {
                problems.push(format!("{name}: `{line}` has no file:line:column"));
            }
        }
        let n = reported.len();
        let closing = format!("{name}: {n} error{} found; nothing was run", if n == 1 { "" } else { "s" });
        if !out.stderr.contains(&closing) {
            problems.push(format!("{name}: no closing line `{closing}` in {}", out.stderr));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
