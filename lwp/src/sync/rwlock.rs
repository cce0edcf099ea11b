//! [`RwLock`]: a reader-writer lock that parks waiting ULTs, never their kernel threads.
//!
//! # State
//! One atomic word: `WRITER` (write-locked), `WRITER_WAITING` (a writer is queued: new
//! readers must queue too, which is what makes the lock writer-preferring), `PARKED` (some
//! queue may be non-empty) and the reader count in the remaining bits. Two FIFO queues,
//! readers and writers, live under one short internal lock.
//!
//! # Invariants (maintained under the internal lock)
//! - queues non-empty ⇒ `PARKED`; writers queue non-empty ⇔ `WRITER_WAITING` (after every
//!   `dispatch`, which recomputes both flags);
//! - a waiter is woken only by a **hand-off**: whoever wakes it has already given it the lock
//!   (set `WRITER`, or added one reader per woken reader), and its token says so. A woken
//!   waiter never competes again, so queued writers cannot be overtaken by a stream of
//!   readers, and vice versa.
//!
//! # Paths
//! - fast read: CAS `+1 reader` if none of `WRITER | WRITER_WAITING | PARKED` is set;
//!   fast read unlock: `fetch_sub`; the last reader out with `PARKED` set runs `dispatch`.
//! - fast write: CAS `0 -> WRITER`; fast write unlock: CAS `WRITER -> 0`, else clear
//!   `WRITER` under the internal lock and `dispatch`.
//! - `dispatch(prefer_readers)`, under the internal lock, when the lock is not
//!   write-locked: if readers are queued and (no writer is queued, or a writer just released
//!   and no reader is active), admit all queued readers at once; otherwise, if no reader is
//!   active, hand the lock to the oldest writer. A writer's unlock prefers the queued readers
//!   (they waited for it), a reader's unlock prefers the queued writer: neither side starves.
//! - Slow paths enqueue and then run `dispatch` themselves in the same critical section, so
//!   a lock that became free in between is handed out at once, never left idle.
//! - Timeouts: a waiter whose deadline passed takes the internal lock; a non-`WAITING`
//!   token means the lock was handed to it (success); otherwise it leaves its queue and
//!   re-runs `dispatch` (a writer leaving may unblock queued readers).
//!
//! Poisoning follows `std::sync::RwLock`: only a write guard dropped during a panic
//! poisons.
//!
//! Who may call what: anyone, ULTs or plain threads.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::{Duration, Instant};

use super::waitqueue::{deadline_after, lock_internal, Waiter, WaiterList, Wake, WakeAll, WAITING};

const WRITER: usize = 1;
const WRITER_WAITING: usize = 2;
const PARKED: usize = 4;
const ONE_READER: usize = 8;
const READER_SHIFT: u32 = 3;

/// Token: the lock was handed to you in the mode you asked for.
const HANDOFF: u32 = 1;

#[derive(Default)]
struct Queues {
    readers: WaiterList,
    writers: WaiterList,
}

/// Wake-ups decided under the internal lock, performed when dropped (after unlocking).
#[derive(Default)]
struct Wakes {
    _writer: Option<Wake>,
    _readers: Option<WakeAll>,
}

/// A reader-writer lock with the API of `std::sync::RwLock` plus deadlines; waiting ULTs
/// park. Writer-preferring: once a writer waits, new readers wait behind it.
///
/// ```
/// use std::sync::Arc;
/// use lwp::sync::RwLock;
///
/// ult::run(|| {
///     let config = Arc::new(RwLock::new(String::from("v1")));
///     let readers: Vec<_> = (0..3)
///         .map(|_| {
///             let config = config.clone();
///             ult::spawn(move || config.read().unwrap().len())
///         })
///         .collect();
///     config.write().unwrap().push_str("-patched");
///     for r in readers {
///         let n = r.join().unwrap();
///         assert!(n == 2 || n == 10);
///     }
///     assert_eq!(*config.read().unwrap(), "v1-patched");
/// });
/// ```
pub struct RwLock<T: ?Sized> {
    state: AtomicUsize,
    poison: AtomicBool,
    queues: std::sync::Mutex<Queues>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands the `T` to one writer or to several readers at a time, possibly on
// other threads: like `std::sync::RwLock`, `Send` needs `T: Send`...
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: ...and `Sync` needs `T: Send` (a writer may move it out) and `T: Sync` (readers
// share `&T` across threads).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to the data of a read-locked [`RwLock`]; releases it when dropped.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    /// Auto traits of `&T`.
    _marker: PhantomData<&'a T>,
}

/// Exclusive access to the data of a write-locked [`RwLock`]; releases it when dropped.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    panicking: bool,
    /// Auto traits of `&mut T`.
    _marker: PhantomData<&'a mut T>,
}

