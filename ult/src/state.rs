//! The two small lock-free protocols every ULT runs on, kept apart from the coroutine code so
//! that loom can model-check them (`tests/loom_protocols.rs`, run with `--cfg loom`).
//!
//! [`RunState`]: `ACTIVE` (queued or running), `PARKED` (suspended, in no queue) or `DONE`,
//! plus a `NOTIFIED` token bit. Three parties touch it:
//! - the ULT itself, in `park`: [`RunState::take_token`] consumes a pending token (then `park`
//!   returns at once), otherwise the ULT suspends;
//! - its scheduler, right after that suspension: [`RunState::try_park`] moves `ACTIVE ->
//!   PARKED`, or, if a token arrived in between, consumes it and reports that the ULT must be
//!   queued again (its `park` returns);
//! - any unparker: [`RunState::unpark`] moves `PARKED -> ACTIVE` and tells its caller to queue
//!   the ULT, or sets the token while the ULT is `ACTIVE`, or does nothing once `DONE`.
//!
//! Invariants: a ULT is `PARKED` only while suspended and in no queue; exactly one party (the
//! unparker whose CAS moved it out of `PARKED`, or the scheduler whose `try_park` failed)
//! queues it afterwards, so a ULT is never in two queues and no wake-up is lost.
//!
//! [`Life`]: a ULT cell's reference count and its join handshake in one word, so that the
//! usual end of a ULT (it completes and its scheduler drops its reference) is one atomic
//! operation. The joiner stores its waiter then sets `WAITER`; the scheduler of the finished
//! ULT sets `COMPLETE`; whoever comes second learns it from the previous value: the completer
//! wakes the waiter if `WAITER` was set, the joiner does not park if `COMPLETE` was set. The
//! completer gives up its reference in the same step unless a waiter is set (it still reads
//! the header to wake it); when the only other reference is a join handle frozen on the
//! completer's own thread (a nested join), nobody else can touch the word and completing is
//! a plain store ([`Life::complete_if_only_joined`]). Invariant: the cell is freed exactly once, by whoever drops the
//! last reference, after every other reference's last use.

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering};

const ACTIVE: u32 = 0;
const PARKED: u32 = 1;
const DONE: u32 = 2;
const RUN_MASK: u32 = 3;
const NOTIFIED: u32 = 4;

/// Run state of one ULT (see the module header).
#[derive(Debug)]
pub struct RunState(AtomicU32);

impl Default for RunState {
    fn default() -> Self {
        Self::new()
    }
}

impl RunState {
    /// A new ULT: `ACTIVE`, no token.
    pub fn new() -> RunState {
        RunState(AtomicU32::new(ACTIVE))
    }

    /// ULT side of `park`: consumes a pending token; true if there was one.
    #[inline]
    pub fn take_token(&self) -> bool {
        // Usually there is no token: a plain load then avoids a locked instruction. A token
        // set right after this load is consumed by the scheduler's `try_park` instead.
        if self.0.load(Ordering::Relaxed) & NOTIFIED == 0 {
            return false;
        }
        // Acquire: pairs with the unparker's release, so its writes are visible to the ULT.
        self.0.fetch_and(!NOTIFIED, Ordering::AcqRel) & NOTIFIED != 0
    }

    /// Scheduler side, after the ULT suspended to park: true if it is now `PARKED`; false if a
    /// token arrived meanwhile (it was consumed) and the ULT must be queued again.
    #[inline]
    pub fn try_park(&self) -> bool {
        // Release: the ULT's writes before parking are visible to the unparker that wins the
        // CAS below out of PARKED.
        match self
            .0
            .compare_exchange(ACTIVE, PARKED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(_) => {
                // Only NOTIFIED can differ (the ULT is suspended, so nobody else parks it or
                // finishes it): consume the token.
                self.0.store(ACTIVE, Ordering::Release);
                false
            }
        }
    }

    /// Unparker side: true if the caller moved the ULT out of `PARKED` and must queue it.
    #[inline]
    pub fn unpark(&self) -> bool {
        let mut s = self.0.load(Ordering::Relaxed);
        loop {
            let next = match s & RUN_MASK {
                PARKED => ACTIVE,
                ACTIVE if s & NOTIFIED == 0 => s | NOTIFIED,
                _ => return false, // already notified, or done
            };
            // Release: the unparker's writes happen-before the ULT runs again.
            match self
                .0
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return next == ACTIVE,
                Err(actual) => s = actual,
            }
        }
    }

    /// Claims a parked ULT for destruction: `PARKED -> DONE`. True if this caller won (no
    /// unparker can queue it any more); false if it was not parked.
    #[inline]
    pub fn try_cancel_parked(&self) -> bool {
        self.0
            .compare_exchange(PARKED, DONE, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// The ULT finished: later unparks do nothing.
    #[inline]
    pub fn finish(&self) {
        self.0.store(DONE, Ordering::Release);
    }

    /// Whether the ULT is parked (for diagnostics only: it may change at once).
    pub fn is_parked(&self) -> bool {
        self.0.load(Ordering::Relaxed) & RUN_MASK == PARKED
    }
}

const WAITER: usize = 1;
const COMPLETE: usize = 2;
/// One reference in [`Life`]'s count (the two low bits are the join handshake).
const REF: usize = 4;

/// What [`Life::complete_and_release`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Completed and gave up the caller's reference; `last`: it was the last one, the
    /// caller frees the cell.
    Released {
        /// The caller held the last reference.
        last: bool,
    },
    /// Completed, and a joiner is waiting: the caller wakes it, then calls
    /// [`Life::release`] (its reference keeps the cell alive meanwhile).
    WakeWaiter,
}

