//! The reactor: readiness of sockets, turned into unparks of the ULTs that wait for it.
//!
//! A [`Reactor`] wraps an epoll instance (through `mio`) in which sockets are registered
//! once, edge-triggered, for both directions. Under many-to-many and many-to-one every LWP
//! has its own (a socket registers with the reactor of the LWP where a ULT first waits on
//! it; see the scheduler's header for why); a one-to-one runtime has one. The reactors of
//! one runtime share a group id, so a socket registered on one LWP is still "ours" on
//! another.
//!
//! Why `mio` and not `polling`: measured on the echo server (`perf stat -e
//! 'syscalls:sys_enter_*'`), `polling` 3 made five system calls per wait (`timerfd_settime`,
//! two `epoll_ctl` re-arms, an eventfd `read`, `epoll_pwait`), and running LWPs poll without
//! blocking often; `mio` makes one (`epoll_wait`). `mio`'s timeout has millisecond
//! granularity (rounded up, never early), which made a 50 µs `lwp::sleep` on an idle LWP
//! take 1.1 ms; so a blocking poll with a timeout under [`PRECISE_BELOW`] also
//! arms a timerfd registered in the same epoll, which ends the wait on time (one
//! `timerfd_settime` per such poll; polls without a near deadline make none, and disarm a
//! timer left armed). Medians of 200 sleeps of 50 µs, 200 µs and 1.5 ms on an idle
//! many-to-many LWP (`cargo run --release -p lwp --example sleepprecision`): 1106, 1109 and
//! 2117 µs before, 82.5, 238 and 1565 µs with the timerfd, against 132, 285 and 1609 µs for
//! `std::thread::sleep` on a kernel thread in the same run (which pays the kernel's 50 µs
//! timer slack; a timerfd has none).
//!
//! A ULT whose non-blocking system call returned `EWOULDBLOCK` calls
//! [`Source::wait`]: it records its unparker for that direction, re-checks the direction's
//! "ready" flag, and parks; the thread that polls epoll sets the flag and unparks every
//! recorded waiter. The order (record, then check the flag; set the flag, then take the
//! waiters, both under the direction's mutex) means an edge that arrives between the failed
//! system call and the park is never lost: either the waiter sees the flag, or the poller sees
//! the waiter. A stream read also forgets a pending edge just before its system call
//! ([`Source::forget_edge`]), since that call sees everything the edge announced; only an
//! edge that arrives later can then send the next read to the kernel.
//!
//! Who polls (Go's netpoller idea, one per LWP): under many-to-many and many-to-one, an LWP
//! with nothing to run blocks in its own reactor's `epoll_wait`, with its next timer deadline
//! as the timeout; anyone who gives it work interrupts the wait with [`Reactor::notify`] (an
//! eventfd write). While it is busy it polls its reactor without blocking every few dozen
//! scheduling rounds, and sysmon polls the reactor of an LWP that stays in one ULT, so
//! readiness is never starved. Under one-to-one a dedicated reactor thread blocks in
//! `epoll_wait`.
//!
//! Cache misses: with thousands of connections, every wake-up touches lines that went cold
//! since the socket's last turn (the source, the waiter's header; after the switch, the
//! socket's `Io` and the source again). They are requested ahead of use: the poll loop
//! prefetches the sources and then the waiters' headers of the events a few places ahead
//! (`Slab::prefetch`, `Direction::waiter_hint`), and a waiting ULT names its `Io` and its
//! source as wake hints (`ult::raw::unparker_with_wake_hints`), which the scheduler's
//! prefetch pipeline fetches while the ULT ahead of it runs. Measured with `perf record -e
//! cpu-clock` on the echo server at 10,000 connections, three interleaved runs each:
//! user-space share of the server's time 13.0-14.3% before, 10.4-11.3% after, against
//! tokio's 11.7-12.3%.
//!
//! Invariants: a [`Source`] is registered in exactly one reactor, from its first wait until
//! the socket that owns the fd calls [`Source::deregister`], which it does while the fd is
//! still open (dropping the socket drops its `Io` before its fd). The `Source` object itself
//! may outlive that: the poller holds strong references to the sources it is firing, so the
//! last reference can be dropped on the polling thread after the fd was closed and its number
//! reused; that is why `Drop` never touches the fd. The slab maps event keys to weak
//! references, so a late event for a closed socket finds nothing (or, after key reuse,
//! causes one spurious wake-up, which waiters tolerate by retrying their system call).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

