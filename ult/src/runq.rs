//! A scheduler's local FIFO run queue: a ring of one-word slots whose capacity is a power of
//! two, used by one kernel thread only.
//!
//! Both schedulers keep their started ULTs in one of these: the many-to-one executor (its
//! only queue) and each `lwp` LWP (its `ready` queue of ULTs that must stay on it). A push or
//! a pop is an index mask, a counter update and (push) a store of the slot. `VecDeque`'s wrap-around test and
//! growth check cost about twice that, and a `RefCell` around it adds a borrow flag's
//! store-then-check to every operation; on a yield between two ULTs those were a measurable
//! part of each switch.
//!
//! Invariants: `head` and `tail` count pops and pushes (wrapping); the `tail - head` slots
//! from `head` on (mod capacity) hold the queued ULTs, initialised; the others are
//! uninitialised (a pop moves its ULT out without writing the slot back). The queue is
//! `!Sync` (one thread), and no method hands out a reference into the ring or runs code
//! outside this crate while it holds the ring, so the `UnsafeCell` needs no borrow flag: a
//! ULT's destructor, which may run anything, only ever runs after `pop` has returned it.
//! The one method that runs a ULT, [`RunQueue::resume_front_nested`], holds no borrow of the
//! ring meanwhile: it runs a bitwise copy of the front handle and looks at the ring afresh
//! when the ULT switches back.
//!
//! Why two counters and no `len`: a pop then writes only `head`, a push only `tail` and its
//! slot. With a length that both updated and a slot that a pop cleared to `None`, the words
//! of a yield's pop and push were stored and loaded again within every round trip. On top
//! of that, a lender's yield runs the ULT ahead of it without taking it out of the ring at
//! all ([`RunQueue::resume_front_nested`]). Yield round trip between two ULTs on the
//! many-to-one executor, in raw corosensei round trips (`taskset -c 1 cargo run --release
//! -p ult --example switchratio`, six interleaved runs of each build, AMD EPYC): 6.0x before
//! (pop and push, a length), 6.0x with the two counters alone, 5.3x with them and the
//! lender's yield inlined (`raw::Nest::queue`), 4.3x with the front run in place as well.
//!
//! The queue also keeps a memo of the nested run of the ULT it last ran in place, usually the
//! front again ([`crate::raw::RawUlt`]'s `resume_nested_via`): the frame to publish for it
//! and its worker. The switch takes the worker from the memo, one load from the queue, and
//! the real target, at the end of the ring -> slot -> header -> worker chain, only confirms
//! it through a predicted branch; the frame, kept in the memo, is no longer built on the
//! stack for every run. Same measure: 3.94-4.04x without a memo (three interleaved runs of
//! each build), 3.31-3.35x with a memo of the target alone and 3.14-3.22x with the frame in
//! it as well (five interleaved runs of each; `lab -q switch`, three interleaved runs:
//! 3.50-3.79x and 3.26-3.42x). A yield with exactly one ULT ahead, the common case, runs it
//! without the loop, whose count the compiler kept in a stack slot across the switch.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;

use crate::raw::{FrontRun, RawUlt};

/// The ring and its bookkeeping (see the module header).
#[derive(Default)]
struct Ring {
    /// A power of two slots (or none).
    slots: Box<[MaybeUninit<RawUlt>]>,
    head: usize,
    tail: usize,
}

impl Ring {
    #[inline]
    fn len(&self) -> usize {
        self.tail.wrapping_sub(self.head)
    }

    #[inline]
    fn push_back(&mut self, ult: RawUlt) {
        if self.len() == self.slots.len() {
            self.grow();
        }
        let at = self.tail & (self.slots.len() - 1);
        // SAFETY: the capacity is a nonzero power of two (`grow`), so the masked index is in
        // bounds; the slot is outside the queued range, so nothing initialised is overwritten.
        unsafe { self.slots.get_unchecked_mut(at) }.write(ult);
        self.tail = self.tail.wrapping_add(1);
    }

    #[inline]
    fn pop_front(&mut self) -> Option<RawUlt> {
        if self.head == self.tail {
            return None;
        }
        let at = self.head & (self.slots.len() - 1);
        // SAFETY: the ring is not empty, so it has a power-of-two capacity and the masked
        // index is in bounds; the front slot is initialised (module invariant) and leaves the
        // queued range below, so its ULT is moved out exactly once.
        let ult = unsafe { self.slots.get_unchecked(at).assume_init_read() };
        self.head = self.head.wrapping_add(1);
        Some(ult)
    }

    /// The queued ULT `index` places behind the front, if there is one.
    #[inline]
    fn get(&self, index: usize) -> Option<&RawUlt> {
        if index >= self.len() {
            return None;
        }
        let at = self.head.wrapping_add(index) & (self.slots.len() - 1);
        // SAFETY: `index` is within the queued range, whose slots are initialised; the mask
        // keeps it in bounds (a nonempty ring has a power-of-two capacity).
        Some(unsafe { self.slots.get_unchecked(at).assume_init_ref() })
    }

