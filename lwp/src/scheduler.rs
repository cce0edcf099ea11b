//! The two-level scheduler: LWPs (kernel threads) running ULTs, for the many-to-many and
//! many-to-one models (the latter is this scheduler with one LWP and no sysmon hand-off).
//!
//! # Queues of one LWP
//! - `lifo`: the ULT this LWP just woke (Go's `runnext`): runs next, for cache locality of
//!   producer/consumer pairs; at most [`LIFO_STREAK`] times in a row so it cannot starve
//!   `ready`.
//! - `ready`: started ULTs homed here (yielded, or woken here). Not stealable: a started ULT
//!   resumes only on its home LWP (see `ult::raw`). It is a `ult::raw::RunQueue`, a
//!   power-of-two ring with no borrow flag. It was a `RefCell<VecDeque>`, and the LWP's slot
//!   was looked up by index on every use; replacing both took a yield round trip between two
//!   ULTs on one LWP from 353 to 313 instructions and from 18.0 to 16.1 ns (one round trip
//!   stepped in gdb; `taskset -c 1 cargo run --release -p benches --example yieldonly`, three
//!   interleaved runs of each build). When it is long (thousands of connections), popping
//!   one requests the cache lines of the next two (`pop_ready`).
//! - `fresh`: a `crossbeam-deque` worker of never-started ULTs. The owner pops the newest
//!   (LIFO: a spawn-then-join runs the child at once, on a warm stack, and a spawn tree is
//!   run depth first); idle LWPs steal the oldest.
//! - `woken`: a FIFO `crossbeam-deque` worker of started migratable ULTs (woken or yielded),
//!   stealable like `fresh`. They used to share `fresh` and so ran newest first: under
//!   load a ULT woken early was overtaken by every later wake-up. At 100 echo connections
//!   the many-to-many server's p99 from a request to its echo's arrival was 1.76-19.7 ms
//!   against 0.34-1.69 ms with the FIFO, end to end 2.41-19.7 against 1.85-2.31 ms, with the
//!   same requests/s (four interleaved runs of `scripts/echo-ab.sh 100 4`). Thieves take
//!   from `woken` first: those ULTs have waited since their wake-up. A deque has no
//!   look-ahead for a prefetch pipeline like `ready`'s, so `woken_prefetch` shadows it: for
//!   each ULT pushed, the addresses its resume reads first (`ult::raw::PrefetchTargets`:
//!   header, worker, the top of the parked stack, the wake hints), in the same order; each
//!   pop prefetches the entry [`WOKEN_PREFETCH_AHEAD`] places behind, after dropping the
//!   entries of ULTs that thieves took from the front. Before, a woken ULT was prefetched at
//!   its wake-up, in the reactor's poll, and at 10,000 echo connections its lines had gone
//!   cold again in the hundreds of microseconds it then waited. With the shadow the server's
//!   user time per request fell in each of 14 interleaved pairs, by 0.10-0.70 µs (of
//!   1.35-2.49 µs before; tokio's was 1.05-1.28 µs in the same series), and its CPU per
//!   request in 12 of 14 (`TOP=0 scripts/echo-profile.sh 10000 A:lwp-mn B:lwp-mn`, three
//!   series, both orders, on the AMD development machine). In eight interleaved triples
//!   (`WINDOW_MS=3000 scripts/echo-ab.sh 10000 8`) it served 87.2k requests/s (median)
//!   against 84.9k before and 85.9k for tokio, at 11.5 against 12.0 µs of CPU per request
//!   (lower in 6 of 8); level at 100 and at 1 connection. An
//!   earlier shadow, of `fresh`'s newest end while woken ULTs still shared that LIFO,
//!   prefetched one pop ahead and matched 70% of pops; it cut `Source::wait`'s share of
//!   the profile by about a fifth but not the CPU per request (10.4 against 10.25 µs;
//!   requests/s 95.6k against 97.1k, medians of six interleaved runs of `WINDOW_MS=3000
//!   scripts/echo-ab.sh 10000 6`), so it was not kept.
//! - `inbox`: a mutex-protected vector through which other threads (other LWPs, the
//!   blocking pool, the reactor, plain kernel threads) wake ULTs homed here.
//! - the runtime-wide `injector` takes spawns from outside the runtime; it is polled every
//!   [`GLOBAL_CHECK_INTERVAL`] scheduling rounds so that it never starves.
//!
//! # Idle LWPs and wake-ups (no lost wake-up)
//! An LWP with nothing to run spins, searching all queues and polling its reactor without
//! blocking every few rounds, for up to [`SPIN_TIME`] (at most half of the LWPs spin at once);
//! then it publishes itself as idle
//! (`idle` list, `num_idle`, its `sleeping` flag), issues a SeqCst fence, searches once more,
//! and only then sleeps in its own reactor (`epoll_wait`, with the next timer deadline as
//! timeout). Whoever makes work available does the mirror image: publish the work, SeqCst
//! fence, then read `num_spinning`/`num_idle` (for stealable work) or the home LWP's
//! `sleeping` flag (for a home wake-up) and wake one LWP if needed (`Reactor::notify`, an
//! eventfd write). By the fences, either the waker sees the LWP as idle and wakes it, or the
//! LWP's last search sees the work; the reactor keeps a notification that lands before the
//! wait (its `notified` flag), so it is not lost. The protocol is model-checked in
//! `tests/loom_idle.rs` (`idle.rs` holds the shared state; its header also argues why the
//! run queues need no model of their own).
//!
//! # One reactor per LWP
//! Each LWP owns an epoll instance. A socket registers in the reactor of the LWP where a ULT
//! first waits on it; since a started ULT stays on its home LWP, that is where its readiness
//! is needed, so the kernel wakes the right LWP directly. With one reactor per runtime (the
//! earlier design) an idle LWP blocked in `epoll_wait` for everyone, and every event for
//! another LWP's ULT cost a second wake-up through that LWP's inbox: measured on the
//! 100-connection echo run, futex calls fell from about 1,600 to 350 a second. A socket used
//! from two LWPs stays in the first one's reactor (the waiter is woken through its home
//! inbox); sysmon polls the reactor of an LWP that stays in one ULT past its threshold (see
//! `sysmon`).
//!
//! # Placement: spread work only from a saturated LWP
//! Waking a sleeping LWP on another CPU costs ~10x a same-CPU switch on the development
//! machine, and an extra runnable LWP competes for CPUs with everything else. Stealable work
//! wakes a thief only when there is surplus (two or more queued ULTs, or work from outside),
//! nobody is spinning already, and the owner is saturated: it has not run dry for
//! [`SATURATED_NS`]. The owner re-checks that every [`GLOBAL_CHECK_INTERVAL`] rounds, so
//! work that piles up later is still shared. Unlike Go, a spinner that finds work does not
//! wake another LWP: it just ran dry, so it has time for the rest. Because a started ULT
//! never moves, this decides where long-lived ULTs (connections) live: on the 2-vCPU
//! development machine, with the load generator on the same CPUs, the echo server did best
//! with the connections concentrated on one LWP (100/0: 98k requests/s, p99 2.1 ms; 49/51:
//! 81k, p99 5.4 ms, in one series of runs).
//!
//! Many long-lived ULTs are the opposite case: their load adds up, and an uneven split makes
//! the busier LWP's ULTs wait longer for as long as they live. So an LWP that holds at least
//! [`BALANCE_FLOOR`] resident ULTs (started, unfinished, not migratable) starts a new
//! non-migratable ULT only if no other LWP holds clearly fewer; otherwise it hands the ULT,
//! still unstarted and so free to move, to the least loaded LWP's inbox. Below the floor
//! nothing changes. On the 10,000-connection echo run the split used to be whatever the
//! thieves happened to steal during the connection burst: 40/60 gave p99 168-182 ms, 50/50
//! 139 ms (`scripts/echo-ab.sh`-style runs, one series).
//!
//! # Who may call what
//! `WorkerCtx` is owned by its LWP thread; ULTs running on that thread reach it through the
//! `WORKER` thread-local (to spawn and wake locally). Everything in [`Shared`] is safe to use
//! from any thread.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use ult::raw::{PrefetchTargets, RawUlt, Resumed, RunQueue, Schedule};
use ult::timer::TimerQueue;
use ult::Unparker;

