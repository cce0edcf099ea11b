//! [`Condvar`]: condition variables for this crate's [`Mutex`], parking ULTs, not LWPs.
//!
//! # Protocol
//! `wait` enqueues the caller's waiter **while still holding the mutex**, then unlocks the
//! mutex and parks until its token is set. A notifier changes the condition under the same
//! mutex, so either the waiter saw the new condition before waiting, or it was enqueued
//! before the notifier took the mutex and the notifier finds it: no lost wake-ups. That is
//! also why `notify_*` may skip the queue's lock when the queue's length hint is 0: the
//! waiter's enqueue happened-before the notifier's mutex acquisition.
//!
//! A waiter returns only when a notification was addressed to it, or (timed waits) when its
//! deadline passed while it was still listed; then it removes itself under the queue lock.
//! If a notification raced with the timeout, the waiter reports "not timed out", so the
//! notification is consumed rather than lost. Callers should still re-check their condition
//! in a loop ([`Condvar::wait_while`] does), as with `std::sync::Condvar`.
//!
//! Who may call what: anyone; use one condition variable with one mutex at a time.

use std::fmt;
use std::sync::LockResult;
use std::time::{Duration, Instant};

use super::mutex::{Mutex, MutexGuard};
use super::waitqueue::{deadline_after, WaitQueue, Waiter, WAITING};

/// Token: notified.
const NOTIFIED: u32 = 1;

/// Whether a timed wait on a [`Condvar`] timed out, like `std::sync::WaitTimeoutResult`.
#[derive(Debug, PartialEq, Eq, Copy, Clone)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the wait ended because its time ran out (rather than by a notification).
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A condition variable: ULTs and threads wait on it for a condition protected by a
/// [`Mutex`] to change; the API of `std::sync::Condvar` plus [`Condvar::wait_deadline`].
///
/// ```
/// use std::sync::Arc;
/// use lwp::sync::{Condvar, Mutex};
///
/// ult::run(|| {
///     let pair = Arc::new((Mutex::new(false), Condvar::new()));
///     let pair2 = pair.clone();
///     let h = ult::spawn(move || {
///         let (ready, cv) = &*pair2;
///         *ready.lock().unwrap() = true;
///         cv.notify_one();
///     });
///     let (ready, cv) = &*pair;
///     let guard = cv.wait_while(ready.lock().unwrap(), |ready| !*ready).unwrap();
///     assert!(*guard);
///     drop(guard);
///     h.join().unwrap();
/// });
/// ```
#[derive(Default)]
pub struct Condvar {
    queue: WaitQueue,
}

impl Condvar {
    /// A new condition variable with no waiters.
    pub const fn new() -> Condvar {
        Condvar {
            queue: WaitQueue::new(),
        }
    }

    /// Unlocks the guard's mutex, parks until notified, and locks it again. `Err` (with the
    /// guard) if the mutex is poisoned when re-locked.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        let (guard, _) = self.wait_until_opt(guard, None);
        guard
    }

    /// Waits while `condition` returns true, re-checking it after each wake-up (with the
    /// lock held).
    pub fn wait_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Like [`Condvar::wait`], but gives up after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use lwp::sync::{Condvar, Mutex};
    ///
    /// let (m, cv) = (Mutex::new(()), Condvar::new());
    /// let (_guard, res) = cv.wait_timeout(m.lock().unwrap(), Duration::from_millis(5)).unwrap();
    /// assert!(res.timed_out());
    /// ```
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let (guard, res) = self.wait_until_opt(guard, deadline_after(timeout));
        match guard {
            Ok(g) => Ok((g, res)),
            Err(e) => Err(std::sync::PoisonError::new((e.into_inner(), res))),
        }
    }

    /// Like [`Condvar::wait`], but gives up at `deadline`.
    pub fn wait_deadline<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Instant,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let (guard, res) = self.wait_until_opt(guard, Some(deadline));
        match guard {
            Ok(g) => Ok((g, res)),
            Err(e) => Err(std::sync::PoisonError::new((e.into_inner(), res))),
        }
    }

    /// Waits while `condition` returns true, for at most `timeout` in total. The result says
    /// whether time ran out with the condition still true.
    pub fn wait_timeout_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let deadline = deadline_after(timeout);
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            let (g, res) = self.wait_until_opt(guard, deadline);
            guard = match g {
                Ok(g) => g,
                Err(e) => return Err(std::sync::PoisonError::new((e.into_inner(), res))),
            };
            if res.timed_out() {
                let still = condition(&mut *guard);
                return Ok((guard, WaitTimeoutResult(still)));
            }
        }
    }

    /// Wakes the longest-waiting waiter, if any.
    pub fn notify_one(&self) {
        self.queue.notify_one(NOTIFIED);
    }

    /// Wakes every current waiter.
    pub fn notify_all(&self) {
        self.queue.notify_all(NOTIFIED);
    }

    fn wait_until_opt<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> (LockResult<MutexGuard<'a, T>>, WaitTimeoutResult) {
        let w = Waiter::current();
        // Enqueue while the mutex is still held (see the module header).
        self.queue.with(|list| list.push_back(w.clone()));
        let (mutex, panicking): (&'a Mutex<T>, bool) = Mutex::unlock_from_guard(guard);
        let timed_out = match w.wait_deadline(deadline) {
            Some(_) => false,
            None => self.queue.with(|list| {
                // Still listed: nobody notified us, give up. Not listed: a notification
                // raced with the timeout and is ours; report it rather than lose it.
                w.token() == WAITING && list.remove(&w)
            }),
        };
        (mutex.relock(panicking), WaitTimeoutResult(timed_out))
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::waitqueue::test_hook;

    #[test]
    fn a_notification_racing_the_timeout_counts_as_a_notification() {
        static CV: Condvar = Condvar::new();
        static M: Mutex<()> = Mutex::new(());
        // Right when the deadline passes, the hook notifies: the only waiter is this one.
        test_hook::on_next_timeout(|| CV.notify_one());
        let (_g, res) = CV
            .wait_timeout(M.lock().unwrap(), Duration::from_millis(1))
            .unwrap();
        assert!(
            !res.timed_out(),
            "the notification was swallowed by the timeout"
        );
        assert!(!CV.queue.has_waiters());
    }
}
