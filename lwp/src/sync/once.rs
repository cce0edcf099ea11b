//! [`OnceLock`] and [`LazyLock`]: values initialised once, where a caller that finds another
//! initialisation running parks (a ULT) or blocks (a thread) until it ends.
//!
//! Why not `std::sync::OnceLock`: its waiters block their kernel thread. If the initialising
//! ULT parks inside its initialiser (a socket read, a channel, a sleep) and a second ULT of
//! the same LWP asks for the value, that LWP blocks, and the initialiser, which can only
//! resume on it, never does: under many-to-one the whole program hangs. Here the second ULT
//! parks instead.
//!
//! # Protocol
//! `state` is `INCOMPLETE`, `RUNNING` or `COMPLETE`. Moving out of `INCOMPLETE` and listing a
//! waiter happen under one short internal lock, as does the move to `COMPLETE` (or back to
//! `INCOMPLETE`) and the notification of every listed waiter, so a waiter listed while
//! `RUNNING` is always woken (the wait-queue protocol of `waitqueue.rs`). A woken waiter
//! looks again: `COMPLETE` returns the value; `INCOMPLETE` (the initialiser panicked or
//! returned an error) lets it initialise. The value is written before `COMPLETE` is stored
//! with release, and read only after an acquire load sees `COMPLETE`; after that it is never
//! written again except through `&mut self`.
//!
//! An initialiser that asks its own cell for the value (reentrant initialisation) panics
//! rather than waiting for itself forever.
//!
//! Who may call what: anyone, ULTs or plain threads.

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::mem::MaybeUninit;
use std::ops::Deref;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};

use super::waitqueue::{lock_internal, Waiter, WaiterList};

const INCOMPLETE: u8 = 0;
const RUNNING: u8 = 1;
const COMPLETE: u8 = 2;

/// Token: the initialisation that was running has ended (look at the state again).
const ENDED: u32 = 1;

/// Who runs an initialiser, to recognise reentrant initialisation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    Ult(ult::UltId),
    Thread(std::thread::ThreadId),
}

impl Who {
    fn me() -> Who {
        match ult::try_current() {
            Some(u) => Who::Ult(u.id()),
            None => Who::Thread(std::thread::current().id()),
        }
    }
}

struct Inner {
    waiters: WaiterList,
    initializer: Option<Who>,
}

/// A cell written at most once, like `std::sync::OnceLock`, whose waiters park ULTs.
///
/// ```
/// use lwp::sync::OnceLock;
/// use std::time::Duration;
///
/// static CONFIG: OnceLock<String> = OnceLock::new();
///
/// let rt = lwp::Runtime::new(lwp::Model::ManyToOne)?;
/// let lens = rt.run(|| {
///     let readers: Vec<_> = (0..4)
///         .map(|_| {
///             lwp::spawn(|| {
///                 // The first caller initialises (and parks inside); the others park too,
///                 // instead of blocking the one LWP the initialiser needs.
///                 CONFIG
///                     .get_or_init(|| {
///                         lwp::sleep(Duration::from_millis(10));
///                         "ready".to_string()
///                     })
///                     .len()
///             })
///         })
///         .collect();
///     readers.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
/// });
/// assert_eq!(lens, 20);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct OnceLock<T> {
    state: AtomicU8,
    inner: std::sync::Mutex<Inner>,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is shared by reference once written (hence `T: Sync`), and it may be
// written by one thread and read or dropped by another (hence `T: Send`), as for std's.
unsafe impl<T: Sync + Send> Sync for OnceLock<T> {}
// SAFETY: owning the cell is owning the `T`.
unsafe impl<T: Send> Send for OnceLock<T> {}
impl<T: RefUnwindSafe + UnwindSafe> RefUnwindSafe for OnceLock<T> {}
impl<T: UnwindSafe> UnwindSafe for OnceLock<T> {}