/// The token of the reactor's own waker (never a slab key).
const WAKER: Token = Token(usize::MAX);
/// The token of the reactor's timerfd (never a slab key).
const TIMER: Token = Token(usize::MAX - 1);
/// Blocking polls with a timeout shorter than this arm the timerfd (see the module header);
/// for longer ones `epoll_wait`'s rounding up to the millisecond is at most 2% late.
pub(crate) const PRECISE_BELOW: Duration = Duration::from_millis(50);
/// Events taken per `epoll_wait`.
const EVENTS_PER_POLL: usize = 1024;
/// How many events ahead the poll loop prefetches a source (see `Slab::prefetch`).
const PREFETCH_EVENTS_AHEAD: usize = 4;

/// Direction of interest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read,
    Write,
}

/// `repr(C)` with the flag first: see [`Source`]'s layout.
#[derive(Default)]
#[repr(C)]
struct Direction {
    ready: AtomicBool,
    /// Sticky: an event reported this direction closed (the peer's FIN, the pipe's last
    /// writer gone) or failed. Unlike `ready`, no wait or `forget_edge` clears it: the system
    /// call that takes the last data consumes the one edge that announced the close too, and
    /// the next call returns at once (EOF, `EPIPE`) instead of `EWOULDBLOCK`. Only
    /// [`Source::edge_pending`] reads it.
    closed: AtomicBool,
    /// Where the last recorded waiter's header is (`Unparker::prefetch_addr`), written under
    /// the lock and read without it by the poll loop, which prefetches the headers of the
    /// ULTs it is about to wake: only a hint, stale once that waiter is gone.
    waiter_hint: AtomicUsize,
    waiters: Mutex<Waiters>,
}

/// The ULTs (or threads) waiting for one direction. Almost always one: it sits in `first`,
/// so a wait and its wake-up allocate nothing (a `Vec` taken by every wake-up made each
/// wait allocate again: `malloc` and `free` showed up in the 10,000-connection profile).
#[derive(Default)]
struct Waiters {
    first: Option<ult::Unparker>,
    more: Vec<ult::Unparker>,
}

impl Waiters {
    /// Records `me` unless it is already recorded.
    fn add(&mut self, me: ult::Unparker) {
        match &self.first {
            None => self.first = Some(me),
            Some(u) if u.same_target(&me) => {}
            Some(_) => {
                if !self.more.iter().any(|u| u.same_target(&me)) {
                    self.more.push(me);
                }
            }
        }
    }
}

