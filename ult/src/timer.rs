//! A timer queue for schedulers: a binary heap of deadlines with lazy cancellation.
//!
//! Each scheduler thread owns one (no locking): `insert` is O(log n), `cancel` O(1) (the heap
//! entry stays and is skipped when it surfaces), firing O(log n) per expired timer. So that
//! cancelled timers with far deadlines (a `recv_timeout(1 h)` in a loop) cannot pile up, the
//! heap is rebuilt from the live timers whenever it holds more than twice as many entries
//! (plus a small slack), which keeps memory O(live) at amortised O(1) cost per cancel.
//!
//! Firing a timer unparks its [`Unparker`]; the parked party re-checks its deadline, so a
//! late or spurious unpark is harmless.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use crate::Unparker;

/// Deadlines owned by one scheduler thread.
#[derive(Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    live: HashMap<u64, (Instant, Unparker)>,
    next_key: u64,
    /// High bits of every key, so keys from different queues never collide.
    key_base: u64,
}

impl TimerQueue {
    /// An empty queue whose keys all carry `tag` in their top 16 bits.
    pub fn with_tag(tag: u16) -> TimerQueue {
        TimerQueue {
            key_base: (tag as u64) << 48,
            ..TimerQueue::default()
        }
    }

    /// Adds a timer; returns its key.
    pub fn insert(&mut self, deadline: Instant, unparker: Unparker) -> u64 {
        self.next_key = (self.next_key + 1) & ((1 << 48) - 1);
        let key = self.key_base | self.next_key;
        self.heap.push(Reverse((deadline, key)));
        self.live.insert(key, (deadline, unparker));
        key
    }

    /// Whether `key` was issued by this queue (see [`TimerQueue::with_tag`]).
    pub fn owns(&self, key: u64) -> bool {
        key >> 48 == self.key_base >> 48
    }

    /// Cancels a timer; a no-op if it already fired or was cancelled.
    pub fn cancel(&mut self, key: u64) {
        if self.live.remove(&key).is_some() && self.heap.len() > 2 * self.live.len() + 64 {
            self.heap = self
                .live
                .iter()
                .map(|(k, (d, _))| Reverse((*d, *k)))
                .collect();
        }
    }

    /// The earliest live deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, key))) = self.heap.peek() {
            if self.live.contains_key(key) {
                return Some(*deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Unparks every timer due at `now`; returns how many fired.
    pub fn fire_due(&mut self, now: Instant) -> usize {
        let mut fired = 0;
        while let Some(Reverse((deadline, key))) = self.heap.peek() {
            if *deadline > now {
                break;
            }
            let key = *key;
            self.heap.pop();
            if let Some((_, unparker)) = self.live.remove(&key) {
                unparker.unpark();
                fired += 1;
            }
        }
        fired
    }

    /// Number of live timers.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no timer is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

/// Last resort for a timer requested off any scheduler thread: a helper kernel thread that
/// sleeps and unparks. Correct but costly; schedulers use it only where they cannot do
/// better.
pub fn fallback_timer(deadline: Instant, unparker: Unparker) {
    std::thread::spawn(move || {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        unparker.unpark();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_order_and_skips_cancelled() {
        let mut q = TimerQueue::with_tag(3);
        let now = Instant::now();
        let u = crate::unparker();
        let a = q.insert(now + Duration::from_millis(5), u.clone());
        let _b = q.insert(now + Duration::from_millis(1), u.clone());
        assert!(q.owns(a));
        assert!(!TimerQueue::with_tag(4).owns(a));
        q.cancel(a);
        assert_eq!(q.next_deadline(), Some(now + Duration::from_millis(1)));
        assert_eq!(q.fire_due(now + Duration::from_millis(10)), 1);
        assert!(q.is_empty());
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn cancelled_far_timers_do_not_pile_up() {
        let mut q = TimerQueue::default();
        let far = Instant::now() + Duration::from_secs(3600);
        for _ in 0..10_000 {
            let k = q.insert(far, crate::unparker());
            q.cancel(k);
        }
        assert!(
            q.heap.len() <= 2 * q.len() + 65,
            "heap {} entries",
            q.heap.len()
        );
    }
}