    /// Doubles the capacity (at least 16 slots), unwrapping the ring to start at slot 0.
    #[cold]
    fn grow(&mut self) {
        let len = self.len();
        let mut slots: Box<[MaybeUninit<RawUlt>]> = (0..(self.slots.len() * 2).max(16))
            .map(|_| MaybeUninit::uninit())
            .collect();
        for (i, slot) in slots.iter_mut().take(len).enumerate() {
            // Only a full ring grows, so `len` is the old capacity, a power of two.
            let at = self.head.wrapping_add(i) & (len.max(1) - 1);
            // SAFETY: `i < len` is within the queued range, initialised; the old ring is
            // dropped below without reading its slots again.
            slot.write(unsafe { self.slots[at].assume_init_read() });
        }
        self.slots = slots;
        self.head = 0;
        self.tail = len;
    }
}

/// A FIFO of runnable ULTs for the one kernel thread that runs them (see the module header).
///
/// ```
/// let q = ult::raw::RunQueue::default();
/// assert!(q.pop_front().is_none());
/// assert_eq!(q.len(), 0);
/// ```
#[derive(Default)]
pub struct RunQueue {
    ring: UnsafeCell<Ring>,
    /// The frame and worker of the ULT last run by [`RunQueue::resume_front_nested`],
    /// usually the front again (see [`RawUlt::resume_nested_via`]).
    front: UnsafeCell<FrontRun>,
}

impl RunQueue {
    /// Queues `ult` at the back.
    #[inline]
    pub fn push_back(&self, ult: RawUlt) {
        // SAFETY: one thread (`!Sync`), and `push_back` runs no code outside this crate while
        // it holds the ring (see the module header).
        unsafe { (*self.ring.get()).push_back(ult) }
    }

    /// Takes the ULT at the front.
    #[inline]
    pub fn pop_front(&self) -> Option<RawUlt> {
        // SAFETY: as in `push_back`.
        unsafe { (*self.ring.get()).pop_front() }
    }

    /// Runs the front ULT nested on the running ULT's stack ([`RawUlt::resume_nested`])
    /// without taking it out of the ring first, then moves it to the back if it is still
    /// runnable, or drops it from the ring if not.
    ///
    /// A yield between two ULTs then leaves the ring as it was (the other one is its only
    /// ULT, at the front and at the back), where a pop and a push wrote it twice per round
    /// trip. While the ULT runs, the ring holds a copy of the handle that runs it: nothing
    /// may pop the ring meanwhile, which holds because only the lender (suspended below the
    /// nested ULT) and its scheduler (suspended below the lender) pop it, and the nested ULT
    /// runs without the nest offer.
    ///
    /// # Safety
    /// The ring must not be empty. Only for [`crate::raw::Nest`] handlers, with
    /// `resume_nested`'s contract for every ULT in the ring; the queue's memo of its front
    /// run is then used by this call alone (`resume_nested_via`'s contract), since only the
    /// lender runs it, and the lender is suspended below the ULT it runs.
    #[inline(always)]
    unsafe fn resume_front_nested(&self) {
        // SAFETY: as in `push_back`; the ring is not empty (the caller's contract), so the
        // masked index is in bounds and the front slot initialised; its handle is copied
        // bitwise, and below exactly one of the two copies is given up without being dropped.
        let running = unsafe {
            let ring = &*self.ring.get();
            let at = ring.head & (ring.slots.len() - 1);
            ring.slots.get_unchecked(at).assume_init_read()
        };
        // Pushes while it runs go behind it; nothing pops (see above), so afterwards its
        // handle is still the ring's front.
        // SAFETY: the caller's contract (see above).
        match unsafe { running.resume_nested_via(&self.front) } {
            Some(runnable) => {
                // The ring's copy stays the one owner: the same handle, still in its slot.
                std::mem::forget(runnable);
                // SAFETY: as in `push_back`; only the counters are read.
                let alone = unsafe {
                    let ring = &*self.ring.get();
                    ring.head.wrapping_add(1) == ring.tail
                };
                if !alone {
                    if let Some(front) = self.pop_front() {
                        self.push_back(front);
                    }
                }
            }
            None => {
                // `resume_nested` gave up the reference (parked or finished): the ring's
                // copy must not be dropped a second time.
                std::mem::forget(self.pop_front());
            }
        }
    }

