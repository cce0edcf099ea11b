//! Sockets that look blocking but park only the calling ULT: [`TcpListener`], [`TcpStream`]
//! and [`UdpSocket`], with std's method names, `Read`/`Write` impls and conversions from and
//! to the std types; [`UnixListener`], [`UnixStream`] and [`UnixDatagram`], the same for
//! Unix domain sockets; and [`lookup_host`], which resolves names on the blocking pool.
//!
//! Every socket is in non-blocking mode underneath. An operation first tries the system call;
//! on `EWOULDBLOCK` it waits for readiness and tries again:
//! - in a ULT of an `lwp` runtime, on the runtime's reactor (`lwp::reactor`, internal): only the ULT
//!   parks, its LWP runs others;
//! - anywhere else (a plain kernel thread, or `ult`'s own many-to-one executor), in `poll(2)`:
//!   the kernel thread blocks, exactly as with std (and, under a pure many-to-one executor,
//!   every ULT with it: the lecture's point).
//!
//! Timeouts (`set_read_timeout`, `set_write_timeout`, `connect_timeout`) are deadlines on
//! those waits and fail with [`io::ErrorKind::TimedOut`]. EOF, resets and refused connections
//! come back as the kernel reports them, as with std.
//!
//! A socket registers with the reactor of the runtime in which it first waits; used later
//! from another runtime's ULT it falls back to `poll(2)` there (correct, but it blocks that
//! LWP).

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::reactor::{poll_fd_blocking, Dir, Reactor, Source};

/// Readiness waiting and timeouts shared by the socket types.
///
/// Every socket type declares its `io` field before its `inner` (the fd): fields drop in
/// declaration order, so `Io`'s `Drop` deregisters the fd from the reactor while it is still
/// open. `into_std` and `into_raw_fd` drop the `Io` explicitly before handing the fd on.
///
/// Stream reads skip a system call that is sure to fail, as tokio does: a read that returned
/// fewer bytes than asked proves the receive queue empty at that moment, so the next read
/// waits for a new edge first unless one arrived since the read began
/// (`Source::forget_edge` before it, `Source::edge_pending` after) or the peer's close was
/// reported (then the next read returns 0 at once: the edge that announced the last data
/// announced the close too, and the read that took the data consumed it). A
/// request-response connection then makes one `recv` per request instead of two (the second
/// always failing with `EWOULDBLOCK`).
pub(crate) struct Io {
    /// Set on the first wait inside a runtime; `registering` makes that happen once.
    source: OnceLock<Arc<Source>>,
    registering: Mutex<()>,
    /// Timeouts in nanoseconds; `NO_TIMEOUT` for none (no lock on the read path).
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
    /// The last stream read was short: the receive queue was empty after it.
    read_drained: AtomicBool,
}

/// `Io` timeout value meaning "none".
const NO_TIMEOUT: u64 = u64::MAX;

impl Default for Io {
    fn default() -> Io {
        Io {
            source: OnceLock::new(),
            registering: Mutex::new(()),
            read_timeout: AtomicU64::new(NO_TIMEOUT),
            write_timeout: AtomicU64::new(NO_TIMEOUT),
            read_drained: AtomicBool::new(false),
        }
    }
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("registered", &self.source.get().is_some())
            .finish()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "operation timed out")
}

fn check_timeout(t: Option<Duration>) -> io::Result<()> {
    if t == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(())
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Sets or clears `O_NONBLOCK` on `fd` with one `ioctl(FIONBIO)`, as std's
/// `set_nonblocking` does for sockets; it works on any fd (pipes too). The flag belongs to
/// the open file description, so duplicates of the fd (`try_clone`, a forked child's copy)
/// see it as well.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let mut on = libc::c_int::from(on);
    // SAFETY: `fd` is open for the call (borrowed); FIONBIO reads one `c_int` from the
    // pointer, which is valid for the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONBIO, &mut on) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Io {
    fn drop(&mut self) {
        if let Some(source) = self.source.take() {
            // Deregister here, not in `Source`'s `Drop`: the reactor's poller may hold the last
            // reference to the source and drop it after our fd is closed and its number reused
            // by a new socket; a delete by number then would remove that socket's registration
            // and its waiter would never be woken (the one-to-one echo stall).
            // SAFETY: `Io` is dropped before the socket's fd is closed (field order in every
            // socket type, and the explicit drops in `into_std`/`into_raw_fd`; see the type's
            // documentation), so the fd is open during this call.
            unsafe { source.deregister() };
        }
    }
}

