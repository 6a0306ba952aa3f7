//! `authprobe approve` and `authprobe approvals`: recording who approved which certificate
//! or SSH host key for which endpoint, listing the records and revoking them.
//!
//! `approve` runs the probes themselves (the protocol's TLS upgrade, the SSH key exchange,
//! through their tunnels and proxies), so it records exactly what a probe would verify.
//! A server a probe does not trust is refused before any credential is sent, as always;
//! what it presented is shown, and recorded once confirmed.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::approvals::{self as file, ChangeError};
use crate::connect::tls::normalize_fingerprint;
use crate::model::advice::Dialect;
use crate::model::approvals::{Approval, ApprovalKind, Approvals, Candidate};
use crate::runner::{self, RunOptions, suite::Config};
use crate::surface::execute::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, eprint_line};

#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// Probe names or globs of the config (-c); or one URL to approve without a config
    /// (https://, postgres://, mysql://, mssql://, sftp://…; recorded in ./approvals.toml).
    #[arg(required = true, value_name = "PROBE|URL")]
    pub targets: Vec<String>,
    /// The probes file (its approvals file is `[defaults] approvals`, else approvals.toml beside it).
    #[arg(short = 'c', long = "config", env = "AUTHPROBE_CONFIG", default_value = "probes.toml")]
    pub config: PathBuf,
    /// Approve without asking (for scripts).
    #[arg(long)]
    pub yes: bool,
    /// Who approves [default: the login name].
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Approve only if the server presents exactly this fingerprint (received out of band):
    /// a certificate's SHA-256 in hex, or an SSH key's SHA256:….
    #[arg(long, value_name = "FINGERPRINT")]
    pub sha256: Option<String>,
    /// Approve the chain's top certificate (the CA that issued the server's) instead of the
    /// server's own, so that its renewals are trusted too.
    #[arg(long)]
    pub ca_of_chain: bool,
    /// Give up on a server after this long.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: Duration,
    #[command(flatten)]
    pub probe: crate::surface::check::CheckOptions,
    #[command(flatten)]
    pub proxy: crate::surface::check::ProxyArgs,
}

#[derive(Args, Debug)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    pub command: ApprovalsCommand,
}

#[derive(Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// List the approved certificates and host keys.
    List {
        /// The probes file whose approvals to list.
        #[arg(short = 'c', long = "config", env = "AUTHPROBE_CONFIG", default_value = "probes.toml")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Remove approvals by fingerprint (SHA-256 as listed); the servers are then refused
    /// again until approved anew.
    Revoke {
        #[arg(short = 'c', long = "config", env = "AUTHPROBE_CONFIG", default_value = "probes.toml")]
        config: PathBuf,
        #[arg(required = true, value_name = "SHA256")]
        fingerprints: Vec<String>,
    },
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum ListFormat {
    Table,
    Json,
}

/// Where a config's approvals file is, from its `[defaults] approvals` (the config must be
/// valid to say); without a config file, approvals.toml beside where it would be.
fn approvals_path(config: &Path) -> Result<PathBuf, u8> {
    if !config.exists() {
        return Ok(config.with_file_name("approvals.toml"));
    }
    crate::surface::loading::load_config(config).map(|cfg| cfg.approvals.path)
}

pub fn approvals_command(args: ApprovalsArgs) -> u8 {
    match args.command {
        ApprovalsCommand::List { config, format } => {
            let path = match approvals_path(&config) {
                Ok(path) => path,
                Err(code) => return code,
            };
            let entries = match file::read(&path) {
                Ok(entries) => entries,
                Err(errors) => return print_errors(&errors),
            };
            let text = match format {
                ListFormat::Json => serde_json::to_string_pretty(&entries).unwrap_or_default() + "\n",
                ListFormat::Table => table(&entries, &path),
            };
            let _ = crate::output::write_stdout(&text);
            EXIT_OK
        }
        ApprovalsCommand::Revoke { config, fingerprints } => {
            let path = match approvals_path(&config) {
                Ok(path) => path,
                Err(code) => return code,
            };
            revoke(&path, &fingerprints)
        }
    }
}

fn print_errors(errors: &[crate::config::ConfigError]) -> u8 {
    for error in errors {
        eprint_line(&format!("error: {error}"));
    }
    EXIT_USAGE
}

fn table(entries: &[Approval], path: &Path) -> String {
    if entries.is_empty() {
        return format!("no approvals in {}\n", path.display());
    }
    let mut out = String::new();
    for a in entries {
        let expires = a.not_after.as_deref().map(|t| format!(", valid until {t}")).unwrap_or_default();
        out += &format!("{} {}  {}\n", a.kind.name(), a.endpoint, a.name);
        out += &format!("    SHA-256 {}{expires}\n", a.sha256);
        out += &format!("    approved by {} on {}\n", a.validated_by, a.validated_date);
    }
    out
}

/// Same fingerprint, as written by people: certificate fingerprints in any hex form.
fn same_fingerprint(kind: ApprovalKind, recorded: &str, given: &str) -> bool {
    match kind {
        ApprovalKind::Tls => normalize_fingerprint(given).is_some_and(|g| g == recorded),
        ApprovalKind::Ssh => recorded == given.trim_end_matches('='),
    }
}

fn revoke(path: &Path, fingerprints: &[String]) -> u8 {
    let result = file::change(path, |entries| {
        let unknown: Vec<String> = fingerprints
            .iter()
            .filter(|f| !entries.iter().any(|e| same_fingerprint(e.kind, &e.sha256, f)))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            let known: Vec<String> =
                entries.iter().map(|e| format!("{} ({} {})", e.sha256, e.kind.name(), e.endpoint)).collect();
            return (false, Err((unknown, known)));
        }
        let before = entries.len();
        entries.retain(|e| !fingerprints.iter().any(|f| same_fingerprint(e.kind, &e.sha256, f)));
        (true, Ok(before - entries.len()))
    });
    match result {
        Ok(Ok(removed)) => {
            eprint_line(&format!("authprobe: revoked {removed} approval{} in {}", plural(removed), path.display()));
            EXIT_OK
        }
        Ok(Err((unknown, known))) => {
            eprint_line(&format!("error: no approval in {} has {}", path.display(), unknown.join(", ")));
            if known.is_empty() {
                eprint_line("hint: the file approves nothing");
            } else {
                eprint_line(&format!("hint: approved: {}", known.join("; ")));
            }
            EXIT_USAGE
        }
        Err(err) => change_failed(err),
    }
}

