//! The one-to-one model: every ULT gets a kernel thread of its own.
//!
//! The same ULTs, API and primitives as the other models, but each ULT runs on a dedicated
//! kernel thread that does nothing else: `yield_now` becomes `sched_yield`, and a parked ULT
//! parks its thread in the kernel. This is the lecture's "kernel threads" model, kept behind
//! the common API so that every experiment can run unchanged under it and show its costs
//! (a kernel thread per spawn, a futex wake per unpark) and its benefit (a blocking call
//! blocks only its own thread).
//!
//! A ULT's `home` is the address of its [`Dedicated`] slot, which its thread keeps alive
//! until the ULT is done; wakes (which only happen to parked, hence unfinished, ULTs) use it
//! to reach the right thread. At shutdown each thread destroys its ULT if it is parked
//! (`RawUlt::cancel_if_parked`, racing safely with late unparkers) and exits, so no kernel
//! thread is leaked; a ULT that is running keeps its thread until it returns.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::{JoinHandle, Thread};
use std::time::Instant;

use ult::raw::{RawUlt, Resumed, Schedule};
use ult::timer::TimerQueue;
use ult::Unparker;

use crate::metrics::{nanos, MetricsSnapshot, SharedCounters, Timeline};
use crate::reactor::Reactor;

/// The mailbox and kernel thread of one ULT.
struct Dedicated {
    mailbox: Mutex<Option<RawUlt>>,
    thread: Thread,
}

/// Runtime-wide state of the one-to-one model.
pub(crate) struct OneToOne {
    name: String,
    counters: SharedCounters,
    shutdown: AtomicBool,
    origin: Instant,
    record_timeline: bool,
    timelines: Mutex<Vec<Vec<(u64, u64)>>>,
    live: Mutex<Vec<(Weak<Dedicated>, JoinHandle<()>)>>,
    this: Weak<OneToOne>,
    next_thread: AtomicU64,
    reactor: Arc<Reactor>,
    reactor_thread: Mutex<Option<JoinHandle<()>>>,
}

thread_local! {
    static TIMERS: RefCell<TimerQueue> = RefCell::new(TimerQueue::default());
}

impl OneToOne {
    pub(crate) fn new(name: String, record_timeline: bool) -> io::Result<Arc<OneToOne>> {
        let reactor = Reactor::new(crate::reactor::new_group())?;
        let rt = Arc::new_cyclic(|this| OneToOne {
            reactor: reactor.clone(),
            reactor_thread: Mutex::new(None),
            name,
            counters: SharedCounters::default(),
            shutdown: AtomicBool::new(false),
            origin: Instant::now(),
            record_timeline,
            timelines: Mutex::new(Vec::new()),
            live: Mutex::new(Vec::new()),
            this: this.clone(),
            next_thread: AtomicU64::new(0),
        });
        // Under one-to-one a dedicated thread blocks in the reactor.
        let weak = Arc::downgrade(&rt);
        let handle = std::thread::Builder::new()
            .name(format!("{}-reactor", rt.name))
            .stack_size(128 * 1024)
            .spawn(move || loop {
                let Some(rt) = weak.upgrade() else { return };
                if rt.shutdown.load(Ordering::SeqCst) {
                    return;
                }
                let reactor = rt.reactor.clone();
                drop(rt);
                reactor.poll(Some(std::time::Duration::from_millis(100)));
            })?;
        *rt.reactor_thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(rt)
    }

    pub(crate) fn metrics(&self) -> MetricsSnapshot {
        let mut m = MetricsSnapshot::default();
        m.add_shared(&self.counters);
        m
    }

    pub(crate) fn timeline(&self) -> Option<Timeline> {
        self.record_timeline.then(|| Timeline {
            lwps: self
                .timelines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            window_ns: nanos(self.origin.elapsed()),
        })
    }

