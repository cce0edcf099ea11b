//! The green thread itself: a corosensei coroutine plus its header, and the interface a
//! scheduler implements to run it. This is the only module that touches coroutine internals.
//!
//! # Who may call what
//! - A scheduler (this crate's many-to-one (`ult::executor`, behind [`crate::run`]), or `lwp`'s LWP workers) owns
//!   runnable [`RawUlt`]s, calls [`RawUlt::resume`] and acts on the [`Resumed`] outcome. It
//!   implements [`Schedule`] so that spawns and wake-ups reach its run queues.
//! - Code running inside a ULT calls [`crate::yield_now`], [`crate::park()`] and friends, which
//!   suspend the coroutine through `suspend_current`.
//! - Anyone holding an [`crate::Unparker`] may call `unpark` from any thread.
//!
//! # The run state
//! Parking and joining follow the two protocols of [`crate::state`] (model-checked with
//! loom): a ULT is `PARKED` only while suspended and in no queue, and exactly one party
//! queues it again, through [`Schedule::wake`], so no wake-up is lost or doubled.
//!
//! # Migration and thread-locals
//! A ULT that has never run has no frames of its own (its worker coroutine, see `workers`,
//! holds only the worker loop's frame, which keeps no thread-local address across a switch),
//! so any kernel thread may start it (this is where stealing happens). Once started, Rust
//! code in it may hold addresses of the thread-locals of the kernel thread it runs on across
//! a switch, so it must be resumed on that same thread unless its spawner promised otherwise
//! through the `unsafe` [`crate::Builder::migratable`]. [`Header::may_migrate`] tells a
//! scheduler which case applies. Inside a ULT this module reads its own thread-local (the
//! running frame, `frame_slot`) again after every switch, with inline assembly that is
//! executed afresh each time (or a non-inlined function), so the runtime never caches a
//! thread-local address across a switch.

use std::alloc::Layout;
use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use corosensei::{Coroutine, CoroutineResult, Yielder};

use crate::local::LocalMap;
pub use crate::runq::RunQueue;
use crate::stack::{self, StackRef, UltStack};
use crate::state::{Completion, Life, RunState};
use crate::Unparker;

/// Why a running ULT gave control back to its scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// `yield_now`: still runnable, put it back in a run queue.
    Yield,
    /// `park`: not runnable until unparked.
    Park,
    /// The ULT returned or panicked (its result is stored); its worker coroutine waits for
    /// the next ULT.
    Finished,
}

/// What a scheduler must do with a ULT after [`RawUlt::resume`] returned.
pub enum Resumed {
    /// The ULT is runnable (it yielded, or it parked and was unparked at once): queue it.
    Runnable(RawUlt),
    /// The ULT parked; it will come back through [`Schedule::wake`] when unparked.
    Parked,
    /// The ULT returned or panicked; its result is in its join slot.
    Finished,
}

/// The scheduler side of a runtime: where spawned and woken ULTs go.
///
/// Implementations must be callable from any thread (wake-ups come from other LWPs, the
/// reactor and plain kernel threads) and must eventually run every ULT they accept.
pub trait Schedule: Send + Sync + 'static {
    /// A new, never-started ULT. May be run by any worker. An error (say, no kernel thread
    /// could be created for it) is returned to the spawner; the ULT is then dropped unrun.
    fn spawn(&self, ult: RawUlt) -> std::io::Result<()>;
    /// A parked ULT was unparked. If `ult.may_migrate()` is false it must be resumed on its
    /// home worker (see [`Header::home`]).
    fn wake(&self, ult: RawUlt);
    /// Arranges for `unparker.unpark()` to be called at or after `deadline`; returns a key
    /// for [`Schedule::cancel_timer`]. Called from inside a ULT of this scheduler.
    fn add_timer(&self, deadline: Instant, unparker: Unparker) -> u64;
    /// Cancels a timer that may already have fired (then this is a no-op).
    fn cancel_timer(&self, key: u64);
    /// A tracked handle to this scheduler was made ([`SchedRef::tracked`], or a clone of
    /// one). Only a scheduler that hands out tracked handles needs this: it must count them.
    fn retain_handle(&self) {}
    /// A tracked handle to this scheduler was dropped; this call is the handle's last access
    /// to it.
    fn release_handle(&self) {}
}

/// A ULT's handle to its scheduler ([`Header::scheduler`]; it dereferences to the
/// [`Schedule`]). Either counted, like the `Arc` it wraps, or tracked: borrowed from a
/// scheduler that keeps itself alive by counting its handles through
/// [`Schedule::retain_handle`] and [`Schedule::release_handle`]. The many-to-one executor
/// uses tracked handles, counted without a locked instruction on its own thread: cloning the
/// `Arc` for every new ULT and dropping it with the ULT were two of the four locked
/// instructions of a pooled spawn+join, about a fifth of its time (`perf annotate` of
/// `ult/examples/spawnjoin`).
pub struct SchedRef(SchedKind);

enum SchedKind {
    Counted(Arc<dyn Schedule>),
    Tracked(NonNull<dyn Schedule>),
}

// SAFETY: the pointee is `Send + Sync` (the trait's bounds), and a tracked one stays alive
// while any handle to it exists (the contract of `SchedRef::tracked`).
unsafe impl Send for SchedRef {}
// SAFETY: as for `Send`; a shared handle only hands out `&dyn Schedule`.
unsafe impl Sync for SchedRef {}

impl SchedRef {
    /// A handle that keeps `sched` alive by its reference count.
    pub fn counted(sched: Arc<dyn Schedule>) -> SchedRef {
        SchedRef(SchedKind::Counted(sched))
    }

    /// A tracked handle to `sched`, which hears of it (and of every clone) through
    /// [`Schedule::retain_handle`], and of every drop through [`Schedule::release_handle`].
    ///
    /// # Safety
    /// `sched` must stay alive (and not move) until the last handle made from it, by this
    /// call or by cloning, is dropped: it learns of each, and must count them.
    pub unsafe fn tracked(sched: &(dyn Schedule + 'static)) -> SchedRef {
        sched.retain_handle();
        SchedRef(SchedKind::Tracked(NonNull::from(sched)))
    }
}

impl Clone for SchedRef {
    #[inline]
    fn clone(&self) -> SchedRef {
        match &self.0 {
            SchedKind::Counted(sched) => SchedRef(SchedKind::Counted(sched.clone())),
            SchedKind::Tracked(sched) => {
                // SAFETY: alive while `self` exists (`tracked`'s contract).
                unsafe { sched.as_ref() }.retain_handle();
                SchedRef(SchedKind::Tracked(*sched))
            }
        }
    }
}

impl Drop for SchedRef {
    #[inline]
    fn drop(&mut self) {
        if let SchedKind::Tracked(sched) = &self.0 {
            // SAFETY: alive until this call returns (`tracked`'s contract); nothing touches
            // it afterwards.
            unsafe { sched.as_ref() }.release_handle();
        }
    }
}

impl std::ops::Deref for SchedRef {
    type Target = dyn Schedule;

