//! The live progress line on an interactive terminal: how many probes are done, running,
//! failed and waiting to retry, and the slowest one still running with its stage. The
//! runner reports to a [`Tracker`]; the CLI draws it on stderr, only when stderr is a
//! terminal and the run takes longer than a moment.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::connect::context::ProbeContext;

/// What every probe of a run is doing; shared between the runner and the display.
#[derive(Default)]
pub struct Tracker {
    state: Mutex<State>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracker")
    }
}

#[derive(Default)]
struct State {
    total: usize,
    done: usize,
    failed: usize,
    running: HashMap<usize, Running>,
    /// Probes that failed an attempt and wait for their next one (`--wait`).
    retrying: HashMap<usize, u32>,
}

struct Running {
    name: String,
    started: Instant,
    ctx: ProbeContext,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn set_total(&self, total: usize) {
        self.lock().total = total;
    }

    /// An attempt of probe `index` starts.
    pub fn started(&self, index: usize, name: &str, ctx: &ProbeContext) {
        let mut state = self.lock();
        state.retrying.remove(&index);
        state.running.insert(index, Running { name: name.to_string(), started: Instant::now(), ctx: ctx.clone() });
    }

    /// An attempt failed and another will follow after a pause.
    pub fn retrying(&self, index: usize, attempts: u32) {
        let mut state = self.lock();
        state.running.remove(&index);
        state.retrying.insert(index, attempts);
    }

    /// Probe `index` has its final result.
    pub fn finished(&self, index: usize, failed: bool) {
        let mut state = self.lock();
        state.running.remove(&index);
        state.retrying.remove(&index);
        state.done += 1;
        if failed {
            state.failed += 1;
        }
    }

    /// The progress line, without control characters.
    pub fn line(&self) -> String {
        let state = self.lock();
        let mut parts =
            vec![format!("{}/{} done", state.done, state.total), format!("{} running", state.running.len())];
        if state.failed > 0 {
            parts.push(format!("{} failed", state.failed));
        }
        if !state.retrying.is_empty() {
            let most = state.retrying.values().max().copied().unwrap_or(0);
            parts.push(format!("{} waiting to retry (attempt {} so far)", state.retrying.len(), most));
        }
        if let Some(slowest) = state.running.values().min_by_key(|r| r.started) {
            let stage = slowest.ctx.last_stage().map(|s| format!("{s}, ")).unwrap_or_default();
            parts.push(format!("slowest: {} ({stage}{})", slowest.name, seconds(slowest.started.elapsed())));
        }
        format!("authprobe: {}", parts.join(" · "))
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Draws the tracker's line on stderr, in place, until dropped (which clears it).
pub struct Display {
    task: tokio::task::JoinHandle<()>,
    drawn: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// How long a run may take before a progress line is worth showing.
const QUIET_START: Duration = Duration::from_millis(500);
const REFRESH: Duration = Duration::from_millis(200);

impl Display {
    pub fn start(tracker: std::sync::Arc<Tracker>) -> Display {
        let drawn = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = drawn.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(QUIET_START).await;
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tick.tick().await;
                let line = crate::model::redact::scrub(&tracker.line());
                let fitted: String = line.chars().take(terminal_width().saturating_sub(1)).collect();
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K{fitted}");
                let _ = err.flush();
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
        Display { task, drawn }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.task.abort();
        if self.drawn.load(std::sync::atomic::Ordering::SeqCst) {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// The terminal's width in columns (stderr's), 80 when it cannot be told.
fn terminal_width() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass and nothing else.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
        if ok && size.ws_col > 0 {
            return usize::from(size.ws_col);
        }
    }
    80
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_line_counts_and_names_the_slowest() {
        let tracker = Tracker::default();
        tracker.set_total(3);
        let ctx = ProbeContext::new(Arc::default(), 14, Duration::from_secs(1));
        ctx.begin(crate::model::error::Stage::Tls);
        tracker.started(0, "orders-db", &ctx);
        tracker.started(1, "api", &ProbeContext::new(Arc::default(), 14, Duration::from_secs(1)));
        tracker.finished(1, true);
        tracker.started(2, "bucket", &ProbeContext::new(Arc::default(), 14, Duration::from_secs(1)));
        tracker.retrying(2, 2);
        let line = tracker.line();
        assert!(line.starts_with("authprobe: 1/3 done · 1 running · 1 failed · 1 waiting to retry (attempt 2 so far) · slowest: orders-db (tls, "), "{line}");
    }
}