use crate::idle::IdleSet;
use crate::metrics::{
    bump, bump_by, LwpCounters, MetricsSnapshot, SharedCounters, TimelineRecorder,
};
use crate::reactor::Reactor;

/// Scheduling rounds between two looks at the global queue and the timers.
pub const GLOBAL_CHECK_INTERVAL: u32 = 61;
/// Where in `ready`, after a pop, the ULT whose header that pop requests sits (see
/// `pop_ready`): 1, the one after next. Measured at 10,000 echo connections, requesting it
/// three places ahead instead left more of the stalls in place.
const PREFETCH_HEADER_AHEAD: usize = 1;
/// How many places behind the ULT popped from `woken` the one prefetched then is (about two
/// requests' time ahead at 10,000 echo connections: early enough to hide a miss to memory,
/// late enough that the lines are still there).
const WOKEN_PREFETCH_AHEAD: usize = 2;

/// `pop_ready` prefetches only when more ULTs than this wait in `ready`.
const PREFETCH_MIN_QUEUE: usize = 8;

/// Consecutive runs of the `lifo` slot before `ready` gets a turn.
pub const LIFO_STREAK: u32 = 16;
/// Longest an idle LWP sleeps before it searches again even if nobody woke it: a backstop
/// that bounds the damage of a wake-up lost by a bug to this delay (the protocol is designed
/// and model-checked not to lose any; see `tests/loom_idle.rs`).
pub const MAX_SLEEP: Duration = Duration::from_millis(100);

/// Minimum time between two wake-ups of a sleeping LWP triggered by local spawns.
pub const LOCAL_WAKE_INTERVAL_NS: u64 = 100_000;
/// A local spawn wakes a sleeping LWP to share the work only if the spawning LWP has not run
/// out of work for this long (it is saturated). An LWP that keeps running dry has CPU time to
/// spare, and a second LWP would only compete for CPUs (see "Placement" in the header).
///
/// Long enough that a burst (a hundred connections opened at once keep an LWP busy for a few
/// milliseconds) is not taken for sustained load: the ULTs a thief steals then stay on its
/// LWP for good. The 100-connection echo run ended up on one LWP in 2 of 6 runs at 1 ms and
/// at 5 ms, 5 of 6 at 10 ms, 6 of 6 at 20 ms; at 20 ms one LWP served it at 138-170k
/// requests/s, p99 1.0-1.4 ms, against 90-137k and 4.6-5.8 ms in the runs that split. The
/// price: ULTs that yield often but never run dry spread to an idle LWP after 20 ms; a ULT
/// that keeps its LWP without switching is still spread by sysmon after its threshold.
pub const SATURATED_NS: u64 = 20_000_000;

