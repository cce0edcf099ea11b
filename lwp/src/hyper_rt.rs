//! hyper on green threads: [`HyperIo`] (`hyper::rt::Read`/`Write` for [`TcpStream`]),
//! [`LwpExecutor`] (`hyper::rt::Executor`) and [`LwpTimer`] (`hyper::rt::Timer`), behind the
//! `hyper` cargo feature.
//!
//! The intended shape is one ULT per connection, each driving its hyper connection future
//! with [`crate::block_on`]:
//!
//! ```
//! use std::convert::Infallible;
//! use std::io::{Read, Write};
//! use lwp::hyper_rt::{HyperIo, LwpTimer};
//!
//! let listener = lwp::net::TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! let server = std::thread::spawn(move || {
//!     let rt = lwp::Runtime::builder().lwps(2).build().unwrap();
//!     rt.run(move || {
//!         let (stream, _) = listener.accept().unwrap();
//!         let service = hyper::service::service_fn(|_req| async {
//!             Ok::<_, Infallible>(hyper::Response::new(String::from("hi")))
//!         });
//!         let conn = hyper::server::conn::http1::Builder::new()
//!             .timer(LwpTimer)
//!             .serve_connection(HyperIo::new(stream), service);
//!         lwp::block_on(conn).unwrap(); // this connection's ULT drives it
//!     })
//! });
//! // A blocking std client on this plain thread.
//! let mut c = std::net::TcpStream::connect(addr).unwrap();
//! c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
//! let mut reply = String::new();
//! c.read_to_string(&mut reply).unwrap();
//! assert!(reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with("hi"));
//! server.join().unwrap();
//! ```
//!
//! ## I/O: real poll-based readiness, from watcher ULTs
//!
//! hyper's `Read`/`Write` are poll-based: a `poll_read` that cannot make progress must
//! return `Pending` and arrange for `cx.waker()` to be woken when the socket is ready. The
//! runtime's reactor (crate-private) only knows how to unpark ULTs, so each [`HyperIo`]
//! gets, on its first `WouldBlock` in a direction, a small *watcher* ULT that does the
//! blocking-style wait ([`TcpStream::readable`] / [`TcpStream::writable`], which parks the
//! watcher on the reactor), confirms readiness with `poll(2)` and a zero timeout (a
//! reactor wake-up can be stale), and wakes the stored waker. The read watcher waits all the time; the write watcher only while a write is
//! blocked (the failing `poll_write` "arms" it), because an edge-triggered event reports
//! writability along with every incoming segment and would wake it for nothing.
//!
//! Why not park the ULT inside `poll_read` until the socket is readable, since each
//! connection future is driven by `block_on` on its own ULT? Because a poll that blocks
//! hides every other wake-up of the same task, and hyper's own dispatcher needs them: on
//! every turn it polls the read side *first* (to notice EOF even while a response is being
//! produced), then the write side. A client connection parked in `poll_read` never picks up
//! the next request from its `SendRequest` channel, and a server whose service future waits
//! for a timer or a channel never sees that future's wake-up. With wakers neither can
//! happen, and any number of `HyperIo`s and other futures can share one task (`join!`,
//! `select!`): the tests drive a server, a client connection and its requests from one ULT.
//!
//! Cost: each readiness takes one more ULT switch (reactor, watcher, connection ULT) and
//! one probe system call, and each connection one or two more ULTs (kernel threads, under
//! one-to-one). A reactor that stored wakers next to unparkers would remove both; the
//! watchers are an implementation detail behind this module's API.
//!
//! Invariants:
//! - Before returning `Pending`, the connection side retries its system call whenever the
//!   watcher reported readiness since its last attempt (the `ready` flag, set and cleared
//!   under the direction's mutex together with the stored waker), so a readiness that
//!   arrives between a failed `recv` and the waker's registration is never lost.
//! - Dropping a [`HyperIo`] sets `closed` and unparks its watchers; a watcher checks
//!   `closed` after every wait and exits, dropping its reference to the socket (the last
//!   one closes it). A watcher that has not started yet sees `closed` when it starts.
//! - Timeouts set on the stream (`set_read_timeout`) bound the watchers' waits: when one
//!   passes without readiness, the next `poll_read`/`poll_write` that would block returns
//!   `TimedOut`. hyper's own timeouts (`header_read_timeout`, with [`LwpTimer`]) are the
//!   usual tool.
//!
//! ## Timer
//!
//! [`LwpTimer`]'s sleeps ([`LwpSleep`]) are waker-based futures served by one process-wide
//! timer thread (a `BTreeMap` of deadlines under a mutex, a condvar wait until the
//! earliest), started on first use. A sleep registers on its first poll and unregisters
//! when dropped or reset, so the per-request header timeout that hyper creates and drops
//! costs two map operations and no wake-up; the thread is signalled only when a new
//! deadline is earlier than the one it sleeps until, and sleeps (no CPU) while no sleep is
//! registered.
//!
//! Who may call what: a `HyperIo` may be polled from any task on any thread; its watchers
//! run on the runtime of the ULT that first polls it, or on the default runtime when that
//! is a plain thread. Like [`crate::net`], it needs an `lwp` runtime to wait on: under
//! `ult`'s bare many-to-one executor a watcher's wait falls back to `poll(2)` and blocks
//! that executor's only thread. Sleeps may be created, polled and dropped anywhere.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