/// Puts the cell back to `INCOMPLETE` and wakes the waiters, if the initialiser does not
/// finish (it panicked, or returned an error).
struct Unfinished<'a, T> {
    cell: &'a OnceLock<T>,
}

impl<T> Drop for Unfinished<'_, T> {
    fn drop(&mut self) {
        self.cell.end_running(INCOMPLETE);
    }
}

impl<T> OnceLock<T> {
    /// An empty cell.
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            state: AtomicU8::new(INCOMPLETE),
            inner: std::sync::Mutex::new(Inner {
                waiters: WaiterList::new(),
                initializer: None,
            }),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The value, if initialised; never waits.
    pub fn get(&self) -> Option<&T> {
        // Acquire: pairs with the release store of COMPLETE, after the value's write.
        if self.state.load(Ordering::Acquire) == COMPLETE {
            // SAFETY: COMPLETE was seen with acquire, so the value is written, and it is not
            // written again while `&self` lives.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// The value, mutably, if initialised.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if *self.state.get_mut() == COMPLETE {
            // SAFETY: COMPLETE: written; `&mut self` excludes every other access.
            Some(unsafe { self.value.get_mut().assume_init_mut() })
        } else {
            None
        }
    }

    /// Stores `value` if the cell is empty; otherwise gives it back as `Err`. Waits if
    /// another initialisation is running.
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("the initialiser runs once"));
        match value {
            None => Ok(()),
            Some(value) => Err(value),
        }
    }

    /// The value, initialising it with `f` if the cell is empty. If another ULT or thread is
    /// initialising it, waits for that to end. If `f` panics, the panic propagates and the
    /// cell stays empty (a waiter then initialises it).
    ///
    /// # Panics
    /// If `f` asks this same cell for its value (reentrant initialisation), or if `f` panics.
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        match self.get_or_try_init(|| Ok::<T, std::convert::Infallible>(f())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// Like [`OnceLock::get_or_init`], but `f` may fail: its error is returned and the cell
    /// stays empty.
    pub fn get_or_try_init<E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<&T, E> {
        if let Some(value) = self.get() {
            return Ok(value);
        }
        let me = Who::me();
        loop {
            let mut inner = lock_internal(&self.inner);
            match self.state.load(Ordering::Acquire) {
                COMPLETE => {
                    drop(inner);
                    return Ok(self.get().expect("COMPLETE holds a value"));
                }
                RUNNING => {
                    if inner.initializer == Some(me) {
                        drop(inner);
                        panic!("lwp::sync::OnceLock: reentrant initialisation");
                    }
                    let w = Waiter::current();
                    inner.waiters.push_back(w.clone());
                    drop(inner);
                    w.wait();
                }
                _ => {
                    // Relaxed: the state is read under this lock by everyone who waits.
                    self.state.store(RUNNING, Ordering::Relaxed);
                    inner.initializer = Some(me);
                    drop(inner);
                    let unfinished = Unfinished { cell: self };
                    let value = f()?;
                    std::mem::forget(unfinished);
                    // SAFETY: RUNNING and ours: no one else writes or reads the value.
                    unsafe { (*self.value.get()).write(value) };
                    self.end_running(COMPLETE);
                    return Ok(self.get().expect("just completed"));
                }
            }
        }
    }

    /// Ends the running initialisation with `next` (COMPLETE or INCOMPLETE) and wakes every
    /// waiter, who look at the state again.
    fn end_running(&self, next: u8) {
        let mut inner = lock_internal(&self.inner);
        // Release: publishes the value's write (for COMPLETE) to acquire loads.
        self.state.store(next, Ordering::Release);
        inner.initializer = None;
        let wakes = inner.waiters.notify_all(ENDED);
        drop(inner);
        wakes.wake();
    }

    /// The value, if initialised, consuming the cell.
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Takes the value out, leaving the cell empty.
    pub fn take(&mut self) -> Option<T> {
        if *self.state.get_mut() == COMPLETE {
            *self.state.get_mut() = INCOMPLETE;
            // SAFETY: it was COMPLETE, so written; the state now says empty, so it is read
            // (or dropped) only here.
            Some(unsafe { self.value.get_mut().assume_init_read() })
        } else {
            None
        }
    }
}