    pub(crate) fn shut_down(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.reactor.notify();
        if let Some(h) = self
            .reactor_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
        let live = std::mem::take(&mut *self.live.lock().unwrap_or_else(|e| e.into_inner()));
        let me = std::thread::current().id();
        for (slot, handle) in live {
            if let Some(slot) = slot.upgrade() {
                slot.thread.unpark();
            }
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }

    fn run_dedicated(self: Arc<Self>, slot: Arc<Dedicated>, first: RawUlt) {
        ult::raw::prepare_thread();
        Reactor::set_current(Some(self.reactor.clone()));
        let own = first.clone();
        let mut busy_since = self.record_timeline.then(|| nanos(self.origin.elapsed()));
        let mut intervals = Vec::new();
        let mut next = Some(first);
        loop {
            let ult = match next.take() {
                Some(u) => u,
                None => {
                    if let Some(s) = busy_since.take() {
                        intervals.push((s, nanos(self.origin.elapsed())));
                    }
                    let woken = self.wait(&slot, &own);
                    if self.record_timeline {
                        busy_since = Some(nanos(self.origin.elapsed()));
                    }
                    match woken {
                        Some(u) => u,
                        None => break, // shut down while parked: the ULT was cancelled
                    }
                }
            };
            self.counters.extra_switches.fetch_add(1, Ordering::Relaxed);
            match ult.resume() {
                Resumed::Runnable(u) => {
                    std::thread::yield_now();
                    next = Some(u);
                }
                Resumed::Parked => {
                    self.counters.extra_parks.fetch_add(1, Ordering::Relaxed);
                }
                Resumed::Finished => break,
            }
        }
        if let Some(s) = busy_since {
            intervals.push((s, nanos(self.origin.elapsed())));
        }
        if self.record_timeline {
            self.timelines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(intervals);
        }
    }

    /// Blocks this thread until its ULT is woken (returned) or the runtime shuts down.
    fn wait(&self, slot: &Dedicated, own: &RawUlt) -> Option<RawUlt> {
        loop {
            if let Some(u) = slot
                .mailbox
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                return Some(u);
            }
            if self.shutdown.load(Ordering::SeqCst) && own.cancel_if_parked() {
                return None;
            }
            let deadline = TIMERS.with(|t| {
                let mut t = t.borrow_mut();
                t.fire_due(Instant::now());
                t.next_deadline()
            });
            // The timer may have woken our ULT into the mailbox: look again before sleeping.
            if let Some(u) = slot
                .mailbox
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                return Some(u);
            }
            match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if d > now {
                        std::thread::park_timeout(d - now);
                    }
                }
                None => std::thread::park(),
            }
        }
    }
}

impl Schedule for OneToOne {
    fn spawn(&self, ult: RawUlt) -> io::Result<()> {
        let this = self
            .this
            .upgrade()
            .ok_or_else(|| io::Error::other("one-to-one runtime is shutting down"))?;
        if self.shutdown.load(Ordering::SeqCst) {
            return Err(io::Error::other("one-to-one runtime is shutting down"));
        }
        let n = self.next_thread.fetch_add(1, Ordering::Relaxed);
        let name = match ult.name() {
            Some(n) => n.to_string(),
            None => format!("{}-1:1-{n}", self.name),
        };
        let (tx, rx) = std::sync::mpsc::channel::<Arc<Dedicated>>();
        let handle = std::thread::Builder::new()
            .name(name)
            // The ULT runs on its own coroutine stack; this thread only runs the loop.
            .stack_size(128 * 1024)
            .spawn(move || {
                let slot = Arc::new(Dedicated {
                    mailbox: Mutex::new(None),
                    thread: std::thread::current(),
                });
                ult.set_home(Arc::as_ptr(&slot) as usize);
                let _ = tx.send(slot.clone());
                this.run_dedicated(slot, ult);
            })?;
        let slot = rx
            .recv()
            .map_err(|_| io::Error::other("one-to-one thread died before starting"))?;
        self.counters.extra_spawns.fetch_add(1, Ordering::Relaxed);
        self.counters.lwps_started.fetch_add(1, Ordering::Relaxed);
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        // Forget finished threads only when the list doubled since the last sweep: amortised
        // O(1) per spawn (a sweep per spawn made spawning quadratic in live threads).
        if live.len() >= 64 && live.len().is_power_of_two() {
            live.retain(|(slot, h)| slot.strong_count() > 0 || !h.is_finished());
        }
        live.push((Arc::downgrade(&slot), handle));
        Ok(())
    }

    fn wake(&self, ult: RawUlt) {
        self.counters.extra_wakes.fetch_add(1, Ordering::Relaxed);
        let home = ult.home() as *const Dedicated;
        // SAFETY: `home` was set by the ULT's dedicated thread to its slot, which that thread
        // keeps alive (an Arc in `run_dedicated`) until the ULT is finished or cancelled.
        // wake() is only called for a ULT that an unparker just moved out of PARKED, so it is
        // neither finished nor cancelled, and its thread is alive in `wait`.
        let slot = unsafe { &*home };
        *slot.mailbox.lock().unwrap_or_else(|e| e.into_inner()) = Some(ult);
        slot.thread.unpark();
    }

    fn add_timer(&self, deadline: Instant, unparker: Unparker) -> u64 {
        // Called by the ULT, on its dedicated thread.
        TIMERS.with(|t| t.borrow_mut().insert(deadline, unparker))
    }

    fn cancel_timer(&self, key: u64) {
        TIMERS.with(|t| t.borrow_mut().cancel(key));
    }
}