    #[inline]
    fn deref(&self) -> &(dyn Schedule + 'static) {
        match &self.0 {
            SchedKind::Counted(sched) => &**sched,
            // SAFETY: alive while `self` exists (`tracked`'s contract).
            SchedKind::Tracked(sched) => unsafe { sched.as_ref() },
        }
    }
}

/// Identifier of a ULT, unique within the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UltId(pub(crate) u64);

impl UltId {
    /// The number behind the id (ids start at 1).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for UltId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A worker coroutine: it runs one ULT after another (see [`workers`]). Resumed with the
/// address of the header of the ULT it runs (which an idle worker starts, and a started ULT's
/// suspend ignores), or with 0 while idle, to make it exit.
type Co = Coroutine<usize, Switch, (), StackRef>;
type UltYielder = Yielder<usize, Switch>;

/// The type-independent part of a ULT. Shared by its scheduler, its join handle and its
/// unparkers, through counted thin pointers ([`RawUlt`], and the join handle's typed
/// `CellRef`): a queue entry is one word, and reaching the header needs no vtable.
///
/// `repr(C)`, hottest fields first: what a scheduler reads to wake and resume a ULT (its
/// reference count, run state, worker, yielder and home) shares the first cache line of a
/// 64-byte aligned cell, so a wake-up touches one line of the header.
#[repr(C)]
pub struct Header {
    /// Strong references ([`RawUlt`]s and the `CellRef`; the last one frees the cell) and the
    /// join handshake.
    life: Life,
    state: RunState,
    /// The worker coroutine that runs the ULT, from spawn until it finishes. Owned by whoever
    /// is running or resuming the ULT (the state machine gives that owner exclusive access:
    /// only the scheduler that popped it from a run queue touches it).
    worker: UnsafeCell<Option<Worker>>,
    /// Set by the worker when the ULT starts; only read from inside the ULT.
    yielder: Cell<*const UltYielder>,
    /// Free for the scheduler: e.g. the index of the home LWP.
    home: AtomicUsize,
    migratable: bool,
    /// [`CANCELLING`], set before a scheduler force-unwinds a suspended ULT so its panic
    /// boundary re-throws, plus [`LEAK_GUARD`] per open [`LeakIfCancelled`] guard (while any
    /// is open, cancelling leaks the stack and ULT-locals instead: other ULTs borrow from
    /// them). One word, so a spawn initialises both with one store.
    cancel_state: Cell<u32>,
    /// While `PARKED`: the scheduler's own handle, moved here by `after_park` and taken out
    /// by the one unparker that wins the `PARKED -> ACTIVE` transition, so a wake-up needs
    /// no reference-count traffic. (A ULT parked forever therefore keeps itself alive: it is
    /// leaked, as documented in the crate root.)
    parked_self: UnsafeCell<Option<RawUlt>>,
    /// The stack pointer where the ULT last parked (written by the ULT just before it
    /// suspends, read only as a hint by [`RawUlt::prefetch`]; a stale value costs a useless
    /// prefetch, nothing else).
    park_sp: Cell<usize>,
    /// Two addresses the ULT reads first when it wakes from its current park, outside its
    /// stack (written by the ULT before it parks, through [`unparker_with_wake_hints`]; read
    /// only as a hint by [`RawUlt::prefetch`], like `park_sp`). They open the second cache
    /// line, which [`RawUlt::prefetch_header`] fetches with the first.
    wake_hints: [Cell<usize>; 2],
    sched: SchedRef,
    /// Frees the cell this header starts (type-specific, like `run`).
    drop_cell: unsafe fn(NonNull<Header>),
    /// Runs the ULT's closure and stores its result (called once, on its worker).
    run: unsafe fn(NonNull<Header>),
    id: UltId,
    name: Option<Arc<str>>,
    /// ULT-local storage; only touched from inside the ULT (or by the scheduler after it
    /// finished).
    pub(crate) locals: UnsafeCell<LocalMap>,
    /// Guard page `[low, high)` and usable size, for the overflow handler.
    guard: (usize, usize),
    stack_size: usize,
    join_waiter: UnsafeCell<Option<Unparker>>,
}

// The wake-up fields fit the first cache line (see the type's comment), the wake hints the
// second.
const _: () = assert!(std::mem::offset_of!(Header, park_sp) + std::mem::size_of::<usize>() <= 64);
const _: () =
    assert!(std::mem::offset_of!(Header, wake_hints) + 2 * std::mem::size_of::<usize>() <= 128);

// SAFETY: the `UnsafeCell`/`Cell` fields are accessed only by the single party the run-state
// protocol designates (the scheduler that owns the runnable ULT, or the ULT's own code while it
// runs), and `join_waiter` only under the JOIN_WAITER/JOIN_COMPLETE handshake; every hand-over
// between threads goes through an atomic with acquire/release ordering or a run queue.
unsafe impl Send for Header {}
// SAFETY: see `Send` above: shared access is through atomics or the protocol's owner.
unsafe impl Sync for Header {}

/// A header followed by the result slot of a `T`-returning ULT.
#[repr(C)]
pub(crate) struct UltCell<T> {
    pub(crate) header: Header,
    /// Written once by the coroutine before it finishes; read by the joiner after it saw
    /// JOIN_COMPLETE (acquire).
    result: UnsafeCell<Option<std::thread::Result<T>>>,
}

/// The whole cell of a ULT running `F`: the typed part the join handle sees, then the closure
/// (moved out when the ULT starts).
#[repr(C)]
struct UltCellF<T, F> {
    base: UltCell<T>,
    f: UnsafeCell<std::mem::ManuallyDrop<F>>,
}

// SAFETY: the result slot is written once by the ULT before JOIN_COMPLETE (release) and read
// once by the join handle after observing it (acquire); T: Send lets the value cross threads.
unsafe impl<T: Send> Send for UltCell<T> {}
// SAFETY: as above; no `&T` is ever shared, the value is moved out exactly once.
unsafe impl<T: Send> Sync for UltCell<T> {}

/// An owning handle to a ULT, as scheduler queues hold it: one counted pointer to its header.
pub struct RawUlt(NonNull<Header>);

// SAFETY: the header is `Send + Sync`, and the reference count is atomic, like `Arc<Header>`.
unsafe impl Send for RawUlt {}
// SAFETY: as above.
unsafe impl Sync for RawUlt {}

/// Adds a strong reference (as `Arc::clone` does, aborting on overflow).
#[inline]
fn acquire_ref(header: &Header) {
    header.life.acquire();
}

/// Drops a strong reference and frees the cell after the last one.
///
/// # Safety
/// `header` must point at a live header of a cell, and the caller gives up one reference.
#[inline]
unsafe fn release_ref(header: NonNull<Header>) {
    // SAFETY: the caller's reference keeps the header alive until this decrement.
    if unsafe { header.as_ref() }.life.release() {
        // SAFETY: that was the last reference.
        unsafe { free_cell(header) }
    }
}

/// Frees a cell after its last reference is gone.
///
/// # Safety
/// No reference to the cell may be left.
#[inline]
unsafe fn free_cell(header: NonNull<Header>) {
    // SAFETY: the header is alive until `drop_cell`, which matches the cell's type.
    unsafe { (header.as_ref().drop_cell)(header) }
}

/// Drops and frees a cell made by [`create`] (its closure too, if the ULT never started).
///
/// # Safety
/// `header` must be the header of an `UltCellF<T, F>` made by `create`, with no reference
/// left.
unsafe fn drop_cell<T, F>(header: NonNull<Header>) {
    let cell = header.cast::<UltCellF<T, F>>();
    // SAFETY: the cell is initialised and nobody refers to it any more; its first field is
    // the header (`repr(C)`); it came from `cells::alloc` with this layout. The closure is
    // still in the cell exactly when the ULT never started (`run_cell` moves it out first).
    unsafe {
        if !(*cell.as_ptr()).base.header.started() {
            std::mem::ManuallyDrop::drop(&mut *(*cell.as_ptr()).f.get());
        }
        ptr::drop_in_place(cell.as_ptr());
        cells::free(cell.cast(), Layout::new::<UltCellF<T, F>>());
    }
    #[cfg(test)]
    LIVE_CELLS.with(|n| n.set(n.get() - 1));
}

#[cfg(test)]
thread_local! {
    /// Cells made minus cells freed on this thread (tests check that completions free what
    /// they should, exactly once).
    pub(crate) static LIVE_CELLS: Cell<isize> = const { Cell::new(0) };
}

/// Runs the ULT of a cell made by [`create`] on the calling worker: takes the closure out,
/// runs it, stores the result and destroys the ULT-locals.
///
/// # Safety
/// `header` must be the header of an `UltCellF<T, F>` whose ULT is starting now, on its
/// worker (the header's `yielder` already set); called once per cell.
unsafe fn run_cell<T, F>(header: NonNull<Header>)
where
    F: FnOnce() -> T,
{
    // SAFETY: the caller's contract: a live cell of this type, starting now.
    let cell = unsafe { &*header.cast::<UltCellF<T, F>>().as_ptr() };
    // SAFETY: started now, so nobody else reads the closure again (`drop_cell` skips it).
    let f = unsafe { std::mem::ManuallyDrop::take(&mut *cell.f.get()) };
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    let header = &cell.base.header;
    match result {
        Err(payload) if header.is_cancelling() => {
            // A forced unwind from corosensei: let it finish unwinding the worker's stack.
            panic::resume_unwind(payload)
        }
        // SAFETY: only this ULT writes the slot, before JOIN_COMPLETE is published.
        result => unsafe { *cell.base.result.get() = Some(result) },
    }
    // ULT-locals are destroyed inside the ULT, as thread-locals are inside their thread.
    // SAFETY: only the running ULT touches its locals.
    if unsafe { !(*header.locals.get()).is_empty() } {
        // SAFETY: as above.
        let locals = unsafe { std::mem::take(&mut *header.locals.get()) };
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(locals)));
    }
}

/// A thread-local value used without a borrow flag, for the per-thread caches on the spawn
/// path (idle workers, freed cells), where `RefCell`'s flag was a measurable cost.
struct ThreadOwned<T>(UnsafeCell<T>);

impl<T> ThreadOwned<T> {
    const fn new(value: T) -> ThreadOwned<T> {
        ThreadOwned(UnsafeCell::new(value))
    }

    /// Runs `f` on the value.
    ///
    /// # Safety
    /// `f` must not reach this same value again (no nested `with`, no foreign code that
    /// might): the reference it gets must be the only one while it runs.
    #[inline]
    unsafe fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: the value is thread-local (`!Sync`), and the caller guarantees no other
        // reference exists while `f` runs.
        f(unsafe { &mut *self.0.get() })
    }
}

/// The worker coroutines: a ULT runs on a coroutine that outlives it and then runs the next
/// ULT, so a spawn+join neither builds a coroutine on a fresh stack nor tears one down
/// (corosensei's set-up and return paths and the stack pool's take and give-back were about
/// a third of a pooled spawn+join's instructions).
///
/// A worker loops: it starts the ULT whose header address it was resumed with, runs it to
/// the end ([`run_cell`]), then suspends with [`Switch::Finished`] and waits for the next
/// one. Between ULTs its stack holds only this loop's frame, which keeps no thread-local
/// address across the suspend, so an idle worker may move to another kernel thread with
/// the never-started ULT it was given (stealing), as a fresh coroutine may. Each kernel
/// thread keeps up to [`workers::MAX_IDLE`] idle workers; past that, or at thread exit, a worker is
/// resumed with 0, returns, and its stack goes back to the stack pool (which balances stacks
/// between threads). A worker whose ULT went deep is trimmed like a pooled stack.
pub(crate) mod workers {
    use super::{Co, Switch, ThreadOwned, UltStack, UltYielder};
    use corosensei::CoroutineResult;
    use std::io;
    use std::mem::ManuallyDrop;
    use std::ptr::NonNull;

    /// Idle workers a kernel thread keeps.
    pub(crate) const MAX_IDLE: usize = 64;

    /// A worker coroutine and the stack it runs on. Boxed: a worker changes hands twice per
    /// ULT (idle list, header, idle list), and one pointer moves cheaper than the dozen words
    /// of a coroutine and a stack (inline, a pooled spawn+join took 593 -> 742 instructions).
    ///
    /// The box is held as a raw pointer (made by `Box::into_raw`, freed in `Drop`), so that
    /// a run queue's cached copy of it ([`super::SwitchTarget`]) shares its provenance: a
    /// `Box` would claim unique access to the coroutine and void every other pointer to it.
    pub(crate) struct Worker(NonNull<Inner>);

    impl Drop for Worker {
        fn drop(&mut self) {
            // SAFETY: the pointer came from `Box::into_raw` in `Worker::new` and is freed only
            // here (`leak` and `into_raw` skip this drop).
            drop(unsafe { Box::from_raw(self.0.as_ptr()) });
        }
    }

    impl std::ops::Deref for Worker {
        type Target = Inner;
        #[inline(always)]
        fn deref(&self) -> &Inner {
            // SAFETY: the worker owns the live `Inner` (see `Drop`).
            unsafe { self.0.as_ref() }
        }
    }

    impl std::ops::DerefMut for Worker {
        #[inline(always)]
        fn deref_mut(&mut self) -> &mut Inner {
            // SAFETY: as in `deref`, and `&mut self` is the owner's exclusive access.
            unsafe { self.0.as_mut() }
        }
    }

    pub(crate) struct Inner {
        /// Dropped before `stack` (see [`super::StackRef`]).
        co: ManuallyDrop<Co>,
        stack: ManuallyDrop<UltStack>,
        /// Suspended in its loop between ULTs (or never resumed): resuming it with 0 ends it.
        idle: bool,
    }

    thread_local! {
        /// This thread's idle workers, most recently used last. Only the functions below
        /// touch it, each in one short step that runs no foreign code while it holds the
        /// list (a worker ended for lack of room is dropped after).
        static IDLE: ThreadOwned<Vec<Worker>> = const { ThreadOwned::new(Vec::new()) };
    }

    impl Worker {
        fn new(stack: UltStack) -> Worker {
            let co = Co::with_stack(stack.view(), |yielder: &UltYielder, first: usize| {
                let mut job = first;
                while job != 0 {
                    // SAFETY: a worker is resumed with a non-zero value only by `RawUlt::
                    // resume_then`, with the header of the live ULT it starts now; the cell
                    // lives until the ULT's last reference, which the resumer holds.
                    unsafe { super::start_on_worker(job, yielder) };
                    job = yielder.suspend(Switch::Finished);
                }
            });
            let inner = Box::new(Inner {
                co: ManuallyDrop::new(co),
                stack: ManuallyDrop::new(stack),
                idle: true,
            });
            Worker(NonNull::from(Box::leak(inner)))
        }

        /// The address of the boxed coroutine (for a prefetch; not dereferenced).
        #[inline]
        pub(crate) fn inner_addr(&self) -> usize {
            self.0.as_ptr() as usize
        }

        /// The coroutine's address, with the worker's own provenance, for a run queue's
        /// cached [`super::SwitchTarget`] ([`resume_at`] takes it back).
        #[inline]
        pub(crate) fn as_ptr(&self) -> *mut Inner {
            self.0.as_ptr()
        }

        /// Usable stack bytes.
        #[inline]
        pub(crate) fn stack_size(&self) -> usize {
            self.stack.usable_size()
        }

        /// The guard page as `[low, high)`.
        #[inline]
        pub(crate) fn guard_range(&self) -> (usize, usize) {
            self.stack.guard_range()
        }

        /// Resumes the coroutine with the address of its ULT's header (see [`Co`]).
        #[inline]
        pub(crate) fn resume(&mut self, input: usize) -> CoroutineResult<Switch, ()> {
            self.idle = false;
            self.co.resume(input)
        }

