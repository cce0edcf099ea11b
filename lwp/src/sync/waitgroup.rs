//! [`WaitGroup`]: wait for a set of ULTs or threads to finish, crossbeam style.
//!
//! Each clone of a `WaitGroup` is one unit of outstanding work: cloning adds one, dropping
//! (or calling [`WaitGroup::wait`], which gives up the caller's own unit first) removes one.
//! `wait` parks until the count reaches zero. (This is the `crossbeam_utils::sync::WaitGroup`
//! API, not Go's `Add`/`Done`: ownership does the counting, so a forgotten `Done` or a
//! negative counter cannot happen.)
//!
//! # Protocol
//! The count and a FIFO of parked waiters sit under one short internal lock; whoever brings
//! the count to zero sets every waiter's token under the lock and unparks them after
//! releasing it. The count never rises again once it is zero: every unit is a `WaitGroup`
//! value, and there are none left to clone.
//!
//! Who may call what: anyone, ULTs or plain threads.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::waitqueue::{deadline_after, lock_internal, Waiter, WaiterList, WAITING};

/// Token: the count reached zero.
const DONE: u32 = 1;

struct Inner {
    state: std::sync::Mutex<State>,
}

struct State {
    count: usize,
    waiters: WaiterList,
}

/// Counts outstanding clones; [`WaitGroup::wait`] parks until all are gone.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use lwp::sync::WaitGroup;
///
/// ult::run(|| {
///     let done = Arc::new(AtomicUsize::new(0));
///     let wg = WaitGroup::new();
///     for _ in 0..4 {
///         let (wg, done) = (wg.clone(), done.clone());
///         ult::spawn(move || {
///             ult::yield_now();
///             done.fetch_add(1, Ordering::Relaxed);
///             drop(wg);
///         });
///     }
///     wg.wait();
///     assert_eq!(done.load(Ordering::Relaxed), 4);
/// });
/// ```
pub struct WaitGroup {
    inner: Arc<Inner>,
}

impl WaitGroup {
    /// A group with one unit: this value.
    pub fn new() -> WaitGroup {
        WaitGroup {
            inner: Arc::new(Inner {
                state: std::sync::Mutex::new(State {
                    count: 1,
                    waiters: WaiterList::new(),
                }),
            }),
        }
    }

    /// Gives up this unit and parks until every other clone is dropped (or waiting).
    pub fn wait(self) {
        let _ = self.wait_until_opt(None);
    }

    /// Like [`WaitGroup::wait`], but gives up after `timeout`. Returns whether the count
    /// reached zero. This unit is given up in both cases.
    pub fn wait_timeout(self, timeout: Duration) -> bool {
        self.wait_until_opt(deadline_after(timeout))
    }

    /// Like [`WaitGroup::wait_timeout`], with a deadline.
    pub fn wait_deadline(self, deadline: Instant) -> bool {
        self.wait_until_opt(Some(deadline))
    }

    /// How many units (clones) are outstanding.
    pub fn count(&self) -> usize {
        lock_internal(&self.inner.state).count
    }

    fn wait_until_opt(self, deadline: Option<Instant>) -> bool {
        let inner = Arc::clone(&self.inner);
        drop(self); // gives up this unit (and wakes the others if it was the last)
        let w = {
            let mut st = lock_internal(&inner.state);
            if st.count == 0 {
                return true;
            }
            let w = Waiter::current();
            st.waiters.push_back(w.clone());
            w
        };
        let done = match w.wait_deadline(deadline) {
            Some(_) => true,
            None => {
                let mut st = lock_internal(&inner.state);
                !(w.token() == WAITING && st.waiters.remove(&w))
            }
        };
        done
    }
}

impl Default for WaitGroup {
    fn default() -> WaitGroup {
        WaitGroup::new()
    }
}

impl Clone for WaitGroup {
    fn clone(&self) -> WaitGroup {
        let mut st = lock_internal(&self.inner.state);
        st.count = match st.count.checked_add(1) {
            Some(n) => n,
            None => panic!("WaitGroup: too many clones"),
        };
        drop(st);
        WaitGroup {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Drop for WaitGroup {
    fn drop(&mut self) {
        let mut st = lock_internal(&self.inner.state);
        st.count -= 1;
        if st.count == 0 {
            let wakes = st.waiters.notify_all(DONE);
            drop(st);
            wakes.wake();
        }
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::waitqueue::test_hook;

    #[test]
    fn the_count_reaching_zero_during_the_timeout_counts() {
        let wg = WaitGroup::new();
        let other = wg.clone();
        test_hook::on_next_timeout(move || drop(other));
        assert!(wg.wait_timeout(Duration::from_millis(1)));
    }
}
