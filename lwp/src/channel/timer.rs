//! Timer channels, as in `crossbeam-channel`: [`after`] delivers one message after a delay,
//! [`tick`] one per period, [`never()`] none; so a [`super::Select`] (or a plain `recv`) can wait
//! for a message or a moment, whichever comes first.
//!
//! Each timer is a small ULT that sleeps on its runtime's timers and sends the `Instant` it
//! woke at (spawned as [`crate::spawn`] does: on the calling ULT's runtime, or on the default
//! runtime from a plain thread). It holds a pooled stack until it ends: `after`'s at its
//! deadline, `tick`'s at the first tick after its receiver is gone. A tick that finds the
//! previous one still unread is dropped (the buffer holds one), as with crossbeam.
//!
//! Who may call what: anyone.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{bounded, Receiver, TrySendError};

/// A receiver that gets one message, the `Instant` of delivery, after `duration`.
///
/// ```
/// use std::time::Duration;
/// use lwp::channel::{after, unbounded, Select};
///
/// let (_work_tx, work) = unbounded::<u32>();
/// let timeout = after(Duration::from_millis(10));
/// let mut sel = Select::new();
/// let on_work = sel.recv(&work);
/// let on_timeout = sel.recv(&timeout);
/// assert_eq!(sel.ready(), on_timeout); // nothing to do: the timer fires first
/// assert!(timeout.try_recv().is_ok());
/// # let _ = on_work;
/// ```
///
/// # Panics
/// If no ULT can be spawned for the timer (see [`crate::spawn`]).
pub fn after(duration: Duration) -> Receiver<Instant> {
    let Some(deadline) = Instant::now().checked_add(duration) else {
        // Later than any `Instant`: the message never comes.
        return never();
    };
    let (tx, rx) = bounded(1);
    crate::spawn(move || {
        crate::sleep_until(deadline);
        let _ = tx.send(Instant::now());
    });
    rx
}

/// A receiver that gets the `Instant` of each tick, one per `period` (the first after one
/// period); ticks the receiver has not taken by the next one are dropped.
///
/// # Panics
/// If `period` is zero, or if no ULT can be spawned for the timer.
pub fn tick(period: Duration) -> Receiver<Instant> {
    assert!(!period.is_zero(), "lwp::channel::tick: a zero period");
    let (tx, rx) = bounded(1);
    crate::spawn(move || {
        let mut next = Instant::now();
        loop {
            next = match next.checked_add(period) {
                Some(n) => n,
                None => return,
            };
            crate::sleep_until(next);
            let now = Instant::now();
            // A late tick (the ULT waited long for its LWP) does not bunch up the next ones.
            if next.checked_add(period).is_some_and(|due| now > due) {
                next = now;
            }
            match tx.try_send(now) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    });
    rx
}

/// A receiver that never gets a message (nor a disconnection): a placeholder operation for
/// a [`super::Select`] whose timeout is optional.
pub fn never<T>() -> Receiver<T> {
    let (tx, rx) = bounded(0);
    // Counted as a sender for good, so dropping it does not disconnect: a receive waits
    // forever, as with crossbeam's. The channel is still freed with its last receiver.
    tx.chan.senders.fetch_add(1, Ordering::Relaxed);
    drop(tx);
    rx
}