        /// Marks the worker idle again after it suspended with [`Switch::Finished`].
        #[inline]
        pub(crate) fn finished(&mut self) {
            self.idle = true;
        }

        /// Ends a worker whose ULT is suspended mid-run by unwinding that ULT's frames
        /// (destructors run), then releases the stack. Only for a ULT that will never run
        /// again, on its home thread.
        pub(crate) fn unwind(mut self) {
            debug_assert!(!self.idle);
            // SAFETY: `co` is dropped exactly once, here, before the stack it runs on.
            // Dropping a suspended coroutine force-unwinds it.
            unsafe { ManuallyDrop::drop(&mut self.co) };
            // SAFETY: taken once; the coroutine is gone.
            super::stack::give_back(unsafe { ManuallyDrop::take(&mut self.stack) });
            // The box is freed here; `Inner::drop` leaves a non-idle worker's fields alone.
        }

        /// Gives up a worker whose ULT is suspended mid-run without touching its frames
        /// (they may hold another thread's addresses): the coroutine and its stack leak.
        pub(crate) fn leak(self) {
            std::mem::forget(self);
        }
    }

    impl Drop for Inner {
        fn drop(&mut self) {
            if !self.idle {
                // Mid-run: never resume, unwind or unmap frames that may still be used.
                return;
            }
            if self.co.started() && !self.co.done() {
                // Idle in its loop: 0 ends it (it returns, holding nothing).
                let _ = self.co.resume(0);
            }
            // SAFETY: each field is dropped once, the coroutine (finished or never started,
            // so no unwinding) before the stack it ran on.
            unsafe {
                ManuallyDrop::drop(&mut self.co);
                super::stack::give_back(ManuallyDrop::take(&mut self.stack));
            }
        }
    }

    /// [`Worker::resume`] on the worker whose [`Worker::as_ptr`] is `inner`.
    ///
    /// # Safety
    /// `inner` must be the `as_ptr` of a live worker that the caller could resume through
    /// `Worker::resume` now (it owns the runnable ULT that holds it), and no reference to that
    /// worker may be in use meanwhile.
    #[inline(always)]
    pub(crate) unsafe fn resume_at(inner: *mut Inner, input: usize) -> CoroutineResult<Switch, ()> {
        // SAFETY: the caller's contract: the pointer is the worker's own, with its provenance,
        // and nothing else uses the worker during this call.
        let inner = unsafe { &mut *inner };
        inner.idle = false;
        inner.co.resume(input)
    }

    /// An idle worker for a ULT that asked for `size` stack bytes: this thread's most recent
    /// one of that (page-rounded) size, else a new one on a stack from the stack pool.
    #[inline]
    pub(crate) fn take(size: usize) -> io::Result<Worker> {
        let usable = super::stack::usable_for(size);
        let cached = IDLE
            .try_with(|idle| {
                // SAFETY: the closure only searches and moves list entries.
                unsafe {
                    idle.with(|idle| {
                        // Usually the most recent one; with several stack sizes in use, any.
                        if idle.last()?.stack_size() == usable {
                            return idle.pop();
                        }
                        let at = idle.iter().rposition(|w| w.stack_size() == usable)?;
                        Some(idle.swap_remove(at))
                    })
                }
            })
            .ok()
            .flatten();
        match cached {
            Some(w) => Ok(w),
            None => Ok(Worker::new(super::stack::take(size)?)),
        }
    }

    /// Keeps an idle worker for this thread's next spawn (or ends it if enough are kept).
    #[inline]
    pub(crate) fn give_back(mut worker: Worker) {
        debug_assert!(worker.idle);
        // Its loop is suspended near the top of the stack: a deep ULT's pages can go.
        worker.stack.note_reuse_sampled();
        let mut worker = Some(worker);
        let _ = IDLE.try_with(|idle| {
            // SAFETY: the closure only pushes (a worker that is not kept is dropped below,
            // outside the list).
            unsafe {
                idle.with(|idle| {
                    if idle.len() < MAX_IDLE {
                        if let Some(w) = worker.take() {
                            idle.push(w);
                        }
                    }
                })
            }
        });
        // Not kept (a full list, or the thread is exiting): ended here, outside the list, its
        // stack back to the stack pool.
        drop(worker);
    }

    /// Ends this thread's idle workers (their stacks go back to the stack pool).
    pub(crate) fn clear() {
        let drained: Vec<Worker> = IDLE
            // SAFETY: taking the list runs no other code; the workers end after, outside it.
            .try_with(|idle| unsafe { idle.with(std::mem::take) })
            .unwrap_or_default();
        drop(drained);
    }

    /// This thread's idle workers: how many, and their stacks' address space (guard pages
    /// included).
    pub(crate) fn idle_stacks() -> (usize, usize) {
        IDLE.try_with(|idle| {
            // SAFETY: the closure only reads the entries.
            unsafe {
                idle.with(|idle| {
                    let bytes = idle.iter().map(|w| w.stack.mapped_len()).sum();
                    (idle.len(), bytes)
                })
            }
        })
        .unwrap_or((0, 0))
    }

    /// Releases the committed pages below the warm top of every idle worker's stack.
    pub(crate) fn trim_idle() {
        let _ = IDLE.try_with(|idle| {
            // SAFETY: `trim` is an madvise on memory the list owns: no foreign code.
            unsafe { idle.with(|idle| idle.iter_mut().for_each(|w| w.stack.trim())) }
        });
    }
}

use workers::Worker;

/// What a worker does when it is resumed with a new ULT: publish the yielder (the ULT has
/// started from now on) and run the closure.
///
/// Never inlined: the worker's loop calls it after every suspend, possibly on another kernel
/// thread than before (an idle worker moves with a stolen ULT), so the thread-local it
/// writes must be looked up afresh, not through an address the loop computed earlier.
///
/// # Safety
/// `job` is the address of the header of a live ULT that starts now on this worker.
#[inline(never)]
unsafe fn start_on_worker(job: usize, yielder: &UltYielder) {
    // SAFETY: the caller's contract.
    let header = unsafe { &*(job as *const Header) };
    header.yielder.set(yielder as *const _);
    // The frame its resumer built holds a null yielder on this first run.
    if let Some(frame) = running_frame() {
        frame.yielder.set(yielder as *const _);
    }
    // SAFETY: `run` matches the cell's type, and the ULT starts now, once.
    unsafe { (header.run)(NonNull::from(header)) };
}

/// A per-thread cache of freed ULT cells, so a spawn does not pay for `malloc` and `free`
/// (about 130 instructions together in glibc, a tenth of a pooled spawn+join).
///
/// Cells are sorted into size classes of 64 bytes up to 1 KiB and allocated 64-byte aligned
/// (which also keeps two ULTs' headers off one cache line). A thread keeps at most
/// `PER_CLASS` free cells per class and frees the rest; its cache is freed when it exits.
/// Larger or over-aligned cells bypass the cache.
mod cells {
    use super::ThreadOwned;
    use std::alloc::{self, Layout};
    use std::ptr::NonNull;

    const CLASS: usize = 64;
    const CLASSES: usize = 16;
    const PER_CLASS: usize = 64;

    struct Cache([Vec<NonNull<u8>>; CLASSES]);

    impl Drop for Cache {
        fn drop(&mut self) {
            for (class, list) in self.0.iter_mut().enumerate() {
                for p in list.drain(..) {
                    // SAFETY: every cached block was allocated with its class's layout.
                    unsafe { alloc::dealloc(p.as_ptr(), class_layout(class)) };
                }
            }
        }
    }

    thread_local! {
        /// Touched only by `alloc` and `free`, each in one step that runs no foreign code
        /// while it holds the lists (blocks are returned to the allocator after), so it needs
        /// no borrow flag.
        static CACHE: ThreadOwned<Cache> = const { ThreadOwned::new(Cache([const { Vec::new() }; CLASSES])) };
    }

    /// Runs `f` on this thread's cache, if it still exists. Private to `alloc` and `free`,
    /// whose closures only move pointers in and out of the lists.
    #[inline]
    fn with_cache<R>(f: impl FnOnce(&mut Cache) -> R) -> Option<R> {
        // SAFETY: both callers' closures run no foreign code and do not reach `CACHE` again.
        CACHE.try_with(|c| unsafe { c.with(f) }).ok()
    }

    fn class_layout(class: usize) -> Layout {
        match Layout::from_size_align((class + 1) * CLASS, CLASS) {
            Ok(l) => l,
            Err(_) => unreachable!("class sizes are small multiples of their alignment"),
        }
    }

    /// The class of `layout`, or `None` if it bypasses the cache.
    #[inline]
    fn class_of(layout: Layout) -> Option<usize> {
        let class = layout.size().div_ceil(CLASS).checked_sub(1)?;
        (class < CLASSES && layout.align() <= CLASS).then_some(class)
    }

    /// Allocates a block for `layout` (aborts on out-of-memory, like `Box::new`).
    #[inline]
    pub(super) fn alloc(layout: Layout) -> NonNull<u8> {
        let layout_used = match class_of(layout) {
            Some(class) => {
                let cached = with_cache(|c| c.0[class].pop()).flatten();
                if let Some(p) = cached {
                    return p;
                }
                class_layout(class)
            }
            None => layout,
        };
        // SAFETY: the layout has a non-zero size (a cell holds at least a header).
        let p = unsafe { alloc::alloc(layout_used) };
        NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(layout_used))
    }

    /// Frees a block from [`alloc()`] with the same `layout`.
    ///
    /// # Safety
    /// `p` must come from `alloc(layout)` and not be used afterwards.
    #[inline]
    pub(super) unsafe fn free(p: NonNull<u8>, layout: Layout) {
        let Some(class) = class_of(layout) else {
            // SAFETY: allocated with exactly this layout (it bypassed the cache).
            unsafe { alloc::dealloc(p.as_ptr(), layout) };
            return;
        };
        let kept = with_cache(|c| {
            let list = &mut c.0[class];
            if list.len() < PER_CLASS {
                list.push(p);
                true
            } else {
                false
            }
        })
        .unwrap_or(false);
        if !kept {
            // SAFETY: allocated with the class layout.
            unsafe { alloc::dealloc(p.as_ptr(), class_layout(class)) };
        }
    }
}

impl Clone for RawUlt {
    #[inline]
    fn clone(&self) -> Self {
        acquire_ref(self);
        RawUlt(self.0)
    }
}

impl Drop for RawUlt {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this handle owns one reference.
        unsafe { release_ref(self.0) }
    }
}

impl std::ops::Deref for RawUlt {
    type Target = Header;
    #[inline]
    fn deref(&self) -> &Header {
        // SAFETY: the handle owns a reference, so the header is alive.
        unsafe { self.0.as_ref() }
    }
}

/// The join handle's owning, typed reference to a ULT's cell.
pub(crate) struct CellRef<T>(NonNull<UltCell<T>>);

// SAFETY: like `Arc<UltCell<T>>`: the cell is `Send + Sync` when `T: Send`.
unsafe impl<T: Send> Send for CellRef<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for CellRef<T> {}

impl<T> std::ops::Deref for CellRef<T> {
    type Target = UltCell<T>;
    #[inline]
    fn deref(&self) -> &UltCell<T> {
        // SAFETY: the reference keeps the cell alive.
        unsafe { self.0.as_ref() }
    }
}