use socket2::SockRef;

use crate::net::TcpStream;

// ---------------------------------------------------------------------------------------
// I/O
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Read,
    Write,
}

#[derive(Default)]
enum Watcher {
    /// Not spawned yet, or exited.
    #[default]
    Absent,
    /// Spawned, not yet running (it will see `closed` when it starts).
    Starting,
    /// Running; unpark it to make it re-check its state.
    Running(ult::Unparker),
}

#[derive(Default)]
struct DirState {
    /// The task to wake when the direction becomes ready.
    waker: Option<Waker>,
    /// Set by the watcher when it saw readiness; cleared by the connection side before
    /// it retries its system call.
    ready: bool,
    /// Write direction: a write is blocked (the write watcher waits for readiness only
    /// then). Unused for reads: the read watcher always waits.
    armed: bool,
    /// Error from the watcher's wait (a stream timeout), returned by the next poll that
    /// would block.
    error: Option<io::Error>,
    watcher: Watcher,
}

struct Shared {
    stream: TcpStream,
    /// Set by `HyperIo::drop` (release), read by the watchers after each wait (acquire).
    closed: AtomicBool,
    read: Mutex<DirState>,
    write: Mutex<DirState>,
}

impl Shared {
    fn state(&self, dir: Dir) -> MutexGuard<'_, DirState> {
        let m = match dir {
            Dir::Read => &self.read,
            Dir::Write => &self.write,
        };
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_closed(&self) -> bool {
        // Acquire: pairs with the release store in `HyperIo::drop`.
        self.closed.load(Ordering::Acquire)
    }

    /// Whether `dir` is ready right now: a level-triggered `poll(2)` with a zero timeout
    /// (it never blocks, and unlike a `MSG_PEEK` read it leaves a pending socket error for
    /// the connection side's system call to report). Errors and hang-ups count as ready.
    fn probe(&self, dir: Dir) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events: match dir {
                Dir::Read => libc::POLLIN | libc::POLLRDHUP,
                Dir::Write => libc::POLLOUT,
            },
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1, on an fd that `self.stream` keeps open; a zero
        // timeout never blocks.
        let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
        rc != 0 // > 0: ready (or error/hang-up); < 0: let the system call report it
    }
}

