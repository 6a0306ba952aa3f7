//! Command-line interface: argument parsing, and mapping outcomes to the contract's exit
//! codes (0 all passed, 1 a probe failed, 2 usage or config error, 130 interrupted).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::surface::execute::{execute, progress_tracker};
use clap::{Args, Parser, Subcommand};

use crate::model::advice::Dialect;
use crate::model::redact;
use crate::output;
use crate::runner::suite::Config;
use crate::runner::{self, RunOptions};

pub use crate::surface::execute::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ReportArgs, eprint_line};
pub use crate::surface::loading::{ConfigArg, check_config, load_config, warn_proxy_password};

#[derive(Parser, Debug)]
#[command(
    name = "authprobe",
    version,
    about = "Do these credentials actually work against these systems, and if not, exactly why?",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where `check` takes secrets from, for its --help.
const CHECK_ENVIRONMENT: &str = "Environment:
  PGPASSWORD       password for postgres:// (or --password-env NAME)
  MYSQL_PWD        password for mysql://
  MSSQL_PASSWORD   password for mssql:// (required)
  SSHPASS          password for sftp:// (else --identity KEY, else the ssh-agent at SSH_AUTH_SOCK)
  FTP_PASSWORD     password for ftp:// and ftps:// (no user in the URL: anonymous)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_REGION
                   credentials for s3://, as the AWS CLI reads them (else the default chain)
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY
                   proxies, as curl reads them (--proxy URL and --no-proxy override)
  --bearer-env NAME, --password-env NAME name any other variable; a password in the URL is
  accepted but warned about (it stays in shell history).";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the probes of a config file and report (exit 0 all passed, 1 a probe failed).
    Run(RunArgs),
    /// Probe one URL without a config file (http, https, postgres, mysql, mssql, s3, sftp, ftp, ftps);
    /// secrets come from environment variables (a password written in the URL works, with a
    /// warning), never from other arguments.
    #[command(after_help = CHECK_ENVIRONMENT)]
    Check(Box<CheckArgs>),
    /// Parse and check the config file without any network traffic (exit 0 or 2).
    Validate(ValidateArgs),
    /// Show the certificate chain a server presents (https, postgres, mysql, mssql, s3), or an
    /// SSH server's host keys (sftp, ssh), and the line that approves it (exit 0 trusted,
    /// 1 not trusted or not reached, 2 usage).
    Inspect(InspectArgs),
    /// Approve the certificate or SSH host key a probe's server presents (as the probe sees
    /// it: after the protocol's TLS upgrade, through its tunnel), recording who approved it
    /// and when in the approvals file (exit 0 approved or nothing to approve, 1 not, 2 usage).
    Approve(Box<crate::surface::approve::ApproveArgs>),
    /// List or revoke approved certificates and host keys.
    Approvals(crate::surface::approve::ApprovalsArgs),
    /// Check cards: links that let a credential's owner test it on serve's /card/ page and
    /// hand it over sealed to the operators' age keys (key, create, list, revoke).
    Card(crate::surface::card::CardArgs),
    /// Serve the probes to Prometheus: /probe?target=NAME (blackbox-exporter protocol),
    /// /metrics, a status page at /, /healthz; reload with SIGHUP or POST /-/reload.
    Serve(crate::surface::serve::ServeArgs),
    /// Convert a blackbox exporter's blackbox.yml (http modules) into probes.toml on stdout;
    /// credentials become ${ENV} or ${file:…} references, never copied; what does not
    /// convert is listed on stderr.
    FromBlackbox(crate::surface::from_blackbox::FromBlackboxArgs),
    /// Print the JSON Schema of probes.toml (as schemas/probes.schema.json), for editors
    /// (Taplo / Even Better TOML: `#:schema` at the top of the file) and validators.
    Schema,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the complete manual page (roff: every command, its options, exit status,
    /// environment, files); --dir DIR writes one page per command instead.
    Man(crate::surface::man::ManArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// What to probe: http(s)://…, postgres://user@host:port/db?sslmode=…, sftp://user@host:port/path, …
    pub url: String,
    #[command(flatten)]
    pub probe: crate::surface::check::CheckOptions,
    #[command(flatten)]
    pub report: ReportArgs,
    #[command(flatten)]
    pub proxy: crate::surface::check::ProxyArgs,
    /// Timeout, all stages together.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Retry with backoff until the probe passes or DUR runs out.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub wait: Option<Duration>,
    /// Approve a certificate or SSH host key seen for the first time at an endpoint with no
    /// approval, and record it in the approvals file (validated_by = "trust-new"). A changed
    /// one is never approved this way.
    #[arg(long)]
    pub trust_new: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// https://, postgres://, mysql://, mssql://, ftp:// (AUTH TLS), ftps://, s3://bucket/?endpoint=… (host[:port]), or sftp:// / ssh:// for SSH host keys
    pub target: String,
    /// Judge the chain against this CA bundle instead of the system trust store.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Judge SSH host keys against this known_hosts file [default: ~/.ssh/known_hosts if it exists].
    #[arg(long, value_name = "PATH")]
    pub known_hosts: Option<PathBuf>,
    /// Say whether what the server presents is approved in this approvals file.
    #[arg(long, value_name = "PATH", default_value = "approvals.toml")]
    pub approvals: PathBuf,
    /// Give up after this long.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    #[command(flatten)]
    pub proxy: crate::surface::check::ProxyArgs,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Run only probes whose name or a tag matches (`*` globs); repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub only: Vec<String>,
    /// Skip probes whose name or a tag matches (`*` globs); repeatable; wins over --only.
    #[arg(long, value_name = "PATTERN")]
    pub skip: Vec<String>,
    #[command(flatten)]
    pub report: ReportArgs,
    /// How many probes run at once [default: from the config, else 32].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: Option<u32>,
    /// Timeout per probe, all stages together, overriding the config (e.g. 500ms, 10s).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Retry failing probes with backoff until all pass or DUR runs out (deploy gate).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub wait: Option<Duration>,
    /// Stop at the first failing probe; unfinished probes are reported as cancelled.
    #[arg(long)]
    pub fail_fast: bool,
    /// Approve a certificate or SSH host key seen for the first time at an endpoint with no
    /// approval, and record it in the approvals file (validated_by = "trust-new"). A changed
    /// one is never approved this way.
    #[arg(long)]
    pub trust_new: bool,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

fn parse_duration(raw: &str) -> Result<Duration, String> {
    match humantime::parse_duration(raw) {
        Ok(d) if d.is_zero() => Err("must be longer than zero".into()),
        Ok(d) => Ok(d),
        Err(_) if raw.trim().parse::<f64>().is_ok() => {
            Err(format!("`{raw}` has no unit: write e.g. {}s, 500ms or 2m", raw.trim()))
        }
        Err(_) => Err(format!("`{raw}` is not a duration: write e.g. 500ms, 10s or 2m")),
    }
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprint_line(&format!("authprobe: internal error (a bug, please report it): {payload}{at}"));
    }));
}

