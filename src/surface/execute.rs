//! Running a command's probes: the async runtime, Ctrl-C, the leases still being given
//! back, and the report written where it was asked for, with the exit code.

use std::io::IsTerminal;

use tokio_util::sync::CancellationToken;

use crate::model::report::RunReport;
use std::path::PathBuf;

use clap::Args;

use crate::model::redact;
use crate::output::{self, Format, Style};
use crate::runner::suite as config;
use crate::runner::{self, RunOptions};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Report format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the report to this file atomically; a one-line summary still goes to stderr.
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// More detail in the table: -v adds stage timings, certificate and host-key details and
    /// the credential source; -vv adds what the protocols and drivers saw (server versions,
    /// negotiated algorithms, response headers, request ids). Secrets stay redacted.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Nothing on stderr but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// No colour, even on a terminal (NO_COLOR is honoured too).
    #[arg(long)]
    pub no_color: bool,
}

impl ReportArgs {
    /// What the chosen format and verbosity show of each probe's `-v` lines: only the
    /// table, when asked. A run's reports keep nothing else.
    pub fn keep(&self) -> crate::runner::Keep {
        let table = self.format == Format::Table;
        crate::runner::Keep {
            details: table && self.verbose >= 1,
            diagnostics: table && self.verbose >= 2,
            facts: false,
        }
    }
}

/// Prints a line to stderr, scrubbed. A closed stderr is not worth dying over.
pub fn eprint_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{}", redact::scrub(line));
}

/// A live progress line only for people watching: stderr is a terminal that can redraw,
/// and they did not ask for quiet.
pub(crate) fn progress_tracker(args: &ReportArgs) -> Option<std::sync::Arc<crate::runner::progress::Tracker>> {
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    (!args.quiet && !dumb && std::io::stderr().is_terminal()).then(Default::default)
}

fn color_allowed(args: &ReportArgs) -> bool {
    let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !args.no_color && !no_color_env && args.output.is_none() && std::io::stdout().is_terminal()
}

/// Runs probes and writes the report as asked; returns the exit code.
pub(crate) fn execute(
    probes: Vec<config::ProbeConfig>,
    opts: &RunOptions,
    args: &ReportArgs,
    stores: &crate::identity::stores::SecretStores,
    approvals_path: &std::path::Path,
) -> u8 {
    crate::runner::limits::give_back_freed_memory();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprint_line(&format!("error: cannot start the async runtime: {err}"));
            return EXIT_USAGE;
        }
    };
    if args.format == Format::Json && args.output.is_none() && !std::io::stdout().is_terminal() {
        // Each probe's report is written as it and the ones before it are done: a run of
        // 100,000 probes never holds their reports at once. (Not to a terminal, where the
        // progress line is drawn among the lines.)
        let mut stream = output::json::Streamed::start(std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()));
        let mut write = |mut probe: crate::model::report::ProbeReport| {
            probe.scrub_secrets();
            stream.probe(&probe);
        };
        let (report, interrupted) = runtime.block_on(async {
            let ran = run_until_interrupted(probes, opts, Some(&mut write)).await;
            stores.settle(LEASE_RETURN_WAIT).await;
            ran
        });
        record_trusted_new(opts, approvals_path, args.quiet);
        if let Err(err) = stream.finish(&report) {
            eprint_line(&format!("error: cannot write the report: {err}"));
        }
        runtime.shutdown_background();
        return exit_code(&report, interrupted);
    }
    let (mut report, interrupted) = runtime.block_on(async {
        let ran = run_until_interrupted(probes, opts, None).await;
        // Leases of dynamic secrets whose attempt was cut are being given back: a moment for
        // them, so that a run leaves no database role behind.
        stores.settle(LEASE_RETURN_WAIT).await;
        ran
    });
    record_trusted_new(opts, approvals_path, args.quiet);
    report.scrub_secrets();
    let width = if args.output.is_none() { output::stdout_terminal_width() } else { None };
    let style = Style { verbose: args.verbose, color: color_allowed(args), width };
    let exit = exit_code(&report, interrupted);
    if args.format == Format::Json && args.output.is_none() {
        if let Err(err) = output::json::write_stdout(&report) {
            eprint_line(&format!("error: cannot write the report: {err}"));
        }
        runtime.shutdown_background();
        return exit;
    }
    let text = output::render(&report, args.format, style);
    match &args.output {
        Some(path) => {
            if let Err(err) = output::write_atomic(path, &text) {
                eprint_line(&format!("error: cannot write the report to {}: {err}", path.display()));
                return EXIT_USAGE;
            }
            if !args.quiet {
                eprint_line(&format!("authprobe: {} (report written to {})", report.summary_line(), path.display()));
            }
        }
        None => {
            if let Err(err) = output::write_stdout(&text) {
                eprint_line(&format!("error: cannot write the report: {err}"));
            }
        }
    }
    // Shutting down without waiting: aborted probes may still hold sockets in blocking DNS
    // lookups, which must not delay the exit.
    runtime.shutdown_background();
    exit
}

