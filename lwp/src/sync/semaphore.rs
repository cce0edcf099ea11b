//! [`Semaphore`]: a counting semaphore whose `acquire` parks the ULT, with RAII permits.
//!
//! # Protocol
//! The permit count and a FIFO of parked acquirers sit under one short internal lock.
//! Permits are **handed over**: `release` gives its permit directly to the oldest waiter
//! (setting its token under the lock) instead of incrementing the count, so a waiter can
//! never be overtaken by a newcomer, and the count is non-zero only while nobody waits.
//! A waiter whose deadline passes re-checks its token under the lock: if a permit was
//! handed to it meanwhile it keeps it (the acquire succeeds), otherwise it leaves the list.
//! Either way no permit is lost.
//!
//! Who may call what: anyone, ULTs or plain threads.

use std::fmt;
use std::time::{Duration, Instant};

use super::waitqueue::{deadline_after, lock_internal, Waiter, WaiterList, WAITING};

/// Token: a permit was handed to you.
const GRANTED: u32 = 1;

struct State {
    permits: usize,
    waiters: WaiterList,
}

/// A counting semaphore; FIFO, without barging.
///
/// ```
/// use std::sync::Arc;
/// use lwp::sync::Semaphore;
///
/// ult::run(|| {
///     let sem = Arc::new(Semaphore::new(2)); // at most two ULTs inside at once
///     let handles: Vec<_> = (0..5)
///         .map(|_| {
///             let sem = sem.clone();
///             ult::spawn(move || {
///                 let _permit = sem.acquire();
///                 ult::yield_now();
///             })
///         })
///         .collect();
///     for h in handles {
///         h.join().unwrap();
///     }
///     assert_eq!(sem.available_permits(), 2);
/// });
/// ```
pub struct Semaphore {
    state: std::sync::Mutex<State>,
}

/// One permit of a [`Semaphore`], released when dropped.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

impl Semaphore {
    /// A semaphore with `permits` permits available.
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore {
            state: std::sync::Mutex::new(State {
                permits,
                waiters: WaiterList::new(),
            }),
        }
    }

    /// Takes a permit, parking until one is available.
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        match self.acquire_until_opt(None) {
            Some(p) => p,
            None => unreachable!("an acquire without deadline cannot time out"),
        }
    }

    /// Takes a permit if one is available right now.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        let mut st = lock_internal(&self.state);
        if st.permits > 0 {
            st.permits -= 1;
            Some(SemaphorePermit { sem: self })
        } else {
            None
        }
    }

    /// Takes a permit, giving up after `timeout` (`None`).
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        self.acquire_until_opt(deadline_after(timeout))
    }

    /// Takes a permit, giving up at `deadline` (`None`).
    pub fn acquire_deadline(&self, deadline: Instant) -> Option<SemaphorePermit<'_>> {
        self.acquire_until_opt(Some(deadline))
    }

    /// Adds one permit: hands it to the oldest waiter, if any, or makes it available.
    /// Use it to return a permit given up with [`SemaphorePermit::forget`], or to grow the
    /// semaphore.
    pub fn release(&self) {
        let mut st = lock_internal(&self.state);
        match st.waiters.notify_one(GRANTED) {
            Some(wake) => {
                drop(st);
                wake.wake();
            }
            None => {
                st.permits = match st.permits.checked_add(1) {
                    Some(n) => n,
                    None => panic!("Semaphore: permit count overflow"),
                }
            }
        }
    }

    /// How many permits can be taken right now without waiting.
    pub fn available_permits(&self) -> usize {
        lock_internal(&self.state).permits
    }

    fn acquire_until_opt(&self, deadline: Option<Instant>) -> Option<SemaphorePermit<'_>> {
        let w = {
            let mut st = lock_internal(&self.state);
            if st.permits > 0 {
                st.permits -= 1;
                return Some(SemaphorePermit { sem: self });
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            let w = Waiter::current();
            st.waiters.push_back(w.clone());
            w
        };
        let granted = match w.wait_deadline(deadline) {
            Some(_) => true,
            None => {
                let mut st = lock_internal(&self.state);
                // Token unset: still listed, leave. Set: the permit is ours, keep it.
                !(w.token() == WAITING && st.waiters.remove(&w))
            }
        };
        // Not `then_some`: that would build (and drop, i.e. release) a permit when not granted.
        if granted {
            Some(SemaphorePermit { sem: self })
        } else {
            None
        }
    }
}

impl SemaphorePermit<'_> {
    /// Consumes the permit without releasing it: the semaphore has one permit fewer until
    /// someone calls [`Semaphore::release`].
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release();
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock_internal(&self.state);
        f.debug_struct("Semaphore")
            .field("permits", &st.permits)
            .field("waiters", &st.waiters.len())
            .finish()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::waitqueue::test_hook;

    #[test]
    fn a_permit_handed_over_during_the_timeout_is_kept() {
        static S: Semaphore = Semaphore::new(0);
        test_hook::on_next_timeout(|| S.release());
        let p = S.acquire_timeout(Duration::from_millis(1));
        assert!(p.is_some(), "the handed-over permit was lost");
        drop(p);
        assert_eq!(S.available_permits(), 1);
    }
}
