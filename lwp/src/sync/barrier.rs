//! [`Barrier`]: lets a fixed number of ULTs or threads meet, parking those that arrive early.
//!
//! # Protocol
//! A count of arrivals and a FIFO of parked arrivals sit under one short internal lock. The
//! `n`-th arrival becomes the leader of the generation: it resets the count to 0 and wakes
//! every listed waiter (tokens set under the lock, unparks after it is released), so the
//! barrier is immediately reusable: arrivals of the next generation wait in a fresh list.
//! A waiter returns only when its token is set, so it belongs to exactly one generation.
//!
//! [`Barrier::wait_timeout`] lets an arrival give up: under the lock, if its token is still
//! unset it leaves the list and takes its arrival back (the count drops by one), so the
//! generation then needs one more arrival; if the token was set, the generation completed
//! and the wait succeeds.
//!
//! Who may call what: anyone, ULTs or plain threads.

use std::fmt;
use std::time::{Duration, Instant};

use super::waitqueue::{deadline_after, lock_internal, Waiter, WaiterList, WAITING};

/// Token: the generation completed.
const RELEASED: u32 = 1;

struct State {
    arrived: usize,
    waiters: WaiterList,
}

/// A reusable barrier for `n` parties, like `std::sync::Barrier`, that parks ULTs.
///
/// ```
/// use std::sync::Arc;
/// use lwp::sync::Barrier;
///
/// let leaders = ult::run(|| {
///     let barrier = Arc::new(Barrier::new(3));
///     let handles: Vec<_> = (0..3)
///         .map(|_| {
///             let b = barrier.clone();
///             ult::spawn(move || b.wait().is_leader())
///         })
///         .collect();
///     handles.into_iter().map(|h| h.join().unwrap() as u32).sum::<u32>()
/// });
/// assert_eq!(leaders, 1);
/// ```
pub struct Barrier {
    n: usize,
    state: std::sync::Mutex<State>,
}

/// What [`Barrier::wait`] returns: whether this caller was the generation's leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// Whether this caller was the leader: exactly one caller per generation, the last to
    /// arrive.
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier that releases its waiters every `n` arrivals (`n == 0` acts as 1: every
    /// caller is a leader and nobody waits, as in std).
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            n,
            state: std::sync::Mutex::new(State {
                arrived: 0,
                waiters: WaiterList::new(),
            }),
        }
    }

    /// Parks until `n` callers (this one included) have called `wait` in this generation.
    pub fn wait(&self) -> BarrierWaitResult {
        match self.wait_until_opt(None) {
            Some(r) => r,
            None => unreachable!("a wait without deadline cannot time out"),
        }
    }

    /// Like [`Barrier::wait`], but gives up after `timeout`: `None`, and this caller's
    /// arrival is withdrawn (the generation needs one more).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<BarrierWaitResult> {
        self.wait_until_opt(deadline_after(timeout))
    }

    /// Like [`Barrier::wait_timeout`], with a deadline.
    pub fn wait_deadline(&self, deadline: Instant) -> Option<BarrierWaitResult> {
        self.wait_until_opt(Some(deadline))
    }

    fn wait_until_opt(&self, deadline: Option<Instant>) -> Option<BarrierWaitResult> {
        let w = {
            let mut st = lock_internal(&self.state);
            st.arrived += 1;
            if st.arrived >= self.n {
                st.arrived = 0;
                let wakes = st.waiters.notify_all(RELEASED);
                drop(st);
                wakes.wake();
                return Some(BarrierWaitResult(true));
            }
            let w = Waiter::current();
            st.waiters.push_back(w.clone());
            w
        };
        let released = match w.wait_deadline(deadline) {
            Some(_) => true,
            None => {
                let mut st = lock_internal(&self.state);
                if w.token() == WAITING && st.waiters.remove(&w) {
                    st.arrived -= 1;
                    false
                } else {
                    true
                }
            }
        };
        released.then_some(BarrierWaitResult(false))
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::waitqueue::test_hook;

    #[test]
    fn a_generation_completing_during_the_timeout_counts() {
        static B: Barrier = Barrier::new(2);
        // The second arrival (made by the hook, on this thread) completes the generation
        // right when the first one's deadline passes.
        test_hook::on_next_timeout(|| assert!(B.wait().is_leader()));
        let r = B.wait_timeout(Duration::from_millis(1));
        assert_eq!(r.map(|r| r.is_leader()), Some(false));
        assert_eq!(lock_internal(&B.state).arrived, 0);
    }
}
