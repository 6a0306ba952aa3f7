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

/// Hostile blackbox.yml files for `from-blackbox`: refused with an error naming the file,
/// exit 2, no panic, within a second and 64 MB (a billion laughs used to grow past 4 GB).
#[tokio::test]
async fn hostile_blackbox_files_are_refused_quickly_within_a_small_memory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/blackbox-hostile");
    for name in ["billion-laughs.yml", "undefined-alias.yml", "deep-nesting.yml", "not-yaml.yml"] {
        let path = dir.join(name);
        let started = std::time::Instant::now();
        let child = std::process::Command::new(BIN).args(["from-blackbox", path.to_str().unwrap()]).output().unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&child.stderr);
        assert_eq!(child.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(name) && !stderr.contains("panicked"), "{name}: {stderr}");
        assert!(took < std::time::Duration::from_secs(1), "{name} took {took:?}");
    }
    let bomb = dir.join("billion-laughs.yml");
    let out = std::process::Command::new(BIN).args(["from-blackbox", bomb.to_str().unwrap()]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("aliases expand to more than"), "{out:?}");
    // The children's peak resident memory (nextest runs each test in its own process).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    assert!(usage.ru_maxrss < 64 * 1024, "peak RSS {} KiB", usage.ru_maxrss);
}
