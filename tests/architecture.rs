//! ARCHITECTURE.md's rules, checked on the source: which layer may use which, no import
//! loop between files, and the wire crates free of authprobe. (A file's length is a
//! question for review, not a rule: docs/development.md's checklist.)
//! References are read from `crate::…` paths outside comments and `#[cfg(test)]` modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `src/`, its layer, and the layers it may use (besides itself).
const LAYERS: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("config", &["model"]),
    ("connect", &["model", "config"]),
    ("identity", &["model", "config", "connect"]),
    ("probes", &["model", "config", "connect", "identity"]),
    ("runner", &["model", "config", "connect", "probes"]),
    ("output", &["model"]),
    ("surface", &["model", "config", "connect", "identity", "probes", "runner", "output"]),
    // Test support: drives every parser, so it may reach everything.
    ("fuzzing", &["model", "config", "connect", "identity", "probes", "runner", "output", "surface"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path a file defines: `src/connect/tls/verify.rs` is `connect::tls::verify`.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its unit-test modules.
fn production_code(text: &str) -> String {
    let cut = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..cut].lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Every `crate::a::b::…` path a file names, as segments (`crate::a::{b, c::d}` groups
/// expanded one level, which is how this code base writes them).
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `authprobe_crate::` or similar, not ours
        }
        let (prefix, after) = segments(rest);
        match after.strip_prefix('{') {
            Some(group) => {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let (tail, _) = segments(item.trim());
                    let full: Vec<String> = prefix.iter().chain(tail.iter()).cloned().collect();
                    if !full.is_empty() {
                        paths.push(full);
                    }
                }
            }
            None if !prefix.is_empty() => paths.push(prefix),
            None => {}
        }
    }
    paths
}

/// The leading `a::b::c` of `text`, and what follows it (after a trailing `::`).
fn segments(text: &str) -> (Vec<String>, &str) {
    let mut segs = Vec::new();
    let mut rest = text;
    loop {
        let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if len == 0 {
            return (segs, rest);
        }
        segs.push(rest[..len].to_string());
        match rest[len..].strip_prefix("::") {
            Some(more) => rest = more,
            None => return (segs, &rest[len..]),
        }
    }
}

struct Source {
    module: Vec<String>,
    path: PathBuf,
    uses: Vec<Vec<String>>,
}

fn sources() -> Vec<Source> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            Source { module: module_of(&root, &path), uses: crate_paths(&production_code(&text)), path }
        })
        .collect()
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut breaks = Vec::new();
    for source in sources() {
        let Some(layer) = source.module.first() else { continue }; // lib.rs, main.rs
        let Some(may_use) = allowed.get(layer.as_str()) else {
            breaks.push(format!("{}: `{layer}` is in no layer of ARCHITECTURE.md", source.path.display()));
            continue;
        };
        for used in &source.uses {
            let target = used[0].as_str();
            let is_layer = allowed.contains_key(target);
            if is_layer && target != layer && !may_use.contains(&target) {
                breaks.push(format!("{} ({layer}) uses crate::{}", source.path.display(), used.join("::")));
            }
        }
    }
    breaks.sort();
    breaks.dedup();
    assert!(breaks.is_empty(), "layering breaks (see ARCHITECTURE.md):\n{}", breaks.join("\n"));
}

/// The credential release rule's proof (`model::release::Release`) is made only where the
/// fact it states is established; a new kind gets one from these, never makes its own.
const RELEASE_PROOF_MAKERS: &[(&str, &str)] = &[
    ("Release::verified_tls", "src/connect/tls/verify.rs"),
    ("Release::approved_host_key", "src/connect/ssh/session.rs"),
    ("Release::consented", "src/model/stages.rs"),
    ("Release::plain_proxy_url", "src/connect/proxy/mod.rs"),
];

