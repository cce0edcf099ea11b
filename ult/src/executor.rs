//! The many-to-one executor: every ULT on one kernel thread, FIFO run queue.
//!
//! This is the lecture's pure user-level thread package. Switching between ULTs never
//! enters the kernel, and for the same reason one ULT in a blocking system call stops all of
//! them: the kernel sees one thread. [`run`] turns the calling kernel thread into the
//! executor for the duration of a closure.
//!
//! Who may call what: the executor loop is the only code that resumes ULTs and touches the
//! local run queue; ULTs spawn and wake through [`Schedule`]. Wake-ups from other kernel
//! threads go to a mutex-protected inbox and unpark the executor thread (no lost wake-up:
//! the inbox is drained after every park, and `Thread::unpark` keeps a token).
//!
//! When the root ULT returns, ULTs still queued are cancelled (their destructors run on this
//! thread); ULTs still parked are leaked unless something unparks them later, like threads
//! left running at process exit.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::timer::TimerQueue;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::raw::{self, RawUlt, Resumed, Schedule, Spec};
use crate::{JoinHandle, Unparker};

/// State shared with other threads: the inbox of remote wake-ups.
struct Shared {
    id: u64,
    inbox: Mutex<Vec<RawUlt>>,
    inbox_nonempty: AtomicBool,
    thread: std::thread::Thread,
}

/// State only the executor thread touches.
struct Local {
    id: u64,
    queue: RefCell<VecDeque<RawUlt>>,
    timers: RefCell<TimerQueue>,
}

thread_local! {
    static LOCAL: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
}

static NEXT_EXECUTOR: AtomicU64 = AtomicU64::new(1);

fn with_local<R>(id: u64, f: impl FnOnce(&Local) -> R) -> Option<R> {
    LOCAL
        .try_with(|l| match l.borrow().as_ref() {
            Some(local) if local.id == id => Some(f(local)),
            _ => None,
        })
        .ok()
        .flatten()
}

impl Shared {
    fn push(&self, ult: RawUlt) {
        let mut ult = Some(ult);
        with_local(self.id, |l| {
            if let Some(u) = ult.take() {
                l.queue.borrow_mut().push_back(u);
            }
        });
        if let Some(ult) = ult {
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
    let shared = Arc::new(Shared {
        id,
        inbox: Mutex::new(Vec::new()),
        inbox_nonempty: AtomicBool::new(false),
        thread: std::thread::current(),
    });
    let local = Rc::new(Local {
        id,
        queue: RefCell::new(VecDeque::new()),
        timers: RefCell::new(TimerQueue::default()),
    });
    crate::raw::prepare_thread();
    let previous = LOCAL.with(|l| l.replace(Some(local.clone())));
    let sched: Arc<dyn Schedule> = shared.clone();
    let root = builder.spawn_with(sched, f).map(|(raw, handle)| {
        shared.push(raw);
        handle
    });
    let root = match root {
        Ok(h) => h,
        Err(e) => {
            LOCAL.with(|l| *l.borrow_mut() = previous);
            return Err(e);
        }
    };
    event_loop(&shared, &local, &root);
    // Cancel what is still queued, on this thread (their home).
    loop {
        let next = local.queue.borrow_mut().pop_front();
        match next {
            Some(u) => u.cancel(),
            None => break,
        }
    }
    LOCAL.with(|l| *l.borrow_mut() = previous);
    Ok(root.join())
}

/// Timers are checked every this many resumes (and whenever the queue runs dry), so a busy
/// queue does not pay for a clock read per switch.
const TIMER_CHECK_INTERVAL: u32 = 61;

fn event_loop<T>(shared: &Shared, local: &Local, root: &JoinHandle<T>) {
    let mut tick: u32 = 0;
    loop {
        if shared.inbox_nonempty.load(Ordering::Relaxed) {
            drain_inbox(shared, local);
        }
        tick = tick.wrapping_add(1);
        if tick.is_multiple_of(TIMER_CHECK_INTERVAL) {
            fire_timers(local);
        }
        let next = local.queue.borrow_mut().pop_front();
        if let Some(ult) = next {
            if let Resumed::Runnable(ult) = ult.resume() {
                local.queue.borrow_mut().push_back(ult);
            }
            continue;
        }
        fire_timers(local);
        if !local.queue.borrow().is_empty() {
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
    local.queue.borrow_mut().extend(batch);
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
    current.scheduler().spawn(raw)?;
    Ok(JoinHandle::new(cell))
}