impl<T> RwLock<T> {
    /// A new, unlocked lock holding `value`.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            state: AtomicUsize::new(0),
            poison: AtomicBool::new(false),
            queues: std::sync::Mutex::new(Queues {
                readers: WaiterList::new(),
                writers: WaiterList::new(),
            }),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock and returns the data (inside a `PoisonError` if poisoned).
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

impl<T: ?Sized> RwLock<T> {
    /// Locks for shared reading, parking while a writer holds the lock or waits for it.
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        if !self.try_read_fast() {
            self.read_slow(None);
        }
        self.read_guard()
    }

    /// Locks for reading if that is possible without waiting.
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & (WRITER | WRITER_WAITING) != 0 {
                return Err(TryLockError::WouldBlock);
            }
            let next = add_reader(s);
            // Acquire: pairs with the release of the last writer's unlock.
            match self
                .state
                .compare_exchange_weak(s, next, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        self.read_guard().map_err(TryLockError::from)
    }

    /// Locks for reading, giving up after `timeout` (`Err(TryLockError::WouldBlock)`).
    pub fn read_timeout(&self, timeout: Duration) -> TryLockResult<RwLockReadGuard<'_, T>> {
        self.read_until_opt(deadline_after(timeout))
    }

    /// Locks for reading, giving up at `deadline` (`Err(TryLockError::WouldBlock)`).
    pub fn try_read_until(&self, deadline: Instant) -> TryLockResult<RwLockReadGuard<'_, T>> {
        self.read_until_opt(Some(deadline))
    }

    /// Locks for exclusive writing, parking while readers or another writer hold the lock.
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        if !self.try_write_fast() {
            self.write_slow(None);
        }
        self.write_guard()
    }

    /// Locks for writing if that is possible without waiting.
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & !(PARKED | WRITER_WAITING) != 0 {
                return Err(TryLockError::WouldBlock);
            }
            // Acquire: pairs with the release of the previous holders' unlocks.
            match self.state.compare_exchange_weak(
                s,
                s | WRITER,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        self.write_guard().map_err(TryLockError::from)
    }

    /// Locks for writing, giving up after `timeout` (`Err(TryLockError::WouldBlock)`).
    pub fn write_timeout(&self, timeout: Duration) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        self.write_until_opt(deadline_after(timeout))
    }

    /// Locks for writing, giving up at `deadline` (`Err(TryLockError::WouldBlock)`).
    pub fn try_write_until(&self, deadline: Instant) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        self.write_until_opt(Some(deadline))
    }

    /// Whether a writer panicked while holding the lock.
    pub fn is_poisoned(&self) -> bool {
        self.poison.load(Ordering::Relaxed)
    }

    /// Clears the poisoned state.
    pub fn clear_poison(&self) {
        self.poison.store(false, Ordering::Relaxed);
    }

    /// Mutable access to the data without locking (the borrow is exclusive).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.is_poisoned();
        let data = self.data.get_mut();
        if poisoned {
            Err(PoisonError::new(data))
        } else {
            Ok(data)
        }
    }

    fn read_until_opt(&self, deadline: Option<Instant>) -> TryLockResult<RwLockReadGuard<'_, T>> {
        if self.try_read_fast() || self.read_slow(deadline) {
            self.read_guard().map_err(TryLockError::from)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    fn write_until_opt(&self, deadline: Option<Instant>) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        if self.try_write_fast() || self.write_slow(deadline) {
            self.write_guard().map_err(TryLockError::from)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    fn read_guard(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        let guard = RwLockReadGuard {
            lock: self,
            _marker: PhantomData,
        };
        if self.is_poisoned() {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    fn write_guard(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        let guard = RwLockWriteGuard {
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
    fn try_read_fast(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & (WRITER | WRITER_WAITING | PARKED) == 0 {
            // Acquire: pairs with the release of the last writer's unlock.
            match self.state.compare_exchange_weak(
                s,
                add_reader(s),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => s = actual,
            }
        }
        false
    }

    #[inline]
    fn try_write_fast(&self) -> bool {
        // Acquire: pairs with the release of the previous holders' unlocks.
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Hands the lock out if it is free enough (see the module header) and recomputes the
    /// flags. Called with the internal lock held; the returned wake-ups are performed by the
    /// caller after releasing it.
    fn dispatch(&self, q: &mut Queues, prefer_readers: bool) -> Wakes {
        let mut wakes = Wakes::default();
        // Acquire: pairs with the release RMWs of unlocking readers and writers, so that what
        // they did happens-before the hand-off (whose token store is a release).
        let s = self.state.load(Ordering::Acquire);
        if s & WRITER == 0 {
            let readers = s >> READER_SHIFT;
            if !q.readers.is_empty() && (q.writers.is_empty() || (prefer_readers && readers == 0)) {
                let n = q.readers.len();
                // AcqRel: a reader count change, ordered with the unlock RMWs above. Fast
                // readers cannot join concurrently (PARKED is set: the queue is non-empty).
                self.state.fetch_add(n << READER_SHIFT, Ordering::AcqRel);
                wakes._readers = Some(q.readers.notify_all(HANDOFF));
            } else if readers == 0 && !q.writers.is_empty() {
                // Nobody can take the lock concurrently: PARKED is set (a queue is
                // non-empty), so fast paths fail, and slow paths hold the internal lock.
                self.state.fetch_or(WRITER, Ordering::AcqRel);
                wakes._writer = q.writers.notify_one(HANDOFF);
            }
        }
        let mut set = 0;
        let mut clear = 0;
        if q.writers.is_empty() {
            clear |= WRITER_WAITING;
        } else {
            set |= WRITER_WAITING | PARKED;
        }
        if q.readers.is_empty() && q.writers.is_empty() {
            clear |= PARKED;
        } else {
            set |= PARKED;
        }
        // Relaxed: flag bits are only hints for the fast paths, and are recomputed under
        // the internal lock; setting before clearing means a transient state only blocks
        // more (sends more callers to the slow path), never admits wrongly.
        if set != 0 {
            self.state.fetch_or(set, Ordering::Relaxed);
        }
        if clear != 0 {
            self.state.fetch_and(!clear, Ordering::Relaxed);
        }
        wakes
    }

    #[cold]
    fn read_slow(&self, deadline: Option<Instant>) -> bool {
        let w = Waiter::current();
        let (acquired, wakes) = {
            let mut q = lock_internal(&self.queues);
            let mut s = self.state.load(Ordering::Relaxed);
            let acquired = loop {
                let (next, acquire) = if s & (WRITER | WRITER_WAITING) == 0 {
                    (add_reader(s), true)
                } else {
                    (s | PARKED, false)
                };
                // Acquire: pairs with the release of the last writer's unlock.
                match self.state.compare_exchange_weak(
                    s,
                    next,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break acquire,
                    Err(actual) => s = actual,
                }
            };
            if acquired {
                (true, Wakes::default())
            } else {
                q.readers.push_back(w.clone());
                (false, self.dispatch(&mut q, false))
            }
        };
        drop(wakes);
        if acquired {
            return true;
        }
        self.wait_handoff(w, deadline, false)
    }

    #[cold]
    fn write_slow(&self, deadline: Option<Instant>) -> bool {
        let w = Waiter::current();
        let (acquired, wakes) = {
            let mut q = lock_internal(&self.queues);
            let mut s = self.state.load(Ordering::Relaxed);
            let acquired = loop {
                let free = s & WRITER == 0 && s >> READER_SHIFT == 0;
                let (next, acquire) = if free && q.writers.is_empty() {
                    (s | WRITER, true)
                } else {
                    (s | PARKED | WRITER_WAITING, false)
                };
                // Acquire: pairs with the release of the previous holders' unlocks.
                match self.state.compare_exchange_weak(
                    s,
                    next,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break acquire,
                    Err(actual) => s = actual,
                }
            };
            if acquired {
                (true, Wakes::default())
            } else {
                q.writers.push_back(w.clone());
                (false, self.dispatch(&mut q, false))
            }
        };
        drop(wakes);
        if acquired {
            return true;
        }
        self.wait_handoff(w, deadline, true)
    }

    /// Parks until the lock is handed over (true) or `deadline` passes (false).
    fn wait_handoff(
        &self,
        w: std::sync::Arc<Waiter>,
        deadline: Option<Instant>,
        writer: bool,
    ) -> bool {
        let got = match w.wait_deadline(deadline) {
            Some(_) => true,
            None => {
                let wakes = {
                    let mut q = lock_internal(&self.queues);
                    if w.token() != WAITING {
                        None // handed over while we were timing out: we hold it
                    } else {
                        if writer {
                            q.writers.remove(&w);
                        } else {
                            q.readers.remove(&w);
                        }
                        Some(self.dispatch(&mut q, false))
                    }
                };
                wakes.is_none()
            }
        };
        got
    }

    fn read_unlock(&self) {
        // Release: the reader's accesses happen-before whatever the next writer does (pairs
        // with the writer's acquire CAS, or with `dispatch`'s acquire load).
        let prev = self.state.fetch_sub(ONE_READER, Ordering::Release);
        if prev >> READER_SHIFT == 1 && prev & PARKED != 0 {
            self.unlock_slow(false);
        }
    }

    fn write_unlock(&self) {
        // Release: publishes the critical section to the next holder.
        if self
            .state
            .compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow(true);
        }
    }

    #[cold]
    fn unlock_slow(&self, writer: bool) {
        let wakes = {
            let mut q = lock_internal(&self.queues);
            if writer {
                // Release: as in `write_unlock`.
                self.state.fetch_and(!WRITER, Ordering::Release);
            }
            self.dispatch(&mut q, writer)
        };
        drop(wakes);
    }
}

#[inline]
fn add_reader(s: usize) -> usize {
    match s.checked_add(ONE_READER) {
        Some(n) => n,
        None => panic!("RwLock: too many readers"),
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.read_unlock();
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if !self.panicking && std::thread::panicking() {
            self.lock.poison.store(true, Ordering::Relaxed);
        }
        self.lock.write_unlock();
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a read guard exists only while the lock is read-locked (reader count
        // includes it), so no writer and hence no `&mut T` exists.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a write guard exists only while its holder owns the lock exclusively.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(guard) => d.field("data", &&*guard),
            Err(TryLockError::Poisoned(err)) => d.field("data", &&**err.get_ref()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.is_poisoned());
        d.finish_non_exhaustive()
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> RwLock<T> {
        RwLock::new(value)
    }
}

#[cfg(test)]
mod tests {
    use crate::sync::waitqueue::test_hook;

    #[test]
    fn a_hand_off_racing_the_timeout_is_kept() {
        static L: RwLock<u32> = RwLock::new(0);
        // A reader times out while the writer's release hands the lock to it.
        let w = L.write().unwrap();
        test_hook::on_next_timeout(move || drop(w));
        let r = L.read_timeout(Duration::from_millis(1));
        assert!(r.is_ok(), "handed the read lock, yet reported a timeout");
        drop(r);
        assert_eq!(L.state.load(Ordering::Relaxed), 0, "no reader leaked");
        // A writer times out while the last reader's release hands the lock to it.
        let r = L.read().unwrap();
        test_hook::on_next_timeout(move || drop(r));
        let w = L.write_timeout(Duration::from_millis(1));
        assert!(w.is_ok(), "handed the write lock, yet reported a timeout");
        drop(w);
        assert_eq!(L.state.load(Ordering::Relaxed), 0);
    }

    use super::*;

    #[test]
    fn flags_are_clean_after_contention_and_timeouts() {
        let l = RwLock::new(0);
        let r = l.read().unwrap();
        assert!(l.write_timeout(Duration::from_millis(2)).is_err());
        assert!(
            l.try_read().is_ok(),
            "the timed-out writer no longer blocks readers"
        );
        drop(r);
        assert_eq!(l.state.load(Ordering::Relaxed), 0);
        let w = l.write().unwrap();
        assert!(l.read_timeout(Duration::from_millis(2)).is_err());
        drop(w);
        assert_eq!(l.state.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn guards_have_the_auto_traits_of_references() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<RwLockReadGuard<'static, u32>>();
        sync::<RwLockReadGuard<'static, u32>>();
        send::<RwLockWriteGuard<'static, u32>>();
    }
}