/// Resident ULTs (started, unfinished, non-migratable) an LWP holds before it starts placing
/// new ones on less loaded LWPs (see "Placement" in the module header).
pub const BALANCE_FLOOR: u64 = 256;
/// How long an idle LWP spins, searching for work (and polling its reactor), before it
/// sleeps in its reactor. Kept short: with one reactor per LWP the kernel wakes a sleeping
/// LWP directly when its sockets become ready, and a spinning LWP takes CPU time from
/// everyone else on the machine. Long enough to cover a request's turnaround on loopback, so that a
/// lone connection's next request finds the LWP awake: on the 2-vCPU development machine,
/// one echo connection served 45.5-46.2k requests/s with 13 µs, 37.3-38.0k with 5 µs and
/// 37.5-38.4k under tokio, at 21.2-21.7 against 20.3-20.7 µs of server CPU per request
/// (three interleaved runs, `WINDOW_MS=1000 scripts/echo-ab.sh 1 3 ...`, scratch builds of
/// each value); at 100 and 10,000 connections LWPs rarely run dry and the value made no
/// difference beyond the noise (four runs each). An earlier version read the clock only
/// every 16 rounds and so spun about 13 µs while this said 5; it also polled the reactor
/// only at the start of a spin, so a longer spin delayed readiness (with the clock read
/// every round and that one poll, 17 µs served 33k).
pub const SPIN_TIME: Duration = Duration::from_micros(13);
/// `pause` instructions between two searches of a spinning LWP (each costs 24 ns on the
/// AMD development machine; Intel's cores since Skylake take about 140 cycles).
const SPIN_PAUSES: u32 = 32;
/// A spinning LWP polls its reactor (a non-blocking `epoll_wait`) every this many rounds,
/// about every 2.5 µs on the development machine, so readiness that arrives during the spin
/// is taken within that.
const SPIN_POLL_EVERY: u32 = 3;

/// How the scheduler was configured.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) lwps: usize,
    pub(crate) max_lwps: usize,
    pub(crate) pin: bool,
    pub(crate) handoff: bool,
    pub(crate) timeline: bool,
    pub(crate) name: String,
}

/// The thieves' ends of one LWP's two stealable queues.
struct Stealers {
    fresh: Stealer<RawUlt>,
    woken: Stealer<RawUlt>,
}

/// What other threads may see of one LWP.
pub(crate) struct LwpSlot {
    pub(crate) started: AtomicBool,
    stealers: OnceLock<Stealers>,
    inbox: Mutex<Vec<RawUlt>>,
    inbox_flag: AtomicBool,
    sleeping: AtomicBool,
    /// The LWP's kernel thread id (0 until it started), for sysmon's look at its scheduling
    /// statistics.
    pub(crate) tid: AtomicI32,
    /// This LWP's own reactor (epoll instance), set before its thread starts: sockets its
    /// ULTs wait on register here, it polls only this one, and it sleeps in it.
    reactor: OnceLock<Arc<Reactor>>,
    /// True while the LWP is inside a ULT (for sysmon).
    pub(crate) in_ult: AtomicBool,
    /// Set by sysmon when this LWP stayed in one ULT past the threshold; the LWP reports it
    /// (naming the ULT) when the ULT gives control back.
    pub(crate) stuck: AtomicBool,
    /// When sysmon first saw the LWP inside its current ULT run (ns since `origin`).
    pub(crate) stuck_since_ns: AtomicU64,
    pub(crate) counters: LwpCounters,
    pub(crate) timeline: Option<TimelineRecorder>,
}

/// Runtime-wide scheduler state, shared by every LWP, sysmon and all handles.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) slots: Box<[LwpSlot]>,
    pub(crate) active: AtomicUsize,
    injector: Injector<RawUlt>,
    idle: IdleSet,
    last_local_wake_ns: AtomicU64,
    pub(crate) shutdown: AtomicBool,
    pub(crate) counters: SharedCounters,
    pub(crate) origin: Instant,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    cores: Vec<core_affinity::CoreId>,
    /// The group id of this runtime's reactors (one per LWP).
    reactor_group: usize,
}

/// The LWP-owned part of a worker.
struct WorkerCtx {
    index: usize,
    /// `shared.slots[index]`, looked up once (see [`WorkerCtx::slot`]).
    slot: NonNull<LwpSlot>,
    /// This LWP's reactor (the slot's, without the `OnceLock` check).
    reactor: Arc<Reactor>,
    shared: Arc<Shared>,
    fresh: Worker<RawUlt>,
    woken: Worker<RawUlt>,
    /// What to prefetch for each ULT in `woken`, in the same order (see `pop_stealable`).
    woken_prefetch: RefCell<VecDeque<PrefetchTargets>>,
    ready: RunQueue,
    lifo: Cell<Option<RawUlt>>,
    lifo_streak: Cell<u32>,
    timers: RefCell<TimerQueue>,
    tick: Cell<u32>,
    rng: Cell<u64>,
    busy_since: Cell<u64>,
    /// When this LWP last ran out of work (ns since `origin`), for [`SATURATED_NS`].
    last_idle_ns: Cell<u64>,
}

