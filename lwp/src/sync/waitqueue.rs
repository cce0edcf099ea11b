//! Wait queues: the FIFO lists of parked waiters the blocking primitives of `sync` are built
//! on (mutexes, condition variables, semaphores, barriers, wait groups). Channels follow the
//! same protocol with their own lists, whose waiters live in the waiting caller's frame
//! (`channel` module header).
//!
//! # Pieces
//! - [`Waiter`]: one blocked caller (a ULT or a plain kernel thread). It holds the caller's
//!   [`ult::Unparker`] and a `token` word: `WAITING` (0) until a notifier picks it, then the
//!   non-zero value the notifier chose (what it means is up to the primitive: "retry",
//!   "you own the lock", "your value was taken", "disconnected"...).
//! - [`WaiterList`]: a FIFO of waiters **without a lock of its own**. A primitive keeps it
//!   inside the short internal lock (a `std::sync::Mutex`) that already guards its state, so
//!   enqueueing and re-checking the condition happen in one critical section (channels,
//!   semaphores, barriers do this).
//! - [`WaitQueue`]: a [`WaiterList`] with its own short lock and a lock-free "anyone there?"
//!   hint, for primitives whose state lives outside the lock (mutex, condition variable).
//!
//! # Protocol (no lost wake-ups)
//! 1. The waiter takes the lock, checks its condition, and if it must block, pushes its
//!    `Waiter` **before releasing the lock**; the condition is thus re-checked under the same
//!    lock that notifiers take, and a notifier that changes the condition afterwards finds
//!    the waiter in the list.
//! 2. A notifier takes the lock, pops the waiter and stores its token (release) **while
//!    holding the lock**, releases the lock, and only then calls `unpark` (through the
//!    returned [`Wake`]), so the lock is never held across an unpark.
//! 3. The waiter parks in a loop until its token is non-zero (acquire, pairing with the
//!    notifier's release store), so spurious returns from `park` and stale unpark tokens are
//!    harmless.
//! 4. A waiter that gives up (deadline passed) takes the lock again and looks at its token
//!    there. Still `WAITING`: it removes itself from the list and reports a timeout; nobody
//!    can pick it any more. Non-zero: a notification raced with the timeout and was already
//!    addressed to it, so the primitive must either act on it (report success) or pass it on;
//!    it is never dropped on the floor.
//!
//! The internal locks are held only for list operations and state updates: never across a
//! park, never while user code (a `Drop` of a user value) runs.
//!
//! # One waiter per ULT (or thread), reused
//! A caller blocks on at most one primitive at a time and leaves every list before its
//! blocking call returns (notifiers pop it; a timed-out waiter removes itself), so each ULT
//! needs one `Waiter` for its whole life: [`Waiter::current`] returns it (from ULT-local
//! storage, or a thread-local for plain threads), reset to `WAITING`. Blocking therefore
//! allocates only the first time a ULT blocks. Reuse is safe because notifiers store a token
//! only into a listed waiter (under the lock); the one thing a notifier may still do to a
//! waiter that has moved on is a late `unpark`, i.e. a spurious wake-up, which rule 3
//! tolerates. (The ULT-local waiter holds the ULT's own unparker; ULT-locals are dropped when
//! the ULT finishes, which breaks that cycle.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The token of a waiter nobody has picked yet.
pub(crate) const WAITING: u32 = 0;

/// Locks one of this crate's internal `std::sync::Mutex`es. They only guard short list and
/// counter updates that cannot panic halfway, so a poisoned one is still consistent: recover.
#[inline]
pub(crate) fn lock_internal<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `now + timeout`, or `None` (wait forever) when that overflows `Instant`.
#[inline]
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// One blocked caller. Shared between the caller and the list it waits in.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// `WAITING`, or the notifier's token. Stored with release under the owning lock;
    /// loaded with acquire by the waiter (pairs with that store).
    token: AtomicU32,
    /// Free for the owning primitive, read and written only under the owning lock (the
    /// mutex marks "starving" waiters here). Reset to 0 by [`Waiter::current`].
    tag: AtomicU32,
    /// Whom to wake: the ULT or thread this waiter belongs to.
    unparker: ult::Unparker,
}