/// A ULT cell's reference count and join handshake in one word (see the module header).
#[derive(Debug)]
pub struct Life(AtomicUsize);

impl Life {
    /// A cell with `refs` references, not complete, nobody waiting.
    pub fn new(refs: usize) -> Life {
        Life(AtomicUsize::new(refs * REF))
    }

    /// Adds a reference (made from one the caller holds). Aborts on overflow, like `Arc`.
    #[inline]
    pub fn acquire(&self) {
        // Relaxed: the caller's reference keeps the cell alive, as in `Arc::clone`.
        if self.0.fetch_add(REF, Ordering::Relaxed) > usize::MAX / 2 {
            std::process::abort();
        }
    }

    /// Gives up a reference; true if it was the last (the caller frees the cell).
    #[inline]
    pub fn release(&self) -> bool {
        // Release/acquire as in `Arc::drop`: every use through other references happens
        // before the free.
        if self.0.fetch_sub(REF, Ordering::Release) < 2 * REF {
            fence(Ordering::Acquire);
            return true;
        }
        false
    }

    /// Like [`Life::release`], without a read-modify-write when the caller holds the only
    /// reference (the join handle of a finished ULT, usually): nobody else can then add one,
    /// and the acquire load orders every other reference's last use before the free.
    #[inline]
    pub fn release_maybe_unique(&self) -> bool {
        if self.0.load(Ordering::Acquire) < 2 * REF {
            return true;
        }
        self.release()
    }

    /// Joiner: call after storing the waiter. True if the joiner must wait (the completer
    /// will wake it); false if the ULT already completed.
    #[inline]
    pub fn set_waiter(&self) -> bool {
        // AcqRel: release publishes the stored waiter to the completer; acquire makes the
        // result visible if COMPLETE was already set.
        self.0.fetch_or(WAITER, Ordering::AcqRel) & COMPLETE == 0
    }

    /// The scheduler, after the ULT stored its result: marks it complete and gives up the
    /// scheduler's reference in one step, unless a joiner is waiting (then the reference is
    /// kept until the caller woke the joiner, which reads the header).
    #[inline]
    pub fn complete_and_release(&self) -> Completion {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            if cur & WAITER != 0 {
                // AcqRel: release publishes the result; acquire makes the stored waiter
                // visible.
                self.0.fetch_or(COMPLETE, Ordering::AcqRel);
                return Completion::WakeWaiter;
            }
            // COMPLETE is clear (only this call sets it), so adding it cannot carry.
            let next = cur + COMPLETE - REF;
            // AcqRel: release publishes the result (and, like `release`, this reference's
            // uses); acquire orders the others' uses before a free.
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Completion::Released {
                        last: cur < 2 * REF,
                    }
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// [`Life::complete_and_release`] without a read-modify-write, for a scheduler that knows
    /// the cell's other references can only be a join handle held, unused, on its own thread
    /// (a nested join): if the count is exactly that handle's and the caller's, with no waiter,
    /// completes and gives up the caller's reference with a plain store and returns true;
    /// otherwise changes nothing and returns false (call `complete_and_release`).
    ///
    /// # Safety
    /// The caller holds one reference and the cell's join handle another, on the calling
    /// thread, unused until the caller returns. A count of exactly two then means there is no
    /// third, so no other thread can change the word between this load and this store (a
    /// lost update there would free the cell twice or never).
    #[inline]
    pub unsafe fn complete_if_only_joined(&self) -> bool {
        // Acquire: a reference another thread dropped just before (a release decrement) is
        // ordered before the free that our store leads to, which a plain store would not
        // carry on as a read-modify-write would.
        if self.0.load(Ordering::Acquire) != 2 * REF {
            return false;
        }
        // Release, as in `complete_and_release`: publishes the result to whoever later sees
        // COMPLETE with acquire (here, the join handle on this thread).
        self.0.store(REF + COMPLETE, Ordering::Release);
        true
    }

    /// Whether the ULT completed (acquire: its result is visible afterwards).
    #[inline]
    pub fn is_complete(&self) -> bool {
        self.0.load(Ordering::Acquire) & COMPLETE != 0
    }
}
