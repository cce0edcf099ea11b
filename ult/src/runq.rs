//! A scheduler's local FIFO run queue: a ring of one-word slots whose capacity is a power of
//! two, used by one kernel thread only.
//!
//! Both schedulers keep their started ULTs in one of these: the many-to-one executor (its
//! only queue) and each `lwp` LWP (its `ready` queue of ULTs that must stay on it). A push or
//! a pop is an index mask, a store and a length update. `VecDeque`'s wrap-around test and
//! growth check cost about twice that, and a `RefCell` around it adds a borrow flag's
//! store-then-check to every operation; on a yield between two ULTs those were a measurable
//! part of each switch.
//!
//! Invariants: slots `head, head + 1, ...` (mod capacity), `len` of them, hold the queued
//! ULTs; the others are `None` (`Option<RawUlt>` is one word: a null pointer is `None`). The
//! queue is `!Sync` (one thread), and no method hands out a reference into the ring or runs
//! code outside this crate while it holds the ring, so the `UnsafeCell` needs no borrow flag:
//! a ULT's destructor, which may run anything, only ever runs after `pop` has returned it.

use std::cell::UnsafeCell;

use crate::raw::RawUlt;

/// The ring and its bookkeeping (see the module header).
#[derive(Default)]
struct Ring {
    slots: Vec<Option<RawUlt>>,
    head: usize,
    len: usize,
}

impl Ring {
    #[inline]
    fn push_back(&mut self, ult: RawUlt) {
        if self.len == self.slots.len() {
            self.grow();
        }
        let at = (self.head + self.len) & (self.slots.len() - 1);
        // SAFETY: the capacity is a power of two (`grow`), so the masked index is in bounds.
        let slot = unsafe { self.slots.get_unchecked_mut(at) };
        // The slot is free (`None`): nothing to drop, so none is compiled in.
        std::mem::forget(slot.replace(ult));
        self.len += 1;
    }

    #[inline]
    fn pop_front(&mut self) -> Option<RawUlt> {
        if self.len == 0 {
            return None;
        }
        let head = self.head;
        // SAFETY: `head` is always a masked index, so in bounds.
        let ult = unsafe { self.slots.get_unchecked_mut(head) }.take();
        self.head = (head + 1) & (self.slots.len() - 1);
        self.len -= 1;
        ult
    }

    /// The queued ULT `index` places behind the front, if there is one.
    #[inline]
    fn get(&self, index: usize) -> Option<&RawUlt> {
        if index >= self.len {
            return None;
        }
        // The mask keeps the index in bounds whatever the capacity (a power of two).
        self.slots[(self.head + index) & (self.slots.len() - 1)].as_ref()
    }

    /// Doubles the capacity (at least 16 slots), unwrapping the ring to start at slot 0.
    #[cold]
    fn grow(&mut self) {
        let mut slots: Vec<Option<RawUlt>> = Vec::new();
        slots.resize_with((self.slots.len() * 2).max(16), || None);
        for (i, slot) in slots.iter_mut().take(self.len).enumerate() {
            // Only a full ring grows, so `len` is the old capacity, a power of two.
            *slot = self.slots[(self.head + i) & (self.len - 1)].take();
        }
        self.slots = slots;
        self.head = 0;
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
pub struct RunQueue(UnsafeCell<Ring>);

impl RunQueue {
    /// Queues `ult` at the back.
    #[inline]
    pub fn push_back(&self, ult: RawUlt) {
        // SAFETY: one thread (`!Sync`), and `push_back` runs no code outside this crate while
        // it holds the ring (see the module header).
        unsafe { (*self.0.get()).push_back(ult) }
    }

    /// Takes the ULT at the front.
    #[inline]
    pub fn pop_front(&self) -> Option<RawUlt> {
        // SAFETY: as in `push_back`.
        unsafe { (*self.0.get()).pop_front() }
    }

    /// ULTs queued.
    #[inline]
    pub fn len(&self) -> usize {
        // SAFETY: as in `push_back`.
        unsafe { (*self.0.get()).len }
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
        if let Some(u) = unsafe { (*self.0.get()).get(index) } {
            u.prefetch();
        }
    }

    /// [`RawUlt::prefetch_header`] for the ULT `index` places behind the front (nothing if
    /// none).
    #[inline]
    pub fn prefetch_header(&self, index: usize) {
        // SAFETY: as in `prefetch`; `prefetch_header` reads nothing at all.
        if let Some(u) = unsafe { (*self.0.get()).get(index) } {
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
