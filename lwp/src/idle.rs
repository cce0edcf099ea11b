//! The idle-LWP protocol: who sleeps, who spins, and who wakes whom, with no lost wake-up.
//!
//! Kept apart from the scheduler so loom can model-check it (`tests/loom_idle.rs`, run with
//! `--cfg loom`). The scheduler's module header describes the whole protocol; this module
//! owns its shared state:
//! - `num_spinning`: LWPs searching for work without sleeping (at most half of them);
//! - the idle list and `num_idle`: LWPs that published that they are about to sleep or
//!   sleep.
//!
//! The sleeper's side: [`IdleSet::register`], then its own `sleeping` flag, a SeqCst fence,
//! one more search, and only then `park`. The waker's side: publish the work, a SeqCst fence
//! ([`IdleSet::fence`]), then [`IdleSet::pop_sleeper`] (or a check of the home LWP's `sleeping`
//! flag) and `unpark`. By the two fences, at least one side sees the other's write. (`park`
//! and `unpark` are, in the runtime, a blocking poll of the LWP's own reactor and
//! `Reactor::notify`; like `Thread::unpark`, a notify that lands before the wait is kept, in
//! the reactor's `notified` flag, which is what the loom model's `thread::park` stands for.)
//!
//! Run queues need no model here: the per-LWP deque and the global injector are
//! `crossbeam-deque` (model-checked by its authors), and the inbox is a mutex-protected
//! vector whose "non-empty" flag is set after the push (release) and cleared before the
//! drain (acquire), so a drain never misses a push that set the flag.

#[cfg(loom)]
use loom::sync::atomic::{fence as atomic_fence, AtomicUsize, Ordering};
#[cfg(loom)]
use loom::sync::Mutex;
#[cfg(not(loom))]
use std::sync::atomic::{fence as atomic_fence, AtomicUsize, Ordering};
#[cfg(not(loom))]
use std::sync::Mutex;

/// The idle and spinning LWPs of one runtime.
#[derive(Debug)]
pub struct IdleSet {
    list: Mutex<Vec<usize>>,
    num_idle: AtomicUsize,
    num_spinning: AtomicUsize,
}

impl Default for IdleSet {
    fn default() -> Self {
        Self::new()
    }
}

impl IdleSet {
    /// Nobody idle, nobody spinning.
    pub fn new() -> IdleSet {
        IdleSet {
            list: Mutex::new(Vec::new()),
            num_idle: AtomicUsize::new(0),
            num_spinning: AtomicUsize::new(0),
        }
    }

    /// The SeqCst fence both sides issue between publishing and checking.
    #[inline]
    pub fn fence() {
        atomic_fence(Ordering::SeqCst);
    }

    /// Tries to become a spinner; true if fewer than `allowed` LWPs spin. On false the
    /// caller is not counted.
    pub fn try_start_spinning(&self, allowed: usize) -> bool {
        if self.num_spinning.fetch_add(1, Ordering::SeqCst) < allowed {
            true
        } else {
            self.num_spinning.fetch_sub(1, Ordering::SeqCst);
            false
        }
    }

    /// Stops spinning (after `try_start_spinning` returned true). Returns true if the
    /// caller was the last spinner.
    pub fn stop_spinning(&self) -> bool {
        self.num_spinning.fetch_sub(1, Ordering::SeqCst) == 1
    }

    /// Cheap pre-check for wakers: is anyone spinning?
    pub fn anyone_spinning(&self) -> bool {
        self.num_spinning.load(Ordering::Relaxed) != 0
    }

    /// Cheap pre-check for wakers: is anyone idle?
    pub fn anyone_idle(&self) -> bool {
        self.num_idle.load(Ordering::Relaxed) != 0
    }

    /// Publishes `lwp` as idle (before its last search and its park).
    pub fn register(&self, lwp: usize) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.push(lwp);
        self.num_idle.fetch_add(1, Ordering::SeqCst);
    }

    /// Withdraws `lwp` from the idle list if a waker has not already taken it.
    pub fn unregister(&self, lwp: usize) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = list.iter().position(|&i| i == lwp) {
            list.swap_remove(pos);
            self.num_idle.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Waker, after publishing stealable work and [`IdleSet::fence`]: the LWP to unpark,
    /// if nobody spins and somebody is idle.
    pub fn pop_sleeper(&self) -> Option<usize> {
        if self.num_spinning.load(Ordering::SeqCst) != 0
            || self.num_idle.load(Ordering::SeqCst) == 0
        {
            return None;
        }
        self.pop_any()
    }

    /// Takes any idle LWP, spinning or not (sysmon uses this).
    pub fn pop_any(&self) -> Option<usize> {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let lwp = list.pop();
        if lwp.is_some() {
            self.num_idle.fetch_sub(1, Ordering::SeqCst);
        }
        lwp
    }
}