impl<T> Drop for CellRef<T> {
    #[inline]
    fn drop(&mut self) {
        // Usually the last reference: the ULT finished and its scheduler let go.
        if self.header.life.release_maybe_unique() {
            // SAFETY: that was the last reference; the header is the cell's first field.
            unsafe { free_cell(self.0.cast()) }
        }
    }
}

impl<T> CellRef<T> {
    /// Another strong reference to the same ULT, untyped.
    pub(crate) fn raw(&self) -> RawUlt {
        acquire_ref(&self.header);
        RawUlt(self.0.cast())
    }
}

impl std::fmt::Debug for RawUlt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawUlt")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Ids are handed to threads in blocks of this many, so a spawn takes its id without an
/// atomic read-modify-write (ids stay unique, not ordered across threads).
const ID_BLOCK: u64 = 1024;

thread_local! {
    /// This thread's unused ids: `[next, end)`.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A fresh id from this thread's block; inlined into `create` (a call through the GOT from
/// the caller's crate otherwise), with the refill out of line.
#[inline]
fn next_id() -> UltId {
    let (next, end) = IDS.try_with(|c| c.get()).unwrap_or((0, 0));
    if next < end {
        let _ = IDS.try_with(|c| c.set((next + 1, end)));
        return UltId(next);
    }
    next_id_block()
}

/// [`next_id`] when this thread's block is used up: takes a new block.
#[cold]
#[inline(never)]
fn next_id_block() -> UltId {
    let start = NEXT_ID.fetch_add(ID_BLOCK, Ordering::Relaxed);
    let _ = IDS.try_with(|c| c.set((start + 1, start + ID_BLOCK)));
    UltId(start)
}

/// What the running ULT's own code needs to know about its run, built by the resumer on its
/// own stack for one resume ([`RawUlt::switch_in`]), or kept by a run queue for the nested
/// runs of its front ULT ([`FrontRun`]), and published as the running frame ([`frame_slot`]).
///
/// One word of thread-local state per resume instead of three: a resume used to save,
/// replace and restore the running ULT, its yielder and the nest offer one by one, each a
/// thread-local load, a store and a stack slot held across the switch; now it fills this
/// frame (stores to its own stack) and swaps one pointer. The offer is part of the frame, so
/// it is scoped to one resume by construction (it used to be a thread-wide setting that the
/// scheduler had to restore by hand). The yield round trip between two ULTs went from 129.7
/// to 123.6 instructions, a pooled spawn+join from 497.6 to 496.6
/// (`scripts/count-instructions.sh countloop yield`; `PASSES=3 A=10000
/// scripts/count-instructions.sh spawnjoin`) and a yield on one LWP stayed at 306.5 (callgrind
/// on `benches --example yieldonly`); in time the yield round trip did not move beyond the
/// noise (`taskset -c 1 cargo run --release -p ult --example switchratio`, four interleaved
/// pairs: 12.5-15.9 ns before, 12.6-15.2 ns after).
#[repr(C)]
pub(crate) struct RunFrame {
    /// A bitwise copy of the resumer's handle to the running ULT, never dropped (the resumer
    /// keeps the owning one): [`current_raw`] lends it out. First, so that a pointer to the
    /// frame is a pointer to it.
    ult: std::mem::ManuallyDrop<RawUlt>,
    /// Non-null while the running ULT may run other ULTs on its own stack when it yields,
    /// parks or joins (see [`Nest`]); null while a nested ULT runs, and for the ULTs of other
    /// schedulers.
    nest: Cell<*const Nest>,
    /// The running ULT's yielder (null until its first run sets it): the switch path reads it
    /// without walking the header.
    yielder: Cell<*const UltYielder>,
    /// `nest`'s run queue (null without one), copied here at the resume so that a yield
    /// reaches the next ULT one dependent load sooner (frame -> queue, not frame -> nest ->
    /// queue; see `examples/yieldfloor.rs` for what a load on that chain costs).
    queue: *const RunQueue,
}

impl RunFrame {
    /// A frame for a run of `ult`, which the caller keeps (and so its reference) until the
    /// frame is gone.
    #[inline(always)]
    fn new(ult: &RawUlt, yielder: *const UltYielder, nest: *const Nest) -> RunFrame {
        // SAFETY: a non-null offer is valid for the whole resume this frame is made for
        // (`resume_offering`'s contract), and its `queue` never changes.
        let queue = unsafe { nest.as_ref() }.map_or(ptr::null(), |n| n.queue);
        RunFrame {
            // A copy of the handle that is never dropped: the caller's holds the reference.
            ult: std::mem::ManuallyDrop::new(RawUlt(ult.0)),
            yielder: Cell::new(yielder),
            nest: Cell::new(nest),
            queue,
        }
    }
}

/// What a nested resume switches with: the ULT's header, its worker coroutine and its
/// yielder ([`RawUlt::switch_target`]), compared with a run queue's memo of them
/// ([`FrontRun`]). Only compared, never dereferenced.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct SwitchTarget {
    header: *mut Header,
    worker: *mut workers::Inner,
    yielder: *const UltYielder,
}

/// A run queue's memo of the nested run of its front ULT ([`RawUlt::resume_nested_via`]):
/// the [`RunFrame`] to publish for it and its worker. The frame has no offer (a nested run)
/// and names the ULT and yielder last remembered; until then a dangling handle that no
/// header can equal. While the memo's ULT runs, its frame is the published one, so a first
/// run's yielder (`start_on_worker`) lands here too and the next comparison matches.
///
/// Its values are only compared until they equal the target of the ULT being resumed, so a
/// stale memo (the ULT finished, its cell or worker reused) is harmless.
pub(crate) struct FrontRun {
    frame: RunFrame,
    worker: *mut workers::Inner,
}

impl Default for FrontRun {
    fn default() -> FrontRun {
        FrontRun {
            frame: RunFrame {
                ult: std::mem::ManuallyDrop::new(RawUlt(NonNull::dangling())),
                nest: Cell::new(ptr::null()),
                yielder: Cell::new(ptr::null()),
                queue: ptr::null(),
            },
            worker: ptr::null_mut(),
        }
    }
}

// SAFETY: addresses that are compared, and dereferenced only once they equal the target of a
// ULT that the queue's thread may resume (see the type's comment); the queue is used by one
// thread at a time, so moving it moves no access.
unsafe impl Send for FrontRun {}

impl FrontRun {
    /// The target the memo describes.
    #[inline(always)]
    fn target(&self) -> SwitchTarget {
        SwitchTarget {
            header: self.frame.ult.0.as_ptr(),
            worker: self.worker,
            yielder: self.frame.yielder.get(),
        }
    }

    /// Remembers `target` (with a non-null worker).
    #[inline(always)]
    fn remember(&mut self, target: SwitchTarget) {
        // A copy of the handle that is never dropped, as in `RunFrame::new`.
        if let Some(header) = NonNull::new(target.header) {
            self.frame.ult = std::mem::ManuallyDrop::new(RawUlt(header));
        }
        self.frame.yielder.set(target.yielder);
        self.worker = target.worker;
    }
}

/// Returns `p` unchanged, through an empty assembly block, so that the optimiser cannot
/// tell the result equals the argument. After `if memo == actual`, it may otherwise use
/// `actual` where the code says `memo`, and the point of the memo is to use the value that
/// is ready first (see [`RawUlt::resume_nested_via`]).
#[inline(always)]
#[allow(
    clippy::pointers_in_nomem_asm_block,
    reason = "the block only passes the pointer through; it reads and writes nothing"
)]
fn opaque<T>(p: *mut T) -> *mut T {
    #[cfg(target_arch = "x86_64")]
    {
        let mut p = p;
        // SAFETY: the template is empty: it reads and writes no memory, stack or flags, and
        // hands back the register it was given.
        unsafe {
            std::arch::asm!("/* {0} */", inout(reg) p, options(pure, nomem, nostack, preserves_flags))
        };
        p
    }
    #[cfg(not(target_arch = "x86_64"))]
    std::hint::black_box(p)
}

/// The running frame: one word per kernel thread, the [`RunFrame`] of the ULT running on it,
/// or null. The frame lives in the frame of `RawUlt::switch_in`, or in the run queue of a
/// `RawUlt::resume_nested_via` call, either of which outlives the ULT's run (until it
/// switches back).
///
/// Code inside a ULT must read it on the thread that runs the ULT now: no caller may cache a
/// thread-local's address across a switch (a migratable ULT may come back on another
/// thread). On x86-64 Linux the word is an ELF thread-local of its own, defined in assembly,
/// and every access is inline assembly in the initial-exec model: the word's offset from
/// the thread pointer is read from the GOT (which the linker turns into a constant in an
/// executable) and the access is `%fs`-relative, executed afresh wherever it is written
/// (the blocks are not `pure`), so a migrated ULT reads its new thread's word. Initial-exec
/// works in the main program and in every shared library loaded with it (and in a
/// `dlopen`ed one while the C library's static TLS reserve lasts; the word is 8 bytes).
/// Elsewhere the word is a `thread_local!` read through a never-inlined function, generic
/// over a marker so that a binary crate that calls it gets an instance of its own (a direct
/// call, not one through the GOT).
///
/// History (yield round trip between two ULTs, `taskset -c 1 cargo run --release -p ult
/// --example switchratio`, a binary crate, interleaved): 24.7-26.7 ns with a plain
/// never-inlined function in this crate (reached from other crates through the GOT),
/// 11.5-12.5 ns with the per-crate instance (four pairs); `lab switch` (the yield loop in the
/// `benches` library crate) 19.0-19.9 ns with the instance and 15.4-15.6 ns with an inline
/// `%fs` read at an offset that the first thread recorded at run time, which needed a check
/// that `ult` was in the main executable and a test of the recorded offset on every read
/// (two pairs). The initial-exec word needs neither (in an executable the linker turns
/// the GOT read into a constant): switchratio 3.13-3.21x the raw round trip before, 3.06-3.07x
/// after (five interleaved runs of each), `lab -q switch` 3.26-3.27x before, 3.13-3.15x after
/// (three interleaved runs); 123.8 -> 115.7 instructions per yield round trip and 504.6 ->
/// 496.6 per pooled spawn+join (`scripts/count-instructions.sh countloop yield`; `PASSES=3
/// A=10000 scripts/count-instructions.sh spawnjoin`).
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
mod frame_slot {
    use super::RunFrame;

    // The word itself, in `.tbss` (zero-initialised thread-local storage). The name carries
    // the crate's major and minor version (change it with them) so that two semver-distinct
    // versions of `ult` in one program keep two words instead of failing to link.
    std::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl ult_running_frame_v0_1",
        ".hidden ult_running_frame_v0_1",
        ".type ult_running_frame_v0_1,@object",
        ".size ult_running_frame_v0_1,8",
        "ult_running_frame_v0_1:",
        ".zero 8",
        ".popsection",
    );

    /// The calling thread's running frame (null: none).
    #[inline(always)]
    pub(super) fn get() -> *const RunFrame {
        let value: *const RunFrame;
        // SAFETY: the GOT entry holds the word's offset from the thread pointer (the
        // initial-exec model; the dynamic linker fills it before any code runs), and
        // `%fs:offset` is the calling thread's word, zero-initialised and written only by
        // `set` on this thread. The block only loads; it touches no stack or flags.
        unsafe {
            std::arch::asm!(
                "mov {v}, qword ptr [rip + ult_running_frame_v0_1@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) value,
                options(nostack, preserves_flags, readonly),
            );
        }
        value
    }

    /// Sets the calling thread's running frame.
    #[inline(always)]
    pub(super) fn set(frame: *const RunFrame) {
        // SAFETY: as in `get`; the block stores the pointer-sized word of this thread and
        // nothing else (a pointer it is given, never dereferenced here).
        unsafe {
            std::arch::asm!(
                "mov {o}, qword ptr [rip + ult_running_frame_v0_1@GOTTPOFF]",
                "mov qword ptr fs:[{o}], {f}",
                o = out(reg) _,
                f = in(reg) frame,
                options(nostack, preserves_flags),
            );
        }
    }
}

