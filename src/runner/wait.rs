//! `--wait`, the deploy gate's budget: when it ends, how long to pause between attempts
//! (backoff with jitter, the last pause cut so that one last attempt fits), and what bounds
//! each attempt.

use std::time::{Duration, Instant};

/// `--wait`'s budget: when it started, and how long it lasts.
#[derive(Clone)]
pub(super) struct WaitBudget {
    pub(super) deadline: Instant,
    pub(super) total: Duration,
}

/// The shortest last attempt worth making: enough for a TCP connect and a TLS handshake on
/// a nearby server. With less left, the run ends rather than start an attempt it must cut.
const LAST_ATTEMPT_MIN: Duration = Duration::from_millis(200);

impl WaitBudget {
    pub(super) fn starting_now(total: Duration) -> WaitBudget {
        WaitBudget { deadline: Instant::now() + total, total }
    }

    pub(super) fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// How long to pause before the next attempt, or `None` when no attempt fits any more.
    /// The time left is used: when the backoff would cross the deadline, the pause is cut
    /// so that one last attempt still gets a fair share of what remains (up to the probe's
    /// timeout, at most a second), instead of giving up early.
    pub(super) fn pause_before_retry(&self, backoff: Duration, timeout: Duration) -> Option<Duration> {
        let left = self.left();
        let last_attempt = timeout.min(Duration::from_secs(1)).min(left / 2).max(LAST_ATTEMPT_MIN);
        if left < last_attempt {
            return None;
        }
        Some(backoff.min(left - last_attempt))
    }
}

/// What bounds one attempt: the probe's timeout, or what is left of `--wait`'s budget.
#[derive(Clone, Copy)]
pub(super) enum Limit {
    Probe(Duration),
    Wait(Duration, Duration),
}

impl Limit {
    pub(super) fn duration(self) -> Duration {
        match self {
            Limit::Probe(d) | Limit::Wait(d, _) => d,
        }
    }
}

/// Exponential backoff from 250 ms, capped at 5 s, with ±20% jitter so that many waiting
/// probes do not retry in lockstep.
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(5)).min(5_000);
    let jitter = 0.8 + fastrand::f64() * 0.4;
    Duration::from_millis((base as f64 * jitter) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_pause_is_cut_to_leave_a_last_attempt_within_the_budget() {
        let budget = WaitBudget::starting_now(Duration::from_millis(2_800));
        let pause = budget.pause_before_retry(Duration::from_secs(4), Duration::from_secs(10)).unwrap();
        assert!(pause <= Duration::from_millis(1_800) && pause >= Duration::from_millis(1_700), "{pause:?}");
        let short = WaitBudget::starting_now(Duration::from_millis(100));
        assert_eq!(short.pause_before_retry(Duration::from_millis(250), Duration::from_secs(10)), None);
        let roomy = WaitBudget::starting_now(Duration::from_secs(60));
        assert_eq!(
            roomy.pause_before_retry(Duration::from_millis(250), Duration::from_secs(10)),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(300));
        assert!(backoff(3) >= Duration::from_millis(800));
        assert!(backoff(30) <= Duration::from_millis(6_000));
    }
}