/// The watcher ULT of one direction (see the module header).
fn watch(shared: Arc<Shared>, dir: Dir) {
    {
        let mut st = shared.state(dir);
        if shared.is_closed() {
            st.watcher = Watcher::Absent;
            return;
        }
        st.watcher = Watcher::Running(ult::unparker());
    }
    loop {
        if shared.is_closed() {
            break;
        }
        if dir == Dir::Write && !shared.state(dir).armed {
            // Armed and unparked by `poll_write`; the park token covers an arm that lands
            // between the check and the park.
            ult::park();
            continue;
        }
        let waited = match dir {
            Dir::Read => shared.stream.readable(),
            Dir::Write => shared.stream.writable(),
        };
        if shared.is_closed() {
            break;
        }
        let (waker, fatal) = match waited {
            Ok(()) => {
                if !shared.probe(dir) {
                    continue; // a stale edge or an unpark: wait again
                }
                let mut st = shared.state(dir);
                st.ready = true;
                st.armed = false;
                (st.waker.take(), false)
            }
            Err(e) => {
                let fatal = e.kind() != io::ErrorKind::TimedOut;
                let mut st = shared.state(dir);
                st.error = Some(e);
                st.armed = false;
                (st.waker.take(), fatal)
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        if fatal {
            break; // the connection side spawns a new watcher if it waits again
        }
    }
    shared.state(dir).watcher = Watcher::Absent;
}

/// A [`TcpStream`] for hyper: implements `hyper::rt::Read` and `hyper::rt::Write` with real
/// poll semantics (see the module header), so `hyper::server::conn::http1` and
/// `hyper::client::conn::http1` run on ULTs.
///
/// Writes use `MSG_NOSIGNAL` (a closed peer is an `EPIPE` error, never a signal) and
/// support vectored writes; `poll_flush` has nothing to flush; `poll_shutdown` shuts the
/// write half down (an already disconnected socket counts as shut down).
pub struct HyperIo {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for HyperIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperIo")
            .field("stream", &self.shared.stream)
            .finish()
    }
}

impl From<TcpStream> for HyperIo {
    fn from(stream: TcpStream) -> HyperIo {
        HyperIo::new(stream)
    }
}

impl HyperIo {
    /// Wraps a connected stream. Nothing is spawned until a call would block.
    pub fn new(stream: TcpStream) -> HyperIo {
        HyperIo {
            shared: Arc::new(Shared {
                stream,
                closed: AtomicBool::new(false),
                read: Mutex::new(DirState::default()),
                write: Mutex::new(DirState::default()),
            }),
        }
    }

    /// The stream (for addresses, `set_nodelay`, timeouts). Reading or writing through it
    /// while hyper owns the connection corrupts the protocol, as with any transport.
    pub fn get_ref(&self) -> &TcpStream {
        &self.shared.stream
    }

    /// Runs `op` until it does not return `WouldBlock`; on `WouldBlock`, registers the
    /// waker (spawning or arming the watcher) and returns `Pending`.
    fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Dir,
        mut op: impl FnMut(&TcpStream) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let shared = &*self.shared;
        loop {
            match op(&shared.stream) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return Poll::Ready(other),
            }
            let mut st = shared.state(dir);
            if let Some(e) = st.error.take() {
                return Poll::Ready(Err(e));
            }
            if st.ready {
                // Readiness was seen since the last attempt (perhaps after it): retry.
                st.ready = false;
                continue;
            }
            match &st.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.waker = Some(cx.waker().clone()),
            }
            let mut unpark = None;
            if dir == Dir::Write && !st.armed {
                st.armed = true;
                if let Watcher::Running(u) = &st.watcher {
                    unpark = Some(u.clone());
                }
            }
            let spawn = matches!(st.watcher, Watcher::Absent);
            if spawn {
                st.watcher = Watcher::Starting;
            }
            drop(st);
            if let Some(u) = unpark {
                u.unpark();
            }
            if spawn {
                let watcher_shared = self.shared.clone();
                let name = match dir {
                    Dir::Read => "hyper-io-read",
                    Dir::Write => "hyper-io-write",
                };
                let spawned = crate::Builder::new()
                    .name(name.to_string())
                    .spawn(move || watch(watcher_shared, dir));
                if let Err(e) = spawned {
                    let mut st = shared.state(dir);
                    st.watcher = Watcher::Absent;
                    st.armed = false;
                    return Poll::Ready(Err(e));
                }
            }
            return Poll::Pending;
        }
    }
}

impl Drop for HyperIo {
    fn drop(&mut self) {
        // Release: pairs with the watchers' acquire loads after their waits.
        self.shared.closed.store(true, Ordering::Release);
        for dir in [Dir::Read, Dir::Write] {
            let unparker = match &self.shared.state(dir).watcher {
                Watcher::Running(u) => Some(u.clone()),
                _ => None,
            };
            if let Some(u) = unparker {
                u.unpark();
            }
        }
    }
}