/// Targets without an initial-exec word of our own: a `thread_local!` (see the x86-64 Linux
/// module for the rules).
#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
mod frame_slot {
    use super::RunFrame;
    use std::cell::Cell;
    use std::ptr;

    thread_local! {
        static FRAME: Cell<*const RunFrame> = const { Cell::new(ptr::null()) };
    }

    /// The calling thread's running frame (null: none, or the thread is exiting).
    #[inline(always)]
    pub(super) fn get() -> *const RunFrame {
        get_here::<()>()
    }

    /// [`get`]'s never-inlined body, instantiated in the caller's crate.
    #[inline(never)]
    #[allow(
        clippy::extra_unused_type_parameters,
        reason = "the parameter only places the instance in the caller's crate"
    )]
    fn get_here<Here>() -> *const RunFrame {
        FRAME.try_with(Cell::get).unwrap_or(ptr::null())
    }

    /// Sets the calling thread's running frame.
    #[inline(never)]
    pub(super) fn set(frame: *const RunFrame) {
        let _ = FRAME.try_with(|f| f.set(frame));
    }
}

/// Publishes `frame` as the calling thread's running frame and returns the one it replaces.
#[inline(always)]
fn replace_frame(frame: *const RunFrame) -> *const RunFrame {
    let outer = frame_slot::get();
    frame_slot::set(frame);
    outer
}

/// A scheduler's offer to run other ULTs on the stack of the running ULT instead of switching
/// back to the scheduler first (a direct hand-off).
///
/// With a plain asymmetric coroutine, a yield from A to B costs four switches: A to the
/// scheduler, the scheduler to B, and back the same way. If A itself resumes B (corosensei
/// records the parent at every `resume`, so a coroutine may resume another), B's next switch
/// returns straight into A: two switches per round trip. A scheduler that offers this
/// resumes a ULT with [`RawUlt::resume_offering`]; `yield_now`, `park` and `join` then call
/// [`Nest::on_yield`], [`Nest::on_park`] and [`Nest::on_join`] on the running ULT's own
/// stack. A `yield_now` runs the offer's [`Nest::queue`] itself, inline, as long as the
/// scheduler's countdown ([`Nest::inline_yields`]) lasts, and calls `on_yield` only when it
/// runs out: the common case then costs no indirect call.
///
/// Depth is bounded at one: the nested ULT runs without the offer, so it switches back to
/// its parent like any coroutine. The scheduler decides what runs; the running ULT only lends
/// its stack. Only single-threaded schedulers use this (the many-to-one executor): nested
/// ULTs then stay on their home thread by construction.
pub struct Nest {
    /// Runs the ULTs that are queued ahead of the caller, then returns.
    pub on_yield: fn(&Nest),
    /// Runs queued ULTs until `header`'s unpark token arrives (then consumes it and returns
    /// true) or nothing is left to run (returns false: the caller must really park).
    pub on_park: fn(&Nest, &Header) -> bool,
    /// Runs queued ULTs until the ULT `child` has finished (true) or nothing is left to run
    /// (false: the caller must wait for it the ordinary way). Only `JoinHandle::join` calls
    /// it, with its own ULT as `child`: `child`'s join handle is held, unused, by the lending
    /// ULT until the call returns (what [`RawUlt::resume_nested_joined`] needs).
    pub on_join: fn(&Nest, &Header) -> bool,
    /// The scheduler's own state, for the three functions above.
    pub data: *const (),
    /// The scheduler's run queue, from which `yield_now` may run the ULTs queued ahead of the
    /// caller itself, inline, instead of calling [`Nest::on_yield`] (null: always call it).
    /// The switch then sits in the caller's own frame: no indirect call, and no function
    /// whose prologue and epilogue save and restore the six registers a switch clobbers.
    /// Every ULT in it must be one that the scheduler could resume on this thread now.
    /// It must also be the queue that the running ULT's own scheduler would put a new ULT
    /// in: a spawn from the running ULT onto that scheduler pushes there directly
    /// (the crate-internal `spawn_queue`), without the scheduler's `spawn`.
    pub queue: *const RunQueue,
    /// A countdown that lets the scheduler do its periodic work (timers, remote wake-ups) on
    /// its own slow path without a test of its own on every yield: every `yield_now` with
    /// the offer decrements it and is served inline unless that brings it to zero; that one
    /// goes through [`Nest::on_yield`], which must set it to a nonzero value again (from
    /// zero, the next decrement would wrap). A decrement and a test of its result are one
    /// instruction and a branch on x86-64, where a test before the decrement took five.
    pub inline_yields: Cell<u32>,
}

/// The [`RunFrame`] of the ULT running on this kernel thread, or null (see [`frame_slot`]).
#[inline(always)]
fn current_frame() -> *const RunFrame {
    frame_slot::get()
}

/// The running ULT's frame as a reference, if a ULT runs on this thread.
#[inline(always)]
fn running_frame<'a>() -> Option<&'a RunFrame> {
    // SAFETY: the frame pointer is non-null only while its resumer is inside `switch_in` for
    // the ULT that runs now, and points at the frame in that call; callers use the reference
    // only from inside that ULT (before its next switch), while `switch_in` is on the
    // resumer's stack, so the frame outlives every use.
    unsafe { current_frame().as_ref() }
}

/// The handle of the ULT running on this kernel thread (the 'static never escapes the
/// running ULT; see [`running_frame`]).
#[inline(always)]
pub(crate) fn current_raw() -> Option<&'static RawUlt> {
    running_frame().map(|f| &*f.ult)
}

/// The header of the ULT running on this kernel thread.
#[inline]
pub(crate) fn current_header() -> Option<&'static Header> {
    current_raw().map(|r| &**r)
}

/// Whether the running ULT is being cancelled: its stack is unwinding because nothing will
/// resume it again (its runtime shut down while it was parked). A panic caught while this
/// holds is that forced unwind, and must be resumed (`std::panic::resume_unwind`), not
/// kept: code that catches panics inside a ULT on behalf of its caller (scoped ULTs) checks
/// this first. `false` outside a ULT.
pub fn current_is_cancelling() -> bool {
    current_header().is_some_and(Header::is_cancelling)
}

/// [`Header::cancel_state`]: the ULT is being cancelled.
const CANCELLING: u32 = 1;
/// [`Header::cancel_state`]: one open [`LeakIfCancelled`] guard.
const LEAK_GUARD: u32 = 2;

/// While alive, cancelling the running ULT leaks its stack and ULT-locals instead of
/// unwinding them (see [`RawUlt::cancel`]): for code that lends the ULT's stack to other ULTs
/// that may be cancelled after it, in any order (`lwp::scope`). Made by
/// [`leak_if_cancelled`]; must be dropped on the ULT that made it, which it cannot leave (it
/// is `!Send`, because it writes to its ULT's header; it has no tie to the kernel thread, so a
/// migratable ULT may hold it across switches).
#[must_use = "the stack is protected only while the guard lives"]
pub struct LeakIfCancelled {
    header: &'static Header,
    _not_send: PhantomData<*const ()>,
}

/// Protects the running ULT's stack from being unwound by a cancellation until the guard is
/// dropped; `None` outside a ULT (a kernel thread is never cancelled).
pub fn leak_if_cancelled() -> Option<LeakIfCancelled> {
    let header = current_header()?;
    let state = &header.cancel_state;
    state.set(state.get() + LEAK_GUARD);
    Some(LeakIfCancelled {
        header,
        _not_send: PhantomData,
    })
}

impl std::fmt::Debug for LeakIfCancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakIfCancelled")
            .field("ult", &self.header.id)
            .finish()
    }
}

impl Drop for LeakIfCancelled {
    fn drop(&mut self) {
        let state = &self.header.cancel_state;
        state.set(state.get() - LEAK_GUARD);
    }
}

/// A borrowed handle that wakes one ULT: a pointer to its header, with no reference count.
///
/// For wait lists on hot paths (channels), where an owned [`Unparker`] would cost two atomic
/// reference-count updates per wait. The price is the contract of [`UnparkRef::unpark`]: the
/// list must be done with the handle before the ULT can leave the wait it listed itself for.
#[derive(Clone, Copy, Debug)]
pub struct UnparkRef(*const Header);

// SAFETY: the pointer is only dereferenced by `unpark`, under its contract (the ULT, and so
// its header, is alive); `Header` is `Sync`.
unsafe impl Send for UnparkRef {}
// SAFETY: as above.
unsafe impl Sync for UnparkRef {}

impl UnparkRef {
    /// The running ULT's handle; `None` on a plain kernel thread.
    #[inline]
    pub fn current() -> Option<UnparkRef> {
        current_header().map(|h| UnparkRef(h as *const Header))
    }

    /// Makes the ULT's next (or current) `park` return, as [`Unparker::unpark`] does.
    ///
    /// # Safety
    /// The ULT must still exist when this is called and until it returns. A wait list meets
    /// this by making its waiter unable to leave the wait (and so to finish) until the
    /// notifier has returned from this call, e.g. by publishing the waiter's final token
    /// only afterwards.
    #[inline]
    pub unsafe fn unpark(self) {
        // SAFETY: the caller guarantees the header is alive for the duration of the call.
        unsafe { (*self.0).unpark() }
    }
}

/// Current ULT's guard page, for the overflow handler. Async-signal-safe: one TLS read.
pub(crate) fn current_guard() -> Option<(usize, usize, u64, usize, *const Header)> {
    let p = current_frame();
    // SAFETY: as in `running_frame`; the handler runs on the thread that runs the ULT.
    let f: &RunFrame = unsafe { p.as_ref()? };
    let h: &Header = &f.ult;
    Some((
        h.guard.0,
        h.guard.1,
        h.id.0,
        h.stack_size,
        h as *const Header,
    ))
}

/// Options for creating a ULT (see [`crate::Builder`]); the default is an unnamed,
/// non-migratable ULT on a [`stack::DEFAULT_STACK_SIZE`] stack.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Name shown by `current().name()` and in panic and overflow messages.
    pub name: Option<String>,
    /// Usable stack bytes.
    pub stack_size: usize,
    /// The spawner's promise that the ULT may be resumed on another kernel thread.
    pub migratable: bool,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            name: None,
            stack_size: stack::DEFAULT_STACK_SIZE,
            migratable: false,
        }
    }
}

