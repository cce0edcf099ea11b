//! [`Mutex`]: mutual exclusion that parks the waiting ULT, never its kernel thread.
//!
//! # State and invariants
//! One atomic byte: `LOCKED` (someone holds the lock) and `PARKED` (the wait queue may be
//! non-empty). Invariants, all maintained under the wait queue's internal lock:
//! - the queue is non-empty ⇒ `PARKED` is set (it is set in the same CAS that re-checks
//!   `LOCKED` before a waiter enqueues, and cleared only when the queue becomes empty);
//! - a waiter enqueues only while `LOCKED` is set (otherwise that same CAS takes the lock).
//!
//! # Paths
//! - `lock`: one CAS `0 -> LOCKED`. Otherwise spin briefly (only on a multi-core host: on one
//!   core, or among ULTs of one kernel thread, the holder cannot make progress while we spin),
//!   then enqueue and park until notified.
//! - `unlock`: one CAS `LOCKED -> 0`. If `PARKED` was set, take the queue lock, pop the oldest
//!   waiter, release the lock (or hand it over, below) and unpark the waiter after dropping
//!   the queue lock.
//! - Barging: a woken waiter competes again with newcomers (no hand-off, so an uncontended
//!   relock by the unlocker stays a single CAS). To bound starvation, a waiter that was woken
//!   and lost the race once re-enqueues at the head marked *starving*; the next unlock hands
//!   the lock directly to it (`LOCKED` stays set, its token says `HANDOFF`).
//! - Timeouts ([`Mutex::lock_timeout`], [`Mutex::try_lock_until`]): a waiter whose deadline
//!   passes re-checks its token under the queue lock. `HANDOFF`: it owns the lock, success.
//!   `NOTIFIED`: it tries the lock once; if that fails someone else holds it, and that holder
//!   will wake the next waiter on unlock (the queue is non-empty ⇒ `PARKED`), so nothing is
//!   lost. `WAITING`: it removes itself (clearing `PARKED` if the queue empties).
//!
//! Poisoning follows `std::sync::Mutex`: a guard dropped while its ULT or thread panics
//! marks the mutex poisoned, and later `lock`s return the guard inside a
//! [`std::sync::PoisonError`].
//!
//! Who may call what: anyone, from ULTs or plain threads alike. Do not hold a `Mutex` guard
//! across a blocking system call: other ULTs of the same kernel thread cannot run meanwhile,
//! and one of them may be the next holder.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::{Duration, Instant};

use super::waitqueue::{deadline_after, WaitQueue, Waiter, WAITING};

const LOCKED: u8 = 1;
const PARKED: u8 = 2;

/// Token: the lock was released, try again.
const NOTIFIED: u32 = 1;
/// Token: the lock was handed to you; you hold it.
const HANDOFF: u32 = 2;

/// Waiter tag: this waiter already lost a race after being woken; hand the lock to it.
const STARVING: u32 = 1;

/// Whether spinning before parking can help: only with more than one CPU.
pub(crate) fn spinning_helps() -> bool {
    static CPUS: AtomicUsize = AtomicUsize::new(0);
    // Relaxed: a cached, idempotent value.
    let mut n = CPUS.load(Ordering::Relaxed);
    if n == 0 {
        n = std::thread::available_parallelism().map_or(1, |n| n.get());
        CPUS.store(n, Ordering::Relaxed);
    }
    n > 1
}

/// A mutual exclusion lock whose `lock` parks the calling ULT (or kernel thread) while
/// another holds it, with the API of `std::sync::Mutex` plus deadlines.
///
/// ```
/// use std::sync::Arc;
/// use lwp::sync::Mutex;
///
/// let total = ult::run(|| {
///     let counter = Arc::new(Mutex::new(0u32));
///     let handles: Vec<_> = (0..4)
///         .map(|_| {
///             let counter = counter.clone();
///             ult::spawn(move || {
///                 for _ in 0..100 {
///                     let mut n = counter.lock().unwrap();
///                     ult::yield_now(); // other ULTs run, and block on the lock
///                     *n += 1;
///                 }
///             })
///         })
///         .collect();
///     for h in handles {
///         h.join().unwrap();
///     }
///     let n = *counter.lock().unwrap();
///     n
/// });
/// assert_eq!(total, 400);
/// ```
pub struct Mutex<T: ?Sized> {
    state: AtomicU8,
    poison: AtomicBool,
    queue: WaitQueue,
    data: UnsafeCell<T>,
}