impl<T> Drop for OnceLock<T> {
    fn drop(&mut self) {
        drop(self.take());
    }
}

impl<T> Default for OnceLock<T> {
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T> From<T> for OnceLock<T> {
    fn from(value: T) -> OnceLock<T> {
        let cell = OnceLock::new();
        let _ = cell.set(value);
        cell
    }
}

impl<T: Clone> Clone for OnceLock<T> {
    fn clone(&self) -> OnceLock<T> {
        match self.get() {
            Some(value) => OnceLock::from(value.clone()),
            None => OnceLock::new(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(value) => d.field(value),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

/// A value computed on first use, like `std::sync::LazyLock`, built on [`OnceLock`] (so a
/// ULT that finds the computation running parks). If the computation panics, the value is
/// poisoned: later uses panic too, as with std.
///
/// ```
/// use lwp::sync::LazyLock;
///
/// static SQUARES: LazyLock<Vec<u64>> = LazyLock::new(|| (0..10).map(|i| i * i).collect());
///
/// let sum = ult::run(|| {
///     let a = ult::spawn(|| SQUARES[3]);
///     let b = ult::spawn(|| SQUARES.iter().sum::<u64>());
///     a.join().unwrap() + b.join().unwrap()
/// });
/// assert_eq!(sum, 9 + 285);
/// ```
pub struct LazyLock<T, F = fn() -> T> {
    cell: OnceLock<T>,
    init: Cell<Option<F>>,
}

// SAFETY: `init` is taken only by the one caller that won the right to initialise `cell`
// (inside its `get_or_init`), so it is never accessed concurrently; `F` moves to that caller's
// thread (hence `F: Send`). The value is shared as in `OnceLock`.
unsafe impl<T: Sync + Send, F: Send> Sync for LazyLock<T, F> {}
impl<T: RefUnwindSafe + UnwindSafe, F: UnwindSafe> RefUnwindSafe for LazyLock<T, F> {}

impl<T, F: FnOnce() -> T> LazyLock<T, F> {
    /// A value that `f` will compute on first use.
    pub const fn new(f: F) -> LazyLock<T, F> {
        LazyLock {
            cell: OnceLock::new(),
            init: Cell::new(Some(f)),
        }
    }

    /// Computes the value if needed and returns it (what `*lazy` does).
    ///
    /// # Panics
    /// If the computation panics, now or in an earlier call.
    pub fn force(this: &LazyLock<T, F>) -> &T {
        this.cell.get_or_init(|| match this.init.take() {
            Some(f) => f(),
            None => panic!("lwp::sync::LazyLock: the initialiser panicked earlier"),
        })
    }

    /// The value, consuming the lazy value; `Err` gives back the initialiser if it never ran.
    ///
    /// # Panics
    /// If the initialiser panicked earlier (there is neither a value nor an initialiser).
    pub fn into_inner(this: LazyLock<T, F>) -> Result<T, F> {
        let LazyLock { cell, init } = this;
        match (cell.into_inner(), init.into_inner()) {
            (Some(value), _) => Ok(value),
            (None, Some(f)) => Err(f),
            (None, None) => panic!("lwp::sync::LazyLock: the initialiser panicked earlier"),
        }
    }
}

impl<T, F: FnOnce() -> T> Deref for LazyLock<T, F> {
    type Target = T;

    fn deref(&self) -> &T {
        LazyLock::force(self)
    }
}

impl<T: Default> Default for LazyLock<T> {
    fn default() -> LazyLock<T> {
        LazyLock::new(T::default)
    }
}

impl<T: fmt::Debug, F> fmt::Debug for LazyLock<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("LazyLock");
        match self.cell.get() {
            Some(value) => d.field(value),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}