/// Creates a ULT that will run `f` and report to `sched`. Returns the runnable handle (for
/// the scheduler) and the typed cell (for the join handle).
#[inline]
pub(crate) fn create<F, T>(spec: Spec, sched: SchedRef, f: F) -> io::Result<(RawUlt, CellRef<T>)>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // The overflow handler is installed by `UltStack::new`, before any guard page exists.
    let worker = workers::take(spec.stack_size)?;
    let guard = worker.guard_range();
    let stack_size = worker.stack_size();
    let cell: NonNull<UltCellF<T, F>> = cells::alloc(Layout::new::<UltCellF<T, F>>()).cast();
    #[cfg(test)]
    LIVE_CELLS.with(|n| n.set(n.get() + 1));
    // SAFETY: `cell` is a fresh allocation with the layout of `UltCellF<T, F>`.
    unsafe {
        cell.as_ptr().write(UltCellF {
            base: UltCell {
                header: Header {
                    // One for the scheduler's `RawUlt`, one for the join handle's `CellRef`.
                    life: Life::new(2),
                    drop_cell: drop_cell::<T, F>,
                    run: run_cell::<T, F>,
                    id: next_id(),
                    name: spec.name.map(Arc::from),
                    state: RunState::new(),
                    sched,
                    worker: UnsafeCell::new(Some(worker)),
                    yielder: Cell::new(ptr::null()),
                    locals: UnsafeCell::new(LocalMap::new()),
                    guard,
                    stack_size,
                    cancel_state: Cell::new(0),
                    migratable: spec.migratable,
                    home: AtomicUsize::new(usize::MAX),
                    join_waiter: UnsafeCell::new(None),
                    parked_self: UnsafeCell::new(None),
                    park_sp: Cell::new(0),
                    wake_hints: [Cell::new(0), Cell::new(0)],
                },
                result: UnsafeCell::new(None),
            },
            f: UnsafeCell::new(std::mem::ManuallyDrop::new(f)),
        })
    };
    let cell: NonNull<UltCell<T>> = cell.cast();
    Ok((RawUlt(cell.cast()), CellRef(cell)))
}

impl Header {
    /// Whether a scheduler is force-unwinding the ULT (see [`RawUlt::cancel`]).
    #[inline]
    fn is_cancelling(&self) -> bool {
        self.cancel_state.get() & CANCELLING != 0
    }

    /// The ULT's id.
    #[inline]
    pub fn id(&self) -> UltId {
        self.id
    }

    /// The ULT's name, if it was given one.
    #[inline]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Usable stack size in bytes.
    pub fn stack_size(&self) -> usize {
        self.stack_size
    }

    /// The scheduler that runs this ULT.
    #[inline]
    pub fn scheduler(&self) -> &SchedRef {
        &self.sched
    }

    /// Scheduler-defined home (e.g. an LWP index); `usize::MAX` until set.
    #[inline]
    pub fn home(&self) -> usize {
        self.home.load(Ordering::Relaxed)
    }

    /// Sets the scheduler-defined home. Only the scheduler that runs the ULT calls this.
    #[inline]
    pub fn set_home(&self, home: usize) {
        self.home.store(home, Ordering::Relaxed);
    }

    /// Whether the spawner allowed the ULT to move between kernel threads after it started
    /// (the `unsafe` [`crate::Builder::migratable`]).
    #[inline]
    pub fn is_migratable(&self) -> bool {
        self.migratable
    }

    /// Whether the ULT has ever run (then, unless migratable, it must stay on its home).
    #[inline]
    pub fn started(&self) -> bool {
        !self.yielder.get().is_null()
    }

    /// Whether a scheduler may resume this ULT on a kernel thread other than the one it last
    /// ran on: true before it first ran, or when its spawner opted in to migration.
    #[inline]
    pub fn may_migrate(&self) -> bool {
        self.migratable || !self.started()
    }

    /// Whether the ULT has finished.
    #[inline]
    pub fn is_finished(&self) -> bool {
        self.life.is_complete()
    }

    /// The unpark path (see [`crate::state`]). `this` is a handle to this same ULT.
    #[inline]
    pub(crate) fn unpark(&self) {
        if self.state.unpark() {
            // SAFETY: we won PARKED -> ACTIVE, which makes us the only party that may touch
            // `parked_self` (the scheduler stored it before publishing PARKED with release;
            // our CAS acquired it).
            let me = unsafe { (*self.parked_self.get()).take() };
            if let Some(me) = me {
                self.sched.wake(me);
            }
        }
    }

    /// Consumes the ULT's pending unpark token, if any (what `park` does before it suspends).
    /// Only the ULT itself, or a [`Nest`] running on its stack, calls this.
    #[inline]
    pub fn take_unpark_token(&self) -> bool {
        self.state.take_token()
    }

    /// Registers the joiner. Returns false if the ULT already completed (nothing registered).
    pub(crate) fn register_join_waiter(&self, waiter: Unparker) -> bool {
        // SAFETY: only the single JoinHandle writes here, and only before it sets JOIN_WAITER;
        // the completer reads it only after seeing JOIN_WAITER (acquire).
        unsafe { *self.join_waiter.get() = Some(waiter) };
        self.life.set_waiter()
    }

    /// Wakes the joiner registered by `register_join_waiter`; only after `complete_and_release`
    /// said so, while the caller still holds its reference.
    fn wake_join_waiter(&self) {
        // SAFETY: WAITER was set (acquired by `complete_and_release`), so the joiner finished
        // writing and will never touch the slot again.
        if let Some(w) = unsafe { (*self.join_waiter.get()).take() } {
            w.unpark();
        }
    }
}

impl<T> UltCell<T> {
    /// Takes the result. Only the join handle calls this, after `is_finished()` returned true.
    pub(crate) fn take_result(&self) -> Option<std::thread::Result<T>> {
        debug_assert!(self.header.is_finished());
        // SAFETY: JOIN_COMPLETE was observed with acquire, so the coroutine's write happened
        // before and it never touches the slot again; the join handle is the only reader.
        unsafe { (*self.result.get()).take() }
    }
}

/// Where a parked ULT's resume will read first ([`RawUlt::prefetch_targets`]): plain
/// addresses, never dereferenced, only prefetched.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrefetchTargets {
    header: usize,
    worker: usize,
    park_sp: usize,
    hints: [usize; 2],
}

impl PrefetchTargets {
    /// Starts fetching the lines: the header's first two, the worker coroutine's, the top of
    /// the parked stack and the wake hints (see [`RawUlt::prefetch`]). Never faults.
    #[inline]
    pub fn prefetch(&self) {
        if self.header != 0 {
            prefetch_line(self.header);
            prefetch_line(self.header + 64);
        }
        if self.worker != 0 {
            prefetch_line(self.worker);
        }
        let sp = self.park_sp;
        if sp != 0 {
            // The switch saves three words just below the parked frame's stack pointer; the
            // frames the resumed ULT returns through lie above it. Six lines: at 10,000 echo
            // connections the echo loop's buffer, which the next `recv` fills, starts 312
            // bytes above the park, past the frames of the socket wait.
            for offset in [-24isize, 40, 104, 168, 232, 296] {
                prefetch_line(sp.wrapping_add_signed(offset));
            }
        }
        for addr in self.hints {
            if addr != 0 {
                // A hint names 64 bytes, which may straddle two lines.
                prefetch_line(addr);
                prefetch_line(addr + 63);
            }
        }
    }
}

impl RawUlt {
    /// A hint that this ULT will be resumed soon on the calling kernel thread: starts fetching
    /// the cache lines a resume reads first (its worker coroutine and the top of its parked
    /// stack), so that those misses overlap with the caller's other work instead of stalling
    /// the resume one after another. Costs a few instructions and never faults (prefetches
    /// of any address are harmless). The LWP scheduler calls it for the ULT behind the one it
    /// is about to run, when its queue is long: at 10,000 echo connections these lines had
    /// gone cold by each ULT's turn.
    ///
    /// Only the scheduler that holds the runnable ULT (in its run queue) may call it.
    #[inline]
    pub fn prefetch(&self) {
        // The header is read here, so it is in the cache already.
        PrefetchTargets {
            header: 0,
            ..self.prefetch_targets()
        }
        .prefetch();
    }

    /// The addresses [`RawUlt::prefetch`] fetches, read now, for a scheduler that wants to
    /// fetch them later without holding the ULT then (a queue shared with thieves, where the
    /// ULT may have moved on by that time: prefetching a stale address is harmless).
    ///
    /// Only the scheduler that holds the runnable ULT may call it.
    #[inline]
    pub fn prefetch_targets(&self) -> PrefetchTargets {
        let header: &Header = self;
        // SAFETY: the caller holds the runnable ULT, so nobody runs or replaces its worker now.
        let worker = unsafe { (*header.worker.get()).as_ref() };
        PrefetchTargets {
            header: self.0.as_ptr() as usize,
            worker: worker.map_or(0, |w| w.inner_addr()),
            park_sp: header.park_sp.get(),
            hints: [header.wake_hints[0].get(), header.wake_hints[1].get()],
        }
    }

    /// Starts fetching the first cache line of the ULT's header: the stage before
    /// [`RawUlt::prefetch`] (which reads that line) in a scheduler's prefetch pipeline.
    #[inline]
    pub fn prefetch_header(&self) {
        let header = self.0.as_ptr() as usize;
        prefetch_line(header);
        // The wake hints.
        prefetch_line(header + 64);
    }

    /// Runs the ULT on the calling kernel thread until it yields, parks or finishes.
    ///
    /// Only the scheduler that took this ULT from a run queue may call this, and only on
    /// its home thread if `!self.may_migrate()`.
    #[inline]
    pub fn resume(self) -> Resumed {
        self.resume_then(|_| ())
    }

    /// Like [`RawUlt::resume`], and calls `after` with the ULT's header as soon as it has
    /// switched back, while the header is certainly alive (a scheduler uses this to report
    /// on the ULT that just ran).
    #[inline]
    pub fn resume_then(self, after: impl FnOnce(&Header)) -> Resumed {
        self.resume_with(ptr::null(), after)
    }

    /// Like [`RawUlt::resume`], with `nest` as the ULT's [`Nest`] offer for this run: while it
    /// runs, its `yield_now`, `park` and `join` may run the offer's ULTs on its stack.
    ///
    /// # Safety
    /// `resume`'s contract, and a non-null `nest` must stay valid until this call returns, and
    /// so must its non-null [`Nest::queue`], which must hold only ULTs that may be resumed on
    /// this thread (the scheduler lends its right to resume them to the ULT it runs) and be
    /// the queue its scheduler puts the ULTs that this one spawns in.
    #[inline]
    pub unsafe fn resume_offering(self, nest: *const Nest) -> Resumed {
        self.resume_with(nest, |_| ())
    }

    /// The body of [`RawUlt::resume_then`] and [`RawUlt::resume_offering`] (whose contract
    /// a non-null `nest` comes with).
    #[inline(always)]
    fn resume_with(self, nest: *const Nest, after: impl FnOnce(&Header)) -> Resumed {
        let outcome = self.switch_in(nest);
        let header: &Header = &self;
        after(header);
        match outcome {
            CoroutineResult::Yield(Switch::Yield) => Resumed::Runnable(self),
            CoroutineResult::Yield(Switch::Park) => self.after_park(),
            // A worker returns only when resumed with 0 while idle, never from here.
            CoroutineResult::Yield(Switch::Finished) | CoroutineResult::Return(()) => {
                self.after_return()
            }
        }
    }

    /// [`RawUlt::resume`] for a [`Nest`] handler: runs the ULT on the lending ULT's stack
    /// with the nest offer cleared, so its next switch comes straight back here, then gives
    /// the lender back its place as the running ULT.
    ///
    /// Meant for [`Nest`] handlers; the contract is `resume`'s: only the scheduler that took
    /// this ULT from a run queue may call this, and only on its home thread if
    /// `!self.may_migrate()`.
    ///
    /// Returns the ULT if it is still runnable (it yielded, or parked and was unparked at
    /// once): one nullable word, which the caller tests once, where a [`Resumed`] took two
    /// tests of its tag on the yield path.
    #[inline(always)]
    pub fn resume_nested(self) -> Option<RawUlt> {
        self.resume_nested_as::<false>()
    }