thread_local! {
    static WORKER: Cell<*const WorkerCtx> = const { Cell::new(ptr::null()) };
}

impl Shared {
    pub(crate) fn new(config: Config) -> io::Result<Arc<Shared>> {
        let origin = Instant::now();
        let slots = (0..config.max_lwps)
            .map(|_| LwpSlot {
                started: AtomicBool::new(false),
                stealers: OnceLock::new(),
                inbox: Mutex::new(Vec::new()),
                inbox_flag: AtomicBool::new(false),
                sleeping: AtomicBool::new(false),
                reactor: OnceLock::new(),
                tid: AtomicI32::new(0),
                in_ult: AtomicBool::new(false),
                stuck_since_ns: AtomicU64::new(0),
                stuck: AtomicBool::new(false),
                counters: LwpCounters::default(),
                timeline: config.timeline.then(|| TimelineRecorder::new(origin)),
            })
            .collect();
        Ok(Arc::new(Shared {
            reactor_group: crate::reactor::new_group(),
            cores: if config.pin {
                core_affinity::get_core_ids().unwrap_or_default()
            } else {
                Vec::new()
            },
            config,
            slots,
            active: AtomicUsize::new(0),
            injector: Injector::new(),
            idle: IdleSet::new(),
            last_local_wake_ns: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            counters: SharedCounters::default(),
            origin,
            threads: Mutex::new(Vec::new()),
        }))
    }