/// How long `run` and `check` wait, at their end, for leases still being given back. A
/// revocation takes milliseconds on a quiet store, but the store drops the database role
/// itself, and on a loaded machine that took over 3 s (CI); a lease not given back lives
/// to its TTL, so a few seconds more at the end of a cut run are the better trade.
const LEASE_RETURN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn exit_code(report: &RunReport, interrupted: bool) -> u8 {
    if interrupted {
        EXIT_INTERRUPTED
    } else if report.summary.failed > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// Runs the probes; on Ctrl-C (or SIGTERM) the unfinished ones are cancelled and the partial
/// report is returned. A second Ctrl-C exits at once.
async fn run_until_interrupted(
    probes: Vec<config::ProbeConfig>,
    opts: &RunOptions,
    sink: Option<runner::ReportSink<'_>>,
) -> (RunReport, bool) {
    let cancel = CancellationToken::new();
    // Cleared when dropped, before the report is printed.
    let _display = opts.tracker.clone().map(crate::runner::progress::Display::start);
    let run = runner::run_streaming(probes, opts, cancel.clone(), sink);
    tokio::pin!(run);
    tokio::select! {
        report = &mut run => (report, false),
        _ = interrupt_signal() => {
            cancel.cancel();
            tokio::spawn(async {
                interrupt_signal().await;
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            });
            (run.await, true)
        }
    }
}

pub(crate) async fn interrupt_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Writes what `--trust-new` approved during the run to the approvals file, and says so.
fn record_trusted_new(opts: &RunOptions, path: &std::path::Path, quiet: bool) {
    let added = opts.approvals.take_added();
    if added.is_empty() {
        return;
    }
    let count = added.len();
    let written = crate::config::approvals::change(path, |entries| {
        for approval in added {
            let known = entries
                .iter()
                .any(|e| e.kind == approval.kind && e.endpoint == approval.endpoint && e.sha256 == approval.sha256);
            if !known {
                entries.push(approval);
            }
        }
        (true, ())
    });
    match written {
        Ok(()) if !quiet => eprint_line(&format!(
            "authprobe: --trust-new approved {count} certificate{} or host key{} seen for the first time; recorded in {}",
            if count == 1 { "" } else { "s" },
            if count == 1 { "" } else { "s" },
            path.display()
        )),
        Ok(()) => {}
        Err(crate::config::approvals::ChangeError::Invalid(errors)) => {
            for error in errors {
                eprint_line(&format!("error: {error}"));
            }
            eprint_line("error: --trust-new could not record its approvals: the approvals file has errors");
        }
        Err(crate::config::approvals::ChangeError::Io(why)) => {
            eprint_line(&format!("error: --trust-new could not record its approvals: {why}"))
        }
    }
}