    /// [`RawUlt::resume_nested`] for the ULT that the lender waits for in [`Nest::on_join`]
    /// (its `child`). When the ULT finishes while its count holds only two references, the
    /// scheduler's (this one) and the lender's join handle, nobody else can touch the count
    /// (a reference is made only from another, and both are on this thread, the handle in a
    /// suspended frame), so completing is a plain store instead of a locked read-modify-write:
    /// the last locked instruction of a nested spawn and join.
    ///
    /// # Safety
    /// [`RawUlt::resume_nested`]'s contract, and `self` must be the `child` of the `on_join`
    /// call that runs this: its join handle is then held, unused, by the suspended lender
    /// until that call returns.
    #[inline(always)]
    pub unsafe fn resume_nested_joined(self) -> Option<RawUlt> {
        self.resume_nested_as::<true>()
    }

    /// The body of [`RawUlt::resume_nested`] and, with `JOINED`,
    /// [`RawUlt::resume_nested_joined`] (whose contract the caller then upholds).
    #[inline(always)]
    fn resume_nested_as<const JOINED: bool>(self) -> Option<RawUlt> {
        // Without the offer: its next switch comes back here, to the lender.
        let outcome = self.switch_in(ptr::null());
        self.after_nested::<JOINED>(outcome)
    }

    /// [`RawUlt::resume_nested`] through `memo`, a run queue's memo of the nested run of its
    /// front ULT ([`FrontRun`]): the frame to publish and the worker to resume. When the memo
    /// describes this ULT (its header, worker and yielder), the switch publishes the memo's
    /// frame and resumes the memo's worker; otherwise the memo is rewritten for this ULT
    /// first. Either way the result is the same as `resume_nested`'s; what changes is when
    /// the processor has the values. The memo's worker is one load from the run queue,
    /// while this ULT's own lies at the end of a chain of dependent loads (ring, slot,
    /// header, worker); the comparison is a branch that the processor predicts, so it
    /// switches on the memo's values at once and checks them against the chain's in the
    /// background. The frame is no longer built on the stack for every run: the nested ULT
    /// reads a frame that was last written when the memo changed, not one stored a moment
    /// before its switch.
    ///
    /// The memo may hold anything: its values are used only once they equal this ULT's.
    ///
    /// # Safety
    /// [`RawUlt::resume_nested`]'s contract, and nothing else may read or write `memo` until
    /// this call returns (a run queue's own, used only by its lender, which is suspended
    /// while the ULT runs).
    #[inline(always)]
    pub(crate) unsafe fn resume_nested_via(self, memo: &UnsafeCell<FrontRun>) -> Option<RawUlt> {
        let actual = self.switch_target();
        let memo = memo.get();
        // SAFETY: only this call reads or writes the memo while it runs (our contract), and
        // its frame is not published yet.
        let remembered = unsafe { (*memo).target() };
        let worker = if remembered == actual {
            // The memo's worker, not the chain's (equal, see `opaque`).
            opaque(remembered.worker)
        } else if actual.worker.is_null() {
            // Never for a runnable ULT; `switch_in` reports it.
            let outcome = self.switch_in(ptr::null());
            return self.after_nested::<false>(outcome);
        } else {
            // SAFETY: as above; nothing references the frame until `switch_in_frame`
            // publishes it.
            unsafe { (*memo).remember(actual) };
            actual.worker
        };
        // SAFETY: the memo now equals this ULT's target: its frame names this ULT and its
        // yielder with no offer, and `worker` is this ULT's worker with its provenance
        // (`Worker::as_ptr`); the caller may resume this ULT (the contract); the frame lives
        // in the caller's run queue, which outlives this call, and nothing writes it while
        // the ULT runs (only this call does, and it is suspended meanwhile).
        let outcome = unsafe { self.switch_in_frame(ptr::addr_of!((*memo).frame), worker) };
        self.after_nested::<false>(outcome)
    }

    /// What this ULT's nested resume switches with: its header, worker and yielder.
    #[inline(always)]
    fn switch_target(&self) -> SwitchTarget {
        let header: &Header = self;
        // SAFETY: the caller holds the runnable ULT, so nobody runs or replaces its worker
        // now (as in `prefetch_targets`); only the worker's address is read.
        let worker = unsafe { (*header.worker.get()).as_ref() };
        SwitchTarget {
            header: self.0.as_ptr(),
            worker: worker.map_or(ptr::null_mut(), |w| w.as_ptr()),
            yielder: header.yielder.get(),
        }
    }

    /// [`RawUlt::switch_in`] with `frame` as the published frame and `worker` as the worker.
    ///
    /// # Safety
    /// `frame` must describe a run of this ULT (its handle and yielder) and stay valid and
    /// unwritten, except through its cells, until this call returns; `worker` must be this
    /// ULT's worker, which the caller may use exclusively as in `switch_in` (it may resume
    /// this ULT).
    #[inline(always)]
    unsafe fn switch_in_frame(
        &self,
        frame: *const RunFrame,
        worker: *mut workers::Inner,
    ) -> CoroutineResult<Switch, ()> {
        let outer = replace_frame(frame);
        // SAFETY: the caller's contract; no reference to the worker is alive.
        let outcome = unsafe { workers::resume_at(worker, self.0.as_ptr() as usize) };
        frame_slot::set(outer);
        outcome
    }

    /// What a nested resume does once the ULT has switched back (see `resume_nested_as`).
    #[inline(always)]
    fn after_nested<const JOINED: bool>(
        self,
        outcome: CoroutineResult<Switch, ()>,
    ) -> Option<RawUlt> {
        match outcome {
            CoroutineResult::Yield(Switch::Yield) => Some(self),
            CoroutineResult::Yield(Switch::Park) => match self.after_park_outlined() {
                Resumed::Runnable(me) => Some(me),
                _ => None,
            },
            CoroutineResult::Yield(Switch::Finished) | CoroutineResult::Return(()) => {
                if JOINED {
                    self.after_return_joined();
                } else {
                    let _finished = self.after_return();
                }
                None
            }
        }
    }

    /// [`RawUlt::after_return`] for [`RawUlt::resume_nested_joined`], whose contract lets a
    /// count of exactly two references complete with a plain store.
    #[cold]
    fn after_return_joined(self) {
        let header: &Header = &self;
        // SAFETY: `resume_nested_joined`'s contract: besides this handle, only the lender's
        // join handle may exist, unused until the lender's `on_join` returns on this thread.
        if !unsafe { header.life.complete_if_only_joined() } {
            let _finished = self.after_return();
            return;
        }
        self.retire_worker();
        // The completion gave up this handle's reference; the join handle frees the cell.
        std::mem::forget(self);
    }

    /// Marks the finished ULT done and gives its worker back to this thread's pool.
    #[inline]
    fn retire_worker(&self) {
        let header: &Header = self;
        header.state.finish();
        // SAFETY: exclusive owner, as in `resume_then`; the ULT has finished.
        let worker = unsafe { (*header.worker.get()).take() };
        if let Some(mut worker) = worker {
            worker.finished();
            workers::give_back(worker);
        }
    }

    #[cold]
    fn after_return(self) -> Resumed {
        self.retire_worker();
        self.complete();
        Resumed::Finished
    }

    /// Marks the ULT complete for its join handle (waking a waiting joiner) and gives up this
    /// handle's reference, in the same atomic step.
    fn complete(self) {
        let this = std::mem::ManuallyDrop::new(self);
        match this.life.complete_and_release() {
            Completion::Released { last: false } => {}
            Completion::Released { last: true } => {
                // SAFETY: that was the last reference (the join handle was dropped).
                unsafe { free_cell(this.0) }
            }
            Completion::WakeWaiter => {
                this.wake_join_waiter();
                drop(std::mem::ManuallyDrop::into_inner(this));
            }
        }
    }

    /// Runs the ULT's worker until it switches back, with a [`RunFrame`] for it (the ULT,
    /// its yielder, `nest` as its offer) published as this thread's running frame meanwhile;
    /// the previous frame (the lender's, when nested; else null) is restored afterwards.
    #[inline(always)]
    fn switch_in(&self, nest: *const Nest) -> CoroutineResult<Switch, ()> {
        let header: &Header = self;
        let frame = RunFrame::new(self, header.yielder.get(), nest);
        let outer = replace_frame(&frame);
        // SAFETY: the run-state protocol gives the caller exclusive ownership of the
        // worker: it popped the ULT from a run queue, and a ULT is in at most one queue.
        let worker = unsafe { (*header.worker.get()).as_mut() }.expect("resumed a finished ULT");
        // The header's address starts a ULT on an idle worker (see `workers`); a started
        // ULT's own suspends ignore it.
        let outcome = worker.resume(header as *const Header as usize);
        // Looked up again rather than kept across the switch: a constant offset from the
        // thread pointer, cheaper than a register or a stack slot held through it.
        frame_slot::set(outer);
        outcome
    }

    /// [`RawUlt::after_park`] out of line, for paths where a yield is the common case.
    #[inline(never)]
    fn after_park_outlined(self) -> Resumed {
        self.after_park()
    }

    #[inline]
    fn after_park(self) -> Resumed {
        let header: *const Header = &*self;
        // SAFETY: we own the suspended ULT; nobody reads `parked_self` before the state is
        // PARKED, which `try_park` publishes (release) after this write.
        unsafe { *(*header).parked_self.get() = Some(self) };
        // SAFETY: the header is alive: its own `parked_self` holds a strong reference now.
        if unsafe { (*header).state.try_park() } {
            Resumed::Parked
        } else {
            // An unpark arrived between the ULT's token check and now: the token is consumed
            // and the ULT runs again (its park returns). The state never became PARKED, so
            // nobody else touched `parked_self`.
            // SAFETY: as above; still the exclusive owner.
            let me = unsafe { (*(*header).parked_self.get()).take() };
            match me {
                Some(me) => Resumed::Runnable(me),
                None => unreachable!("parked_self was just stored"),
            }
        }
    }