    /// Starts the next LWP (kernel thread). Fails if the slots are used up or the kernel
    /// refuses a thread.
    pub(crate) fn start_lwp(self: &Arc<Shared>) -> io::Result<usize> {
        let index = self.active.fetch_add(1, Ordering::AcqRel);
        if index >= self.slots.len() {
            self.active.fetch_sub(1, Ordering::AcqRel);
            return Err(io::Error::other(format!(
                "runtime already runs its maximum of {} LWPs",
                self.slots.len()
            )));
        }
        if self.slots[index].reactor.get().is_none() {
            match Reactor::new(self.reactor_group) {
                Ok(r) => {
                    let _ = self.slots[index].reactor.set(r);
                }
                Err(e) => {
                    self.active.fetch_sub(1, Ordering::AcqRel);
                    return Err(e);
                }
            }
        }
        let shared = self.clone();
        // Counted before the LWP can run anything, so a reader that saw its work done sees it.
        self.counters.lwps_started.fetch_add(1, Ordering::Relaxed);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(lwp_thread_name(&self.config.name, index))
            // ULTs run on their own stacks; the LWP's stack only holds the scheduler loop.
            .stack_size(256 * 1024)
            .spawn(move || worker_main(shared, index, ready_tx));
        match spawned {
            Ok(handle) => {
                // Wait until the LWP published its stealer and thread id, so that every
                // started slot is fully usable by others.
                let _ = ready_rx.recv();
                self.threads
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(handle);
                Ok(index)
            }
            Err(e) => {
                self.active.fetch_sub(1, Ordering::AcqRel);
                self.counters.lwps_started.fetch_sub(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn started_slots(&self) -> &[LwpSlot] {
        let n = self.active.load(Ordering::Acquire).min(self.slots.len());
        &self.slots[..n]
    }

    fn current_worker(&self) -> Option<&WorkerCtx> {
        let p = WORKER.with(|w| w.get());
        // SAFETY: WORKER is non-null only on an LWP thread, pointing at the WorkerCtx that
        // lives in `worker_main`'s frame for the whole time the pointer is set.
        let ctx = unsafe { p.as_ref()? };
        ptr::eq(Arc::as_ptr(&ctx.shared), self).then_some(ctx)
    }

    /// Wakes a sleeping LWP: it sleeps in its own reactor.
    fn wake_lwp(&self, index: usize) {
        if let Some(r) = self.slots[index].reactor.get() {
            r.notify();
        }
    }

    /// The reactor of LWP `index`, if it was started.
    pub(crate) fn lwp_reactor(&self, index: usize) -> Option<&Arc<Reactor>> {
        self.slots.get(index)?.reactor.get()
    }

    /// Wakes one idle LWP to look for stealable work, unless one is already spinning.
    fn notify_stealable_work(&self) {
        // SeqCst: pairs with the fence in `WorkerCtx::park`; see the module header.
        IdleSet::fence();
        if let Some(i) = self.idle.pop_sleeper() {
            self.wake_lwp(i);
        }
    }

    /// Queues a ULT on its home LWP's inbox (from any thread) and wakes that LWP if it sleeps.
    // Kept out of line: `wake`'s local path stays short (it is called through `dyn`).
    #[inline(never)]
    fn push_remote(&self, home: usize, ult: RawUlt) {
        let slot = &self.slots[home];
        slot.inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ult);
        slot.inbox_flag.store(true, Ordering::Release);
        // SeqCst: pairs with the LWP's `sleeping` store + fence before its last search.
        IdleSet::fence();
        if slot.sleeping.load(Ordering::SeqCst) {
            self.wake_lwp(home);
        }
    }

    /// Queues a ULT that any LWP may run: on this LWP's `woken` (`WOKEN`: a started
    /// migratable ULT) or `fresh` (a never-started one), or from outside on the injector.
    // Kept out of line: `wake`'s local path stays short (it is called through `dyn`).
    #[inline(never)]
    fn push_stealable<const WOKEN: bool>(&self, ult: RawUlt) {
        match self.current_worker() {
            Some(w) => {
                if WOKEN {
                    w.push_woken(ult);
                } else {
                    w.fresh.push(ult);
                }
                self.share_surplus(w);
            }
            None => {
                self.injector.push(ult);
                self.notify_stealable_work();
            }
        }
    }

    /// The owner of `w` is awake and will run its queued ULTs anyway: wake a thief only for
    /// a surplus (two or more waiting) while the owner is saturated ([`SATURATED_NS`]), and
    /// at most once per [`LOCAL_WAKE_INTERVAL_NS`] (waking a sleeping LWP costs the waker
    /// several microseconds on a VM).
    fn share_surplus(&self, w: &WorkerCtx) {
        if w.fresh.len() + w.woken.len() < 2
            || self.idle.anyone_spinning()
            || !self.idle.anyone_idle()
        {
            return;
        }
        let now = crate::metrics::nanos(self.origin.elapsed());
        if now.saturating_sub(w.last_idle_ns.get()) < SATURATED_NS {
            return;
        }
        let last = self.last_local_wake_ns.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= LOCAL_WAKE_INTERVAL_NS || last == 0 {
            self.last_local_wake_ns.store(now.max(1), Ordering::Relaxed);
            self.notify_stealable_work();
        }
    }

    /// Started, unfinished, non-migratable ULTs homed on each started LWP.
    pub(crate) fn resident_ults(&self) -> Vec<u64> {
        self.started_slots()
            .iter()
            .map(|s| s.counters.resident())
            .collect()
    }

    /// For a never-started, non-migratable ULT about to start on LWP `here`: another LWP
    /// to start it on instead, when `here` already holds at least [`BALANCE_FLOOR`] resident
    /// ULTs and clearly more than the least loaded LWP (by a sixteenth of that LWP's count,
    /// plus 16, so that placement settles instead of bouncing).
    #[inline]
    fn less_loaded_home(&self, here: usize) -> Option<usize> {
        let mine = self.slots[here].counters.resident();
        if mine < BALANCE_FLOOR {
            return None;
        }
        self.least_loaded_other(here, mine)
    }

    #[cold]
    fn least_loaded_other(&self, here: usize, mine: u64) -> Option<usize> {
        let (index, least) = self
            .started_slots()
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != here)
            .map(|(i, s)| (i, s.counters.resident()))
            .min_by_key(|&(_, r)| r)?;
        (mine > least + least / 16 + 16).then_some(index)
    }

    /// Sum of all counters.
    pub(crate) fn metrics(&self) -> MetricsSnapshot {
        let mut m = MetricsSnapshot::default();
        for slot in self.started_slots() {
            m.add_lwp(&slot.counters);
        }
        m.add_shared(&self.counters);
        m
    }

    /// Asks every LWP to stop and waits for them (unless called from one of them).
    pub(crate) fn shut_down(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for slot in self.started_slots() {
            if let Some(r) = slot.reactor.get() {
                r.notify();
            }
        }
        let on_own_lwp = self.current_worker().is_some();
        let handles = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        if !on_own_lwp {
            for h in handles {
                let _ = h.join();
            }
        }
    }

    /// Wakes every idle LWP (sysmon uses this when an LWP is stuck).
    pub(crate) fn wake_one_idle(&self) -> bool {
        match self.idle.pop_any() {
            Some(i) => {
                self.wake_lwp(i);
                true
            }
            None => false,
        }
    }

    /// Whether stealable work is waiting anywhere (injector or any LWP's `fresh` or `woken`).
    pub(crate) fn has_stealable_work(&self) -> bool {
        !self.injector.is_empty()
            || self.started_slots().iter().any(|s| {
                s.stealers
                    .get()
                    .is_some_and(|st| !st.fresh.is_empty() || !st.woken.is_empty())
            })
    }

    pub(crate) fn timeline(&self) -> Option<crate::metrics::Timeline> {
        if !self.config.timeline {
            return None;
        }
        let window_ns = crate::metrics::nanos(self.origin.elapsed());
        let lwps = self
            .started_slots()
            .iter()
            .map(|s| {
                s.timeline
                    .as_ref()
                    .map(|t| t.snapshot())
                    .unwrap_or_default()
            })
            .collect();
        Some(crate::metrics::Timeline { lwps, window_ns })
    }
}

impl Schedule for Shared {
    fn spawn(&self, ult: RawUlt) -> io::Result<()> {
        match self.current_worker() {
            Some(w) => bump(&self.slots[w.index].counters.spawns),
            None => {
                self.counters.extra_spawns.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.push_stealable::<false>(ult);
        Ok(())
    }

    fn wake(&self, ult: RawUlt) {
        if ult.may_migrate() {
            return self.push_stealable::<true>(ult);
        }
        let home = ult.home();
        match self.current_worker() {
            Some(w) if w.index == home => {
                bump(&w.slot().counters.wakes);
                if let Some(previous) = w.lifo.replace(Some(ult)) {
                    w.ready.push_back(previous);
                }
            }
            _ => {
                self.counters.extra_wakes.fetch_add(1, Ordering::Relaxed);
                self.push_remote(home, ult);
            }
        }
    }

    fn add_timer(&self, deadline: Instant, unparker: Unparker) -> u64 {
        match self.current_worker() {
            Some(w) => w.timers.borrow_mut().insert(deadline, unparker),
            None => {
                ult::timer::fallback_timer(deadline, unparker);
                0
            }
        }
    }

    fn cancel_timer(&self, key: u64) {
        if let Some(w) = self.current_worker() {
            let mut timers = w.timers.borrow_mut();
            if timers.owns(key) {
                timers.cancel(key);
            }
        }
    }
}

fn worker_main(shared: Arc<Shared>, index: usize, ready: std::sync::mpsc::Sender<()>) {
    ult::raw::prepare_thread();
    if !shared.cores.is_empty() {
        core_affinity::set_for_current(shared.cores[index % shared.cores.len()]);
    }
    let fresh = Worker::new_lifo();
    let woken = Worker::new_fifo();
    let slot = &shared.slots[index];
    let _ = slot.stealers.set(Stealers {
        fresh: fresh.stealer(),
        woken: woken.stealer(),
    });
    // SAFETY: gettid has no preconditions.
    slot.tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
    slot.started.store(true, Ordering::Release);
    let Some(reactor) = slot.reactor.get().cloned() else {
        unreachable!("start_lwp sets the reactor before it starts the thread")
    };
    Reactor::set_current(Some(reactor.clone()));
    let ctx = WorkerCtx {
        reactor,
        index,
        slot: NonNull::from(slot),
        shared: shared.clone(),
        fresh,
        woken,
        woken_prefetch: RefCell::new(VecDeque::new()),
        ready: RunQueue::default(),
        lifo: Cell::new(None),
        lifo_streak: Cell::new(0),
        timers: RefCell::new(TimerQueue::with_tag(index as u16)),
        tick: Cell::new(0),
        rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1)),
        busy_since: Cell::new(0),
        last_idle_ns: Cell::new(0),
    };
    WORKER.with(|w| w.set(&ctx as *const WorkerCtx));
    let _ = ready.send(());
    if let Some(t) = &slot.timeline {
        ctx.busy_since.set(t.now_ns());
    }
    ctx.run();
    ctx.cancel_queued();
    WORKER.with(|w| w.set(ptr::null()));
    Reactor::set_current(None);
}

impl WorkerCtx {
    #[inline]
    fn slot(&self) -> &LwpSlot {
        // SAFETY: `slot` points at `shared.slots[index]` (set in `worker_main`); `slots` is a
        // boxed slice that is never resized or replaced, and `self.shared` keeps it alive for
        // as long as `self` lives. A plain index cost a bounds check and a multiply on every
        // switch.
        unsafe { self.slot.as_ref() }
    }

    fn run(&self) {
        loop {
            if let Some(ult) = self.next_local() {
                self.run_ult(ult);
                continue;
            }
            if self.shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            if let Some(ult) = self.idle() {
                self.run_ult(ult);
            }
        }
    }

    #[inline]
    fn run_ult(&self, ult: RawUlt) {
        let slot = self.slot();
        // Once started, a non-migratable ULT lives here until it finishes: the last chance
        // to place it elsewhere (see "Placement" in the module header).
        let pinned = !ult.is_migratable();
        if pinned && !ult.started() {
            if let Some(better) = self.shared.less_loaded_home(self.index) {
                bump(&slot.counters.rehomed);
                self.shared.push_remote(better, ult);
                return;
            }
            bump(&slot.counters.pinned_starts);
        }
        if ult.home() != self.index {
            ult.set_home(self.index);
        }
        bump(&slot.counters.switches);
        slot.in_ult.store(true, Ordering::Relaxed);
        let outcome = ult.resume_then(|header| {
            slot.in_ult.store(false, Ordering::Relaxed);
            if slot.stuck.load(Ordering::Relaxed) {
                crate::sysmon::report_unstuck(&self.shared, self.index, header);
            }
        });
        match outcome {
            Resumed::Runnable(ult) => {
                if ult.may_migrate() {
                    self.push_woken(ult);
                } else {
                    self.ready.push_back(ult);
                }
            }
            Resumed::Parked => bump(&slot.counters.parks),
            Resumed::Finished => {
                if pinned {
                    bump(&slot.counters.pinned_finishes);
                }
            }
        }
    }

    /// Local and global queues, in priority order; no stealing.
    #[inline]
    fn next_local(&self) -> Option<RawUlt> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick.is_multiple_of(GLOBAL_CHECK_INTERVAL) {
            self.fire_timers();
            let reactor = &self.reactor;
            if reactor.waiting_ults() > 0 && !reactor.is_blocked() {
                reactor.poll(Some(Duration::ZERO));
            }
            // Work that piled up while this LWP stayed busy is offered to idle LWPs here,
            // not only when it was spawned (the owner may have become saturated since).
            self.shared.share_surplus(self);
            if let Some(u) = self.steal_global() {
                return Some(u);
            }
        }
        if let Some(u) = self.lifo.take() {
            let streak = self.lifo_streak.get();
            if streak < LIFO_STREAK {
                self.lifo_streak.set(streak + 1);
                return Some(u);
            }
            self.lifo_streak.set(0);
            self.ready.push_back(u);
        }
        self.lifo_streak.set(0);
        if self.slot().inbox_flag.load(Ordering::Relaxed) {
            self.drain_inbox();
        }
        // Started and never-started ULTs take turns, so a ULT that keeps yielding cannot keep
        // new ones from ever starting (one FIFO would do this too, but new ULTs must stay
        // stealable and started ones must not).
        if tick & 1 == 0 {
            if let Some(u) = self.fresh.pop() {
                return Some(u);
            }
        }
        let ready = self.pop_ready();
        if ready.is_some() {
            return ready;
        }
        self.pop_stealable()
    }

    /// This LWP's own stealable ULTs: the woken ones (FIFO, waiting since their wake-up)
    /// before the never-started ones.
    #[inline]
    fn pop_stealable(&self) -> Option<RawUlt> {
        match self.woken.pop() {
            Some(u) => {
                self.popped_woken();
                Some(u)
            }
            None => self.fresh.pop(),
        }
    }

    /// Keeps `woken_prefetch` in step with a pop from `woken`, and prefetches ahead. Out of
    /// line, like [`WorkerCtx::push_woken`]: inlined, the two added six instructions to every
    /// yield round trip of two home-bound ULTs (312.5 against 306.5, callgrind on
    /// `cargo run --release -p benches --example yieldonly`), whose path never takes them.
    #[inline(never)]
    fn popped_woken(&self) {
        let mut targets = self.woken_prefetch.borrow_mut();
        targets.pop_front();
        self.drop_stolen_targets(&mut targets);
        if let Some(t) = targets.get(WOKEN_PREFETCH_AHEAD - 1) {
            t.prefetch();
        }
    }

    /// Queues a started migratable ULT on `woken`, noting what to prefetch when its turn
    /// comes near.
    #[inline(never)]
    fn push_woken(&self, ult: RawUlt) {
        let mut targets = self.woken_prefetch.borrow_mut();
        // Here too, not only at pops: an LWP kept busy by its own `ready` ULTs may never pop
        // `woken` while thieves empty it, and the shadow would grow with every wake-up.
        self.drop_stolen_targets(&mut targets);
        targets.push_back(ult.prefetch_targets());
        self.woken.push(ult);
    }

    /// Thieves take from `woken`'s front, as the owner pops: drops the shadow's entries for
    /// ULTs that are no longer there, so that it is never longer than the deque.
    fn drop_stolen_targets(&self, targets: &mut VecDeque<PrefetchTargets>) {
        let left = self.woken.len();
        while targets.len() > left {
            targets.pop_front();
        }
    }

    /// The front of `ready`, with the next two ULTs' cache lines requested on the way (a
    /// two-stage software pipeline: the header of the one after next now, the worker, stack
    /// and wake hints of the next one, whose header the previous call requested). With
    /// thousands of connections the queue is long and each ULT's lines have gone cold by its
    /// turn; the prefetches let them arrive while the ULT popped now runs.
    #[inline]
    fn pop_ready(&self) -> Option<RawUlt> {
        let ult = self.ready.pop_front();
        // A short queue's lines are still warm from the wake-ups: prefetching them only
        // costs instructions (about 20 per channel round trip between two ULTs).
        if self.ready.len() > PREFETCH_MIN_QUEUE {
            self.ready.prefetch(0);
            self.ready.prefetch_header(PREFETCH_HEADER_AHEAD);
        }
        ult
    }

    fn drain_inbox(&self) {
        let slot = self.slot();
        // Acquire: pairs with the release store in `push_remote`.
        slot.inbox_flag.swap(false, Ordering::Acquire);
        let batch = std::mem::take(&mut *slot.inbox.lock().unwrap_or_else(|e| e.into_inner()));
        bump_by(&slot.counters.wakes, batch.len() as u64);
        self.ready.extend(batch);
    }

    fn steal_global(&self) -> Option<RawUlt> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.fresh) {
                Steal::Success(u) => {
                    bump(&self.slot().counters.steals);
                    return Some(u);
                }
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    fn steal_from_others(&self) -> Option<RawUlt> {
        let slots = self.shared.started_slots();
        let n = slots.len();
        if n <= 1 {
            return None;
        }
        // xorshift: a random first victim spreads thieves over victims.
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        let start = (x as usize) % n;
        for k in 0..n {
            let victim = (start + k) % n;
            if victim == self.index {
                continue;
            }
            let Some(stealers) = slots[victim].stealers.get() else {
                continue;
            };
            // The oldest waiting ULTs first: started ones waited since their wake-up.
            for (stealer, into) in [
                (&stealers.woken, &self.woken),
                (&stealers.fresh, &self.fresh),
            ] {
                loop {
                    match stealer.steal_batch_and_pop(into) {
                        Steal::Success(u) => {
                            bump(&self.slot().counters.steals);
                            return Some(u);
                        }
                        Steal::Empty => break,
                        Steal::Retry => continue,
                    }
                }
            }
        }
        None
    }

    fn fire_timers(&self) {
        let mut timers = self.timers.borrow_mut();
        if !timers.is_empty() {
            timers.fire_due(Instant::now());
        }
    }

    /// One full search: local queues, timers, global queue, other LWPs.
    fn search(&self) -> Option<RawUlt> {
        self.fire_timers();
        if let Some(u) = self.lifo.take() {
            return Some(u);
        }
        if self.slot().inbox_flag.load(Ordering::Acquire) {
            self.drain_inbox();
        }
        self.pop_ready()
            .or_else(|| self.pop_stealable())
            .or_else(|| self.steal_global())
            .or_else(|| self.steal_from_others())
    }

    /// Nothing local to run: spin for a while, then park the kernel thread.
    fn idle(&self) -> Option<RawUlt> {
        self.last_idle_ns
            .set(crate::metrics::nanos(self.shared.origin.elapsed()));
        // The timeline counts time running ULTs: spinning and sleeping are idle.
        if let Some(t) = &self.slot().timeline {
            t.record(self.busy_since.get(), t.now_ns());
        }
        let found = self.spin_then_park();
        if let Some(t) = &self.slot().timeline {
            self.busy_since.set(t.now_ns());
        }
        found
    }

    fn spin_then_park(&self) -> Option<RawUlt> {
        let shared = &*self.shared;
        let active = shared.active.load(Ordering::Relaxed).max(1);
        // At most half of the LWPs spin (one, when there are one or two).
        let spinners_allowed = (active / 2).max(1);
        if shared.idle.try_start_spinning(spinners_allowed) {
            let start = Instant::now();
            let mut rounds = 0u32;
            loop {
                // ULTs waiting for I/O: readiness is work too (a non-blocking epoll_wait),
                // polled at the start, as Go's `findrunnable` does before it spins, and then
                // every few rounds: an `epoll_wait` costs more than a round of searching, but
                // readiness left to the poll the LWP parks in would wait out the spin.
                let reactor = &self.reactor;
                if rounds.is_multiple_of(SPIN_POLL_EVERY)
                    && reactor.waiting_ults() > 0
                    && !reactor.is_blocked()
                {
                    reactor.poll(Some(Duration::ZERO));
                }
                if let Some(u) = self.search() {
                    // Go hands the search on here (a spinner that finds work wakes another).
                    // Not here: this LWP just ran dry, so it has CPU time for the rest; if it
                    // becomes saturated, `share_surplus` wakes a thief from its loop.
                    shared.idle.stop_spinning();
                    return Some(u);
                }
                if shared.shutdown.load(Ordering::Acquire) {
                    break;
                }
                rounds += 1;
                // The clock every round: a round's `pause`s alone take 0.8 µs on the AMD
                // development machine (24 ns each), where checking every 16th round spun
                // 12-13 µs instead of `SPIN_TIME`; reading the clock costs a few percent of
                // a round.
                if start.elapsed() >= SPIN_TIME {
                    break;
                }
                for _ in 0..SPIN_PAUSES {
                    std::hint::spin_loop();
                }
            }
            shared.idle.stop_spinning();
        }
        self.park()
    }

    fn park(&self) -> Option<RawUlt> {
        let shared = &*self.shared;
        let slot = self.slot();
        shared.idle.register(self.index);
        slot.sleeping.store(true, Ordering::SeqCst);
        // SeqCst: pairs with the fences in `notify_stealable_work` and `push_remote`.
        IdleSet::fence();
        let found = self.search();
        if found.is_none() && !shared.shutdown.load(Ordering::SeqCst) {
            bump(&slot.counters.lwp_parks);
            let deadline = self.timers.borrow_mut().next_deadline();
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            // Every LWP sleeps in its own reactor (Go's netpoller, one per LWP): readiness of
            // its sockets wakes it directly, and `wake_lwp` interrupts the wait.
            if timeout != Some(Duration::ZERO) {
                self.reactor
                    .poll(Some(timeout.map_or(MAX_SLEEP, |t| t.min(MAX_SLEEP))));
            }
        }
        slot.sleeping.store(false, Ordering::SeqCst);
        shared.idle.unregister(self.index);
        found
    }

    /// At shutdown: destroy what is still queued here, on this thread (the ULTs' home).
    fn cancel_queued(&self) {
        if let Some(t) = &self.slot().timeline {
            t.record(self.busy_since.get(), t.now_ns());
        }
        self.drain_inbox();
        if let Some(u) = self.lifo.take() {
            u.cancel();
        }
        loop {
            let next = self.ready.pop_front();
            match next {
                Some(u) => u.cancel(),
                None => break,
            }
        }
        while let Some(u) = self.pop_stealable() {
            u.cancel();
        }
    }
}

/// An LWP's kernel-thread name: `lwp-3` for a runtime with the default name, `echo-lwp-3` for
/// one named `echo` (shown in panic messages, `top -H`, debuggers).
fn lwp_thread_name(runtime: &str, index: usize) -> String {
    if runtime == "lwp" {
        format!("lwp-{index}")
    } else {
        format!("{runtime}-lwp-{index}")
    }
}
