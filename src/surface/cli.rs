//! Command-line interface: argument parsing, and mapping outcomes to the contract's exit
//! codes (0 all passed, 1 a probe failed, 2 usage or config error, 130 interrupted).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::surface::execute::{execute, progress_tracker};
use clap::{Args, Parser, Subcommand};

use crate::connect::proxy::{ProxyPolicy, ProxySource};
use crate::model::advice::Dialect;
use crate::model::redact;
use crate::output;
use crate::runner::suite::{self as config, Config};
use crate::runner::{self, RunOptions};

pub use crate::surface::execute::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ReportArgs, eprint_line};

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
    /// Probe one URL without a config file (http, https, postgres, mysql, mssql, s3, sftp);
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
    /// Serve the probes to Prometheus: /probe?target=NAME (blackbox-exporter protocol),
    /// /metrics, a status page at /, /healthz; reload with SIGHUP or POST /-/reload.
    Serve(crate::surface::serve::ServeArgs),
    /// Convert a blackbox exporter's blackbox.yml (http modules) into probes.toml on stdout;
    /// credentials become ${ENV} or ${file:…} references, never copied; what does not
    /// convert is listed on stderr.
    FromBlackbox(crate::surface::from_blackbox::FromBlackboxArgs),
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
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// https://, postgres://, mysql://, mssql://, s3://bucket/?endpoint=… (host[:port]), or sftp:// / ssh:// for SSH host keys
    pub target: String,
    /// Judge the chain against this CA bundle instead of the system trust store.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Judge SSH host keys against this known_hosts file [default: ~/.ssh/known_hosts if it exists].
    #[arg(long, value_name = "PATH")]
    pub known_hosts: Option<PathBuf>,
    /// Give up after this long.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    #[command(flatten)]
    pub proxy: crate::surface::check::ProxyArgs,
}

fn warn_proxy_password(proxy: &crate::surface::check::ProxyArgs, quiet: bool) {
    if proxy.has_password() && !quiet {
        eprint_line(
            "warning: the --proxy URL contains a password, which ends up in shell history and process lists; put the proxy in HTTPS_PROXY or ALL_PROXY instead",
        );
    }
}

#[derive(Args, Debug)]
pub struct ConfigArg {
    /// The probes file.
    #[arg(
        short = 'c',
        long = "config",
        env = "AUTHPROBE_CONFIG",
        hide_env_values = true,
        default_value = "probes.toml"
    )]
    pub config: PathBuf,
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
        Command::Serve(args) => crate::surface::serve::main(args),
        Command::FromBlackbox(args) => crate::surface::from_blackbox::command(&args),
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

pub(crate) fn load_config(path: &std::path::Path) -> Result<Config, u8> {
    match config::load(path) {
        Ok(cfg) => {
            for warning in &cfg.warnings {
                eprint_line(&format!("warning: {warning}"));
            }
            Ok(cfg)
        }
        Err(errors) => {
            for err in &errors.0 {
                eprint_line(&format!("error: {err}"));
            }
            let n = errors.0.len();
            eprint_line(&format!(
                "{}: {n} error{} found; nothing was run",
                path.display(),
                if n == 1 { "" } else { "s" }
            ));
            let mut unset: Vec<&str> = errors.0.iter().filter_map(|e| e.unset_var.as_deref()).collect();
            unset.sort_unstable();
            unset.dedup();
            // One or two missing variables are clear from their errors; many mean a whole
            // environment was not loaded.
            if unset.len() >= 3 {
                let shown: Vec<&str> = unset.iter().take(5).copied().collect();
                let more = if unset.len() > 5 { format!(" and {} more", unset.len() - 5) } else { String::new() };
                eprint_line(&format!(
                    "hint: {} environment variables the config refers to are not set ({}{more}): export them first{}",
                    unset.len(),
                    shown.join(", "),
                    if unset.iter().any(|v| v.starts_with("AP_")) {
                        "; the example config's come from the test servers: set -a; . \"$(scripts/servers.sh env)\"; set +a"
                    } else {
                        ""
                    }
                ));
            }
            Err(EXIT_USAGE)
        }
    }
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
    };
    execute(selected, &opts, &args.report, &cfg.stores)
}

fn check_command(args: CheckArgs) -> u8 {
    let synthesized = match crate::surface::check::synthesize(&args.url, &args.probe) {
        Ok(s) => s,
        Err(why) => {
            eprint_line(&format!("error: {why}"));
            return EXIT_USAGE;
        }
    };
    if synthesized.url_password.is_some() && !args.report.quiet {
        eprint_line(
            "warning: the URL contains a password, which ends up in shell history and process lists; use --password-env (or PGPASSWORD) instead",
        );
    }
    let url_password = synthesized.url_password.clone();
    let env = move |name: &str| {
        if name == crate::surface::check::URL_PASSWORD_VAR {
            return url_password.clone();
        }
        std::env::var(name).ok()
    };
    let mut cfg = match config::load_str(std::path::Path::new("<check URL>"), synthesized.toml, &env) {
        Ok(cfg) => cfg,
        Err(errors) => {
            // There is no file to point at: name the flag or URL part that set the key.
            for err in &errors.0 {
                let key = err.key.as_deref().unwrap_or("");
                let origin = crate::surface::check::origin_of(key, &args.probe, err.unset_var.as_deref());
                let message = match &err.unset_var {
                    Some(var) if origin.contains(var.as_str()) => "the variable is not set".to_string(),
                    Some(var) => format!("the variable {var} is not set"),
                    None => err.message.clone(),
                };
                eprint_line(&format!("error: {origin}: {message}"));
            }
            return EXIT_USAGE;
        }
    };
    if !args.report.quiet {
        for warning in &cfg.warnings {
            let origin = crate::surface::check::origin_of(warning.key.as_deref().unwrap_or(""), &args.probe, None);
            eprint_line(&format!("warning: {origin}: {}", warning.message));
        }
    }
    warn_proxy_password(&args.proxy, args.report.quiet);
    match args.proxy.setting() {
        Ok(Some(setting)) => {
            for probe in &mut cfg.probes {
                let policy =
                    ProxyPolicy { probe: Some((setting.clone(), ProxySource::Flag)), ..(*probe.proxy).clone() };
                probe.proxy = std::sync::Arc::new(policy);
            }
        }
        Ok(None) => {}
        Err(why) => {
            eprint_line(&format!("error: {why}"));
            return EXIT_USAGE;
        }
    }
    let opts = RunOptions {
        concurrency: 1,
        timeout: Some(args.timeout),
        fail_fast: false,
        wait: args.wait,
        tracker: progress_tracker(&args.report),
        // `check` has no config file: its hints name the flags that do the same.
        advice: Dialect::Flags,
    };
    execute(cfg.probes, &opts, &args.report, &cfg.stores)
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
    let trust = crate::surface::inspect::Trust { ca, known_hosts };
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