impl Direction {
    /// A direction that may be ready: a new source's first system call finds out.
    fn new_ready() -> Direction {
        Direction {
            ready: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            waiter_hint: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    /// Consumes a pending edge: true if there was one. A plain load first, so a direction
    /// without one costs no locked instruction. Acquire (with the swap): pairs with the
    /// release in `fire`.
    #[inline]
    fn take_edge(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.ready.swap(false, Ordering::AcqRel)
    }

    fn fire(&self) {
        let (first, more) = {
            let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            // Release under the lock: a waiter that records itself after this sees the flag.
            self.ready.store(true, Ordering::Release);
            // Taking an empty `Vec` allocates nothing.
            (w.first.take(), std::mem::take(&mut w.more))
        };
        if let Some(u) = first {
            u.unpark();
        }
        for u in more {
            u.unpark();
        }
    }
}

/// One file descriptor registered with a reactor.
///
/// `repr(C)`, laid out for the read path: what a woken reader touches (the reactor, to check
/// that the source is its LWP's, and the read direction's flag) lies in the first 64 bytes,
/// which `Source::wait` names as a wake hint and the poll loop prefetches.
#[repr(C)]
pub(crate) struct Source {
    reactor: Arc<Reactor>,
    key: usize,
    fd: RawFd,
    /// Set once the slab entry is gone (by `deregister`, a failed `register`, or `Drop`), so
    /// that it is removed exactly once: the key may be reused by another source right after.
    unlinked: AtomicBool,
    read: Direction,
    write: Direction,
}

const _: () = assert!(std::mem::offset_of!(Source, read) < 64);

impl Source {
    fn direction(&self, dir: Dir) -> &Direction {
        match dir {
            Dir::Read => &self.read,
            Dir::Write => &self.write,
        }
    }

    /// Removes the fd from the poller and the source from the slab; later calls do nothing.
    ///
    /// # Safety
    /// `self.fd` must still be open: the owner of the fd calls this before closing it.
    /// Deleting after the close could hit an unrelated fd that reused the number (the bug
    /// this replaces: a `Drop` running late on the polling thread deleted a new socket's
    /// registration, whose ULT then waited for an event that could never come).
    pub(crate) unsafe fn deregister(&self) {
        if self.unlinked.load(Ordering::Acquire) {
            return;
        }
        // The caller guarantees the fd is open for the duration of this call (the contract).
        let _ = self.reactor.registry.deregister(&mut SourceFd(&self.fd));
        self.unlink();
    }

    /// Removes the slab entry, once.
    fn unlink(&self) {
        let mut slab = self.reactor.slab.lock().unwrap_or_else(|e| e.into_inner());
        // Under the slab lock, so that a key freed here is not reused before the flag is set.
        if !self.unlinked.swap(true, Ordering::AcqRel) {
            slab.remove(self.key);
        }
    }

    /// The reactor this source is registered with.
    pub(crate) fn reactor(&self) -> &Arc<Reactor> {
        &self.reactor
    }

    /// Parks the calling ULT until `dir` may be ready (or `deadline` passes). Returns false
    /// if the deadline passed. The caller retries its system call either way. `caller_state`
    /// is the address of what the caller reads first after the wait (its socket's state), 0
    /// for nothing: it and this source's first 64 bytes (see the type) become the ULT's wake
    /// hints, which the scheduler prefetches when the ULT's turn comes near in a long run
    /// queue (at 10,000 echo connections both had gone cold by then).
    pub(crate) fn wait(&self, dir: Dir, deadline: Option<Instant>, caller_state: usize) -> bool {
        let d = self.direction(dir);
        {
            let mut w = d.waiters.lock().unwrap_or_else(|e| e.into_inner());
            if d.take_edge() {
                return true; // an edge arrived since our last attempt: retry now
            }
            let me =
                ult::raw::unparker_with_wake_hints(caller_state, self as *const Source as usize);
            d.waiter_hint.store(me.prefetch_addr(), Ordering::Relaxed);
            w.add(me);
        }
        // Taken before the park, so the wake-up reaches the counter (hot on this LWP)
        // through the parked stack rather than through this source's cold first line.
        let waiting_ults: &AtomicUsize = &self.reactor.waiting_ults;
        waiting_ults.fetch_add(1, Ordering::Relaxed);
        let in_time = match deadline {
            Some(dl) => {
                ult::park_deadline(dl);
                Instant::now() < dl
            }
            None => {
                ult::park();
                true
            }
        };
        waiting_ults.fetch_sub(1, Ordering::Relaxed);
        // Consume the edge that woke us before the caller retries its system call: that call
        // sees everything that arrived up to now, and anything later sets the flag again.
        // Leaving the flag set would make the next `wait`, after the call drained the socket
        // and failed with `EWOULDBLOCK`, return at once for one more failing call.
        let edge = d.take_edge();
        in_time || edge
    }

    /// Starts fetching the headers of the ULTs that the poll loop is about to wake in the
    /// given directions (see `Direction::waiter_hint`).
    fn prefetch_waiters(&self, read: bool, write: bool) {
        for (wanted, d) in [(read, &self.read), (write, &self.write)] {
            let header = d.waiter_hint.load(Ordering::Relaxed);
            if wanted && header != 0 {
                // The run state in the first line, the scheduler to wake in the second.
                ult::raw::prefetch_line(header);
                ult::raw::prefetch_line(header + 64);
            }
        }
    }

    /// Forgets an edge in `dir`, if one is pending: for a caller about to make a system call
    /// that sees everything the edge announced. An edge that arrives after this sets the flag
    /// again, so none is lost.
    pub(crate) fn forget_edge(&self, dir: Dir) {
        self.direction(dir).take_edge();
    }

    /// Whether an edge arrived in `dir` since the last `wait` consumed one, or `dir` was
    /// reported closed (a hint: it may be set at any moment). False means the fd was empty
    /// when its last system call ran and nothing has happened since, so a read would fail
    /// with `EWOULDBLOCK`.
    pub(crate) fn edge_pending(&self, dir: Dir) -> bool {
        let d = self.direction(dir);
        d.ready.load(Ordering::Acquire) || d.closed.load(Ordering::Acquire)
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        // Never touch the fd here: the last reference may be the poller's (see `poll`), dropped
        // after the owner closed the fd and the number went to a new socket. The owner has
        // called `deregister` already; this only covers a source whose owner did not.
        self.unlink();
    }
}

#[derive(Default)]
struct Slab {
    entries: Vec<Option<Weak<Source>>>,
    free: Vec<usize>,
}

impl Slab {
    fn insert_with(&mut self, make: impl FnOnce(usize) -> Arc<Source>) -> Arc<Source> {
        let key = self.free.pop().unwrap_or_else(|| {
            self.entries.push(None);
            self.entries.len() - 1
        });
        let source = make(key);
        self.entries[key] = Some(Arc::downgrade(&source));
        source
    }

    fn get(&self, key: usize) -> Option<Arc<Source>> {
        self.entries.get(key)?.as_ref()?.upgrade()
    }

    /// Starts fetching the source under `key` (its reference counts and read direction)
    /// without touching it: the poll loop runs this a few events ahead, because each
    /// `upgrade` below is a locked instruction that waits for its own cache miss.
    fn prefetch(&self, key: usize) {
        if let Some(Some(weak)) = self.entries.get(key) {
            let source = weak.as_ptr() as usize;
            // `as_ptr` points past the two counts (`ArcInner`'s layout: counts, then data);
            // the read direction's waiters end past the first 64 bytes of the data.
            ult::raw::prefetch_line(source.wrapping_sub(2 * std::mem::size_of::<usize>()));
            ult::raw::prefetch_line(source + std::mem::offset_of!(Source, write) - 1);
        }
    }

    fn remove(&mut self, key: usize) {
        if let Some(slot) = self.entries.get_mut(key) {
            if slot.take().is_some() {
                self.free.push(key);
            }
        }
    }
}

/// Identifies the reactors of one runtime (each LWP of a many-to-many runtime has its own).
static NEXT_GROUP: AtomicUsize = AtomicUsize::new(1);

/// A new group id for the reactors of one runtime.
pub(crate) fn new_group() -> usize {
    NEXT_GROUP.fetch_add(1, Ordering::Relaxed)
}

/// One epoll instance with its sources: the readiness reactor of one LWP (many-to-many and
/// many-to-one) or of a whole one-to-one runtime.
pub struct Reactor {
    /// The runtime this reactor belongs to (see [`new_group`]).
    group: usize,
    registry: Registry,
    /// The epoll instance and its scratch space; whoever holds it is the (one) poller.
    polling: Mutex<Polling>,
    waker: Waker,
    slab: Mutex<Slab>,
    /// True while some thread is blocked in `epoll_wait` (then work for it needs `notify`).
    blocked: AtomicBool,
    /// ULTs parked in `Source::wait` (for statistics and for deciding whether to poll). On a
    /// cache line of its own: every wait updates it twice, and sharing a line with `blocked`
    /// and the mutexes, which the polling thread writes, made those updates miss (a sixth of
    /// `Source::wait`'s samples at 10,000 echo connections). Counting registered sources
    /// instead (no update per wait) was tried and not kept: the stall those updates showed
    /// moved to the next locked instruction after the wake-up, and the echo server's CPU per
    /// request stayed the same (10.15 against 10.25 µs, medians of six interleaved runs,
    /// `WINDOW_MS=3000 scripts/echo-ab.sh 10000 6`, scratch builds).
    waiting_ults: CachePadded<AtomicUsize>,
    /// Set by `notify`; cleared by a blocking `poll` just before it waits. A concurrent
    /// non-blocking `poll` (a spinning or busy LWP) can swallow the eventfd wake-up that
    /// `notify` wrote; this flag keeps the notification for the LWP about to block.
    notified: AtomicBool,
}

/// What the polling thread needs, under one lock.
struct Polling {
    poll: Poll,
    events: Events,
    /// A one-shot `CLOCK_MONOTONIC` timerfd in `poll`'s epoll (`None` if it could not be
    /// created: then timeouts keep `epoll_wait`'s millisecond granularity).
    timer: Option<OwnedFd>,
    /// Whether `timer` may still fire (armed by a poll that returned before it expired).
    timer_armed: bool,
    /// Sources with events, collected under the slab lock and fired after it is released.
    ready: Vec<(Arc<Source>, bool, bool)>,
}

impl Polling {
    /// Before a blocking `epoll_wait` with `timeout`: arms the timerfd for a timeout under
    /// [`PRECISE_BELOW`], so the wait ends on time rather than at the next whole
    /// millisecond; otherwise disarms a timer a previous poll left armed, which would end
    /// this wait early. Failures leave `epoll_wait`'s own timeout in charge.
    fn arm_timer(&mut self, timeout: Option<Duration>) {
        let Some(timer) = &self.timer else {
            return;
        };
        let value = match timeout {
            Some(t) if t < PRECISE_BELOW => t.max(Duration::from_nanos(1)),
            _ if self.timer_armed => Duration::ZERO, // disarms
            _ => return,
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: value.as_secs() as libc::time_t,
                tv_nsec: value.subsec_nanos() as libc::c_long, // below 1e9
            },
        };
        // SAFETY: `timer` is an open timerfd; `spec` is a valid itimerspec for the call and
        // the old value is not asked for (null).
        let rc = unsafe { libc::timerfd_settime(timer.as_raw_fd(), 0, &spec, ptr::null_mut()) };
        self.timer_armed = rc == 0 && !value.is_zero();
    }
}

/// A non-blocking, close-on-exec `CLOCK_MONOTONIC` timerfd, or `None` if the kernel refuses.
fn new_timerfd() -> Option<OwnedFd> {
    // SAFETY: timerfd_create takes two integers and returns a new fd or -1.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    // SAFETY: a new fd that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Arc<Reactor>>> = const { std::cell::RefCell::new(None) };
}

impl Reactor {
    /// A new reactor (one epoll instance and its eventfd) of the runtime `group`.
    pub(crate) fn new(group: usize) -> io::Result<Arc<Reactor>> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(&registry, WAKER)?;
        let timer = new_timerfd().and_then(|fd| {
            registry
                .register(&mut SourceFd(&fd.as_raw_fd()), TIMER, Interest::READABLE)
                .ok()?;
            Some(fd)
        });
        Ok(Arc::new(Reactor {
            group,
            registry,
            polling: Mutex::new(Polling {
                poll,
                events: Events::with_capacity(EVENTS_PER_POLL),
                timer,
                timer_armed: false,
                ready: Vec::new(),
            }),
            waker,
            slab: Mutex::new(Slab::default()),
            blocked: AtomicBool::new(false),
            waiting_ults: CachePadded::new(AtomicUsize::new(0)),
            notified: AtomicBool::new(false),
        }))
    }

