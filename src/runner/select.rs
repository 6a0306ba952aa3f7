//! Which probes `--only` and `--skip` choose (globs over names and tags), and what to
//! suggest when the patterns choose none.

use crate::model::glob::{self, Wildcards};
use crate::runner::suite::ProbeConfig;

fn matches(probe: &ProbeConfig, pattern: &str) -> bool {
    let glob = |text: &str| glob::matches(pattern, text, Wildcards::Star);
    glob(&probe.name) || probe.tags.iter().any(|t| glob(t))
}

/// The probes `--only`/`--skip` select, in config order. `--skip` wins over `--only`.
pub fn select(probes: &[ProbeConfig], only: &[String], skip: &[String]) -> Vec<ProbeConfig> {
    probes
        .iter()
        .filter(|p| only.is_empty() || only.iter().any(|pat| matches(p, pat)))
        .filter(|p| !skip.iter().any(|pat| matches(p, pat)))
        .cloned()
        .collect()
}

/// What to suggest when `--only` patterns select nothing: for a pattern without `*`, the
/// glob that would match names it begins or is part of (`warehouse*`), else the closest
/// probe names and tags.
pub fn suggest_patterns(probes: &[ProbeConfig], only: &[String]) -> Vec<String> {
    let mut names: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
    names.extend(probes.iter().flat_map(|p| p.tags.iter().map(String::as_str)));
    names.sort_unstable();
    names.dedup();
    let mut out = Vec::new();
    for pattern in only.iter().filter(|p| !p.contains('*')) {
        let lower = pattern.to_ascii_lowercase();
        let containing: Vec<&str> = names.iter().copied().filter(|n| n.to_ascii_lowercase().contains(&lower)).collect();
        if !containing.is_empty() {
            let glob = if containing.iter().all(|n| n.to_ascii_lowercase().starts_with(&lower)) {
                format!("{pattern}*")
            } else {
                format!("*{pattern}*")
            };
            out.push(format!(
                "--only '{glob}' (matches {})",
                containing.iter().take(5).copied().collect::<Vec<_>>().join(", ")
            ));
            continue;
        }
        let mut close: Vec<(f64, &str)> = names
            .iter()
            .map(|n| (strsim::jaro_winkler(&lower, &n.to_ascii_lowercase()), *n))
            .filter(|(score, _)| *score >= 0.75)
            .collect();
        close.sort_by(|a, b| b.0.total_cmp(&a.0));
        if !close.is_empty() {
            let shown: Vec<&str> = close.iter().take(3).map(|(_, n)| *n).collect();
            out.push(format!("instead of `{pattern}`: {}", shown.join(", ")));
        }
    }
    out
}