impl hyper::rt::Read for HyperIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(self.poll_io(cx, Dir::Read, |s| {
            // SAFETY: `recv` only stores bytes into the slice; it never de-initializes any.
            let dst = unsafe { buf.as_mut() };
            SockRef::from(s).recv(dst)
        }))?;
        // SAFETY: `recv` returned `n`: it initialized the first `n` bytes of the unfilled
        // part of the buffer.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for HyperIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, Dir::Write, |s| {
            SockRef::from(s).send_with_flags(buf, libc::MSG_NOSIGNAL)
        })
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, Dir::Write, |s| {
            SockRef::from(s).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.shared.stream.shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Executor
// ---------------------------------------------------------------------------------------

/// `hyper::rt::Executor`: runs each future on its own new ULT with [`crate::block_on`]
/// (on the runtime of the calling ULT, or on the default runtime from a plain thread).
///
/// hyper's HTTP/1 server and client need no executor; it is for HTTP/2, upgrades and the
/// user's own "spawn the client connection" step:
///
/// ```no_run
/// # fn f(conn: impl std::future::Future<Output = ()> + Send + 'static) {
/// use hyper::rt::Executor;
/// lwp::hyper_rt::LwpExecutor.execute(conn);
/// # }
/// ```
///
/// # Panics
/// `execute` panics if no ULT can be created (like [`crate::spawn`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct LwpExecutor;

impl<F> hyper::rt::Executor<F> for LwpExecutor
where
    F: Future + Send + 'static,
{
    fn execute(&self, fut: F) {
        // Boxed: hyper's connection futures are kilobytes, and a ULT's closure is moved
        // onto its new stack, which corosensei limits to 1 KiB.
        let fut = Box::pin(fut);
        crate::spawn(move || {
            drop(crate::block_on(fut));
        });
    }
}

// ---------------------------------------------------------------------------------------
// Timer
// ---------------------------------------------------------------------------------------

/// `hyper::rt::Timer` for hyper's timeouts (`header_read_timeout`, keep-alive timers):
/// its sleeps are [`LwpSleep`] futures, served by one process-wide timer thread.
///
/// ```
/// use hyper::rt::Timer;
/// use std::time::{Duration, Instant};
/// let rt = lwp::Runtime::builder().lwps(1).build().unwrap();
/// let waited = rt.run(|| {
///     let t0 = Instant::now();
///     lwp::block_on(lwp::hyper_rt::LwpTimer.sleep(Duration::from_millis(5)));
///     t0.elapsed()
/// });
/// assert!(waited >= Duration::from_millis(5));
/// ```
///
/// # Panics
/// A sleep's first poll panics if the timer thread cannot be started.
#[derive(Clone, Copy, Debug, Default)]
pub struct LwpTimer;

impl hyper::rt::Timer for LwpTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(LwpSleep::new(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(LwpSleep::until(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<LwpSleep>() {
            Some(s) => s.get_mut().reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A future that completes at a deadline, usable in any task on any thread (what
/// [`LwpTimer`] returns). It registers with the timer thread on its first poll and
/// unregisters when dropped, so a dropped timeout costs nothing at its deadline.
#[derive(Debug)]
pub struct LwpSleep {
    /// `None`: never (the deadline overflowed `Instant`).
    deadline: Option<Instant>,
    /// Key in the timer queue while registered.
    key: Option<Key>,
    entry: Arc<Entry>,
}

type Key = (Instant, u64);

#[derive(Debug, Default)]
struct Entry {
    state: Mutex<EntryState>,
}

#[derive(Debug, Default)]
struct EntryState {
    fired: bool,
    waker: Option<Waker>,
}

impl Entry {
    fn lock(&self) -> MutexGuard<'_, EntryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl LwpSleep {
    /// Completes `duration` from now.
    pub fn new(duration: Duration) -> LwpSleep {
        LwpSleep::at(Instant::now().checked_add(duration))
    }

    /// Completes at `deadline`.
    pub fn until(deadline: Instant) -> LwpSleep {
        LwpSleep::at(Some(deadline))
    }

    fn at(deadline: Option<Instant>) -> LwpSleep {
        LwpSleep {
            deadline,
            key: None,
            entry: Arc::new(Entry::default()),
        }
    }

    /// The deadline (`None` if it lies beyond what `Instant` can represent).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Moves the deadline (earlier or later); the sleep is pending again until then.
    pub fn reset(&mut self, deadline: Instant) {
        self.unregister();
        // A fresh entry: the timer thread may be about to fire the old one.
        self.entry = Arc::new(Entry::default());
        self.deadline = Some(deadline);
    }

    fn unregister(&mut self) {
        if let Some(key) = self.key.take() {
            queue().remove(key);
        }
    }
}

impl Drop for LwpSleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl Future for LwpSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(deadline) = this.deadline else {
            return Poll::Pending; // never
        };
        if Instant::now() >= deadline {
            this.unregister();
            return Poll::Ready(());
        }
        {
            let mut st = this.entry.lock();
            if st.fired {
                drop(st);
                this.key = None; // the timer thread removed it
                return Poll::Ready(());
            }
            match &st.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.waker = Some(cx.waker().clone()),
            }
        }
        if this.key.is_none() {
            this.key = Some(queue().insert(deadline, this.entry.clone()));
        }
        Poll::Pending
    }
}

impl hyper::rt::Sleep for LwpSleep {}

/// The process-wide timer queue and its thread.
struct Queue {
    state: Mutex<QueueState>,
    /// Signalled when an entry earlier than the thread's wake-up time is inserted.
    cv: Condvar,
}

struct QueueState {
    entries: BTreeMap<Key, Arc<Entry>>,
    next_id: u64,
    thread: ThreadState,
}

enum ThreadState {
    NotStarted,
    /// Firing entries, or about to look at the queue again (no signal needed).
    Busy,
    /// Blocked on the condvar until this time (`None`: until signalled).
    Waiting(Option<Instant>),
}

fn queue() -> &'static Queue {
    static QUEUE: OnceLock<Queue> = OnceLock::new();
    QUEUE.get_or_init(|| Queue {
        state: Mutex::new(QueueState {
            entries: BTreeMap::new(),
            next_id: 0,
            thread: ThreadState::NotStarted,
        }),
        cv: Condvar::new(),
    })
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&'static self, deadline: Instant, entry: Arc<Entry>) -> Key {
        let mut st = self.lock();
        let key = (deadline, st.next_id);
        st.next_id += 1;
        st.entries.insert(key, entry);
        match st.thread {
            ThreadState::NotStarted => {
                let spawned = std::thread::Builder::new()
                    .name("lwp-hyper-timer".into())
                    .spawn(move || self.run());
                if let Err(e) = spawned {
                    st.entries.remove(&key);
                    drop(st);
                    panic!("lwp::hyper_rt::LwpTimer: cannot start the timer thread: {e}");
                }
                st.thread = ThreadState::Busy;
            }
            ThreadState::Waiting(None) => self.cv.notify_one(),
            ThreadState::Waiting(Some(t)) if deadline < t => self.cv.notify_one(),
            _ => {}
        }
        key
    }

    fn remove(&self, key: Key) {
        self.lock().entries.remove(&key);
    }

    /// The timer thread: fires due entries, then sleeps until the earliest deadline.
    fn run(&self) {
        let mut st = self.lock();
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(first) = st.entries.first_entry() {
                if first.key().0 > now {
                    break;
                }
                due.push(first.remove());
            }
            if !due.is_empty() {
                st.thread = ThreadState::Busy;
                drop(st);
                for entry in due {
                    let waker = {
                        let mut e = entry.lock();
                        e.fired = true;
                        e.waker.take()
                    };
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
                st = self.lock();
                continue;
            }
            let next = st.entries.keys().next().map(|k| k.0);
            st.thread = ThreadState::Waiting(next);
            st = match next {
                Some(t) => {
                    self.cv
                        .wait_timeout(st, t.saturating_duration_since(now))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
            };
            st.thread = ThreadState::Busy;
        }
    }
}