    /// Runs each ULT queued now once, in order, with [`RunQueue::resume_front_nested`]: the
    /// `yield_now` of a lender, which lets the ULTs ahead of it run as if it had gone to the
    /// back of the queue (those they queue run after it). Same contract, except that the ring
    /// may be empty.
    #[inline(always)]
    pub(crate) fn resume_ahead_nested(&self) {
        let mut ahead = self.len();
        if ahead == 1 {
            // The common case (two ULTs yielding to each other), without a count kept
            // across the switch.
            // SAFETY: not empty (one queued).
            unsafe { self.resume_front_nested() };
            return;
        }
        while ahead > 0 {
            // SAFETY: not empty: each run removes at most the ULT it ran (nothing else pops
            // while the lender runs them, see `resume_front_nested`), so at least `ahead`
            // ULTs are still queued.
            unsafe { self.resume_front_nested() };
            ahead -= 1;
        }
    }

    /// ULTs queued.
    #[inline]
    pub fn len(&self) -> usize {
        // SAFETY: as in `push_back`.
        unsafe { (*self.ring.get()).len() }
    }

    /// Whether nothing is queued.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a batch at the back, in order.
    pub fn extend(&self, batch: Vec<RawUlt>) {
        for ult in batch {
            self.push_back(ult);
        }
    }

    /// [`RawUlt::prefetch`] for the ULT `index` places behind the front (nothing if none).
    #[inline]
    pub fn prefetch(&self, index: usize) {
        // SAFETY: as in `push_back`; `RawUlt::prefetch` only reads the ULT's header and
        // issues prefetch hints.
        if let Some(u) = unsafe { (*self.ring.get()).get(index) } {
            u.prefetch();
        }
    }

    /// [`RawUlt::prefetch_header`] for the ULT `index` places behind the front (nothing if
    /// none).
    #[inline]
    pub fn prefetch_header(&self, index: usize) {
        // SAFETY: as in `prefetch`; `prefetch_header` reads nothing at all.
        if let Some(u) = unsafe { (*self.ring.get()).get(index) } {
            u.prefetch_header();
        }
    }
}

impl Drop for RunQueue {
    fn drop(&mut self) {
        // One at a time, outside the ring: a ULT's destructor may run any code.
        while let Some(u) = self.pop_front() {
            drop(u);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RunQueue;
    use std::sync::Arc;

    /// A never-run ULT to fill the ring with (dropping it runs no code of its own).
    fn ult_numbered(n: usize) -> crate::raw::RawUlt {
        let sched = crate::raw::SchedRef::counted(Arc::new(NoSched));
        let spec = crate::raw::Spec {
            name: Some(n.to_string()),
            ..Default::default()
        };
        let (raw, _cell) = crate::raw::create(spec, sched, || ()).expect("create a ULT");
        raw
    }

    struct NoSched;
    impl crate::raw::Schedule for NoSched {
        fn spawn(&self, _: crate::raw::RawUlt) -> std::io::Result<()> {
            Ok(())
        }
        fn wake(&self, _: crate::raw::RawUlt) {}
        fn add_timer(&self, _: std::time::Instant, _: crate::Unparker) -> u64 {
            0
        }
        fn cancel_timer(&self, _: u64) {}
    }

    #[test]
    fn ring_is_fifo_across_wrap_and_growth() {
        let ring = RunQueue::default();
        let mut expect = std::collections::VecDeque::new();
        let mut next = 0;
        // Pushes outpace pops, so the ring wraps at every capacity before it grows.
        for round in 0..40 {
            for _ in 0..3 {
                ring.push_back(ult_numbered(next));
                expect.push_back(next);
                next += 1;
            }
            for _ in 0..(round % 3) {
                let got = ring.pop_front().map(|u| u.name().map(str::to_owned));
                assert_eq!(got, expect.pop_front().map(|n| Some(n.to_string())));
            }
            assert_eq!(ring.len(), expect.len());
        }
        while let Some(n) = expect.pop_front() {
            let got = ring.pop_front().expect("as many as pushed");
            assert_eq!(got.name(), Some(n.to_string().as_str()));
        }
        assert!(ring.pop_front().is_none());
    }

    #[test]
    fn prefetching_past_the_end_does_nothing_and_keeps_the_order() {
        let ring = RunQueue::default();
        for n in 0..3 {
            ring.push_back(ult_numbered(n));
        }
        for index in [0, 2, 3, 100] {
            ring.prefetch(index);
            ring.prefetch_header(index);
        }
        let names: Vec<_> = std::iter::from_fn(|| ring.pop_front())
            .map(|u| u.name().map(str::to_owned))
            .collect();
        assert_eq!(names, ["0", "1", "2"].map(|n| Some(n.to_owned())));
    }

    #[test]
    fn dropping_the_queue_drops_the_ults_still_in_it() {
        let live = || crate::raw::LIVE_CELLS.with(|n| n.get());
        let before = live();
        let ring = RunQueue::default();
        // Enough to wrap and grow once.
        for n in 0..20 {
            ring.push_back(ult_numbered(n));
            if n % 4 == 0 {
                drop(ring.pop_front());
            }
        }
        assert_eq!(live(), before + 15);
        drop(ring);
        assert_eq!(live(), before);
    }
}
