//! CPU priority of background threads. Work that can wait (handing broker spans to ingest,
//! copying WAL pages into the database file) runs at the lowest priority while it keeps up, so
//! a message's hops (HTTP worker, router, HTTP worker) find a free core at once instead of
//! queueing behind a burst of it; once such work falls behind, it gets its fair share back.
//!
//! On Linux the low priority is `SCHED_IDLE`: a thread of any other policy that wakes takes
//! the core from it at once, and it still runs whenever a core would otherwise be idle. `nice`
//! does not give that: a niced thread keeps the core until its time slice ends.
//!
//! Leaving `SCHED_IDLE` needs `CAP_SYS_NICE` or an `RLIMIT_NICE` of at least 20 (the kernel
//! treats it as nice 20), which an ordinary user does not have. A thread that could go to the
//! background but never come back would starve under load, so the first use tries the round
//! trip on a scratch thread, and where it fails (or off Linux) nothing ever changes priority:
//! background work then simply keeps the normal share.

use std::cell::Cell;
use std::sync::OnceLock;

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

/// Whether threads can go to the background and come back (probed once per process).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let round_trip = std::thread::Builder::new()
            .name("priority-probe".into())
            .spawn(|| {
                apply(Priority::Background).is_ok()
                    && is_background()
                    && apply(Priority::Normal).is_ok()
                    && !is_background()
            })
            .ok()
            .and_then(|t| t.join().ok())
            .unwrap_or(false);
        if round_trip {
            tracing::debug!("background work yields the CPU (SCHED_IDLE)");
        } else {
            tracing::info!(
                "background work keeps the normal CPU share: a thread here cannot leave SCHED_IDLE (that needs CAP_SYS_NICE or RLIMIT_NICE of 20)"
            );
        }
        round_trip
    })
}

/// Sets the calling thread's priority; a repeated call with the same priority costs no system
/// call. Does nothing where [`available`] is false. A refused change leaves the thread, and
/// what is remembered of it, as it was.
pub fn set(priority: Priority) {
    if !available() {
        return;
    }
    CURRENT.with(|current| {
        let was = current.get().unwrap_or(Priority::Normal);
        if was == priority {
            return;
        }
        match apply(priority) {
            Ok(()) => current.set(Some(priority)),
            Err(e) => tracing::warn!(error = %e, ?priority, "thread priority unchanged"),
        }
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
    // `param` is a valid sched_param that outlives the call. The call can fail (EPERM when
    // leaving SCHED_IDLE without CAP_SYS_NICE, ENOSYS on some libcs): that is reported.
    match unsafe { libc::sched_setscheduler(0, policy, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "linux"))]
fn apply(_: Priority) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_goes_to_the_background_and_comes_back_only_where_it_can() {
        let can = available();
        std::thread::spawn(move || {
            assert!(!is_background());
            set(Priority::Background);
            // Where a thread could not come back, it never goes.
            assert_eq!(is_background(), can);
            set(Priority::Background);
            assert_eq!(is_background(), can);
            set(Priority::Normal);
            assert!(!is_background());
        })
        .join()
        .unwrap();
        // Other threads are untouched.
        assert!(!is_background());
    }

    /// The probe's answer is what the kernel does: as root here, with CAP_SYS_NICE, the round
    /// trip works; an unprivileged process would see `available()` false.
    #[test]
    #[cfg(target_os = "linux")]
    fn the_probe_matches_a_direct_round_trip() {
        let direct = std::thread::spawn(|| {
            let back = apply(Priority::Background).is_ok() && apply(Priority::Normal).is_ok();
            back && !is_background()
        })
        .join()
        .unwrap();
        assert_eq!(available(), direct);
    }
}
