//! The many-to-one executor: every ULT on one kernel thread, FIFO run queue.
//!
//! This is the lecture's pure user-level thread package. Switching between ULTs never
//! enters the kernel, and for the same reason one ULT in a blocking system call stops all of
//! them: the kernel sees one thread. [`run`] turns the calling kernel thread into the
//! executor for the duration of a closure.
//!
//! # Direct hand-off
//! A ULT that the event loop resumed may run the next ULTs on its own stack (see
//! [`raw::Nest`]): its `yield_now` runs the ULTs queued ahead of it and returns, its `park`
//! runs queued ULTs until its token arrives, and its `join` runs them until the child has
//! finished. Each nested ULT switches straight back into that loop, so a yield round trip
//! between two ULTs is two coroutine switches instead of four, and a spawn+join needs no
//! waiter, unpark or token. Order is unchanged (FIFO; the yielder goes to the back, a woken
//! ULT to the back). Only the event loop's ULT nests (depth one), and only while it runs;
//! when nothing is left to run, it suspends to the event loop, which parks it for real.
//! The price: the nested loop's frames (a few hundred bytes) live on the lending ULT's stack.
//!
//! Who may call what: the event loop, and the nested loops it lends out, are the only code
//! that resumes ULTs and touches the local run queue; ULTs spawn and wake through
//! [`Schedule`], except that a ULT running under the event loop's offer puts the ULTs it
//! spawns straight into the offer's queue, this executor's run queue ([`raw::spawn_queue`]):
//! 15 instructions fewer per pooled spawn+join (521.6 against 536.5, `PASSES=3 A=10000
//! scripts/count-instructions.sh spawnjoin`). The offer already stands for "this thread's
//! executor lends you its queue", so the push needs no second look-up of the executor.
//! Wake-ups from other kernel threads go to a mutex-protected inbox and unpark
//! the executor thread (no lost wake-up: the inbox is drained after every park, and
//! `Thread::unpark` keeps a token).
//!
//! When the root ULT returns, ULTs still queued are cancelled (their destructors run on this
//! thread); ULTs still parked are leaked unless something unparks them later, like threads
//! left running at process exit.

use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};

use crate::timer::TimerQueue;
use std::sync::Mutex;
use std::time::Instant;

use crate::raw::{self, Header, Nest, RawUlt, Resumed, RunQueue, SchedRef, Schedule, Spec};
use crate::{JoinHandle, Unparker};

/// State shared with other threads: the inbox of remote wake-ups.
///
/// Every ULT of the executor holds a tracked handle to it ([`SchedRef::tracked`]): counted
/// in `Local::handles` on the executor thread while it runs (no locked instruction) and in
/// `remote_handles` elsewhere. When the run ends with handles still out (a ULT parked
/// forever, a join handle that left `run`), the `Shared` is leaked with them, as those ULTs
/// are; otherwise it is freed.
struct Shared {
    id: u64,
    inbox: Mutex<Vec<RawUlt>>,
    inbox_nonempty: AtomicBool,
    thread: std::thread::Thread,
    /// Tracked handles made minus dropped away from the running executor's thread.
    remote_handles: AtomicIsize,
}

#[cfg(test)]
thread_local! {
    /// `Shared`s created on this thread and not yet freed (tests of the leak-or-free rule).
    static LIVE_SHARED: Cell<isize> = const { Cell::new(0) };
}

#[cfg(test)]
impl Drop for Shared {
    fn drop(&mut self) {
        LIVE_SHARED.with(|n| n.set(n.get() - 1));
    }
}

/// State only the executor thread touches.
struct Local {
    id: u64,
    queue: RunQueue,
    timers: RefCell<TimerQueue>,
    /// Tracked handles to `Shared` made minus dropped on this thread during the run.
    handles: Cell<isize>,
}

thread_local! {
    /// The executor running on this thread, or null: set by `try_run` for its duration
    /// (restored by `LocalGuard`, even on unwind), so the pointee outlives every use.
    static LOCAL: Cell<*const Local> = const { Cell::new(ptr::null()) };
}

/// Restores the previous `LOCAL` when `try_run` leaves.
struct LocalGuard(*const Local);

