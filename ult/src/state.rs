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
//! [`JoinState`]: the joiner stores its waiter then sets `WAITER`; the finishing ULT sets
//! `COMPLETE`; whoever comes second learns it from the returned previous value: the completer
//! wakes the waiter if `WAITER` was set, the joiner does not park if `COMPLETE` was set.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, AtomicU8, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

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

const JOIN_WAITER: u8 = 1;
const JOIN_COMPLETE: u8 = 2;

/// The join handshake of one ULT (see the module header).
#[derive(Debug)]
pub struct JoinState(AtomicU8);

impl Default for JoinState {
    fn default() -> Self {
        Self::new()
    }
}

impl JoinState {
    /// Nobody waiting, not complete.
    pub fn new() -> JoinState {
        JoinState(AtomicU8::new(0))
    }

    /// Joiner: call after storing the waiter. True if the joiner must wait (the completer
    /// will wake it); false if the ULT already completed.
    #[inline]
    pub fn set_waiter(&self) -> bool {
        // AcqRel: release publishes the stored waiter to the completer; acquire makes the
        // result visible if COMPLETE was already set.
        self.0.fetch_or(JOIN_WAITER, Ordering::AcqRel) & JOIN_COMPLETE == 0
    }

    /// Completer: call after storing the result. True if a waiter is stored and must be woken.
    #[inline]
    pub fn complete(&self) -> bool {
        // AcqRel: release publishes the result; acquire makes the stored waiter visible.
        self.0.fetch_or(JOIN_COMPLETE, Ordering::AcqRel) & JOIN_WAITER != 0
    }

    /// Whether the ULT completed (acquire: its result is visible afterwards).
    #[inline]
    pub fn is_complete(&self) -> bool {
        self.0.load(Ordering::Acquire) & JOIN_COMPLETE != 0
    }
}
