//! CPU priority of background threads. Work that can wait (handing broker spans to ingest,
//! copying WAL pages into the database file) runs at the lowest priority while it keeps up, so
//! a message's hops (HTTP worker, router, HTTP worker) find a free core at once instead of
//! queueing behind a burst of it; once such work falls behind, it gets its fair share back
//! (or, for the store's dropper, hands its work back to the thread that queued it).
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
use std::sync::atomic::{fence, AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

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

/// A thread that works in the background on behalf of others (the store writer committing the
/// broker's spans) and that others can bring back to normal priority when they queue work that
/// must not wait at the background's pace: one step of priority inheritance.
///
/// Protocol: the owner calls [`Lift::lower`] (which marks it, then moves it to the
/// background) only after checking that nothing urgent is queued, and checks again after the
/// mark; a client queues its work, then calls [`Lift::raise`]. With the marks SeqCst on both
/// sides, either the owner sees the work and stays normal, or the client sees the mark and
/// raises the owner.
#[derive(Clone, Debug, Default)]
pub struct Lift(Arc<LiftState>);

#[derive(Debug, Default)]
struct LiftState {
    /// The owner's thread id (Linux tid), once it first went to the background.
    tid: AtomicI32,
    /// The owner is in the background, or about to be.
    lowered: AtomicBool,
}

impl Lift {
    /// Owner: marks itself lowered; returns false (and stays normal) if `urgent` says work
    /// that must not wait is queued after the mark. Otherwise moves to the background.
    pub fn lower(&self, urgent: impl Fn() -> bool) -> bool {
        if !available() {
            return false;
        }
        self.0.tid.store(current_tid(), Ordering::Relaxed);
        self.0.lowered.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if urgent() {
            self.0.lowered.store(false, Ordering::SeqCst);
            return false;
        }
        // A client may have raised the thread since it last went to the background: what
        // `set` remembers can be stale, so the change is applied whatever it remembers.
        CURRENT.with(|c| c.set(Some(Priority::Normal)));
        set(Priority::Background);
        true
    }

    /// Owner: back to normal priority.
    pub fn restore(&self) {
        self.0.lowered.store(false, Ordering::SeqCst);
        // The thread may have been raised by a client: what `set` remembers can be stale, so
        // the change is applied whatever it remembers.
        CURRENT.with(|c| c.set(Some(Priority::Background)));
        set(Priority::Normal);
    }

    /// Client, after queueing urgent work: brings the owner back to normal priority if it is
    /// in the background (a system call only then).
    pub fn raise(&self) {
        fence(Ordering::SeqCst);
        if !self.0.lowered.load(Ordering::SeqCst) {
            return;
        }
        let tid = self.0.tid.load(Ordering::Relaxed);
        if tid != 0 {
            if let Err(e) = apply_to(tid, Priority::Normal) {
                tracing::debug!(error = %e, "could not raise a background thread");
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn current_tid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

#[cfg(not(target_os = "linux"))]
fn current_tid() -> i32 {
    0
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

fn apply(priority: Priority) -> std::io::Result<()> {
    apply_to(0, priority)
}

/// Sets the policy of thread `tid` (0: the calling thread).
#[cfg(target_os = "linux")]
fn apply_to(tid: i32, priority: Priority) -> std::io::Result<()> {
    let policy = match priority {
        Priority::Background => libc::SCHED_IDLE,
        Priority::Normal => libc::SCHED_OTHER,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a tid names one thread, 0 the calling one (Linux schedules threads, not
    // processes), and `param` is a valid sched_param that outlives the call. The call can fail
    // (EPERM when leaving SCHED_IDLE without CAP_SYS_NICE, ESRCH for a thread that ended,
    // ENOSYS on some libcs): that is reported.
    match unsafe { libc::sched_setscheduler(tid, policy, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "linux"))]
fn apply_to(_: i32, _: Priority) -> std::io::Result<()> {
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

    /// A lifted thread goes to the background only when nothing urgent is queued, and another
    /// thread's raise brings it back to normal while it is still working.
    #[test]
    fn a_lowered_thread_is_raised_by_another() {
        let can = available();
        let lift = Lift::default();
        let (lowered_tx, lowered_rx) = std::sync::mpsc::channel();
        let (raised_tx, raised_rx) = std::sync::mpsc::channel::<()>();
        let owner = {
            let lift = lift.clone();
            std::thread::spawn(move || {
                // Urgent work queued: it stays normal.
                assert!(!lift.lower(|| true));
                assert!(!is_background());
                let lowered = lift.lower(|| false);
                assert_eq!(lowered, can);
                assert_eq!(is_background(), can);
                lowered_tx.send(()).unwrap();
                raised_rx.recv().unwrap();
                // Raised from outside, while "working".
                assert!(!is_background());
                if lowered {
                    lift.restore();
                }
                assert!(!is_background());
                // What `set` remembers is right again: the next lowering takes effect.
                assert_eq!(lift.lower(|| false), can);
                assert_eq!(is_background(), can);
                lift.restore();
                assert!(!is_background());
            })
        };
        lowered_rx.recv().unwrap();
        lift.raise();
        raised_tx.send(()).unwrap();
        owner.join().unwrap();
    }
}
