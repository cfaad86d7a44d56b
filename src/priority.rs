//! CPU priority of background threads. Work that can wait (handing broker spans to ingest,
//! copying WAL pages into the database file) runs at the lowest priority while it keeps up, so
//! a message's hops (HTTP worker, router, HTTP worker) find a free core at once instead of
//! queueing behind a burst of it; once such work falls behind, it gets its fair share back.
//!
//! On Linux the low priority is `SCHED_IDLE`: a thread of any other policy that wakes takes
//! the core from it at once, and it still runs whenever a core would otherwise be idle. `nice`
//! does not give that: a niced thread keeps the core until its time slice ends. Elsewhere
//! nothing changes.

use std::cell::Cell;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Runs when a core is free; yields at once to any other thread.
    Background,
    /// The default share of the CPU.
    Normal,
}

thread_local! {
    /// The calling thread's priority as last set here (`None`: never set, the default).
    static CURRENT: Cell<Option<Priority>> = const { Cell::new(None) };
}

/// Sets the calling thread's priority; a repeated call with the same priority costs no system
/// call. A refused change (a sandbox's seccomp policy, say) is logged once per thread and
/// leaves the thread as it was.
pub fn set(priority: Priority) {
    CURRENT.with(|current| {
        if current.get() == Some(priority) {
            return;
        }
        if let Err(e) = apply(priority) {
            tracing::debug!(error = %e, ?priority, "thread priority unchanged");
        }
        // Remembered either way, so a refused change is not retried on every call.
        current.set(Some(priority));
    })
}

/// The calling thread's scheduling policy is `SCHED_IDLE`.
#[cfg(target_os = "linux")]
pub fn is_background() -> bool {
    // SAFETY: pid 0 names the calling thread; the call reads no memory of ours.
    unsafe { libc::sched_getscheduler(0) == libc::SCHED_IDLE }
}

#[cfg(not(target_os = "linux"))]
pub fn is_background() -> bool {
    false
}

#[cfg(target_os = "linux")]
fn apply(priority: Priority) -> std::io::Result<()> {
    let policy = match priority {
        Priority::Background => libc::SCHED_IDLE,
        Priority::Normal => libc::SCHED_OTHER,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread (Linux schedules threads, not processes), and
    // `param` is a valid sched_param that outlives the call. Leaving SCHED_IDLE for
    // SCHED_OTHER needs no privilege while the thread's nice value is unchanged.
    match unsafe { libc::sched_setscheduler(0, policy, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "linux"))]
fn apply(_: Priority) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn a_thread_goes_to_the_background_and_comes_back() {
        std::thread::spawn(|| {
            assert!(!is_background());
            set(Priority::Background);
            assert!(is_background());
            set(Priority::Background);
            assert!(is_background());
            set(Priority::Normal);
            assert!(!is_background());
        })
        .join()
        .unwrap();
        // Other threads are untouched.
        assert!(!is_background());
    }
}