pub fn main() -> ExitCode {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    ExitCode::from(match cli.command {
        Command::Run(args) => run_command(args),
        Command::Check(args) => check_command(*args),
        Command::Validate(args) => validate_command(args),
        Command::Inspect(args) => inspect_command(args),
        Command::Approve(args) => crate::surface::approve::approve_command(*args),
        Command::Approvals(args) => crate::surface::approve::approvals_command(args),
        Command::Card(args) => crate::surface::card::command(args),
        Command::Serve(args) => crate::surface::serve::main(args),
        Command::FromBlackbox(args) => crate::surface::from_blackbox::command(&args),
        Command::Schema => {
            let schema = crate::config::schema::json_schema();
            let text = serde_json::to_string_pretty(&schema).unwrap_or_default();
            let _ = output::write_stdout(&format!("{text}\n"));
            EXIT_OK
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "authprobe", &mut buf);
            let _ = output::write_stdout(&String::from_utf8_lossy(&buf));
            EXIT_OK
        }
        Command::Man(args) => {
            use clap::CommandFactory;
            match crate::surface::man::command(&args, Cli::command()) {
                Ok(page) => {
                    let _ = output::write_stdout(&page);
                    EXIT_OK
                }
                Err(err) => {
                    eprint_line(&format!("error: {err}"));
                    EXIT_USAGE
                }
            }
        }
    })
}

fn validate_command(args: ValidateArgs) -> u8 {
    let cfg = match load_config(&args.config.config) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for probe in &cfg.probes {
        match kinds.iter_mut().find(|(k, _)| *k == probe.kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((probe.kind, 1)),
        }
    }
    let by_kind: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let n = cfg.probes.len();
    let line =
        format!("{}: OK, {n} probe{} ({})", cfg.path.display(), if n == 1 { "" } else { "s" }, by_kind.join(", "));
    // The path and counts are not secrets, and scrubbing would build a matcher over every
    // secret in the file just for this line.
    let _ = output::write_stdout(&format!("{line}\n"));
    EXIT_OK
}

/// The approvals a run trusts; with `--trust-new`, approving first-seen ones as it goes.
fn approvals_for(cfg: &Config, trust_new: bool) -> std::sync::Arc<crate::model::approvals::Approvals> {
    let approvals = crate::model::approvals::Approvals::new(cfg.approvals.entries.clone());
    std::sync::Arc::new(if trust_new { approvals.trusting_new() } else { approvals })
}

