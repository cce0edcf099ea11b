//! Parking: the one blocking primitive everything else (join, mutexes, channels, timers) is
//! built on, for ULTs and plain kernel threads alike.
//!
//! [`park`] inside a ULT suspends only that ULT (see [`crate::raw`] for the protocol); outside
//! a ULT it is `std::thread::park`. An [`Unparker`] wakes either kind, from any thread, so a
//! sync primitive can keep one list of waiters whatever world they come from. Semantics follow
//! `std::thread`: one token, `unpark` before `park` makes `park` return at once, and callers
//! must re-check their condition in a loop (a timeout, or another party's unpark, may end a
//! park early).

use std::time::{Duration, Instant};

use crate::raw::{self, RawUlt};

/// Wakes one parked ULT or kernel thread. Cheap to clone; `Send` and `Sync`.
#[derive(Clone, Debug)]
pub struct Unparker {
    target: Target,
}

#[derive(Clone, Debug)]
enum Target {
    Ult(RawUlt),
    Thread(std::thread::Thread),
}

impl Unparker {
    pub(crate) fn for_ult(ult: RawUlt) -> Unparker {
        Unparker {
            target: Target::Ult(ult),
        }
    }

    /// Makes the target's next (or current) `park` return.
    #[inline]
    pub fn unpark(&self) {
        match &self.target {
            Target::Ult(u) => u.unpark(),
            Target::Thread(t) => t.unpark(),
        }
    }

    /// Whether this unparker wakes the same ULT or thread as `other`.
    pub fn same_target(&self, other: &Unparker) -> bool {
        match (&self.target, &other.target) {
            (Target::Ult(a), Target::Ult(b)) => a.ptr_eq(b),
            (Target::Thread(a), Target::Thread(b)) => a.id() == b.id(),
            _ => false,
        }
    }

    /// The address of the target ULT's header, for a prefetch hint before an `unpark` that
    /// comes soon ([`raw::prefetch_line`]); 0 for a kernel thread.
    #[inline]
    pub fn prefetch_addr(&self) -> usize {
        match &self.target {
            Target::Ult(u) => u.header_addr(),
            Target::Thread(_) => 0,
        }
    }

    /// Whether the target is a ULT (as opposed to a plain kernel thread).
    pub fn is_ult(&self) -> bool {
        matches!(self.target, Target::Ult(_))
    }
}

/// An unparker for the caller: the running ULT, or the calling kernel thread outside ULTs.
pub fn unparker() -> Unparker {
    match raw::current_raw() {
        Some(r) => r.unparker(),
        None => Unparker {
            target: Target::Thread(std::thread::current()),
        },
    }
}

/// Blocks the caller until its unparker is used (or returns at once if it already was).
/// Inside a ULT only the ULT waits; its kernel thread runs other ULTs meanwhile.
///
/// A park may end early (a stale token, a timeout elsewhere), so wait for a condition in a
/// loop, as with `std::thread::park`:
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// ult::run(|| {
///     let ready = Arc::new(AtomicBool::new(false));
///     let waiter = ult::spawn({
///         let ready = ready.clone();
///         move || {
///             while !ready.load(Ordering::Acquire) {
///                 ult::park(); // only this ULT waits
///             }
///         }
///     });
///     ult::yield_now(); // let it start and park
///     ready.store(true, Ordering::Release);
///     waiter.ult().unpark();
///     waiter.join().unwrap();
/// });
/// ```
#[inline]
pub fn park() {
    match raw::current_header() {
        Some(h) => raw::park_current(h),
        None => std::thread::park(),
    }
}

/// Like [`park`], but returns after `timeout` at the latest.
///
/// ```
/// use std::time::{Duration, Instant};
/// ult::run(|| {
///     let start = Instant::now();
///     ult::park_timeout(Duration::from_millis(10)); // nobody unparks: the timer does
///     assert!(start.elapsed() >= Duration::from_millis(10));
/// });
/// ```
pub fn park_timeout(timeout: Duration) {
    match Instant::now().checked_add(timeout) {
        Some(deadline) => park_deadline(deadline),
        None => park(),
    }
}

/// Like [`park`], but returns at `deadline` at the latest.
pub fn park_deadline(deadline: Instant) {
    match raw::current_raw() {
        Some(r) => {
            let now = Instant::now();
            if deadline <= now {
                return;
            }
            let sched = r.scheduler().clone();
            let key = sched.add_timer(deadline, r.unparker());
            raw::park_current(r);
            sched.cancel_timer(key);
        }
        None => {
            let now = Instant::now();
            if deadline > now {
                std::thread::park_timeout(deadline - now);
            }
        }
    }
}

/// Puts the running ULT at the back of its run queue so others can run. Outside a ULT it is
/// `std::thread::yield_now`.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// let order = ult::run(|| {
///     let order = Arc::new(Mutex::new(Vec::new()));
///     let other = ult::spawn({
///         let order = order.clone();
///         move || order.lock().unwrap().push("other")
///     });
///     order.lock().unwrap().push("first");
///     ult::yield_now(); // the queued ULT runs before this one continues
///     order.lock().unwrap().push("after the yield");
///     other.join().unwrap();
///     Arc::try_unwrap(order).unwrap().into_inner().unwrap()
/// });
/// assert_eq!(order, ["first", "other", "after the yield"]);
/// ```
#[inline]
pub fn yield_now() {
    if !raw::yield_current() {
        std::thread::yield_now();
    }
}

/// Blocks the caller for at least `dur`: inside a ULT only the ULT sleeps (on its runtime's
/// timers), outside it is `std::thread::sleep`.
///
/// ```
/// use std::time::{Duration, Instant};
/// let elapsed = ult::run(|| {
///     let start = Instant::now();
///     // Two ULTs sleep at once on one kernel thread: about 20 ms in all, not 40.
///     let a = ult::spawn(|| ult::sleep(Duration::from_millis(20)));
///     let b = ult::spawn(|| ult::sleep(Duration::from_millis(20)));
///     a.join().unwrap();
///     b.join().unwrap();
///     start.elapsed()
/// });
/// assert!(elapsed >= Duration::from_millis(20));
/// ```
pub fn sleep(dur: Duration) {
    match Instant::now().checked_add(dur) {
        Some(deadline) => sleep_until(deadline),
        None => loop {
            park();
        },
    }
}

/// Blocks the caller until `deadline` (see [`sleep`]).
pub fn sleep_until(deadline: Instant) {
    if raw::current_header().is_none() {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        return;
    }
    while Instant::now() < deadline {
        park_deadline(deadline);
    }
}