    /// Makes `reactor` the one that sockets used on this kernel thread register with. Called
    /// by LWP threads when they start.
    pub(crate) fn set_current(reactor: Option<Arc<Reactor>>) {
        CURRENT.with(|c| *c.borrow_mut() = reactor);
    }

    /// The reactor of the runtime whose ULT is running on this thread, if any.
    pub(crate) fn current() -> Option<Arc<Reactor>> {
        if !ult::in_ult() {
            return None;
        }
        CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
    }

    /// Whether `self` belongs to the runtime whose ULT is running on this thread (one of its
    /// reactors, not necessarily this LWP's; [`Reactor::current`] without the reference
    /// count, for the per-wait check).
    pub(crate) fn is_current(&self) -> bool {
        ult::in_ult()
            && CURRENT
                .try_with(|c| c.borrow().as_ref().is_some_and(|r| r.same_runtime(self)))
                .unwrap_or(false)
    }

    /// Whether `self` and `other` belong to the same runtime.
    pub(crate) fn same_runtime(&self, other: &Reactor) -> bool {
        self.group == other.group
    }

    /// Registers `fd` (edge-triggered, both directions).
    ///
    /// The caller must keep `fd` open until it calls [`Source::deregister`] on the returned
    /// source, and must call it before closing `fd`.
    pub(crate) fn register(self: &Arc<Reactor>, fd: RawFd) -> io::Result<Arc<Source>> {
        let source = {
            let mut slab = self.slab.lock().unwrap_or_else(|e| e.into_inner());
            slab.insert_with(|key| {
                Arc::new(Source {
                    fd,
                    key,
                    reactor: self.clone(),
                    read: Direction::new_ready(),
                    write: Direction::new_ready(),
                    unlinked: AtomicBool::new(false),
                })
            })
        };
        // The fd stays open until the caller deregisters it, which deletes it from epoll
        // first (the contract of this function).
        let added = self.registry.register(
            &mut SourceFd(&fd),
            Token(source.key),
            Interest::READABLE | Interest::WRITABLE,
        );
        if let Err(e) = added {
            // Never added to the poller: only the slab entry needs to go.
            source.unlink();
            return Err(e);
        }
        Ok(source)
    }