    /// Destroys a ULT that will never be resumed, unwinding its stack (running destructors)
    /// if it had started, unless a [`LeakIfCancelled`] guard is open on it (then its stack and
    /// ULT-locals are leaked). Its join handle then sees it finished without a result. Must be
    /// called on its home thread, like `resume`.
    pub fn cancel(self) {
        self.cancel_state.set(self.cancel_state.get() | CANCELLING);
        let header: &Header = &self;
        // Runs as this ULT (for `current()` in destructors), with nothing to switch to.
        let frame = RunFrame::new(&self, ptr::null(), ptr::null());
        let prev = replace_frame(&frame);
        // SAFETY: exclusive owner, as in `resume`.
        let worker = unsafe { (*header.worker.get()).take() };
        if header.cancel_state.get() >= LEAK_GUARD {
            // Other ULTs borrow from this one's stack or ULT-locals and may be cancelled
            // after it: unwinding would free what their destructors still touch. Leak both
            // (the stack stays mapped and counted); the ULT finishes without a result.
            std::mem::forget(worker);
            // SAFETY: exclusive owner, as in `resume`.
            std::mem::forget(unsafe { std::mem::take(&mut *header.locals.get()) });
            frame_slot::set(prev);
            header.state.finish();
            self.complete();
            return;
        }
        if let Some(worker) = worker {
            if header.started() {
                // Unwinds the ULT's frames on its worker (destructors run).
                let r = panic::catch_unwind(AssertUnwindSafe(move || worker.unwind()));
                drop(r);
            } else {
                // Never ran: the idle worker serves the next ULT.
                workers::give_back(worker);
            }
        }
        // The forced unwind skips the coroutine's epilogue, where ULT-locals are normally
        // dropped: drop them here, still as this ULT (they may hold its own unparker, a
        // cycle that would otherwise leak the header).
        // SAFETY: exclusive owner, as in `resume`; the coroutine is gone.
        let locals = unsafe { std::mem::take(&mut *header.locals.get()) };
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(locals)));
        frame_slot::set(prev);
        header.state.finish();
        // Its join handle sees it finished, without a result.
        self.complete();
    }

    /// Destroys the ULT if it is parked (see [`RawUlt::cancel`]); returns false, doing
    /// nothing, if it is not parked (it is queued, running or finished). Must be called on
    /// its home thread. Schedulers use this at shutdown for ULTs nobody will ever unpark.
    pub fn cancel_if_parked(&self) -> bool {
        if !self.state.try_cancel_parked() {
            return false;
        }
        // SAFETY: we won PARKED -> DONE: no unparker can take `parked_self` any more.
        let me = unsafe { (*self.parked_self.get()).take() };
        me.unwrap_or_else(|| self.clone()).cancel();
        true
    }

    /// A handle other code can use to wake this ULT.
    pub fn unparker(&self) -> Unparker {
        Unparker::for_ult(self.clone())
    }

    /// The address of the ULT's header, for a prefetch hint ([`prefetch_line`]).
    #[inline]
    pub fn header_addr(&self) -> usize {
        self.0.as_ptr() as usize
    }

    /// Whether two handles refer to the same ULT.
    pub fn ptr_eq(&self, other: &RawUlt) -> bool {
        self.0 == other.0
    }
}

impl Drop for Header {
    /// Inlined into the drop glue of the caller's crate (a call through the GOT otherwise):
    /// a finished ULT has no worker left, so the common case is one test.
    #[inline]
    fn drop(&mut self) {
        if self.worker.get_mut().is_some() {
            self.drop_worker();
        }
    }
}

impl Header {
    /// [`Header`]'s drop for a ULT that still holds a worker (it never finished).
    #[cold]
    #[inline(never)]
    fn drop_worker(&mut self) {
        if let Some(worker) = self.worker.get_mut().take() {
            if self.started() {
                // Dropped while suspended and not through `cancel`: we may be on a foreign
                // kernel thread, where unwinding its frames could touch the wrong thread's
                // locals. Leak the worker instead (documented in the crate root).
                worker.leak();
            } else {
                // Never ran: the worker is idle and serves this thread's next ULT.
                workers::give_back(worker);
            }
        }
    }
}

/// Lends the running ULT's stack to its scheduler until `child` finishes, if the scheduler
/// offers that ([`Nest`]); false if not, or if nothing was left to run first.
#[inline]
pub(crate) fn help_until_finished(child: &Header) -> bool {
    offered_nest().is_some_and(|nest| (nest.on_join)(nest, child))
}

/// Suspends the running ULT. Panics if called outside a ULT.
///
/// For `Switch::Park` the caller must already have checked for a pending token.
#[inline(always)]
pub(crate) fn suspend_current(header: &Header, why: Switch) {
    let y = header.yielder.get();
    debug_assert!(!y.is_null());
    // SAFETY: `header` is the running ULT (taken from this thread's frame), whose yielder
    // was set when it started and lives on its stack until it returns; we are inside it.
    unsafe { (*y).suspend(why) };
}

/// Prepares the calling kernel thread to run ULTs (its alternate signal stack, for the
/// overflow report; the panic hook that names ULTs, once per process). Every scheduler calls
/// this once per thread before its first `resume`.
pub fn prepare_thread() {
    crate::overflow::ensure_signal_stack();
    crate::panic_context::install();
}

/// The running ULT's yielder, its [`Nest`] offer and the offer's run queue (null outside a
/// ULT), read together since `yield_now` needs them all.
#[inline(always)]
fn switch_context() -> (*const UltYielder, *const Nest, *const RunQueue) {
    match running_frame() {
        Some(f) => (f.yielder.get(), f.nest.get(), f.queue),
        None => (ptr::null(), ptr::null(), ptr::null()),
    }
}

/// The running ULT's [`Nest`] offer, read afresh (null outside a ULT).
#[inline(always)]
fn current_nest() -> *const Nest {
    running_frame().map_or(ptr::null(), |f| f.nest.get())
}

/// The run queue of the [`Nest`] offer, if there is one with a queue: where a ULT that the
/// running ULT spawns onto its own scheduler goes ([`Nest::queue`]'s contract), one thread-local
/// read and a push instead of the scheduler's `spawn` (an indirect call that finds the
/// executor's thread-local state again and checks that it runs there).
#[inline]
pub(crate) fn spawn_queue<'a>() -> Option<&'a RunQueue> {
    // SAFETY: a non-null queue is valid while its offer is (`resume_offering`'s contract), and the
    // offer is valid while the caller uses it (see `offered_nest`), which is for one push.
    offered_nest().and_then(|nest| unsafe { nest.queue.as_ref() })
}

/// The [`Nest`] offer as a reference, if there is one.
#[inline]
fn offered_nest<'a>() -> Option<&'a Nest> {
    // SAFETY: a non-null offer is valid while the `resume_offering` call that made it runs
    // (its contract), and that call is suspended below the running ULT in this very call
    // chain, so it outlives the caller's use.
    unsafe { current_nest().as_ref() }
}

/// The calling frame's stack pointer (approximately, where no inline assembly is used).
#[inline(always)]
fn stack_pointer() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let sp: usize;
        // SAFETY: reads a register into a local; touches no memory and no flags.
        unsafe {
            std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
        };
        sp
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let here = 0u8;
        std::hint::black_box(&here) as *const u8 as usize
    }
}

/// Starts fetching the cache line at `addr` into all cache levels: a hint that never faults,
/// whatever the address (for schedulers and wait primitives that know what they will touch
/// next).
#[inline(always)]
pub fn prefetch_line(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` never faults, whatever the address; SSE is part of x86-64.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Yields the running ULT; false if the caller is not a ULT.
///
/// Always inlined, so the switch happens in the caller's own frame. corosensei enters a
/// coroutine with `call` and leaves it with `ret`; if the switch sat in a function of its own,
/// the `ret` out of that function after every resume (and the `ret` to the scheduler) would
/// pop the return-address predictor's entries in the wrong order: two mispredicted returns
/// per switch, most of a yield's cost. Inlined into a loop that yields, calls and returns
/// stay paired.
#[inline(always)]
pub(crate) fn yield_current() -> bool {
    let (y, nest, queue) = switch_context();
    // SAFETY: as in `offered_nest`.
    if let Some(nest) = unsafe { nest.as_ref() } {
        yield_lending(nest, queue);
        return true;
    }
    if y.is_null() {
        return false;
    }
    // SAFETY: the frame's yielder is non-null only while a started ULT runs on this thread,
    // and the caller is that ULT (a scheduler never calls yield_now between resumes: it
    // restores the frame pointer after each resume).
    unsafe { (*y).suspend(Switch::Yield) };
    true
}

/// `yield_now` of a ULT that its scheduler offered to nest: runs the ULTs queued ahead of
/// it on its stack, in order, then returns to it, inline while the scheduler's countdown
/// ([`Nest::inline_yields`]) lasts, else through [`Nest::on_yield`]. Always inlined, for the
/// reason given at [`yield_current`] and because a switch in a function of its own costs
/// that function a save and restore of six registers per call.
#[inline(always)]
fn yield_lending(nest: &Nest, queue: *const RunQueue) {
    let left = nest.inline_yields.get().wrapping_sub(1);
    nest.inline_yields.set(left);
    // SAFETY: `queue` is the offer's own (copied into the frame at the resume); a non-null
    // queue is valid while its offer is (`resume_offering`'s contract), and the offer is
    // valid while the caller uses it (see `offered_nest`).
    match unsafe { queue.as_ref() } {
        Some(queue) if left != 0 => {
            // The scheduler lent its right to resume the queue's ULTs on this thread
            // (`resume_offering`'s contract); each nested ULT switches straight back here.
            queue.resume_ahead_nested();
        }
        _ => (nest.on_yield)(nest),
    }
}

/// An unparker for the caller (as [`crate::unparker`]) that also records up to two addresses
/// (0 for none), each the start of 64 bytes that the running ULT will read first when it
/// wakes from its next park, outside its own stack: its scheduler may prefetch them while the
/// ULT ahead of it in the run queue runs ([`RawUlt::prefetch`]). The hints are only hints:
/// they change no behaviour, stay until the next such call (a stale hint costs a useless
/// prefetch), and outside a ULT there are none. For wait primitives whose wake-up reads heap
/// objects that go cold while many ULTs wait (the reactor names the socket's state and its
/// source); one look-up of the running ULT serves both purposes.
#[inline]
pub fn unparker_with_wake_hints(first: usize, second: usize) -> Unparker {
    match current_raw() {
        Some(me) => {
            me.wake_hints[0].set(first);
            me.wake_hints[1].set(second);
            me.unparker()
        }
        None => crate::unparker(),
    }
}

/// `park` for the running ULT: consume a token or suspend until unparked. Inlined for the
/// reason given at [`yield_current`].
#[inline(always)]
pub(crate) fn park_current(header: &Header) {
    if header.state.take_token() {
        return;
    }
    if offered_nest().is_some_and(|nest| (nest.on_park)(nest, header)) {
        return;
    }
    // Where the saved context will be, for `RawUlt::prefetch` at the wake-up.
    header.park_sp.set(stack_pointer());
    suspend_current(header, Switch::Park);
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<RawUlt>();
    let _ = |b: Box<dyn Any + Send>| b;
}

#[cfg(test)]
mod frame_slot_tests {
    use super::{current_frame, current_raw, frame_slot, replace_frame};
    use std::ptr;

    #[test]
    fn each_thread_has_its_own_running_frame_and_a_ult_reads_its_own_after_a_switch() {
        let threads: Vec<_> = (0..4usize)
            .map(|i| {
                std::thread::spawn(move || {
                    assert!(current_frame().is_null(), "zero-initialised");
                    // Distinct values per thread: a read of another thread's word shows.
                    // (Only compared, never dereferenced.)
                    let marker = ((i + 1) * 0x1000) as *const _;
                    assert!(replace_frame(marker).is_null());
                    for _ in 0..1000 {
                        std::thread::yield_now();
                        assert_eq!(current_frame(), marker);
                    }
                    assert_eq!(replace_frame(ptr::null()), marker);
                    assert!(current_raw().is_none());
                })
            })
            .collect();
        for t in threads {
            t.join().expect("each thread reads its own word");
        }
        assert!(current_frame().is_null());
        // Inside a ULT, where the executor sets the word; restored when it returns.
        crate::run(|| {
            let me = current_raw().map(|r| r.id());
            assert!(me.is_some());
            crate::yield_now();
            assert_eq!(
                current_raw().map(|r| r.id()),
                me,
                "the same ULT after a switch"
            );
        });
        assert!(current_frame().is_null());
        frame_slot::set(ptr::null());
    }
}