impl Io {
    fn timeout_cell(&self, dir: Dir) -> &AtomicU64 {
        match dir {
            Dir::Read => &self.read_timeout,
            Dir::Write => &self.write_timeout,
        }
    }

    pub(crate) fn timeout(&self, dir: Dir) -> Option<Duration> {
        // Relaxed: a setting, not a synchronisation point (as a socket option would be).
        match self.timeout_cell(dir).load(Ordering::Relaxed) {
            NO_TIMEOUT => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    pub(crate) fn set_timeout(&self, dir: Dir, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        // Longer than 584 years saturates just below `NO_TIMEOUT`.
        let ns = t.map_or(NO_TIMEOUT, |t| {
            u64::try_from(t.as_nanos()).map_or(NO_TIMEOUT - 1, |n| n.min(NO_TIMEOUT - 1))
        });
        self.timeout_cell(dir).store(ns, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn deadline(&self, dir: Dir) -> Option<Instant> {
        self.timeout(dir)
            .and_then(|t| Instant::now().checked_add(t))
    }

    /// The reactor source to wait on: this socket's, registered with the running ULT's
    /// runtime on first use; `None` outside a runtime with a reactor.
    fn source(&self, fd: RawFd) -> io::Result<Option<&Arc<Source>>> {
        if let Some(source) = self.source.get() {
            // A socket registered with another runtime's reactor (or used outside any) waits
            // by polling its fd.
            return Ok(source.reactor().is_current().then_some(source));
        }
        let Some(reactor) = Reactor::current() else {
            return Ok(None);
        };
        let _once = self.registering.lock().unwrap_or_else(|e| e.into_inner());
        let source = match self.source.get() {
            Some(source) => source,
            None => {
                let source = reactor.register(fd)?;
                self.source.get_or_init(|| source)
            }
        };
        Ok(source.reactor().same_runtime(&reactor).then_some(source))
    }

    /// Waits until `fd` may be ready in `dir`; false if the deadline passed.
    fn wait(&self, fd: RawFd, dir: Dir, deadline: Option<Instant>) -> io::Result<bool> {
        match self.source(fd)? {
            Some(source) => Ok(source.wait(dir, deadline, self as *const Io as usize)),
            None => poll_fd_blocking(fd, dir, deadline),
        }
    }

    /// Waits until `fd` may be ready in `dir`, within `dir`'s timeout (`TimedOut` if not).
    pub(crate) fn ready(&self, fd: RawFd, dir: Dir) -> io::Result<()> {
        if self.wait(fd, dir, self.deadline(dir))? {
            Ok(())
        } else {
            Err(timed_out())
        }
    }

    /// A stream read of at most `capacity` bytes through `op` (see the type's header).
    pub(crate) fn read_stream(
        &self,
        fd: RawFd,
        capacity: usize,
        op: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        let deadline = self.deadline(Dir::Read);
        // Relaxed: a hint; the edge flag (acquire) decides. Load first: no locked
        // instruction on the common path.
        if self.read_drained.load(Ordering::Relaxed) {
            self.read_drained.store(false, Ordering::Relaxed);
            if let Some(source) = self.source(fd)? {
                if !source.edge_pending(Dir::Read) {
                    // Drained, and no edge since: wait for one (the retry below handles a
                    // timeout).
                    source.wait(Dir::Read, deadline, self as *const Io as usize);
                }
            }
        }
        // The read below sees everything that arrived so far, so every edge so far is
        // spent: forget it. Otherwise an edge reported twice for data this read takes (epoll
        // repeats the readable bit when a later event, such as the ACK of our reply, finds
        // the data still unread) made the next read after a short one fail with
        // `EWOULDBLOCK` (a third of all reads at 10,000 echo connections).
        if let Some(source) = self.source.get() {
            source.forget_edge(Dir::Read);
        }
        let n = self.retry(fd, Dir::Read, deadline, op)?;
        if n > 0 && n < capacity {
            self.read_drained.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }

    /// [`Io::retry`] within `dir`'s timeout, counted from now: what every socket operation
    /// that may wait uses.
    pub(crate) fn timed<R>(
        &self,
        fd: RawFd,
        dir: Dir,
        op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        self.retry(fd, dir, self.deadline(dir), op)
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for readiness in between.
    pub(crate) fn retry<R>(
        &self,
        fd: RawFd,
        dir: Dir,
        deadline: Option<Instant>,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        let mut waited = false;
        loop {
            match op() {
                Err(e) if is_would_block(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => {
                    if waited {
                        coop::reset();
                    } else {
                        coop::spend();
                    }
                    return other;
                }
            }
            waited = true;
            if !self.wait(fd, dir, deadline)? {
                // One last attempt: readiness may have arrived with the deadline.
                return match op() {
                    Err(e) if is_would_block(&e) => Err(timed_out()),
                    other => other,
                };
            }
        }
    }
}

/// A cooperative budget, as tokio has: socket operations that succeed without waiting are
/// counted per kernel thread, and after [`coop::BUDGET`] of them in a row the calling ULT
/// yields. A ULT whose sockets are always ready (an accept loop during a burst of
/// connections, a reader of a fast peer) would otherwise keep its LWP to itself: the ULTs
/// queued behind it wait, and sysmon takes the LWP for stuck and starts another.
mod coop {
    use std::cell::Cell;

    /// Operations without a wait before a yield (tokio's budget is 128 too).
    pub(crate) const BUDGET: u32 = 128;

    thread_local! {
        static LEFT: Cell<u32> = const { Cell::new(BUDGET) };
    }

    /// An operation completed without waiting.
    #[inline]
    pub(crate) fn spend() {
        let left = LEFT.try_with(|l| {
            let left = l.get().saturating_sub(1);
            l.set(if left == 0 { BUDGET } else { left });
            left
        });
        if left == Ok(0) && ult::in_ult() {
            ult::yield_now();
        }
    }

    /// The caller waited (others ran meanwhile): a fresh budget.
    #[inline]
    pub(crate) fn reset() {
        let _ = LEFT.try_with(|l| l.set(BUDGET));
    }
}

/// Read-side per-operation timeouts (`TimedOut` when one passes), for every type with an
/// `io: Io` field; the expanding module needs `Duration` and `Dir` in scope.
macro_rules! read_timeout_impls {
    ($t:ident) => {
        impl $t {
            /// Read (receive) deadline per operation; `None` waits forever. `Some(0)` is an
            /// error, like std.
            pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
                self.io.set_timeout(Dir::Read, t)
            }

            /// The read timeout.
            pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
                Ok(self.io.timeout(Dir::Read))
            }
        }
    };
}

/// The write side of [`read_timeout_impls`].
macro_rules! write_timeout_impls {
    ($t:ident) => {
        impl $t {
            /// Write (send) deadline per operation; `None` waits forever. `Some(0)` is an
            /// error, like std.
            pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
                self.io.set_timeout(Dir::Write, t)
            }

            /// The write timeout.
            pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
                Ok(self.io.timeout(Dir::Write))
            }
        }
    };
}

/// Both directions' timeouts (the datagram socket, which has no stream surface).
macro_rules! timeout_impls {
    ($t:ident) => {
        read_timeout_impls!($t);
        write_timeout_impls!($t);
    };
}

/// The read half of a byte stream ([`TcpStream`], [`UnixStream`], `lwp::io::PipeReader`):
/// the read timeout, a readiness wait, a non-waiting read, and `Read` for the type and for a
/// shared reference to it (reads go through `Io::read_stream`). The type needs fields
/// `io: Io` and `inner`, a std type that `&inner` reads from; the expanding module needs
/// `Read`, `IoSliceMut`, `Duration` and `Dir` in scope.
macro_rules! read_impls {
    ($t:ident) => {
        read_timeout_impls!($t);

        impl $t {
            /// Waits (parking only the ULT) until there may be something to read; a later
            /// read can still return `WouldBlock` through `try_read`. Honours the read
            /// timeout.
            pub fn readable(&self) -> io::Result<()> {
                self.io.ready(self.inner.as_raw_fd(), Dir::Read)
            }

            /// Reads without waiting: `WouldBlock` if no data is there (for poll-based adapters).
            pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                (&self.inner).read(buf)
            }
        }

        impl Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                (&*self).read(buf)
            }
            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let inner = &self.inner;
                let capacity = buf.len();
                self.io
                    .read_stream(inner.as_raw_fd(), capacity, || (&*inner).read(buf))
            }
            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                let inner = &self.inner;
                let capacity = bufs.iter().map(|b| b.len()).sum();
                self.io.read_stream(inner.as_raw_fd(), capacity, || {
                    (&*inner).read_vectored(bufs)
                })
            }
        }
    };
}

