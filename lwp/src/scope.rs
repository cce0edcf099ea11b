//! Scoped ULTs: [`scope`] and [`Scope::spawn`], the green-thread `std::thread::scope`.
//!
//! A scoped ULT may borrow from the stack of the code that opened the scope, because
//! [`scope`] does not return before every ULT spawned in it is gone. ULTs are spawned as
//! [`Builder::spawn`] would (on the calling ULT's runtime, or the default runtime from a plain
//! kernel thread), so scopes work under all three models and inside `ult::run`.
//!
//! # Invariants (the soundness argument)
//! The closure's lifetime is erased to `'static` in one place, [`Builder::spawn_scoped`]. That
//! is sound because the scope's count of live ULTs drops only in [`Packet`]'s destructor, and
//! the packet outlives everything that may borrow `'scope` data:
//! - the closure: a ULT that ran it consumed it before releasing its packet; a ULT that never
//!   ran (its spawn failed, or its runtime shut down first) drops its [`Work`], whose fields
//!   drop in declaration order, the closure before the packet;
//! - the result: it lives in the packet itself, and is dropped in the packet's destructor just
//!   before the count drops (join takes it out earlier);
//! - the scope owner's stack: while the scope is open the owner holds
//!   [`ult::raw::LeakIfCancelled`], so if its runtime shuts down and cancels it (perhaps before
//!   the scoped ULTs, which are cancelled too, running their destructors) its stack is leaked,
//!   not unwound.
//!
//! The scope owner waits for the count to reach zero with [`ult::park`], which parks a ULT
//! (so under many-to-one the scoped ULTs run on the very kernel thread it waits on) and blocks
//! a plain thread; the last ULT to go unparks it. The count is atomic and nothing on the
//! ULTs' side parks, because a ULT's packet may be dropped while a shutdown force-unwinds it.
//!
//! Panics: a scoped ULT's panic is caught in the ULT and kept in its packet; [`join`] returns
//! it. One nobody joined makes [`scope`] panic once all ULTs are done, as std does. A forced
//! unwind (the ULT cancelled because its runtime shut down) is not kept but resumed, so the
//! runtime can finish unwinding the ULT's stack.
//!
//! Who may call what: anyone may open a scope; only the scope's ULTs and the code inside it
//! hold the `&Scope` that spawns into it.
//!
//! [`join`]: ScopedJoinHandle::join

use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::{fmt, io, thread};

use crate::runtime::Builder;

/// What the scope owner waits on: how many of its ULTs are alive, and whether one of them
/// panicked with nobody to join it. Atomics and an unparker, no lock: the count drops in
/// destructors that may run while a shutdown force-unwinds a ULT, where parking (on a
/// contended lock) is impossible.
struct ScopeData {
    running: AtomicUsize,
    a_ult_panicked: AtomicBool,
    owner: ult::Unparker,
}

impl ScopeData {
    fn increment(&self) {
        // Relaxed: the count only has to reach zero after every decrement (below).
        if self.running.fetch_add(1, Ordering::Relaxed) > usize::MAX / 2 {
            // Overflow would end the scope early, so stop, as std does.
            eprintln!("lwp::scope: too many scoped ULTs; aborting");
            std::process::abort();
        }
    }

    fn decrement(&self, unhandled_panic: bool) {
        if unhandled_panic {
            self.a_ult_panicked.store(true, Ordering::Relaxed);
        }
        // Release: everything this ULT did (its result's drop included) happens before the
        // owner sees zero. The owner is alive while the count is not zero, and `owner` holds
        // its header either way.
        if self.running.fetch_sub(1, Ordering::Release) == 1 {
            self.owner.unpark();
        }
    }

    /// Waits until every ULT of the scope is gone; returns whether one panicked unjoined.
    fn wait_all(&self) -> bool {
        // Acquire: pairs with the decrements' release. An unpark that comes before the park
        // leaves a token, so the last decrement's wake-up is never lost.
        while self.running.load(Ordering::Acquire) != 0 {
            ult::park();
        }
        self.a_ult_panicked.load(Ordering::Relaxed)
    }
}

/// A scope to spawn ULTs in; see [`scope`].
///
/// `'scope` is the scope's own lifetime, `'env` that of what its ULTs may borrow (as with
/// `std::thread::Scope`).
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    /// Invariant in `'scope`, so that a ULT cannot be handed a shorter-lived scope.
    scope: PhantomData<&'scope mut &'scope ()>,
    /// Invariant in `'env` as well.
    env: PhantomData<&'env mut &'env ()>,
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("running", &self.data.running.load(Ordering::Relaxed))
            .field(
                "a_ult_panicked",
                &self.data.a_ult_panicked.load(Ordering::Relaxed),
            )
            .finish()
    }
}