ult::local! {
    /// The running ULT's waiter, made the first time it blocks and kept until it finishes.
    static ULT_WAITER: Arc<Waiter> = Waiter::fresh();
}

thread_local! {
    /// A plain kernel thread's waiter.
    static THREAD_WAITER: Arc<Waiter> = Waiter::fresh();
}

impl Waiter {
    fn fresh() -> Arc<Waiter> {
        Arc::new(Waiter {
            token: AtomicU32::new(WAITING),
            tag: AtomicU32::new(0),
            unparker: ult::unparker(),
        })
    }

    /// The caller's waiter (the running ULT's, or this kernel thread's), reset to token
    /// `WAITING` and tag 0. The caller must be in no list (it is not blocked elsewhere).
    pub(crate) fn current() -> Arc<Waiter> {
        let w = if ult::in_ult() {
            ULT_WAITER.with(Arc::clone)
        } else {
            THREAD_WAITER
                .try_with(Arc::clone)
                .unwrap_or_else(|_| Waiter::fresh())
        };
        // Relaxed: nobody else stores to a waiter that is in no list (see the module header).
        w.token.store(WAITING, Ordering::Relaxed);
        w.tag.store(0, Ordering::Relaxed);
        w
    }

    /// The token (acquire: pairs with the notifier's release store, so what the notifier
    /// wrote before notifying is visible after a non-`WAITING` answer).
    #[inline]
    pub(crate) fn token(&self) -> u32 {
        self.token.load(Ordering::Acquire)
    }

    /// The owner-defined tag. Call only under the owning lock.
    #[inline]
    pub(crate) fn tag(&self) -> u32 {
        // Relaxed: written and read under the same lock, which orders them.
        self.tag.load(Ordering::Relaxed)
    }

    /// Sets the owner-defined tag. Call only under the owning lock (or before enqueueing).
    #[inline]
    pub(crate) fn set_tag(&self, tag: u32) {
        // Relaxed: see `tag`.
        self.tag.store(tag, Ordering::Relaxed);
    }

    /// Parks the caller until a notifier sets the token; returns the token. Must be called by
    /// the caller the waiter was made for. Inlined so the switch sits in the caller's frame
    /// (see `ult::yield_now`: fewer mispredicted returns per wake-up).
    #[inline]
    pub(crate) fn wait(&self) -> u32 {
        loop {
            let t = self.token();
            if t != WAITING {
                return t;
            }
            ult::park();
        }
    }

    /// Like [`Waiter::wait`], but gives up at `deadline` (`None`: never): returns `None` if
    /// the deadline passed with the token still `WAITING`. The caller must then settle the
    /// race under the owning lock (step 4 of the protocol in the module header).
    #[inline]
    pub(crate) fn wait_deadline(&self, deadline: Option<Instant>) -> Option<u32> {
        let Some(deadline) = deadline else {
            return Some(self.wait());
        };
        loop {
            let t = self.token();
            if t != WAITING {
                return Some(t);
            }
            if Instant::now() >= deadline {
                #[cfg(test)]
                test_hook::fire();
                return None;
            }
            ult::park_deadline(deadline);
        }
    }

    /// Stores the notifier's token. Only under the owning lock, with the waiter just taken
    /// out of its list (so it is stored at most once).
    #[inline]
    fn notify(&self, token: u32) {
        debug_assert_ne!(token, WAITING);
        // Release: pairs with the acquire in `token()`; publishes the notifier's writes.
        self.token.store(token, Ordering::Release);
    }

    fn unpark(&self) {
        self.unparker.unpark();
    }
}

/// A pending wake-up: a waiter whose token was set under a lock, to be unparked after that
/// lock is released. Unparks when dropped (so a forgotten one still wakes its waiter), or
/// explicitly with [`Wake::wake`].
#[must_use = "a Wake unparks its waiter when dropped: drop it after releasing the lock"]
#[derive(Debug)]
pub(crate) struct Wake(Arc<Waiter>);

impl Wake {
    /// Unparks the waiter now.
    #[inline]
    pub(crate) fn wake(self) {
        drop(self);
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        self.0.unpark();
    }
}