    /// Polls once: blocks up to `timeout` (`None`: until an event or a notify; zero: does
    /// not block) and unparks the waiters of every ready source. Returns the number of
    /// events, or 0 if another thread is already polling.
    pub(crate) fn poll(&self, timeout: Option<Duration>) -> usize {
        let Ok(mut guard) = self.polling.try_lock() else {
            return 0;
        };
        let polling = &mut *guard;
        let blocking = timeout != Some(Duration::ZERO);
        if blocking {
            self.blocked.store(true, Ordering::SeqCst);
            // We hold `polling`, so no other poll can consume a wake-up from here on; a
            // notify that came before (whose waker event another poll may have eaten) shows
            // here. SeqCst: pairs with the store in `notify`.
            if self.notified.swap(false, Ordering::SeqCst) {
                self.blocked.store(false, Ordering::SeqCst);
                return 0;
            }
        }
        if blocking {
            polling.arm_timer(timeout);
        }
        let polled = polling.poll.poll(&mut polling.events, timeout);
        if blocking {
            self.blocked.store(false, Ordering::SeqCst);
        }
        if polled.is_err() {
            return 0; // EINTR: the caller polls again when it has nothing better to do
        }
        // These strong references can outlive the sockets: a socket dropped meanwhile has
        // deregistered and closed its fd, and its `Source` is then dropped here, on this
        // thread (harmless, since `Drop` never touches the fd; firing it wakes nobody).
        {
            let slab = self.slab.lock().unwrap_or_else(|e| e.into_inner());
            let mut ahead = polling.events.iter().skip(PREFETCH_EVENTS_AHEAD);
            for ev in polling.events.iter() {
                if let Some(later) = ahead.next() {
                    slab.prefetch(later.token().0);
                }
                if ev.token() == WAKER {
                    continue;
                }
                if ev.token() == TIMER {
                    // One-shot and edge-triggered: it expired, and the next arm starts a
                    // new edge, so there is nothing to read.
                    polling.timer_armed = false;
                    continue;
                }
                let Some(source) = slab.get(ev.token().0) else {
                    continue;
                };
                // Errors and hang-ups wake both directions: the retried system call reports
                // them.
                let failed = ev.is_error();
                let read_closed = ev.is_read_closed() || failed;
                let write_closed = ev.is_write_closed() || failed;
                // Release, before `fire`'s own: pairs with the acquire in `edge_pending`.
                if read_closed {
                    source.read.closed.store(true, Ordering::Release);
                }
                if write_closed {
                    source.write.closed.store(true, Ordering::Release);
                }
                let readable = ev.is_readable() || read_closed;
                let writable = ev.is_writable() || write_closed;
                polling.ready.push((source, readable, writable));
            }
        }
        let ready = &mut polling.ready;
        for i in 0..ready.len() {
            // Each wake-up's first touch of its ULT's header is a cache miss at 10,000
            // connections; start it a few wake-ups early.
            if let Some((later, readable, writable)) = ready.get(i + PREFETCH_EVENTS_AHEAD) {
                later.prefetch_waiters(*readable, *writable);
            }
            let (source, readable, writable) = &ready[i];
            if *readable {
                source.read.fire();
            }
            if *writable {
                source.write.fire();
            }
        }
        let n = ready.len();
        ready.clear();
        n
    }