impl Drop for LocalGuard {
    fn drop(&mut self) {
        LOCAL.with(|l| l.set(self.0));
    }
}

static NEXT_EXECUTOR: AtomicU64 = AtomicU64::new(1);

/// Calls `f` with executor `id`'s local half if it runs on this thread.
#[inline]
fn with_local<R>(id: u64, f: impl FnOnce(&Local) -> R) -> Option<R> {
    let p = LOCAL.try_with(|l| l.get()).unwrap_or(ptr::null());
    // SAFETY: a non-null LOCAL points at the `Local` of the `try_run` running on this thread
    // (see the thread-local's comment), which outlives this call.
    match unsafe { p.as_ref() } {
        Some(local) if local.id == id => Some(f(local)),
        _ => None,
    }
}

impl Shared {
    #[inline]
    fn push(&self, ult: RawUlt) {
        // The local queue if this thread runs the executor, else the inbox.
        let mut ult = Some(ult);
        with_local(self.id, |l| {
            l.queue.push_back(ult.take().expect("taken once"))
        });
        if let Some(ult) = ult {
            self.push_remote(ult);
        }
    }

    /// A wake-up or spawn from another kernel thread: through the inbox.
    #[cold]
    fn push_remote(&self, ult: RawUlt) {
        {
            self.inbox
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(ult);
            // Release: pairs with the executor's acquire swap before draining.
            self.inbox_nonempty.store(true, Ordering::Release);
            self.thread.unpark();
        }
    }
}

impl Schedule for Shared {
    fn spawn(&self, ult: RawUlt) -> std::io::Result<()> {
        self.push(ult);
        Ok(())
    }

    fn wake(&self, ult: RawUlt) {
        self.push(ult);
    }

    fn add_timer(&self, deadline: Instant, unparker: Unparker) -> u64 {
        let mut unparker = Some(unparker);
        let key = with_local(self.id, |l| {
            let u = unparker.take().expect("taken once");
            l.timers.borrow_mut().insert(deadline, u)
        });
        match (key, unparker) {
            (Some(key), _) => key,
            // Not on the executor thread (cannot happen for this executor's own ULTs).
            (None, Some(u)) => {
                crate::timer::fallback_timer(deadline, u);
                0
            }
            (None, None) => 0,
        }
    }

    fn cancel_timer(&self, key: u64) {
        with_local(self.id, |l| l.timers.borrow_mut().cancel(key));
    }