/// The write half of a byte stream ([`TcpStream`], [`UnixStream`], `lwp::io::PipeWriter`),
/// as [`read_impls`]: the write timeout, a readiness wait, a non-waiting write, and `Write`
/// for the type and for a shared reference to it. The expanding module needs `Write`,
/// `IoSlice`, `Duration` and `Dir` in scope.
macro_rules! write_impls {
    ($t:ident) => {
        write_timeout_impls!($t);

        impl $t {
            /// Waits (parking only the ULT) until there may be room to write. Honours the
            /// write timeout.
            pub fn writable(&self) -> io::Result<()> {
                self.io.ready(self.inner.as_raw_fd(), Dir::Write)
            }

            /// Writes without waiting: `WouldBlock` if the buffer is full.
            pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                (&self.inner).write(buf)
            }

            fn write_with<R>(&self, op: impl FnMut() -> io::Result<R>) -> io::Result<R> {
                self.io.timed(self.inner.as_raw_fd(), Dir::Write, op)
            }
        }

        impl Write for $t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                (&*self).write(buf)
            }
            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                (&*self).write_vectored(bufs)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        impl Write for &$t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let inner = &self.inner;
                self.write_with(|| (&*inner).write(buf))
            }
            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                let inner = &self.inner;
                self.write_with(|| (&*inner).write_vectored(bufs))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
    };
}