fn change_failed(err: ChangeError) -> u8 {
    match err {
        ChangeError::Invalid(errors) => print_errors(&errors),
        ChangeError::Io(why) => {
            eprint_line(&format!("error: {why}"));
            EXIT_USAGE
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Who approves: `--by`, else the login name.
fn approver(by: Option<&str>) -> String {
    by.map(str::to_string)
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

pub fn approve_command(args: ApproveArgs) -> u8 {
    let by_url = args.targets.len() == 1 && args.targets[0].contains("://");
    let cfg: Config = if by_url {
        match crate::surface::loading::check_config(&args.targets[0], &args.probe, &args.proxy, false) {
            Ok(cfg) => cfg,
            Err(code) => return code,
        }
    } else {
        match crate::surface::loading::load_config(&args.config) {
            Ok(cfg) => cfg,
            Err(code) => return code,
        }
    };
    let probes = if by_url { cfg.probes.clone() } else { runner::select(&cfg.probes, &args.targets, &[]) };
    if probes.is_empty() {
        eprint_line(&format!("error: no probe in {} is named {}", cfg.path.display(), args.targets.join(" or ")));
        return EXIT_USAGE;
    }
    let wanted = match &args.sha256 {
        Some(raw) => match normalize_fingerprint(raw).or_else(|| raw.starts_with("SHA256:").then(|| raw.clone())) {
            Some(fp) => Some(fp),
            None => {
                eprint_line(&format!("error: --sha256 {raw}: not a SHA-256 fingerprint (hex, or SHA256:… for SSH)"));
                return EXIT_USAGE;
            }
        },
        None => None,
    };
    let approvals = Arc::new(Approvals::new(cfg.approvals.entries.clone()).capturing());
    let opts = RunOptions {
        concurrency: cfg.defaults.concurrency,
        timeout: Some(args.timeout),
        fail_fast: false,
        wait: None,
        tracker: None,
        advice: if by_url { Dialect::Flags } else { Dialect::Config },
        approvals: approvals.clone(),
        config_path: (!by_url).then(|| cfg.path.clone()),
        keep: crate::runner::Keep::ALL,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprint_line(&format!("error: cannot start the async runtime: {err}"));
            return EXIT_USAGE;
        }
    };
    let report = runtime.block_on(runner::run(probes, &opts, CancellationToken::new()));
    runtime.shutdown_background();
    let candidates = approvals.take_captured();
    let by = approver(args.by.as_deref());
    let mut chosen = Vec::new();
    let mut exit = EXIT_OK;
    for candidate in &candidates {
        match decide(candidate, &args, wanted.as_deref(), &by) {
            Ok(Some(approval)) => chosen.push(approval),
            Ok(None) => exit = EXIT_FAILED,
            Err(code) => return code,
        }
    }
    // Probes with nothing to approve: trusted already, or not reached at all.
    for probe in &report.probes {
        let trusted = probe.tls.as_ref().map(|t| (t.verified, t.approved.clone(), &t.sha256));
        let key = probe.host_key.as_ref().map(|k| (k.verified, k.approved.clone(), &k.sha256));
        let seen = trusted.as_ref().map(|t| t.2).or(key.as_ref().map(|k| k.2));
        // A tunnel's bastion key is captured under the bastion's endpoint: any capture
        // during this probe's run counts as its own.
        let captured = candidates.iter().any(|c| Some(&c.approval.sha256) == seen)
            || (seen.is_none() && !candidates.is_empty() && probe.error.is_some());
        match trusted.or(key) {
            _ if captured => {}
            Some((true, Some(approved), fp)) => eprint_line(&format!(
                "{}: {fp} is approved already (by {} on {})",
                probe.name, approved.by, approved.date
            )),
            Some((true, None, fp)) => eprint_line(&format!(
                "{}: {fp} is trusted already (CA, pin or known_hosts): nothing to approve",
                probe.name
            )),
            _ => {
                let why = probe
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| "no certificate or host key".into());
                eprint_line(&format!("{}: nothing to approve: {why}", probe.name));
                exit = EXIT_FAILED;
            }
        }
    }
    if chosen.is_empty() {
        return exit;
    }
    let path = cfg.approvals.path.clone();
    match file::record(&path, &chosen) {
        Ok((replaced, _)) => {
            for old in replaced {
                eprint_line(&format!("authprobe: replaces the approval of {} for {}", old.describe(), old.endpoint));
            }
            eprint_line(&format!(
                "authprobe: approved {} (by {by}); recorded in {}",
                chosen.iter().map(|a| format!("{} {}", a.endpoint, a.sha256)).collect::<Vec<_>>().join(", "),
                path.display()
            ));
            exit
        }
        Err(err) => change_failed(err),
    }
}

/// Shows a candidate and decides: `Ok(Some)` to record, `Ok(None)` refused or declined.
fn decide(candidate: &Candidate, args: &ApproveArgs, wanted: Option<&str>, by: &str) -> Result<Option<Approval>, u8> {
    let mut approval = match (&candidate.top_of_chain, args.ca_of_chain) {
        (Some(top), true) => top.clone(),
        (None, true) if candidate.approval.kind == ApprovalKind::Tls => {
            eprint_line(&format!(
                "{}: the server sends only its own certificate, not its issuer's: approving that certificate",
                candidate.approval.endpoint
            ));
            candidate.approval.clone()
        }
        _ => candidate.approval.clone(),
    };
    let mut shown = format!(
        "{} presents a {} not trusted yet ({})\n",
        approval.endpoint,
        if approval.kind == ApprovalKind::Tls { "certificate" } else { "host key" },
        candidate.refusal
    );
    for (label, value) in &candidate.shown {
        shown += &format!("  {label:<11} {value}\n");
    }
    if args.ca_of_chain && candidate.top_of_chain.is_some() {
        shown += &format!("  approving the chain's top certificate: {} (SHA-256 {})\n", approval.name, approval.sha256);
    }
    eprint!("{}", crate::model::redact::scrub(&shown));
    if let Some(wanted) = wanted
        && !same_fingerprint(approval.kind, &approval.sha256, wanted)
    {
        eprint_line(&format!(
            "refused: {} presents {}, not the {wanted} given with --sha256: do not approve it before its owner confirms which is right",
            approval.endpoint, approval.sha256
        ));
        return Ok(None);
    }
    let yes = if args.yes || wanted.is_some() {
        true
    } else if std::io::stdin().is_terminal() {
        eprint!("Approve it for {}, as {by}? [y/N] ", approval.endpoint);
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        matches!(line.trim(), "y" | "Y" | "yes" | "YES")
    } else {
        eprint_line(
            "error: not a terminal, so nothing was asked: pass --yes (or --sha256 with the fingerprint its owner gave you)",
        );
        return Err(EXIT_USAGE);
    };
    if !yes {
        eprint_line("not approved");
        return Ok(None);
    }
    approval.validated_by = by.to_string();
    approval.validated_date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    Ok(Some(approval))
}