/// Several pending wake-ups (see [`Wake`]); unparks them all when dropped.
#[must_use = "a WakeAll unparks its waiters when dropped: drop it after releasing the lock"]
#[derive(Debug, Default)]
pub(crate) struct WakeAll(VecDeque<Arc<Waiter>>);

impl WakeAll {
    /// Unparks every waiter now.
    pub(crate) fn wake(self) {
        drop(self);
    }

    /// How many waiters this wakes.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl Drop for WakeAll {
    fn drop(&mut self) {
        for w in self.0.drain(..) {
            w.unpark();
        }
    }
}

/// A FIFO of waiters without a lock: the owner keeps it under its own lock.
#[derive(Debug, Default)]
pub(crate) struct WaiterList {
    q: VecDeque<Arc<Waiter>>,
}

impl WaiterList {
    /// An empty list (no allocation until the first push).
    pub(crate) const fn new() -> WaiterList {
        WaiterList { q: VecDeque::new() }
    }

    /// Whether nobody waits.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// How many wait.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    /// Appends a waiter (it will be picked after all those already there).
    #[inline]
    pub(crate) fn push_back(&mut self, w: Arc<Waiter>) {
        self.q.push_back(w);
    }

    /// Puts a waiter at the head (it will be picked next).
    #[inline]
    pub(crate) fn push_front(&mut self, w: Arc<Waiter>) {
        self.q.push_front(w);
    }

    /// The waiter that would be picked next.
    #[inline]
    pub(crate) fn front(&self) -> Option<&Arc<Waiter>> {
        self.q.front()
    }

    /// Pops the oldest waiter and gives it `token`; unpark it by dropping the result after
    /// releasing the lock. `None` (and no unpark) when nobody waits.
    #[inline]
    pub(crate) fn notify_one(&mut self, token: u32) -> Option<Wake> {
        let w = self.q.pop_front()?;
        w.notify(token);
        Some(Wake(w))
    }

    /// Gives every waiter `token` and empties the list; unpark them by dropping the result
    /// after releasing the lock.
    pub(crate) fn notify_all(&mut self, token: u32) -> WakeAll {
        for w in &self.q {
            w.notify(token);
        }
        WakeAll(std::mem::take(&mut self.q))
    }

    /// Removes `w` if it is still listed (a waiter giving up). Returns whether it was there;
    /// if not, a notifier already took it and set its token.
    pub(crate) fn remove(&mut self, w: &Arc<Waiter>) -> bool {
        match self.q.iter().position(|x| Arc::ptr_eq(x, w)) {
            Some(i) => {
                self.q.remove(i);
                true
            }
            None => false,
        }
    }
}

/// A [`WaiterList`] with its own short lock and an "anyone waiting?" hint readable without
/// the lock.
#[derive(Debug, Default)]
pub(crate) struct WaitQueue {
    list: std::sync::Mutex<WaiterList>,
    /// Number of listed waiters, stored after every change under the lock. A lock-free
    /// reader may see an old value; callers that skip notifying on 0 must make sure by their
    /// own protocol that a waiter's push happens-before that read (the condition variable
    /// does it through the user's mutex; see `Condvar::notify_one`).
    len: AtomicUsize,
}

impl WaitQueue {
    /// An empty queue.
    pub(crate) const fn new() -> WaitQueue {
        WaitQueue {
            list: std::sync::Mutex::new(WaiterList::new()),
            len: AtomicUsize::new(0),
        }
    }

    /// Runs `f` on the list under the lock. Anything `f` returns (e.g. a [`Wake`]) is dropped
    /// by the caller, i.e. after the lock is released.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut WaiterList) -> R) -> R {
        let mut list = lock_internal(&self.list);
        let r = f(&mut list);
        // Release: pairs with the acquire in `has_waiters` (see the field's comment for what
        // that does and does not guarantee).
        self.len.store(list.len(), Ordering::Release);
        r
    }

    /// Whether waiters may be listed (a hint: see the `len` field).
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        // Acquire: pairs with the release store in `with`.
        self.len.load(Ordering::Acquire) != 0
    }

    /// Wakes the oldest waiter with `token`. Returns whether there was one.
    pub(crate) fn notify_one(&self, token: u32) -> bool {
        if !self.has_waiters() {
            return false;
        }
        let wake = self.with(|l| l.notify_one(token));
        wake.map(Wake::wake).is_some()
    }

    /// Wakes every waiter with `token`. Returns how many.
    pub(crate) fn notify_all(&self, token: u32) -> usize {
        if !self.has_waiters() {
            return 0;
        }
        let wakes = self.with(|l| l.notify_all(token));
        let n = wakes.len();
        wakes.wake();
        n
    }
}