/// The surface [`TcpStream`] and [`UnixStream`] share: both halves of [`read_impls`] and
/// [`write_impls`].
macro_rules! stream_impls {
    ($t:ident) => {
        read_impls!($t);
        write_impls!($t);
    };
}

/// Resolves `host` (`"name:port"`, or an address with a port) to socket addresses on the
/// blocking pool (see [`crate::blocking()`]), so a slow resolver parks only the calling ULT;
/// like `tokio::net::lookup_host`. Outside a ULT it resolves on the calling thread.
///
/// ```
/// let rt = lwp::Runtime::builder().lwps(1).build()?;
/// let addrs = rt.run(|| lwp::net::lookup_host("localhost:8080"))?;
/// assert!(addrs.into_iter().all(|a| a.port() == 8080 && a.ip().is_loopback()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn lookup_host(host: &str) -> io::Result<Vec<SocketAddr>> {
    let host = host.to_owned();
    crate::blocking(move || host.as_str().to_socket_addrs().map(Iterator::collect))
}

/// A TCP socket server, like `std::net::TcpListener`, whose `accept` parks only the ULT.
///
/// ```
/// use std::io::{Read, Write};
/// let rt = lwp::Runtime::builder().lwps(2).build().unwrap();
/// let reply = rt.run(|| {
///     let listener = lwp::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let server = lwp::spawn(move || {
///         let (mut s, _) = listener.accept().unwrap();
///         let mut buf = [0u8; 5];
///         s.read_exact(&mut buf).unwrap();
///         s.write_all(&buf).unwrap();
///     });
///     let mut c = lwp::net::TcpStream::connect(addr).unwrap();
///     c.write_all(b"hello").unwrap();
///     let mut buf = [0u8; 5];
///     c.read_exact(&mut buf).unwrap();
///     server.join().unwrap();
///     buf
/// });
/// assert_eq!(&reply, b"hello");
/// ```
#[derive(Debug)]
pub struct TcpListener {
    // `io` first: it must drop (deregistering the fd) before `inner` closes the fd.
    io: Io,
    inner: std::net::TcpListener,
}