/// Opens a scope for ULTs that borrow from the caller's stack, like `std::thread::scope`: runs
/// `f`, then waits until every ULT spawned in the scope has finished, joined or not, and
/// returns `f`'s value.
///
/// # Panics
/// With `f`'s panic, once the scope's ULTs are done; or, if `f` returned but a scoped ULT that
/// nobody joined panicked, with "a scoped ULT panicked".
///
/// ```
/// let mut counts = [0u32; 4];
/// let words = ["green", "threads", "borrow", "safely"];
/// lwp::scope(|s| {
///     for (count, word) in counts.iter_mut().zip(&words) {
///         s.spawn(move || *count = word.len() as u32);
///     }
/// });
/// assert_eq!(counts, [5, 7, 6, 6]);
/// ```
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let scope = Scope {
        data: Arc::new(ScopeData {
            running: AtomicUsize::new(0),
            a_ult_panicked: AtomicBool::new(false),
            owner: ult::unparker(),
        }),
        scope: PhantomData,
        env: PhantomData,
    };
    // Until every scoped ULT is gone, a cancellation of this ULT leaks its stack rather than
    // unwind what they borrow (they may be cancelled after it, at the same shutdown).
    let leak_guard = ult::raw::leak_if_cancelled();
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    let waited = catch_unwind(AssertUnwindSafe(|| scope.data.wait_all()));
    let Ok(a_ult_panicked) = waited else {
        // Returning now would free what live ULTs borrow; this cannot happen (parking does
        // not panic, and the guard keeps cancellation from unwinding it), so stop rather
        // than risk it.
        eprintln!("lwp::scope: waiting for the scope's ULTs failed; aborting");
        std::process::abort();
    };
    drop(leak_guard);
    match result {
        Err(payload) => resume_unwind(payload),
        Ok(_) if a_ult_panicked => panic!("a scoped ULT panicked"),
        Ok(value) => value,
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns a ULT that may borrow anything that outlives the scope, configured as
    /// [`Builder::new`] does.
    ///
    /// # Panics
    /// If the ULT cannot be created; use [`Builder::spawn_scoped`] for an error instead.
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        Builder::new()
            .spawn_scoped(self, f)
            .unwrap_or_else(|e| panic!("lwp::Scope::spawn failed: {e}"))
    }
}

/// Where a scoped ULT leaves its outcome; its destructor is what lets the scope end.
struct Packet<'scope, T> {
    scope: Arc<ScopeData>,
    result: std::sync::Mutex<Option<thread::Result<T>>>,
    _borrows: PhantomData<&'scope ()>,
}

impl<T> Drop for Packet<'_, T> {
    fn drop(&mut self) {
        let result = self
            .result
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let unhandled_panic = matches!(result, Some(Err(_)));
        // The result may borrow `'scope` data: it goes before the scope may end. A panic in
        // its destructor counts as the ULT's (std aborts instead; a report is kinder).
        let drop_panicked = catch_unwind(AssertUnwindSafe(move || drop(result))).is_err();
        self.scope.decrement(unhandled_panic || drop_panicked);
    }
}

/// A scoped ULT's closure with its packet. Field order matters: a `Work` dropped without
/// running drops the closure first, the packet (which may end the scope) after it.
struct Work<'scope, F, T> {
    f: F,
    packet: Arc<Packet<'scope, T>>,
}

impl<F: FnOnce() -> T, T> Work<'_, F, T> {
    fn run(self) {
        let Work { f, packet } = self;
        match catch_unwind(AssertUnwindSafe(f)) {
            // The runtime is unwinding this ULT's stack: let it (the packet goes first).
            Err(payload) if ult::raw::current_is_cancelling() => {
                drop(packet);
                resume_unwind(payload)
            }
            result => *packet.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result),
        }
    }
}

impl Builder {
    /// Spawns a scoped ULT configured by this builder, like
    /// `std::thread::Builder::spawn_scoped`; an `io::Error` says why not (as
    /// [`Builder::spawn`]).
    ///
    /// ```
    /// let data = vec![1u64, 2, 3];
    /// let sum = lwp::scope(|s| {
    ///     lwp::Builder::new()
    ///         .name("summer".into())
    ///         .spawn_scoped(s, || data.iter().sum::<u64>())
    ///         .map(|h| h.join().unwrap())
    /// })?;
    /// assert_eq!(sum, 6);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn_scoped<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let packet = Arc::new(Packet {
            scope: scope.data.clone(),
            result: std::sync::Mutex::new(None),
            _borrows: PhantomData,
        });
        // Counted before the packet can be dropped (the packet's destructor uncounts it).
        scope.data.increment();
        let work = Work {
            f,
            packet: packet.clone(),
        };
        let main: Box<dyn FnOnce() + Send + 'scope> = Box::new(move || work.run());
        // SAFETY: only the lifetime changes. Nothing `main` borrows is touched after the
        // scope ends: the scope waits for every packet's destructor, and `main`'s closure is
        // consumed (ran) or dropped before its packet is (see the module header). `packet`,
        // held here until `spawn` returned, keeps a failed spawn's packet alive until `main`
        // is gone too.
        let main: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(main) };
        let handle = self.spawn(main)?;
        Ok(ScopedJoinHandle { handle, packet })
    }
}

/// An owned permission to join a scoped ULT; see [`Scope::spawn`].
pub struct ScopedJoinHandle<'scope, T> {
    handle: ult::JoinHandle<()>,
    packet: Arc<Packet<'scope, T>>,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the ULT to finish; returns its value, or its panic's payload, like
    /// `std::thread::ScopedJoinHandle::join`.
    pub fn join(self) -> thread::Result<T> {
        self.handle.join()?;
        self.packet
            .result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| Err(Box::new("the scoped ULT ended without a result")))
    }

    /// Whether the ULT has finished running (then [`join`](Self::join) does not wait).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// The ULT's handle (id, name, unparker), like `std::thread::ScopedJoinHandle::thread`.
    pub fn ult(&self) -> ult::Ult {
        self.handle.ult()
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("id", &self.handle.id())
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}