#[test]
fn release_proofs_are_made_only_where_their_fact_is_established() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut strays = Vec::new();
    let mut made = BTreeSet::new();
    for path in &files {
        let rel = path.strip_prefix(root).unwrap_or(path).to_string_lossy().replace('\\', "/");
        if rel == "src/model/release.rs" {
            continue;
        }
        let code = production_code(&std::fs::read_to_string(path).unwrap_or_default());
        for (maker, home) in RELEASE_PROOF_MAKERS {
            if code.contains(maker) {
                if rel == *home {
                    made.insert(*maker);
                } else {
                    strays.push(format!("{rel} makes {maker} (only {home} may)"));
                }
            }
        }
    }
    assert!(strays.is_empty(), "release proofs made elsewhere:\n{}", strays.join("\n"));
    // The list is current: each maker is used where it says.
    assert_eq!(made.len(), RELEASE_PROOF_MAKERS.len(), "unused makers in RELEASE_PROOF_MAKERS: {made:?}");
    // And nothing reads a secret without naming why: the old unguarded accessor is gone.
    let exposed: Vec<String> = files
        .iter()
        .filter(|p| std::fs::read_to_string(p).unwrap_or_default().contains(".expose()"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(exposed.is_empty(), "{exposed:?}");
}

/// The wire crates are the protocol alone: they may not know authprobe.
#[test]
fn wire_crates_do_not_depend_on_authprobe() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates");
    let mut checked = 0;
    for entry in std::fs::read_dir(&crates).expect("crates/").flatten() {
        let manifest = std::fs::read_to_string(entry.path().join("Cargo.toml")).unwrap_or_default();
        if manifest.is_empty() {
            continue;
        }
        checked += 1;
        let depends = manifest.lines().any(|l| l.trim_start().starts_with("authprobe") || l.contains("path = \"../.."));
        assert!(!depends, "{} depends on authprobe", entry.path().display());
        assert!(entry.path().join("README.md").is_file(), "{} has no README.md", entry.path().display());
    }
    assert!(checked >= 3, "expected the wire crates under crates/");
}

/// Files that import each other in a cycle must be few: a loop over more than 3 files is
/// a knot nobody can change one part of.
#[test]
fn no_import_loop_spans_more_than_three_files() {
    let all = sources();
    let modules: BTreeSet<Vec<String>> = all.iter().map(|s| s.module.clone()).collect();
    // The file a path lands in: its longest prefix that is a module of its own.
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|prefix| modules.contains(prefix))
    };
    let index: BTreeMap<Vec<String>, usize> = all.iter().enumerate().map(|(i, s)| (s.module.clone(), i)).collect();
    let edges: Vec<BTreeSet<usize>> = all
        .iter()
        .map(|s| {
            s.uses
                .iter()
                .filter_map(|p| resolve(p))
                .filter_map(|m| index.get(&m).copied())
                // A module's own mod.rs is its parent; declaring children is not a use.
                .filter(|&target| !all[target].module.is_empty())
                .collect()
        })
        .collect();
    let mut knots = Vec::new();
    for component in strongly_connected(&edges) {
        if component.len() > 3 {
            let mut names: Vec<String> = component.iter().map(|&i| all[i].module.join("::")).collect();
            names.sort();
            knots.push(names.join(", "));
        }
    }
    assert!(knots.is_empty(), "import loops over more than 3 files:\n{}", knots.join("\n"));
}

/// Tarjan's algorithm, iterative enough for a few hundred files.
fn strongly_connected(edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in s.edges[v].clone().iter() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let n = edges.len();
    let mut state = State {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if state.index[v].is_none() {
            visit(&mut state, v);
        }
    }
    state.out
}

#[test]
fn the_path_reader_sees_groups_and_nested_paths() {
    let code = "use crate::model::{error::Failure, report};\nlet x = crate::connect::tls::pin_line(a);";
    let paths = crate_paths(code);
    assert!(paths.contains(&vec!["connect".into(), "tls".into(), "pin_line".into()]), "{paths:?}");
    assert!(paths.contains(&vec!["model".into(), "error".into(), "Failure".into()]), "{paths:?}");
    assert!(paths.contains(&vec!["model".into(), "report".into()]), "{paths:?}");
}