impl TcpListener {
    /// Binds to `addr` (like std: the first address that works).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        TcpListener::from_std(std::net::TcpListener::bind(addr)?)
    }

    /// Accepts a connection, parking the ULT until one arrives.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, addr) = self.io.retry(self.inner.as_raw_fd(), Dir::Read, None, || {
            self.inner.accept()
        })?;
        Ok((TcpStream::from_std(s)?, addr))
    }

    /// An iterator over incoming connections (never `None`), like std's.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        TcpListener::from_std(self.inner.try_clone()?)
    }

    /// `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }
}

/// Iterator returned by [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A TCP connection, like `std::net::TcpStream`, whose reads and writes park only the ULT.
#[derive(Debug)]
pub struct TcpStream {
    // `io` first: it must drop (deregistering the fd) before `inner` closes the fd.
    io: Io,
    inner: std::net::TcpStream,
}

impl TcpStream {
    /// Connects to the first address of `addr` that accepts, like std.
    ///
    /// A host name in `addr` is resolved here, on the calling LWP (`getaddrinfo` blocks until
    /// the resolver answers); resolve it with [`lookup_host`] first, which parks only the ULT.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_inner(&a, None) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "could not resolve to any addresses",
            )
        }))
    }

    /// Connects with a timeout (`TimedOut` when it passes), like std.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        check_timeout(Some(timeout))?;
        TcpStream::connect_inner(addr, Instant::now().checked_add(timeout))
    }

    fn connect_inner(addr: &SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(*addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_nonblocking(true)?;
        let stream = TcpStream {
            io: Io::default(),
            inner: std::net::TcpStream::from(OwnedFd::from(socket)),
        };
        let sock_ref = socket2::SockRef::from(&stream.inner);
        match sock_ref.connect(&(*addr).into()) {
            Ok(()) => return Ok(stream),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) || is_would_block(&e) => {}
            Err(e) => return Err(e),
        }
        let fd = stream.inner.as_raw_fd();
        loop {
            if !stream.io.wait(fd, Dir::Write, deadline)? {
                return Err(timed_out());
            }
            // Writable: the connection finished, successfully or not.
            if let Some(e) = stream.inner.take_error()? {
                return Err(e);
            }
            match stream.inner.peer_addr() {
                Ok(_) => return Ok(stream),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => continue, // spurious
                Err(e) => return Err(e),
            }
        }
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Shuts down the read, write or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// Another handle to the same connection (its own timeouts).
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        TcpStream::from_std(self.inner.try_clone()?)
    }

    /// `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    /// `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.nodelay()
    }

    /// `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Reads without removing the data from the queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .timed(self.inner.as_raw_fd(), Dir::Read, || self.inner.peek(buf))
    }
}

stream_impls!(TcpStream);

/// A UDP socket, like `std::net::UdpSocket`, whose receives and sends park only the ULT.
#[derive(Debug)]
pub struct UdpSocket {
    // `io` first: it must drop (deregistering the fd) before `inner` closes the fd.
    io: Io,
    inner: std::net::UdpSocket,
}