    #[inline]
    fn retain_handle(&self) {
        if with_local(self.id, |l| l.handles.set(l.handles.get() + 1)).is_none() {
            self.remote_handles.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[inline]
    fn release_handle(&self) {
        if with_local(self.id, |l| l.handles.set(l.handles.get() - 1)).is_none() {
            // Release: this handle's uses of `self` happen before the check in `try_run`
            // that may free it (acquire).
            self.remote_handles.fetch_sub(1, Ordering::Release);
        }
    }
}

/// Runs `f` as the first ULT of a many-to-one executor on the calling kernel thread and
/// returns its result once it finishes. Other ULTs spawned meanwhile share this thread.
/// A panic in `f` is resumed on the caller, as with `std::thread::scope`.
///
/// ```
/// let sum = ult::run(|| {
///     let handles: Vec<_> = (0..10u64).map(|i| ult::spawn(move || i * i)).collect();
///     handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
/// });
/// assert_eq!(sum, 285);
/// ```
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match try_run(crate::Builder::new().name("main".into()), f) {
        Ok(Ok(v)) => v,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(e) => panic!("ult::run: cannot start the root ULT: {e}"),
    }
}

/// Like [`run`], with the root ULT configured by `builder`; returns the root's result as
/// `join` would, or an error if it could not be spawned.
pub fn try_run<F, T>(builder: crate::Builder, f: F) -> std::io::Result<std::thread::Result<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if raw::current_header().is_some() {
        return Err(std::io::Error::other(
            "ult::run called from inside a ULT: nested executors would block the outer one",
        ));
    }
    let id = NEXT_EXECUTOR.fetch_add(1, Ordering::Relaxed);
    let shared = Box::new(Shared {
        id,
        inbox: Mutex::new(Vec::new()),
        inbox_nonempty: AtomicBool::new(false),
        thread: std::thread::current(),
        remote_handles: AtomicIsize::new(0),
    });
    #[cfg(test)]
    LIVE_SHARED.with(|n| n.set(n.get() + 1));
    let local = Local {
        id,
        queue: RunQueue::default(),
        timers: RefCell::new(TimerQueue::default()),
        handles: Cell::new(0),
    };
    crate::raw::prepare_thread();
    // Declared after `local`, so it is dropped (restoring LOCAL) before `local` is.
    let _restore = LocalGuard(LOCAL.with(|l| l.replace(&local as *const Local)));
    // SAFETY: `shared` is boxed (it does not move) and freed below only when no tracked
    // handle to it is left; otherwise it is leaked.
    let sched = unsafe { SchedRef::tracked(&*shared) };
    let spawned = builder.spawn_with_ref(sched, f);
    let result = spawned.map(|(raw, root)| {
        shared.push(raw);
        event_loop(&shared, &local, &root);
        // Cancel what is still queued, on this thread (their home).
        loop {
            let next = local.queue.pop_front();
            match next {
                Some(u) => u.cancel(),
                None => break,
            }
        }
        root.join()
    });
    // Still inside the run (LOCAL is set), so every handle made or dropped on this thread
    // so far is in `local.handles`. Acquire: pairs with the release in `release_handle`.
    let live = local.handles.get() + shared.remote_handles.load(Ordering::Acquire);
    if live == 0 {
        drop(shared);
    } else {
        // Parked or escaped ULTs still point at it (and may use it, say, to be woken).
        Box::leak(shared);
    }
    result
}

/// Timers are checked every this many resumes (and whenever the queue runs dry), so a busy
/// queue does not pay for a clock read per switch.
const TIMER_CHECK_INTERVAL: u32 = 61;

/// What the nested runs (see [`raw::Nest`]) and the event loop share: the executor's two
/// halves and the timer tick.
struct NestCtx<'a> {
    shared: &'a Shared,
    local: &'a Local,
    /// The countdown to the next poll: the offer's [`Nest::inline_yields`], which the
    /// lender's inline yields count down too (they poll nothing; the yield that brings it to
    /// zero comes here through `on_yield`). Between calls it is never zero.
    tick: &'a Cell<u32>,
}

impl NestCtx<'_> {
    /// Moves remote wake-ups into the queue and fires due timers.
    #[cold]
    fn poll_now(&self) {
        self.tick.set(TIMER_CHECK_INTERVAL);
        if self.shared.inbox_nonempty.load(Ordering::Relaxed) {
            drain_inbox(self.shared, self.local);
        }
        fire_timers(self.local);
    }

    /// [`NestCtx::poll_now`] every [`TIMER_CHECK_INTERVAL`] calls: a countdown, one
    /// decrement and a test for zero on the switch path. Remote wake-ups wait at most that
    /// many switches while the queue is busy (the event loop drains the inbox at once when
    /// the queue runs dry).
    #[inline]
    fn poll(&self) {
        let left = self.tick.get().wrapping_sub(1);
        self.tick.set(left);
        if left == 0 {
            self.poll_now();
        }
    }

    #[inline]
    fn pop(&self) -> Option<RawUlt> {
        self.local.queue.pop_front()
    }

    /// Resumes `ult` with `offer` as its [`Nest`] offer for this run, and queues `ult` again
    /// if it is still runnable.
    ///
    /// # Safety
    /// `offer` must be null or valid until this call returns.
    #[inline]
    unsafe fn resume_offering(&self, ult: RawUlt, offer: *const Nest) {
        // SAFETY: the caller guarantees `offer`; its queue is this executor's run queue,
        // which holds only this thread's ULTs and is where its ULTs' spawns go.
        let outcome = unsafe { ult.resume_offering(offer) };
        if let Resumed::Runnable(ult) = outcome {
            self.local.queue.push_back(ult);
        }
    }

    /// Resumes `ult` on the running ULT's stack, without the offer to nest further: its next
    /// switch comes straight back here.
    #[inline]
    fn run_nested(&self, ult: RawUlt) {
        if let Some(ult) = ult.resume_nested() {
            self.local.queue.push_back(ult);
        }
    }
}

