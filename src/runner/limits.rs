//! The process's limits: memory the config's reading freed, and the open-file limit.
//! Each running probe holds a few descriptors (its socket, a token
//! endpoint's or STS's connection, a resolver's), so the number of probes running
//! at once is held to what the process may open: with a low `ulimit -n`, probes queue
//! instead of failing with "too many open files" blamed on their targets.

/// Descriptors one running probe may hold at most.
const PER_PROBE: u64 = 4;
/// Descriptors the process needs besides its probes (stdio, the runtime, files it reads).
const RESERVED: u64 = 32;

/// Raises the soft open-file limit to the hard one, as network tools commonly do, and
/// returns the soft limit in force afterwards (`None` where it cannot be read).
pub fn raise_open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit.rlim_cur = limit.rlim_max;
                }
            }
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Gives the memory freed since the start (a big config's document tree, read and dropped)
/// back to the system before a run: glibc keeps it in the reading thread's arena, where
/// the runtime's worker threads, allocating in arenas of their own, would never reuse it.
pub fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How many probes may run at once under `open_files`, at most `wanted` and at least one.
pub fn concurrency_within(open_files: u64, wanted: usize) -> usize {
    let affordable = open_files.saturating_sub(RESERVED) / PER_PROBE;
    usize::try_from(affordable).unwrap_or(usize::MAX).clamp(1, wanted.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_fits_the_limit() {
        assert_eq!(concurrency_within(1024, 32), 32);
        assert_eq!(concurrency_within(1024, 10_000), 248);
        assert_eq!(concurrency_within(64, 10_000), 8);
        assert_eq!(concurrency_within(10, 32), 1);
        assert_eq!(concurrency_within(u64::MAX, 100_000), 100_000);
    }
}