    /// Interrupts a thread blocked in [`Reactor::poll`] (or makes the next poll return at
    /// once).
    pub(crate) fn notify(&self) {
        // SeqCst: pairs with the swap in the blocking `poll`.
        self.notified.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }

    /// Whether a thread is blocked in `epoll_wait` right now.
    pub(crate) fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::SeqCst)
    }

    /// Number of ULTs currently parked waiting for readiness.
    pub(crate) fn waiting_ults(&self) -> usize {
        self.waiting_ults.load(Ordering::Relaxed)
    }
}

/// Waits for `fd` to become ready in `dir` by blocking the calling kernel thread in
/// `poll(2)`: the fallback outside a runtime with a reactor (a plain thread, or `ult`'s
/// many-to-one executor, where it stalls every ULT, which is the point of that model).
/// Returns false if the deadline passed.
pub(crate) fn poll_fd_blocking(fd: RawFd, dir: Dir, deadline: Option<Instant>) -> io::Result<bool> {
    loop {
        let timeout_ms: libc::c_int = match deadline {
            None => -1,
            Some(dl) => {
                let now = Instant::now();
                if dl <= now {
                    return Ok(false);
                }
                (dl - now).as_millis().clamp(1, i32::MAX as u128) as libc::c_int
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events: match dir {
                Dir::Read => libc::POLLIN,
                Dir::Write => libc::POLLOUT,
            },
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if rc > 0 {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Dir, Reactor};
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// Polls until `source` has a pending read edge, or gives up after a second.
    fn poll_for_edge(reactor: &Reactor, source: &super::Source) -> bool {
        for _ in 0..100 {
            reactor.poll(Some(Duration::from_millis(10)));
            if source.edge_pending(Dir::Read) {
                return true;
            }
        }
        false
    }

    #[test]
    fn a_forgotten_edge_is_gone_and_a_later_one_is_kept() {
        let reactor = Reactor::new(super::new_group()).expect("reactor");
        let (mut peer, ours) = std::os::unix::net::UnixStream::pair().expect("socket pair");
        ours.set_nonblocking(true).expect("non-blocking");
        let source = reactor.register(ours.as_raw_fd()).expect("register");
        // A fresh source starts ready (nothing has been tried yet): forget that.
        source.forget_edge(Dir::Read);
        assert!(!source.edge_pending(Dir::Read));

        peer.write_all(b"one").expect("write");
        assert!(poll_for_edge(&reactor, &source), "the first edge arrives");
        source.forget_edge(Dir::Read);
        assert!(!source.edge_pending(Dir::Read), "forgetting clears it");

        // Data that arrives after the forget (and after a read would have started) must
        // leave an edge for the next read.
        peer.write_all(b"two").expect("write");
        assert!(poll_for_edge(&reactor, &source), "a later edge is kept");

        // SAFETY: `ours` is still open.
        unsafe { source.deregister() };
    }
}