/// `yield_now` of a ULT the event loop resumed: run, on its stack, the ULTs queued ahead of
/// it (FIFO order, as if it had gone to the back of the queue), then return to it. The
/// lender's `yield_now` does the same inline (see [`Nest::queue`]) and comes here only when
/// the countdown to the next poll has run out.
fn nested_yield(nest: &Nest) {
    // SAFETY: `data` is the event loop's `NestCtx`, alive while the loop runs.
    let ctx = unsafe { &*(nest.data as *const NestCtx<'_>) };
    // The lender's inline yields counted the countdown down to zero: poll (the countdown
    // restarts), then run what is ahead. One poll per `TIMER_CHECK_INTERVAL` of the
    // caller's yields, however many ULTs run before each returns.
    ctx.poll_now();
    ctx.local.queue.resume_ahead_nested();
}

/// Runs queued ULTs on the lending ULT's stack until `done()` (true) or until nothing is
/// runnable (false). The ULT whose header is `joined` runs through
/// [`RawUlt::resume_nested_joined`] (null: none).
///
/// # Safety
/// A non-null `joined` must be the `child` of the [`Nest::on_join`] call that runs this.
#[inline]
unsafe fn run_until(nest: &Nest, joined: *const Header, mut done: impl FnMut() -> bool) -> bool {
    // SAFETY: as in `nested_yield`.
    let ctx = unsafe { &*(nest.data as *const NestCtx<'_>) };
    loop {
        ctx.poll();
        match ctx.pop() {
            Some(ult) if ult.header_addr() == joined as usize => {
                // SAFETY: `ult` is the `on_join` call's `child` (our contract), whose join
                // handle the lender holds until that call returns; the rest is
                // `run_nested`'s.
                if let Some(ult) = unsafe { ult.resume_nested_joined() } {
                    ctx.local.queue.push_back(ult);
                }
            }
            Some(ult) => ctx.run_nested(ult),
            None => return false,
        }
        if done() {
            return true;
        }
    }
}

/// `join` of a ULT the event loop resumed: run queued ULTs on its stack until `child` has
/// finished (true), or until nothing is runnable (false: the caller registers as the child's
/// waiter and parks). A join that helps this way needs no waiter, no unpark and no token.
fn nested_join(nest: &Nest, child: &Header) -> bool {
    // SAFETY: `child` is this `on_join` call's own argument.
    unsafe { run_until(nest, child, || child.is_finished()) }
}

/// `park` of a ULT the event loop resumed: run queued ULTs on its stack until its unpark
/// token arrives (true: `park` returns), or until nothing is runnable (false: it suspends to
/// the event loop, which parks it for real and waits).
fn nested_park(nest: &Nest, header: &Header) -> bool {
    // SAFETY: no joined child (null).
    unsafe { run_until(nest, ptr::null(), || header.take_unpark_token()) }
}

fn event_loop<T>(shared: &Shared, local: &Local, root: &JoinHandle<T>) {
    let mut nest = Nest {
        on_yield: nested_yield,
        on_park: nested_park,
        on_join: nested_join,
        // Set to `ctx` below, which borrows the countdown from the offer.
        data: ptr::null(),
        queue: &local.queue,
        inline_yields: Cell::new(TIMER_CHECK_INTERVAL),
    };
    let ctx = NestCtx {
        shared,
        local,
        tick: &nest.inline_yields,
    };
    nest.data = &ctx as *const NestCtx<'_> as *const ();
    loop {
        if shared.inbox_nonempty.load(Ordering::Relaxed) {
            drain_inbox(shared, local);
        }
        ctx.poll();
        if let Some(ult) = ctx.pop() {
            // The offer is set only around this resume, so code that runs on the executor
            // thread outside a ULT (or a ULT being cancelled) never nests.
            // SAFETY: `nest` lives until this function returns.
            unsafe { ctx.resume_offering(ult, &nest) };
            continue;
        }
        fire_timers(local);
        if !local.queue.is_empty() {
            continue;
        }
        if root.is_finished() {
            return;
        }
        // Idle: wait for a remote wake-up or the next timer.
        match next_deadline(local) {
            Some(deadline) => {
                let now = Instant::now();
                if deadline > now {
                    std::thread::park_timeout(deadline - now);
                }
            }
            None => std::thread::park(),
        }
    }
}

fn drain_inbox(shared: &Shared, local: &Local) {
    // Acquire: pairs with the release store in `Shared::push`.
    shared.inbox_nonempty.swap(false, Ordering::Acquire);
    let batch = std::mem::take(&mut *shared.inbox.lock().unwrap_or_else(|e| e.into_inner()));
    local.queue.extend(batch);
}

fn next_deadline(local: &Local) -> Option<Instant> {
    local.timers.borrow_mut().next_deadline()
}

fn fire_timers(local: &Local) {
    if local.timers.borrow().is_empty() {
        return;
    }
    // Unparking pushes to the run queue, a different RefCell from the timers.
    let now = Instant::now();
    local.timers.borrow_mut().fire_due(now);
}

/// Spawns on the executor of the running ULT.
pub(crate) fn spawn_here<F, T>(spec: Spec, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let Some(current) = raw::current_header() else {
        return Err(std::io::Error::other(
            "no ULT executor on this thread: call ult::spawn from inside ult::run \
             (or use lwp::spawn, which starts a runtime on demand)",
        ));
    };
    let (raw, cell) = raw::create(spec, current.scheduler().clone(), f)?;
    // Under the event loop's offer (this executor's ULTs only), straight into its queue.
    match raw::spawn_queue() {
        Some(queue) => queue.push_back(raw),
        None => current.scheduler().spawn(raw)?,
    }
    Ok(JoinHandle::new(cell))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    fn live_shared() -> isize {
        super::LIVE_SHARED.with(|n| n.get())
    }

    #[test]
    fn a_run_whose_ults_are_all_gone_frees_its_shared_state() {
        let before = live_shared();
        let sum = crate::run(|| {
            let handles: Vec<_> = (0..50u64).map(|i| crate::spawn(move || i)).collect();
            crate::yield_now();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        assert_eq!(sum, 1225);
        // A spawn that fails (bad name) drops its handle again.
        assert!(crate::try_run(crate::Builder::new().name("a\0b".into()), || ()).is_err());
        assert_eq!(live_shared(), before);
    }

    #[test]
    fn a_join_handle_that_leaves_run_keeps_the_shared_state_alive() {
        let before = live_shared();
        // The event loop runs the queue dry before it looks at the root, so the child ran.
        let handle = crate::run(|| crate::spawn(|| 7));
        assert_eq!(live_shared(), before + 1, "leaked while the handle lives");
        assert!(handle.is_finished());
        assert_eq!(handle.join().unwrap(), 7);
    }

    #[test]
    fn a_ult_parked_past_the_end_of_run_can_still_be_unparked_from_another_thread() {
        let (tx, rx) = std::sync::mpsc::channel();
        crate::run(move || {
            crate::spawn(move || {
                tx.send(crate::unparker()).unwrap();
                crate::park();
                unreachable!("its executor is gone; nothing resumes it");
            });
            crate::yield_now();
        });
        let unparker = rx.recv().unwrap();
        // Goes to the leaked executor's inbox; nobody drains it, nothing breaks.
        std::thread::spawn(move || unparker.unpark())
            .join()
            .unwrap();
    }

    fn live_cells() -> isize {
        crate::raw::LIVE_CELLS.with(|n| n.get())
    }

    #[test]
    fn a_nested_join_frees_the_child_once_whether_or_not_others_hold_it() {
        crate::run(|| {
            let before = live_cells();
            // Only the join handle and the queue hold the child: the plain-store completion.
            for i in 0..100u64 {
                let h = crate::spawn(move || format!("child {i}"));
                assert_eq!(h.join().unwrap(), format!("child {i}"));
            }
            assert_eq!(live_cells(), before);
            // A third reference (a `Ult` handle) takes the locked completion; the cell lives
            // until that handle goes too.
            let h = crate::spawn(|| 5);
            let extra = h.ult();
            assert_eq!(h.join().unwrap(), 5);
            assert_eq!(live_cells(), before + 1);
            drop(extra);
            assert_eq!(live_cells(), before);
            // A child that yields and parks while joined, behind another queued ULT.
            let unparker = Arc::new(std::sync::Mutex::new(None));
            let slot = unparker.clone();
            let first = crate::spawn(crate::yield_now);
            let h = crate::spawn(move || {
                crate::yield_now();
                crate::park();
                9
            });
            let waker = crate::spawn(move || {
                crate::yield_now();
                crate::yield_now();
                let taken = slot.lock().unwrap().take();
                taken.map(|u: crate::Unparker| u.unpark())
            });
            *unparker.lock().unwrap() = Some(h.ult().unparker());
            assert_eq!(h.join().unwrap(), 9);
            first.join().unwrap();
            assert!(
                waker.join().unwrap().is_some(),
                "the waker found the unparker"
            );
            assert_eq!(live_cells(), before);
        });
    }

    /// A shared log of events and a cloneable closure that appends one to it.
    fn event_log() -> (
        Arc<std::sync::Mutex<Vec<&'static str>>>,
        impl Fn(&'static str) + Clone + Send + 'static,
    ) {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let note = {
            let log = log.clone();
            move |what: &'static str| log.lock().unwrap().push(what)
        };
        (log, note)
    }

    #[test]
    fn ults_that_spawn_park_or_finish_while_run_in_place_keep_fifo_order() {
        crate::run(|| {
            let before = live_cells();
            let (log, note) = event_log();
            let b = crate::spawn({
                let note = note.clone();
                move || {
                    note("B1");
                    // Queued behind B while B runs at the front of the queue.
                    let note_c = note.clone();
                    drop(crate::spawn(move || {
                        note_c("C1");
                        crate::yield_now();
                        note_c("C2");
                    }));
                    crate::yield_now();
                    note("B2");
                    crate::park();
                    note("B3");
                }
            });
            let b_unparker = b.ult().unparker();
            crate::yield_now();
            note("R1");
            crate::yield_now();
            note("R2");
            b_unparker.unpark();
            crate::yield_now();
            note("R3");
            // What a FIFO queue gives, with each yielder going to the back.
            assert_eq!(
                *log.lock().unwrap(),
                ["B1", "R1", "C1", "B2", "R2", "C2", "B3", "R3"]
            );
            assert!(b.is_finished());
            b.join().unwrap();
            drop(b_unparker);
            assert_eq!(live_cells(), before, "each ULT freed once");
        });
    }

    #[test]
    fn spawns_straight_into_the_queue_and_wake_ups_keep_one_fifo_order() {
        crate::run(|| {
            let (log, note) = event_log();
            let parked = crate::spawn({
                let note = note.clone();
                move || {
                    crate::park();
                    note("woken");
                }
            });
            // Runs the parked ULT up to its park.
            crate::yield_now();
            let first = crate::spawn({
                let note = note.clone();
                move || note("first spawn")
            });
            parked.ult().unparker().unpark();
            let second = crate::spawn({
                let note = note.clone();
                move || note("second spawn")
            });
            // The spawns went in through the offer's queue, the wake-up through the
            // scheduler: one queue, in the order they happened.
            crate::yield_now();
            assert_eq!(
                *log.lock().unwrap(),
                ["first spawn", "woken", "second spawn"]
            );
            for h in [first, second, parked] {
                h.join().unwrap();
            }
        });
    }

    #[test]
    fn a_nested_join_completes_while_another_thread_drops_its_handle() {
        crate::run(|| {
            for i in 0..200u32 {
                let h = crate::spawn(move || i);
                let extra = h.ult();
                // The other thread drops its reference at about the time the child completes.
                let t = std::thread::spawn(move || drop(extra));
                if i % 2 == 0 {
                    crate::yield_now();
                }
                assert_eq!(h.join().unwrap(), i);
                t.join().unwrap();
            }
        });
    }
}