// SAFETY: a `Mutex<T>` hands out access to the `T` to one holder at a time, possibly on
// another thread, so it is `Send`/`Sync` exactly when `T: Send` (as `std::sync::Mutex`).
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above: the lock protocol gives exclusive access, so `T: Sync` is not needed.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Exclusive access to the data of a locked [`Mutex`]; unlocks when dropped.
///
/// Unlike `std`'s, this guard is `Send` when `T: Send`: the lock has no owner thread, so it
/// may be released from another thread (for example by a ULT that migrated). It is `Sync`
/// only when `T: Sync`, since a shared guard hands out `&T`:
///
/// ```compile_fail
/// fn is_sync<T: Sync>() {}
/// is_sync::<lwp::sync::MutexGuard<'static, std::cell::Cell<u8>>>();
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    lock: &'a Mutex<T>,
    /// Whether the holder was already panicking when it locked (then its unwinding does not
    /// poison; as std's poison guard).
    panicking: bool,
    /// Gives the guard the auto traits of `&mut T` (Send iff `T: Send`, Sync iff `T: Sync`).
    _marker: PhantomData<&'a mut T>,
}

impl<T> Mutex<T> {
    /// A new, unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            state: AtomicU8::new(0),
            poison: AtomicBool::new(false),
            queue: WaitQueue::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the data (inside a `PoisonError` if poisoned).
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poison.load(Ordering::Relaxed);
        let data = self.data.into_inner();
        if poisoned {
            Err(PoisonError::new(data))
        } else {
            Ok(data)
        }
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Acquires the lock, parking the caller while another holds it. Returns `Err` with the
    /// guard inside if a previous holder panicked (the mutex is poisoned).
    ///
    /// Locking a mutex the caller already holds deadlocks it (like std, which may also panic).
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        if !self.try_lock_fast() {
            self.lock_slow(None);
        }
        self.guard()
    }

    /// Acquires the lock if it is free right now; `Err(TryLockError::WouldBlock)` otherwise.
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & LOCKED != 0 {
                return Err(TryLockError::WouldBlock);
            }
            // Acquire: pairs with the release in `unlock`; the previous holder's writes
            // become visible.
            match self.state.compare_exchange_weak(
                s,
                s | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        self.guard().map_err(TryLockError::from)
    }

    /// Acquires the lock, giving up after `timeout`: then `Err(TryLockError::WouldBlock)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use lwp::sync::Mutex;
    ///
    /// let m = Mutex::new(());
    /// let _held = m.lock().unwrap();
    /// assert!(m.lock_timeout(Duration::from_millis(10)).is_err());
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<MutexGuard<'_, T>> {
        self.try_lock_until_opt(deadline_after(timeout))
    }

    /// Acquires the lock, giving up at `deadline`: then `Err(TryLockError::WouldBlock)`.
    pub fn try_lock_until(&self, deadline: Instant) -> TryLockResult<MutexGuard<'_, T>> {
        self.try_lock_until_opt(Some(deadline))
    }

    fn try_lock_until_opt(&self, deadline: Option<Instant>) -> TryLockResult<MutexGuard<'_, T>> {
        if self.try_lock_fast() || self.lock_slow(deadline) {
            self.guard().map_err(TryLockError::from)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Whether a holder panicked while holding the lock.
    pub fn is_poisoned(&self) -> bool {
        self.poison.load(Ordering::Relaxed)
    }

    /// Clears the poisoned state (after the caller restored the data's invariants).
    pub fn clear_poison(&self) {
        self.poison.store(false, Ordering::Relaxed);
    }

    /// Mutable access to the data; no locking is needed since the borrow is exclusive.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.is_poisoned();
        let data = self.data.get_mut();
        if poisoned {
            Err(PoisonError::new(data))
        } else {
            Ok(data)
        }
    }

    /// Wraps the held lock in a guard (checking poison). The caller holds the lock.
    fn guard(&self) -> LockResult<MutexGuard<'_, T>> {
        let guard = MutexGuard {
            lock: self,
            panicking: std::thread::panicking(),
            _marker: PhantomData,
        };
        if self.is_poisoned() {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    #[inline]
    fn try_lock_fast(&self) -> bool {
        // Acquire: pairs with the release in `unlock`.
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// One attempt to take the lock whatever the `PARKED` bit says.
    #[inline]
    fn try_lock_any(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & LOCKED == 0 {
            // Acquire: pairs with the release in `unlock`.
            match self.state.compare_exchange_weak(
                s,
                s | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => s = actual,
            }
        }
        false
    }

    /// Contended acquisition. Returns true once the caller holds the lock, false if
    /// `deadline` passed first.
    #[cold]
    fn lock_slow(&self, deadline: Option<Instant>) -> bool {
        if spinning_helps() {
            for i in 0..6 {
                for _ in 0..(1u32 << i) {
                    std::hint::spin_loop();
                }
                if self.try_lock_any() {
                    return true;
                }
            }
        }
        let mut starving = false;
        loop {
            let w = Waiter::current();
            if starving {
                w.set_tag(STARVING);
            }
            let acquired = self.queue.with(|list| {
                let mut s = self.state.load(Ordering::Relaxed);
                loop {
                    let (next, acquire) = if s & LOCKED == 0 {
                        (s | LOCKED, true)
                    } else {
                        (s | PARKED, false)
                    };
                    // Acquire (if we take the lock): pairs with the release in `unlock`.
                    match self.state.compare_exchange_weak(
                        s,
                        next,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) if acquire => return true,
                        Ok(_) => break,
                        Err(actual) => s = actual,
                    }
                }
                if starving {
                    list.push_front(w.clone());
                } else {
                    list.push_back(w.clone());
                }
                false
            });
            if acquired {
                return true;
            }
            let token = match w.wait_deadline(deadline) {
                Some(t) => t,
                None => self.queue.with(|list| {
                    let t = w.token();
                    if t == WAITING && list.remove(&w) && list.is_empty() {
                        // Keep the invariant "non-empty queue => PARKED"; the converse
                        // is only a hint, so clearing it here is safe (fetch_and keeps the
                        // LOCKED bit whatever it is now).
                        self.state.fetch_and(!PARKED, Ordering::Relaxed);
                    }
                    t
                }),
            };
            match token {
                HANDOFF => return true,
                WAITING => return false, // timed out, removed
                _ => {
                    // NOTIFIED: the lock was released; compete for it.
                    if self.try_lock_any() {
                        return true;
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        // Someone else holds it and will wake the next waiter on unlock.
                        return false;
                    }
                    starving = true;
                }
            }
        }
    }

    /// Releases the lock (the caller holds it).
    #[inline]
    fn unlock(&self) {
        // Release: pairs with the acquire of the next locker; publishes the critical section.
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let wake = self.queue.with(|list| {
            // Under the queue lock with LOCKED set, nobody else changes the state: lockers
            // only CAS when LOCKED is clear, and PARKED changes only under this lock.
            let handoff = list.front().is_some_and(|w| w.tag() == STARVING);
            let wake = list.notify_one(if handoff { HANDOFF } else { NOTIFIED });
            let parked = if list.is_empty() { 0 } else { PARKED };
            let next = if handoff { LOCKED | parked } else { parked };
            // Release: as in `unlock` (for a hand-off, the token's release store also
            // publishes the critical section to the new holder).
            self.state.store(next, Ordering::Release);
            wake
        });
        drop(wake); // unpark after the queue lock is released
    }

    /// Releases the lock held through a guard that is being consumed without its `Drop`
    /// (the condition variable does this).
    pub(crate) fn unlock_from_guard(guard: MutexGuard<'_, T>) -> (&Mutex<T>, bool) {
        let lock = guard.lock;
        let panicking = guard.panicking;
        std::mem::forget(guard);
        lock.unlock();
        (lock, panicking)
    }

    /// Re-locks after [`Mutex::unlock_from_guard`], keeping the original poison state.
    pub(crate) fn relock(&self, panicking: bool) -> LockResult<MutexGuard<'_, T>> {
        if !self.try_lock_fast() {
            self.lock_slow(None);
        }
        let guard = MutexGuard {
            lock: self,
            panicking,
            _marker: PhantomData,
        };
        if self.is_poisoned() {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if !self.panicking && std::thread::panicking() {
            self.lock.poison.store(true, Ordering::Relaxed);
        }
        self.lock.unlock();
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its holder owns the lock, so no other
        // reference to the data is live.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(guard) => d.field("data", &&*guard),
            Err(TryLockError::Poisoned(err)) => d.field("data", &&**err.get_ref()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.is_poisoned());
        d.finish_non_exhaustive()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
}

#[cfg(test)]
mod tests {
    use crate::sync::waitqueue::test_hook;

    #[test]
    fn a_release_racing_the_timeout_is_not_lost() {
        static M: Mutex<u32> = Mutex::new(0);
        // This thread holds the lock, then waits for it with a short timeout; right when the
        // deadline passes, the hook releases the held guard, which notifies this very
        // waiter. The lock is free and the notification ours: the wait must succeed.
        let held = M.lock().unwrap();
        test_hook::on_next_timeout(move || drop(held));
        let got = M.lock_timeout(Duration::from_millis(1));
        assert!(
            got.is_ok(),
            "notified while timing out, yet reported a timeout"
        );
        drop(got);
        assert_eq!(M.state.load(Ordering::Relaxed), 0);
    }

    use super::*;

    #[test]
    fn guard_is_send_iff_data_is_send() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<MutexGuard<'static, u32>>();
        sync::<MutexGuard<'static, u32>>();
        send::<Mutex<std::cell::Cell<u32>>>();
        sync::<Mutex<std::cell::Cell<u32>>>();
        send::<MutexGuard<'static, std::cell::Cell<u32>>>();
    }

    #[test]
    fn state_is_clean_after_timeouts() {
        let m = Mutex::new(0);
        let g = m.lock().unwrap();
        for _ in 0..3 {
            assert!(matches!(
                m.lock_timeout(Duration::from_millis(1)),
                Err(TryLockError::WouldBlock)
            ));
        }
        drop(g);
        assert_eq!(m.state.load(Ordering::Relaxed), 0, "no stale PARKED bit");
        assert!(m.try_lock().is_ok());
    }
}
