//! A bounded command channel for a thread that owns state (the broker router, the store
//! writer): many senders, one receiving thread, which sleeps without spinning or yielding.
//!
//! `crossbeam_channel`'s blocking receive spins, then calls `sched_yield` a few times before it
//! parks. On a busy machine a yield hands the CPU to another runnable thread, and the yielding
//! thread, still runnable, waits out that thread's time slice (1-2 ms) without the wake-up
//! preemption a sleeping thread gets. A command that arrives meanwhile waits that long: the
//! broker's p99 at one message in flight was made of these waits. Here the receiver tries the
//! queue and, if it is empty, parks; each send unparks it.
//!
//! Invariants: only one thread receives (the first one to call a receive, which registers
//! itself as the thread to wake); every successful send and every sender dropped wakes it.

use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

pub use crossbeam_channel::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};

/// A channel of at most `cap` queued items (at least 1).
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(cap.max(1));
    let bell = Arc::new(Bell::default());
    (
        Sender {
            tx,
            ringer: Ringer(bell.clone()),
        },
        Receiver {
            rx,
            bell,
            _one_thread: std::marker::PhantomData,
        },
    )
}

/// The receiving thread, once it has received once.
#[derive(Default)]
struct Bell {
    receiver: OnceLock<Thread>,
}

impl Bell {
    fn ring(&self) {
        // Pairs with the fence in `Receiver::wait`: either the receiver sees the item queued,
        // or this sees the receiver registered and wakes it.
        fence(Ordering::SeqCst);
        if let Some(t) = self.receiver.get() {
            t.unpark();
        }
    }
}

/// Rings when dropped: declared after the sender's channel end, so it is dropped after it and
/// the receiver, woken, sees the channel disconnected once the last sender is gone.
struct Ringer(Arc<Bell>);

impl Drop for Ringer {
    fn drop(&mut self) {
        self.0.ring();
    }
}

pub struct Sender<T> {
    tx: crossbeam_channel::Sender<T>,
    ringer: Ringer,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
            ringer: Ringer(self.ringer.0.clone()),
        }
    }
}

impl<T> Sender<T> {
    /// Items waiting in the queue now.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// Whether no item waits in the queue now.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    /// Queues `item` if there is room, at once.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        self.tx.try_send(item)?;
        self.ringer.0.ring();
        Ok(())
    }

    /// Queues `item`, waiting for room at most `wait`.
    pub fn send_timeout(&self, item: T, wait: Duration) -> Result<(), SendTimeoutError<T>> {
        self.tx.send_timeout(item, wait)?;
        self.ringer.0.ring();
        Ok(())
    }

    /// Queues `item`, waiting for room as long as it takes; fails only once the receiver is
    /// gone.
    pub fn send(&self, item: T) -> Result<(), crossbeam_channel::SendError<T>> {
        self.tx.send(item)?;
        self.ringer.0.ring();
        Ok(())
    }
}

/// Not `Sync`: one thread receives (it may move to another thread before its first receive).
pub struct Receiver<T> {
    rx: crossbeam_channel::Receiver<T>,
    bell: Arc<Bell>,
    _one_thread: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl<T> Receiver<T> {
    /// The next item, waiting for it at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.wait(Instant::now().checked_add(timeout))
            .map_err(|e| match e {
                Waited::Timeout => RecvTimeoutError::Timeout,
                Waited::Disconnected => RecvTimeoutError::Disconnected,
            })
    }

    /// The next item, waiting as long as it takes; `None` once every sender is gone and the
    /// queue is empty.
    pub fn recv(&self) -> Option<T> {
        self.wait(None).ok()
    }

    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.rx.try_recv()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    fn wait(&self, deadline: Option<Instant>) -> Result<T, Waited> {
        let me = self.bell.receiver.get_or_init(std::thread::current);
        debug_assert_eq!(me.id(), std::thread::current().id(), "one receiving thread");
        fence(Ordering::SeqCst);
        loop {
            match self.rx.try_recv() {
                Ok(item) => return Ok(item),
                Err(TryRecvError::Disconnected) => return Err(Waited::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(Waited::Timeout);
                    }
                    std::thread::park_timeout(d - now);
                }
            }
        }
    }
}

enum Waited {
    Timeout,
    Disconnected,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_arrive_in_order_across_threads_and_wake_a_sleeping_receiver() {
        let (tx, rx) = bounded::<u32>(4);
        let sender = std::thread::spawn(move || {
            for i in 0..1_000 {
                // Now and then let the receiver fall asleep first.
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                while let Err(TrySendError::Full(_)) = tx.try_send(i) {
                    std::thread::yield_now();
                }
            }
        });
        let mut got = Vec::new();
        while let Ok(i) = rx.recv_timeout(Duration::from_secs(10)) {
            got.push(i);
        }
        sender.join().unwrap();
        assert_eq!(got, (0..1_000).collect::<Vec<_>>());
    }

    #[test]
    fn a_receiver_waiting_without_deadline_sees_the_last_sender_go() {
        let (tx, rx) = bounded::<u32>(1);
        let tx2 = tx.clone();
        let waiter = std::thread::spawn(move || {
            let first = rx.recv();
            let second = rx.recv();
            (first, second)
        });
        std::thread::sleep(Duration::from_millis(20));
        tx.send(7).unwrap();
        drop(tx);
        std::thread::sleep(Duration::from_millis(20));
        drop(tx2);
        assert_eq!(waiter.join().unwrap(), (Some(7), None));
    }

    #[test]
    fn a_wait_ends_at_its_timeout_and_send_timeout_when_full() {
        let (tx, rx) = bounded::<u32>(1);
        let started = Instant::now();
        assert!(matches!(
            rx.recv_timeout(Duration::from_millis(30)),
            Err(RecvTimeoutError::Timeout)
        ));
        assert!(started.elapsed() >= Duration::from_millis(30));
        tx.try_send(1).unwrap();
        assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
        assert!(matches!(
            tx.send_timeout(3, Duration::from_millis(10)),
            Err(SendTimeoutError::Timeout(3))
        ));
        assert_eq!(rx.try_recv().unwrap(), 1);
        assert!(rx.is_empty());
    }
}