fn run_command(args: RunArgs) -> u8 {
    let cfg = match load_config(&args.config.config) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let selected = runner::select(&cfg.probes, &args.only, &args.skip);
    if selected.is_empty() {
        eprint_line(&format!(
            "error: no probe in {} matches the --only/--skip patterns ({} probes defined)",
            cfg.path.display(),
            cfg.probes.len()
        ));
        let suggestions = runner::suggest_patterns(&cfg.probes, &args.only);
        if !suggestions.is_empty() {
            eprint_line(&format!("hint: patterns match whole names or tags; try {}", suggestions.join("; ")));
        }
        return EXIT_USAGE;
    }
    let opts = RunOptions {
        concurrency: args.concurrency.map(|n| n as usize).unwrap_or(cfg.defaults.concurrency),
        timeout: args.timeout,
        fail_fast: args.fail_fast,
        wait: args.wait,
        tracker: progress_tracker(&args.report),
        advice: Dialect::Config,
        approvals: approvals_for(&cfg, args.trust_new),
        config_path: Some(cfg.path.clone()),
        keep: args.report.keep(),
    };
    execute(selected, &opts, &args.report, &cfg.stores, &cfg.approvals.path)
}

fn check_command(args: CheckArgs) -> u8 {
    let cfg = match check_config(&args.url, &args.probe, &args.proxy, args.report.quiet) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let opts = RunOptions {
        concurrency: 1,
        timeout: Some(args.timeout),
        fail_fast: false,
        wait: args.wait,
        tracker: progress_tracker(&args.report),
        // `check` has no config file: its hints name the flags that do the same.
        advice: Dialect::Flags,
        approvals: approvals_for(&cfg, args.trust_new),
        config_path: None,
        keep: args.report.keep(),
    };
    execute(cfg.probes, &opts, &args.report, &cfg.stores, &cfg.approvals.path)
}

fn inspect_command(args: InspectArgs) -> u8 {
    let ca = match &args.ca {
        None => None,
        Some(path) => {
            match std::fs::read(path).map_err(|e| e.to_string()).and_then(|pem| crate::connect::tls::parse_ca(&pem)) {
                Ok(store) => Some(std::sync::Arc::new(store)),
                Err(why) => {
                    eprint_line(&format!("error: --ca {}: {why}", path.display()));
                    return EXIT_USAGE;
                }
            }
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprint_line(&format!("error: cannot start the async runtime: {err}"));
            return EXIT_USAGE;
        }
    };
    let known_hosts = match load_known_hosts(args.known_hosts.as_deref()) {
        Ok(file) => file,
        Err(why) => {
            eprint_line(&format!("error: {why}"));
            return EXIT_USAGE;
        }
    };
    let approvals = match crate::config::approvals::read(&args.approvals) {
        Ok(entries) => entries,
        Err(errors) => {
            for error in errors {
                eprint_line(&format!("error: {error}"));
            }
            return EXIT_USAGE;
        }
    };
    let trust = crate::surface::inspect::Trust { ca, known_hosts, approvals };
    warn_proxy_password(&args.proxy, false);
    let proxy = match args.proxy.policy() {
        Ok(policy) => std::sync::Arc::new(policy),
        Err(why) => {
            eprint_line(&format!("error: {why}"));
            return EXIT_USAGE;
        }
    };
    match runtime.block_on(crate::surface::inspect::inspect(&args.target, trust, proxy, args.timeout)) {
        Ok(shown) => {
            let _ = output::write_stdout(&redact::scrub(&shown.text));
            if shown.verified { EXIT_OK } else { EXIT_FAILED }
        }
        Err(failure) => {
            if failure.class == crate::model::error::ErrorClass::Config {
                eprint_line(&format!("error: {}", failure.message));
                return EXIT_USAGE;
            }
            eprint_line(&format!("error: {}: {}", failure.class, failure.message));
            eprint_line(&format!("hint: {}", failure.hint_or_default()));
            EXIT_FAILED
        }
    }
}

/// The known_hosts file to judge SSH keys against: the one named, else the user's own if
/// there is one.
fn load_known_hosts(
    path: Option<&std::path::Path>,
) -> Result<Option<crate::connect::ssh::known_hosts::KnownHosts>, String> {
    let (path, explicit) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => match std::env::var_os("HOME") {
            Some(home) => (PathBuf::from(home).join(".ssh/known_hosts"), false),
            None => return Ok(None),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => crate::connect::ssh::known_hosts::KnownHosts::parse(&path, &text)
            .map(Some)
            .map_err(|why| format!("--known-hosts {}: {why}", path.display())),
        Err(_) if !explicit => Ok(None),
        Err(err) => Err(format!("--known-hosts {}: {}", path.display(), crate::model::error::describe_io(&err))),
    }
}