impl UdpSocket {
    /// Binds to `addr`.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        UdpSocket::from_std(std::net::UdpSocket::bind(addr)?)
    }

    /// Receives one datagram and its sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.timed(self.inner.as_raw_fd(), Dir::Read, || {
            self.inner.recv_from(buf)
        })
    }

    /// Like `recv_from`, leaving the datagram queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.timed(self.inner.as_raw_fd(), Dir::Read, || {
            self.inner.peek_from(buf)
        })
    }

    /// Sends one datagram to `addr`.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.io.timed(self.inner.as_raw_fd(), Dir::Write, || {
            self.inner.send_to(buf, addr)
        })
    }

    /// Sets the default peer for `send` and `recv`.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        self.inner.connect(addr)
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .timed(self.inner.as_raw_fd(), Dir::Write, || self.inner.send(buf))
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .timed(self.inner.as_raw_fd(), Dir::Read, || self.inner.recv(buf))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        UdpSocket::from_std(self.inner.try_clone()?)
    }

    /// Like `recv`, leaving the datagram queued.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .timed(self.inner.as_raw_fd(), Dir::Read, || self.inner.peek(buf))
    }

    /// `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.set_broadcast(on)
    }

    /// Whether `SO_BROADCAST` is set.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.broadcast()
    }

    /// `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// The `IP_TTL` value.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Joins an IPv4 multicast group on the interface with address `interface`
    /// (`0.0.0.0`: the system's choice).
    pub fn join_multicast_v4(
        &self,
        multiaddr: &std::net::Ipv4Addr,
        interface: &std::net::Ipv4Addr,
    ) -> io::Result<()> {
        self.inner.join_multicast_v4(multiaddr, interface)
    }

    /// Joins an IPv6 multicast group on interface number `interface` (0: any).
    pub fn join_multicast_v6(
        &self,
        multiaddr: &std::net::Ipv6Addr,
        interface: u32,
    ) -> io::Result<()> {
        self.inner.join_multicast_v6(multiaddr, interface)
    }

    /// Leaves an IPv4 multicast group (see [`UdpSocket::join_multicast_v4`]).
    pub fn leave_multicast_v4(
        &self,
        multiaddr: &std::net::Ipv4Addr,
        interface: &std::net::Ipv4Addr,
    ) -> io::Result<()> {
        self.inner.leave_multicast_v4(multiaddr, interface)
    }

    /// Leaves an IPv6 multicast group (see [`UdpSocket::join_multicast_v6`]).
    pub fn leave_multicast_v6(
        &self,
        multiaddr: &std::net::Ipv6Addr,
        interface: u32,
    ) -> io::Result<()> {
        self.inner.leave_multicast_v6(multiaddr, interface)
    }

    /// `IP_MULTICAST_LOOP`: whether this host's own multicast datagrams come back to it.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.inner.set_multicast_loop_v4(on)
    }

    /// The `IP_MULTICAST_LOOP` value.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.inner.multicast_loop_v4()
    }

    /// `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_multicast_ttl_v4(ttl)
    }

    /// The `IP_MULTICAST_TTL` value.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.inner.multicast_ttl_v4()
    }

    /// Pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }
}

/// What every socket type has of its std twin and its fd: `from_std`/`into_std`, `TryFrom`,
/// and the `AsFd`/`AsRawFd`/`IntoRawFd`/`FromRawFd` traits (`io` always dropped, which
/// deregisters the fd, before the fd is handed on). The type needs fields `io: Io` and
/// `inner: $std`; `lwp::io`'s pipe ends use it too.
macro_rules! fd_impls {
    ($t:ident, $std:ty) => {
        impl $t {
            /// Wraps the std type (switching its fd to non-blocking mode).
            pub fn from_std(inner: $std) -> io::Result<$t> {
                $crate::net::set_nonblocking(inner.as_fd(), true)?;
                Ok($t {
                    io: Io::default(),
                    inner,
                })
            }

            /// The std type, its fd back in blocking mode (timeouts set here are not
            /// carried over).
            pub fn into_std(self) -> io::Result<$std> {
                let $t { io, inner } = self;
                drop(io); // deregister before handing the fd on
                $crate::net::set_nonblocking(inner.as_fd(), false)?;
                Ok(inner)
            }
        }
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.inner.as_raw_fd()
            }
        }
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.inner.as_fd()
            }
        }
        impl TryFrom<$std> for $t {
            type Error = io::Error;
            fn try_from(s: $std) -> io::Result<$t> {
                $t::from_std(s)
            }
        }
        impl IntoRawFd for $t {
            fn into_raw_fd(self) -> RawFd {
                let $t { io, inner } = self;
                drop(io);
                inner.into_raw_fd()
            }
        }
        impl FromRawFd for $t {
            /// # Safety
            /// `fd` must be an open file descriptor of the right kind, owned by the caller.
            unsafe fn from_raw_fd(fd: RawFd) -> $t {
                // SAFETY: forwarded from the caller.
                let inner = unsafe { <$std>::from_raw_fd(fd) };
                let _ = $crate::net::set_nonblocking(inner.as_fd(), true);
                $t {
                    io: Io::default(),
                    inner,
                }
            }
        }
    };
}

fd_impls!(TcpListener, std::net::TcpListener);
fd_impls!(TcpStream, std::net::TcpStream);
fd_impls!(UdpSocket, std::net::UdpSocket);
timeout_impls!(UdpSocket);

mod unix;
pub use unix::{Incoming as UnixIncoming, UnixDatagram, UnixListener, UnixStream};