/// Unit-test hook into the window between "my deadline passed" and "settle under the
/// lock", where a notification can race a timeout. Without it that window is a few
/// nanoseconds wide and rule 4 of the protocol could only be tested by luck.
#[cfg(test)]
pub(crate) mod test_hook {
    use std::cell::RefCell;

    type Hook = Box<dyn FnOnce()>;

    thread_local! {
        static ON_TIMEOUT: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    /// Runs `f`, once, on this thread, right after the next timed wait of this thread found
    /// its deadline passed and before it settles under the primitive's lock.
    pub(crate) fn on_next_timeout(f: impl FnOnce() + 'static) {
        ON_TIMEOUT.with(|h| *h.borrow_mut() = Some(Box::new(f)));
    }

    pub(crate) fn fire() {
        let hook = ON_TIMEOUT.with(|h| h.borrow_mut().take());
        if let Some(f) = hook {
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn notify_one_is_fifo_and_sets_tokens() {
        // Two distinct waiters (as two ULTs would have).
        let a = Waiter::fresh();
        let b = Waiter::fresh();
        let mut list = WaiterList::new();
        list.push_back(a.clone());
        list.push_back(b.clone());
        let wake = list.notify_one(7);
        assert_eq!(a.token(), 7);
        assert_eq!(b.token(), WAITING);
        drop(wake);
        assert!(!list.remove(&a), "a was already taken by the notifier");
        assert!(list.remove(&b));
        assert!(list.is_empty());
    }

    #[test]
    fn the_current_waiter_is_reused_and_reset() {
        let a = Waiter::current();
        a.notify(3);
        a.set_tag(9);
        let b = Waiter::current();
        assert!(Arc::ptr_eq(&a, &b), "one waiter per thread");
        assert_eq!(b.token(), WAITING);
        assert_eq!(b.tag(), 0);
        let other = std::thread::spawn(|| Arc::as_ptr(&Waiter::current()) as usize)
            .join()
            .unwrap();
        assert_ne!(
            other,
            Arc::as_ptr(&a) as usize,
            "another thread, another waiter"
        );
    }

    #[test]
    fn each_ult_has_its_own_waiter() {
        let (a, b) = ult::run(|| {
            let a = Arc::as_ptr(&Waiter::current()) as usize;
            let b = ult::spawn(|| Arc::as_ptr(&Waiter::current()) as usize)
                .join()
                .unwrap();
            (a, b)
        });
        assert_ne!(a, b);
    }

    #[test]
    fn wait_deadline_times_out_while_waiting() {
        let w = Waiter::current();
        let start = Instant::now();
        assert_eq!(
            w.wait_deadline(Some(start + Duration::from_millis(20))),
            None
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn notification_racing_a_timeout_is_seen_under_the_lock() {
        // Many rounds of: a waiter with a tiny deadline vs. a notifier. Whenever the waiter
        // cannot remove itself, its token must be set (the notification was addressed to it).
        for round in 0..200u64 {
            let q = Arc::new(WaitQueue::new());
            let w = Waiter::current();
            q.with(|l| l.push_back(w.clone()));
            let notified = Arc::new(AtomicBool::new(false));
            let (q2, n2) = (q.clone(), notified.clone());
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_micros(round % 50));
                n2.store(q2.notify_one(1), Ordering::SeqCst);
            });
            let got = w.wait_deadline(Some(Instant::now() + Duration::from_micros(25)));
            let removed = got.is_none() && q.with(|l| l.remove(&w));
            t.join().unwrap();
            if removed {
                assert!(!notified.load(Ordering::SeqCst), "round {round}");
                assert_eq!(w.token(), WAITING);
            } else {
                assert!(notified.load(Ordering::SeqCst), "round {round}");
                assert_eq!(w.token(), 1);
            }
        }
    }
}
