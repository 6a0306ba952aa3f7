//! Report formats. Each format is one file with one `render` function from the (already
//! scrubbed) [`RunReport`] to text; writing to stdout or atomically to a file lives here.

pub mod json;
pub mod junit;
pub mod markdown;
pub mod prometheus;
pub mod setup_tests;
pub mod table;

use std::io::Write;
use std::path::Path;

use crate::model::report::RunReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Junit,
    Prometheus,
    Markdown,
    /// A connector's setup tests: `[{title, status, message, details}]`.
    SetupTests,
}

/// How much the table shows, and whether it may use colour.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub verbose: u8,
    pub color: bool,
    /// The terminal's width when the table goes to one: its DETAIL column is wrapped to
    /// fit. `None` (pipes, files): lines stay whole, for grep and diff.
    pub width: Option<usize>,
}

/// The width of the terminal standard output goes to, if it goes to one.
pub fn stdout_terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    #[cfg(unix)]
    {
        // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass and nothing else.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
        if ok && size.ws_col > 0 {
            return Some(usize::from(size.ws_col));
        }
    }
    None
}

pub fn render(report: &RunReport, format: Format, style: Style) -> String {
    match format {
        Format::Table => table::render(report, style),
        Format::Json => json::render(report),
        Format::Junit => junit::render(report),
        Format::Prometheus => prometheus::render(report),
        Format::Markdown => markdown::render(report),
        Format::SetupTests => setup_tests::render(report),
    }
}

/// Writes to stdout. A closed pipe (`authprobe run | head -1`) is not an error: the reader
/// has what it wanted.
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes a file atomically: a temporary file in the same directory, flushed to disk, then
/// renamed over the target, so that a reader (node_exporter, a CI step) never sees half.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Milliseconds the way people read them.
pub fn human_ms(ms: u64) -> String {
    if ms < 1_000 { format!("{ms}ms") } else { format!("{:.1}s", ms as f64 / 1_000.0) }
}

/// As [`human_ms`], with a decimal below one millisecond (`0.4ms`), where local stages
/// would otherwise all read `0ms`.
pub fn human_secs(secs: f64) -> String {
    if secs < 0.001 { format!("{:.1}ms", secs * 1_000.0) } else { human_ms((secs * 1_000.0) as u64) }
}
