//! TCP echo servers, the load generator and the child-process plumbing of the `echo`
//! experiment (issue 4; the experiment itself is [`crate::experiments::echo`]).
//!
//! Every server runs in a child process of its own (`lab internal-peer echo-server --impl
//! X`), prints `PORT <n>` on stdout once it listens on 127.0.0.1, and serves until killed;
//! so no runtime's threads linger in the lab process, and the parent can read the server's
//! RSS, threads and open descriptors from `/proc/<pid>` (the idle-connections row). The
//! servers are the same program written for each runtime: accept in a loop, one task per
//! connection that reads up to 4 KiB and writes it back until EOF (the event loop keeps that
//! task's state by hand).
//!
//! | impl | server |
//! |---|---|
//! | `lwp-m1` / `lwp-11` / `lwp-mn` | `lwp::net` on a runtime of that model (many-to-one, one-to-one, many-to-many with one LWP per core); a ULT (64 KiB stack) per connection; under many-to-many the connection ULTs are migratable (see below) |
//! | `lwp-mn-home` | as `lwp-mn`, with the runtime's default: a started ULT stays on its first LWP |
//! | `tokio` | tokio multi-thread runtime (one worker per core), a task per connection |
//! | `may` | may with one worker per core, a coroutine (64 KiB stack) per connection |
//! | `event-loop` | no runtime: one thread, one edge-triggered epoll loop (`mio`), per connection a buffer and the echo's position in it (the lecture's finite-state machine, and the floor of the table) |
//!
//! Why `lwp-mn` opts its connection ULTs into migration (`lwp::Builder::migratable`, the
//! `unsafe` opt-in of the soundness policy; the handler holds no thread-local across a
//! switch): an LWP is a kernel thread that shares the CPUs with everything else, here the
//! load generator. With ULTs that stay home, the ULTs of an LWP that waits for a CPU wait
//! with it, while the other LWP may have nothing to run; with migration an idle LWP takes
//! them. On the 2-vCPU machine this is what separates the two at 10,000 connections in the
//! lab's slow series: in the report of 97499e0 (committed in d37a2e7) the home-bound server
//! served 84.0k requests/s (median of 3), the migratable one 94.8k and tokio 96.3k (medians
//! of 7); in scratch builds that ordered the servers by hand, the home-bound one fell to 81-84k after
//! the one-to-one server's run in 4 of 4 runs, the migratable one 92-98k. Outside those
//! series the two are level. tokio's tasks and may's coroutines migrate too (may's spawn is
//! `unsafe` for that reason), so the comparison is like with like; `lwp-mn-home` keeps the
//! default in the table beside it.
//!
//! All seven listen on a socket made the same way ([`listener`]: `SO_REUSEADDR`, backlog
//! [`BACKLOG`]), so connection set-up is not skewed by different accept-queue lengths.
//!
//! The load generator ([`run_client`]) is the same for every server and runs in its own child
//! process too (`lab internal-peer echo-client`). It is written with plain non-blocking
//! sockets and one level-triggered `epoll` loop (`polling`) on one thread, so it costs the
//! same whatever server it drives and uses no runtime under test. A run has three phases:
//! 1. ramp: open the connections, each sending one request as soon as it is open; at most
//!    [`RAMP_PENDING`] may wait for their echo, so the server's accept queue never overflows
//!    (an overflow drops the SYN and costs a one-second retransmission). A connection
//!    counts as open once echoed, then stays quiet. The ramp has a time budget.
//! 2. pause (optional, `--pause-ms`): print `READY <n>` and wait for a line on stdin; the
//!    server now holds n idle connections, and the experiment reads its RSS.
//! 3. load: a closed loop on every connection (send `msg` bytes, wait for the whole echo,
//!    send again), a warm-up, then a measured window; each request's latency goes into an
//!    HDR histogram, printed as one JSON [`ClientResult`] line. A second histogram takes the
//!    time from the send to the echo's arrival in this process's kernel (the socket's
//!    software receive timestamp, `SO_TIMESTAMPNS`, read with `recvmsg`): the server's
//!    response time without the time the echo then waits for this loop to come round to
//!    it, which at 10,000 connections is most of the end-to-end latency.
//!
//! [`hold_idle`] (`lab internal-peer echo-idle`) does the ramp and then holds the
//! connections silent for a given time (printing `OPEN <n>`): idle connections without a
//! load phase, for tests and for probing a server by hand.
//!
//! Invariants: nothing here can hang its caller. Connection set-up has a time budget
//! ([`LoadSpec::setup_limit`]), the measured loop ends at its deadline whatever the server
//! does, and [`PeerProcess`] kills and reaps its child when dropped (also on error paths and
//! while unwinding), with a timeout on every wait.
//!
//! Who calls what: `bin/lab.rs` forwards `lab internal-peer echo-*` to [`internal_peer`];
//! the experiment starts those children through [`PeerProcess`]; tests call [`serve_on`],
//! [`run_client`] and [`hold_idle`] in-process.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::sys;

/// Server implementations the experiment knows.
pub const IMPLS: [&str; 7] = [
    "lwp-m1",
    "lwp-11",
    "lwp-mn",
    "lwp-mn-home",
    "tokio",
    "may",
    "event-loop",
];

/// Listen backlog of every server (tokio's and may's own `bind` use the same).
pub const BACKLOG: i32 = 1024;

/// Stack of a connection's ULT or may coroutine, in bytes.
pub const CONN_STACK: usize = 64 * 1024;

/// Bytes each connection's task reads (and echoes) at most at once.
const CONN_BUF: usize = 4096;

/// Raises the soft open-files limit to the hard limit (10,000 connections need 10,000
/// descriptors in the client and as many in the server). Returns the new soft limit.
pub fn raise_nofile() -> io::Result<u64> {
    let (_, hard) = nofile_limits()?;
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct we pass; raising the soft limit up to the hard
    // one is always allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(hard)
}

/// The (soft, hard) open-files limits of this process.
pub fn nofile_limits() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// How many local ports `connect` can choose from (`net.ipv4.ip_local_port_range`).
pub fn ephemeral_ports() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = s.split_whitespace().map(|v| v.parse::<u64>().ok());
    let lo = it.next()??;
    let hi = it.next()??;
    Some(hi.saturating_sub(lo) + 1)
}

/// A listening socket on 127.0.0.1 with an OS-chosen port and a backlog of [`BACKLOG`].
pub fn listener() -> io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    // Linux lets `listen` be called again on a listening socket to change its backlog, so
    // every server gets the same accept queue whatever std's default is.
    // SAFETY: `l` owns a valid listening socket for the duration of the call.
    if unsafe { libc::listen(l.as_raw_fd(), BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(l)
}

/// One connection of the blocking-style echo servers (ours and may's): read, write back.
fn echo_conn(mut s: impl Read + Write) {
    let mut buf = [0u8; CONN_BUF];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Serves forever with `impl_name` (one of [`IMPLS`]); `announce` gets the port once the
/// server listens. Returns only on error (an unknown name, a runtime that cannot start, an
/// accept error other than a transient one).
pub fn serve_on<A>(impl_name: &str, announce: A) -> Result<(), String>
where
    A: FnOnce(u16) + Send + 'static,
{
    let _ = raise_nofile();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let std_listener = || -> Result<(std::net::TcpListener, u16), String> {
        let l = listener().map_err(|e| format!("listen: {e}"))?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        Ok((l, port))
    };
    match impl_name {
        "lwp-m1" | "lwp-11" | "lwp-mn" | "lwp-mn-home" => {
            let migrate = impl_name == "lwp-mn";
            let model = match impl_name {
                "lwp-m1" => lwp::Model::ManyToOne,
                "lwp-11" => lwp::Model::OneToOne,
                _ => lwp::Model::ManyToMany { lwps: cores },
            };
            let rt = lwp::Runtime::builder()
                .model(model)
                .sysmon_warnings(false)
                .build()
                .map_err(|e| format!("lwp runtime: {e}"))?;
            let (l, port) = std_listener()?;
            rt.run(move || {
                let l = lwp::net::TcpListener::from_std(l).map_err(|e| e.to_string())?;
                announce(port);
                loop {
                    match l.accept() {
                        Ok((s, _)) => {
                            let _ = s.set_nodelay(true);
                            // A connection that cannot get a ULT is dropped (closed): the
                            // client counts it as an error.
                            let builder = lwp::Builder::new().stack_size(CONN_STACK);
                            let builder = if migrate {
                                // SAFETY: `echo_conn` keeps no thread-local reference and no
                                // `!Send` value across a switch: its state is the stream and
                                // a buffer on its own stack (see the module header).
                                unsafe { builder.migratable() }
                            } else {
                                builder
                            };
                            let _ = builder.spawn(move || echo_conn(s));
                        }
                        Err(e) if transient_accept_error(&e) => {}
                        Err(e) => return Err(format!("accept: {e}")),
                    }
                }
            })
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(cores)
                .enable_io()
                .build()
                .map_err(|e| format!("tokio runtime: {e}"))?;
            let (l, port) = std_listener()?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            rt.block_on(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let l = tokio::net::TcpListener::from_std(l).map_err(|e| e.to_string())?;
                announce(port);
                loop {
                    let mut s = match l.accept().await {
                        Ok((s, _)) => s,
                        Err(e) if transient_accept_error(&e) => continue,
                        Err(e) => return Err(format!("accept: {e}")),
                    };
                    let _ = s.set_nodelay(true);
                    tokio::spawn(async move {
                        let mut buf = [0u8; CONN_BUF];
                        loop {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if s.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            })
        }
        "may" => {
            // may counts its stack size in machine words.
            may::config()
                .set_workers(cores)
                .set_stack_size(CONN_STACK / std::mem::size_of::<usize>());
            let (l, port) = std_listener()?;
            let l = {
                use std::os::fd::{FromRawFd, IntoRawFd};
                let fd = l.into_raw_fd();
                // SAFETY: `fd` is a listening socket we own (just released by `into_raw_fd`);
                // may's listener takes ownership of it and closes it when dropped.
                unsafe { may::net::TcpListener::from_raw_fd(fd) }
            };
            announce(port);
            loop {
                let (s, _) = match l.accept() {
                    Ok(x) => x,
                    Err(e) if transient_accept_error(&e) => continue,
                    Err(e) => return Err(format!("accept: {e}")),
                };
                let _ = s.set_nodelay(true);
                // SAFETY: may's `spawn` is unsafe because a coroutine may migrate between
                // worker threads; the body touches no thread-local state (only its own
                // stack buffer and socket), so migration cannot observe another thread's
                // locals.
                let spawned = unsafe {
                    // The default stack size (set above) takes may's pooled stacks.
                    may::coroutine::Builder::new().spawn(move || echo_conn(s))
                };
                // As for ours: a connection that cannot get a coroutine is closed.
                drop(spawned);
            }
        }
        "event-loop" => {
            let (l, port) = std_listener()?;
            event_loop_server(l, move || announce(port)).map_err(|e| format!("event loop: {e}"))
        }
        other => Err(format!(
            "unknown echo server `{other}` (expected one of {})",
            IMPLS.join(", ")
        )),
    }
}

/// One connection of the event-loop server: its socket, its buffer, and where it stands.
struct FsmConn {
    stream: mio::net::TcpStream,
    buf: Box<[u8; CONN_BUF]>,
    /// The bytes `buf[sent..filled]` are read and not yet written back.
    sent: usize,
    filled: usize,
    /// The last read found the receive queue empty: read again only after a readable edge.
    drained: bool,
}

impl FsmConn {
    /// Runs the connection's state machine as far as its socket allows: write back what is
    /// pending, then read, until a call would block. False when the connection is over (EOF
    /// or an error): the caller drops it, which closes the socket.
    fn drive(&mut self) -> bool {
        loop {
            while self.sent < self.filled {
                match self.stream.write(&self.buf[self.sent..self.filled]) {
                    Ok(0) => return false,
                    Ok(n) => self.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            if self.drained {
                return true;
            }
            match self.stream.read(&mut self.buf[..]) {
                Ok(0) => return false,
                Ok(n) => {
                    (self.sent, self.filled) = (0, n);
                    // A short read emptied the receive queue (as tokio assumes on Linux):
                    // whatever arrives later raises a new edge.
                    self.drained = n < CONN_BUF;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.drained = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

/// The lecture's finite-state-machine server in its barest form: one kernel thread, one
/// edge-triggered epoll instance (through `mio`), and per connection a buffer and the
/// position of the echo in it; no runtime, no tasks, no wake-ups. It is the floor the
/// runtimes' rows are measured against: what the kernel's sockets cost with almost nothing
/// above them.
fn event_loop_server(l: std::net::TcpListener, announce: impl FnOnce()) -> io::Result<()> {
    use mio::{Events, Interest, Poll, Token};
    const LISTENER: Token = Token(usize::MAX);
    l.set_nonblocking(true)?;
    let mut listener = mio::net::TcpListener::from_std(l);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    announce();
    let mut conns: Vec<Option<FsmConn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    loop {
        match poll.poll(&mut events, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r?,
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    let mut stream = match listener.accept() {
                        Ok((s, _)) => s,
                        Err(e) if transient_accept_error(&e) => break,
                        Err(e) => return Err(e),
                    };
                    let _ = stream.set_nodelay(true);
                    let slot = free.pop().unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if poll
                        .registry()
                        .register(&mut stream, Token(slot), interest)
                        .is_err()
                    {
                        free.push(slot);
                        continue;
                    }
                    conns[slot] = Some(FsmConn {
                        stream,
                        buf: Box::new([0; CONN_BUF]),
                        sent: 0,
                        filled: 0,
                        drained: false,
                    });
                }
                continue;
            }
            let slot = ev.token().0;
            let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                conn.drained = false;
            }
            if !conn.drive() {
                conns[slot] = None;
                free.push(slot);
            }
        }
    }
}

/// Errors after which an accept loop goes on: the peer gave up before we accepted, the
/// call was interrupted, or descriptors ran out for a moment (the connection stays queued).
fn transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted | io::ErrorKind::WouldBlock
    ) || matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Serves forever with `impl_name`, announcing `PORT <n>` on stdout (the child-process form
/// of [`serve_on`]).
pub fn serve(impl_name: &str) -> Result<(), String> {
    serve_on(impl_name, |port| {
        println!("PORT {port}");
        let _ = io::stdout().flush();
    })
}

/// What one load-generator run measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct ClientResult {
    /// Connections asked for.
    #[serde(default)]
    pub requested: usize,
    /// Connections that were open when the measurement started.
    pub conns: usize,
    /// Completed requests in the measured window.
    pub requests: u64,
    /// Length of the measured window in nanoseconds.
    pub window_ns: u64,
    /// Connections that failed (`connect_errors + io_errors`).
    pub errors: u64,
    /// Connections that could not be opened (error, or the set-up budget ran out).
    #[serde(default)]
    pub connect_errors: u64,
    /// Open connections lost later (I/O error, or the server closed them).
    #[serde(default)]
    pub io_errors: u64,
    /// Nanoseconds spent opening the connections.
    #[serde(default)]
    pub setup_ns: u64,
    /// The first error seen, in words.
    #[serde(default)]
    pub first_error: Option<String>,
    /// Median latency in nanoseconds.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest latency.
    pub max_ns: u64,
    /// CPU time (user + system) the server process used during the measured window, if its
    /// pid was given and `/proc` could be read.
    #[serde(default)]
    pub server_cpu_ns: Option<u64>,
    /// Of [`ClientResult::server_cpu_ns`], the time the kernel spent on the server's behalf
    /// (system time). The kernel samples the user/system split at its clock tick and
    /// `/proc` reports it in 10 ms units, so read it as a share over a window, not as an
    /// exact figure.
    #[serde(default)]
    pub server_system_ns: Option<u64>,
    /// CPU time this load generator used during the measured window (about one window's
    /// worth when it is the bottleneck), if `/proc` could be read.
    #[serde(default)]
    pub client_cpu_ns: Option<u64>,
    /// Requests in the window whose echo carried the kernel's receive timestamp (all of
    /// them, unless the kernel does not stamp loopback packets: the first socket to ask
    /// turns stamping on from a work queue, so only packets of the ramp may go unstamped).
    #[serde(default)]
    pub stamped: u64,
    /// Median time from sending a request to its echo's arrival in the load generator's
    /// kernel (the receive timestamp): the latency without the time the echo then waits
    /// for the load generator to read it. `None` without stamped requests.
    #[serde(default)]
    pub arrival_p50_ns: Option<u64>,
    /// 99th percentile of the same.
    #[serde(default)]
    pub arrival_p99_ns: Option<u64>,
}

impl ClientResult {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / (self.window_ns.max(1) as f64 / 1e9)
    }

    /// Server CPU time per completed request, in nanoseconds.
    pub fn server_cpu_per_request_ns(&self) -> Option<f64> {
        let cpu = self.server_cpu_ns?;
        (self.requests > 0).then(|| cpu as f64 / self.requests as f64)
    }

    /// The kernel's share of the server's CPU time over the window (system time over user +
    /// system), if both were read and the server used any.
    pub fn server_kernel_share(&self) -> Option<f64> {
        let cpu = self.server_cpu_ns?;
        let system = self.server_system_ns?;
        (cpu > 0).then(|| system.min(cpu) as f64 / cpu as f64)
    }

    /// The load generator's CPU time over the window's length (1.0: one CPU all the time).
    pub fn client_cpu_share(&self) -> Option<f64> {
        let cpu = self.client_cpu_ns?;
        (self.window_ns > 0).then(|| cpu as f64 / self.window_ns as f64)
    }
}

/// What [`run_client`] does.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Server address.
    pub addr: SocketAddr,
    /// Connections (closed loop: one request in flight on each).
    pub conns: usize,
    /// Request (and echo) size in bytes.
    pub msg: usize,
    /// Run before measuring.
    pub warmup: Duration,
    /// Measured window.
    pub window: Duration,
    /// Most time spent opening the connections; those not open by then count as connect
    /// errors and the run goes on with the others.
    pub setup_limit: Duration,
    /// The server's process, whose CPU time over the measured window goes into the result
    /// ([`ClientResult::server_cpu_ns`]); `None` when the server is not a process of its own.
    pub server_pid: Option<u32>,
}

/// Connections awaiting their first echo while connections are being opened, at most: well
/// under [`BACKLOG`], so the server's accept queue never overflows. (An overflow drops the
/// SYN and the client retries only after a second, which would make set-up times say more
/// about TCP's retransmission timer than about the server.)
pub const RAMP_PENDING: usize = 256;

struct Conn {
    stream: TcpStream,
    sent_at: Instant,
    /// Receive timestamp of the echo's latest bytes.
    arrived_ns: Option<u64>,
    got: usize,
    write_pending: usize,
    want_write: bool,
    served: bool,
}

/// What a connection does after an echo: send the next request (closed loop) or go quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Repeat,
    Idle,
}

/// Sets `SO_LINGER` to zero so that closing sends a reset: the load generator's tens of
/// thousands of closes leave no TIME_WAIT sockets holding local ports for the next run.
fn reset_on_close(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `s` owns a valid socket; setsockopt reads `size_of::<linger>()` bytes from `l`,
    // which lives for the call.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Writes what is pending on `c`; `Ok(true)` when all of it went out.
fn flush(c: &mut Conn, payload: &[u8]) -> io::Result<bool> {
    while c.write_pending > 0 {
        let from = payload.len() - c.write_pending;
        match (&c.stream).write(&payload[from..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => c.write_pending -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Sends a request on `c` (from `key`), asking for writability only if it did not all fit.
fn send(poller: &polling::Poller, c: &mut Conn, key: usize, payload: &[u8]) -> io::Result<()> {
    c.got = 0;
    c.sent_at = Instant::now();
    c.arrived_ns = None;
    c.write_pending = payload.len();
    let done = flush(c, payload)?;
    set_interest(poller, c, key, !done)
}

fn set_interest(poller: &polling::Poller, c: &mut Conn, key: usize, write: bool) -> io::Result<()> {
    if c.want_write != write {
        c.want_write = write;
        let ev = if write {
            polling::Event::all(key)
        } else {
            polling::Event::readable(key)
        };
        poller.modify_with_mode(&c.stream, ev, polling::PollMode::Level)?;
    }
    Ok(())
}

/// The load generator's state: one level-triggered epoll set over non-blocking sockets.
struct Driver {
    poller: polling::Poller,
    events: polling::Events,
    conns: Vec<Option<Conn>>,
    payload: Vec<u8>,
    buf: Vec<u8>,
    after: After,
    hist: hdrhistogram::Histogram<u64>,
    /// Send to the echo's arrival in the kernel (receive timestamps), same window.
    arrival_hist: hdrhistogram::Histogram<u64>,
    /// One instant on both clocks: a send's `Instant` maps to the stamps' clock
    /// ([`sys::realtime_ns`]) by this offset, with no second clock read per request
    /// (NTP slews both clocks alike; only a step of the wall clock would shift it).
    clock_base: (Instant, u64),
    /// Echoes in the window that carried a receive timestamp.
    stamped: u64,
    /// Echoes completing in `[from, to)` are counted and their latency recorded.
    window: Option<(Instant, Instant)>,
    requests: u64,
    io_errors: u64,
    first_error: Option<String>,
    /// Open connections.
    live: usize,
    /// Open connections that have not had their first echo yet.
    unserved: usize,
}

impl Driver {
    fn new(msg: usize, after: After) -> Result<Driver, String> {
        Ok(Driver {
            poller: polling::Poller::new().map_err(|e| format!("epoll: {e}"))?,
            events: polling::Events::new(),
            conns: Vec::new(),
            payload: vec![0x5a; msg.max(1)],
            buf: vec![0; CONN_BUF.max(msg)],
            after,
            hist: hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .map_err(|e| e.to_string())?,
            arrival_hist: hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .map_err(|e| e.to_string())?,
            stamped: 0,
            clock_base: (Instant::now(), sys::realtime_ns()),
            window: None,
            requests: 0,
            io_errors: 0,
            first_error: None,
            live: 0,
            unserved: 0,
        })
    }

    /// Opens one connection and sends its first request.
    fn open(&mut self, addr: SocketAddr, timeout: Duration) -> io::Result<()> {
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        let _ = s.set_nodelay(true);
        s.set_nonblocking(true)?;
        // Without stamps the arrival columns say n/a; the load runs the same.
        let _ = sys::enable_rx_timestamps(s.as_fd());
        let key = self.conns.len();
        // SAFETY: polling requires the source to stay open while registered. The stream is
        // owned by `self.conns` and deleted from the poller before it is dropped
        // (`drop_conn`, `close_all`); if a `Driver` is dropped without that (an early `?`),
        // `poller` is declared before `conns`, so the epoll fd closes first.
        unsafe {
            self.poller.add_with_mode(
                &s,
                polling::Event::readable(key),
                polling::PollMode::Level,
            )?;
        }
        let mut c = Conn {
            stream: s,
            sent_at: Instant::now(),
            arrived_ns: None,
            got: 0,
            write_pending: 0,
            want_write: false,
            served: false,
        };
        let sent = send(&self.poller, &mut c, key, &self.payload);
        self.conns.push(Some(c));
        self.live += 1;
        self.unserved += 1;
        if let Err(e) = sent {
            self.drop_conn(key, Some(format!("first write: {e}")));
        }
        Ok(())
    }

    /// Closes connection `key`; `why` counts it as an I/O error.
    fn drop_conn(&mut self, key: usize, why: Option<String>) {
        if let Some(c) = self.conns.get_mut(key).and_then(Option::take) {
            let _ = self.poller.delete(&c.stream);
            reset_on_close(&c.stream);
            self.live -= 1;
            if !c.served {
                self.unserved -= 1;
            }
        }
        if let Some(why) = why {
            self.io_errors += 1;
            self.first_error.get_or_insert(why);
        }
    }

    /// Waits up to `timeout` for events and handles them.
    fn poll(&mut self, timeout: Duration) -> Result<(), String> {
        self.events.clear();
        match self.poller.wait(&mut self.events, Some(timeout)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(format!("epoll wait: {e}")),
        }
        let ready: Vec<(usize, bool, bool)> = self
            .events
            .iter()
            .map(|ev| (ev.key, ev.readable, ev.writable))
            .collect();
        for (key, readable, writable) in ready {
            if let Some(why) = self.on_event(key, readable, writable) {
                self.drop_conn(key, Some(why));
            }
        }
        Ok(())
    }

    /// Handles readiness of connection `key`; `Some(why)` if it must be dropped.
    fn on_event(&mut self, key: usize, readable: bool, writable: bool) -> Option<String> {
        let c = self.conns.get_mut(key).and_then(Option::as_mut)?;
        let msg = self.payload.len();
        if writable {
            if let Err(e) =
                flush(c, &self.payload).and_then(|done| set_interest(&self.poller, c, key, !done))
            {
                return Some(format!("write: {e}"));
            }
        }
        if !readable {
            return None;
        }
        // Read until the echo is complete or the socket is drained. After a complete echo
        // the next request is sent at once and no further read is tried: nothing more can
        // arrive before the server has it (level-triggered epoll reports any surprise).
        loop {
            match sys::recv_stamped(c.stream.as_fd(), &mut self.buf) {
                Ok((0, _)) => return Some("the server closed the connection".into()),
                Ok((n, stamp)) => {
                    c.got += n;
                    c.arrived_ns = stamp.or(c.arrived_ns);
                    if c.got < msg {
                        continue;
                    }
                    if c.got > msg || c.write_pending > 0 {
                        return Some(format!(
                            "the server echoed {} bytes for a {msg}-byte request",
                            c.got
                        ));
                    }
                    let now = Instant::now();
                    if let Some((from, to)) = self.window {
                        if now >= from && now < to {
                            self.requests += 1;
                            let ns = (now - c.sent_at).as_nanos().clamp(1, 60_000_000_000);
                            let _ = self.hist.record(ns as u64);
                            if let Some(at) = c.arrived_ns {
                                self.stamped += 1;
                                let (base, base_wall) = self.clock_base;
                                let sent_wall = base_wall
                                    + c.sent_at.saturating_duration_since(base).as_nanos() as u64;
                                let ns = at.saturating_sub(sent_wall).clamp(1, 60_000_000_000);
                                let _ = self.arrival_hist.record(ns);
                            }
                        }
                    }
                    if !c.served {
                        c.served = true;
                        self.unserved -= 1;
                    }
                    c.got = 0;
                    if self.after == After::Repeat {
                        if let Err(e) = send(&self.poller, c, key, &self.payload) {
                            return Some(format!("write: {e}"));
                        }
                    }
                    return None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(format!("read: {e}")),
            }
        }
    }

    /// Opens `spec.conns` connections, each served one echo, keeping at most
    /// [`RAMP_PENDING`] waiting for their first echo, within `spec.setup_limit`. Returns
    /// (connections served, connect errors, set-up time). Connections not served by the
    /// deadline are closed and counted as connect errors.
    fn ramp(&mut self, spec: &LoadSpec) -> Result<(usize, u64, Duration), String> {
        let start = Instant::now();
        let deadline = start + spec.setup_limit;
        let mut tried = 0usize;
        let mut connect_errors = 0u64;
        loop {
            while tried < spec.conns && self.unserved < RAMP_PENDING {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                tried += 1;
                if let Err(e) = self.open(spec.addr, left.min(Duration::from_secs(5))) {
                    connect_errors += 1;
                    self.first_error
                        .get_or_insert_with(|| format!("connect #{tried}: {e}"));
                }
            }
            let now = Instant::now();
            if (tried == spec.conns && self.unserved == 0) || now >= deadline {
                break;
            }
            let can_open = tried < spec.conns && self.unserved < RAMP_PENDING;
            let wait = if can_open {
                Duration::ZERO
            } else {
                (deadline - now).min(Duration::from_millis(10))
            };
            self.poll(wait)?;
        }
        let late: Vec<usize> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(k, c)| c.as_ref().filter(|c| !c.served).map(|_| k))
            .collect();
        let not_done = (spec.conns - tried) as u64 + late.len() as u64;
        if not_done > 0 {
            self.first_error.get_or_insert_with(|| {
                format!(
                    "connection set-up ran out of its {:.1} s budget: {} of {} connections served",
                    spec.setup_limit.as_secs_f64(),
                    self.live - late.len(),
                    spec.conns
                )
            });
        }
        for k in late {
            self.drop_conn(k, None);
        }
        Ok((self.live, connect_errors + not_done, start.elapsed()))
    }

    fn close_all(&mut self) {
        for c in self.conns.drain(..).flatten() {
            let _ = self.poller.delete(&c.stream);
            reset_on_close(&c.stream);
        }
        self.live = 0;
        self.unserved = 0;
    }
}

/// Closed-loop load as `spec` says: opens the connections (each served one echo before it
/// counts as open, then left quiet; [`RAMP_PENDING`] at most waiting for it), starts the
/// closed loop on all of them at once, runs `warmup`, then measures for `window`. One thread, one level-triggered epoll loop, non-blocking sockets. `Err` only
/// when the poller itself fails; connection failures are counted in the result.
pub fn run_client(spec: &LoadSpec) -> Result<ClientResult, String> {
    run_client_with(spec, |_| {})
}

/// [`run_client`], calling `on_ready` with the number of open connections once they are all
/// open and quiet (each served one echo), before the closed loop starts: the experiment
/// reads the server's memory with that many idle connections at this point.
pub fn run_client_with(
    spec: &LoadSpec,
    on_ready: impl FnOnce(usize),
) -> Result<ClientResult, String> {
    let _ = raise_nofile();
    let mut d = Driver::new(spec.msg, After::Idle)?;
    let (opened, connect_errors, setup) = d.ramp(spec)?;
    on_ready(opened);
    // Every open connection has had its first echo and is quiet: start the closed loop on
    // all of them at once.
    d.after = After::Repeat;
    for key in 0..d.conns.len() {
        let Some(c) = d.conns[key].as_mut() else {
            continue;
        };
        if let Err(e) = send(&d.poller, c, key, &d.payload) {
            d.drop_conn(key, Some(format!("write: {e}")));
        }
    }
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.window;
    d.window = Some((measure_from, end));
    let cpu_now = || {
        (
            spec.server_pid.and_then(process_cpu_split_ns),
            self_cpu_ns(),
        )
    };
    let mut cpu_at_start = None;
    while d.live > 0 {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if cpu_at_start.is_none() && now >= measure_from {
            cpu_at_start = Some(cpu_now());
        }
        // Wake up at the window's start too, so the CPU reading is taken on time.
        let next = if cpu_at_start.is_none() {
            measure_from
        } else {
            end
        };
        d.poll(
            next.saturating_duration_since(now)
                .min(Duration::from_millis(100)),
        )?;
    }
    let cpu_at_end = cpu_now();
    let used = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
    let (server_cpu_ns, server_system_ns, client_cpu_ns) = match cpu_at_start {
        Some((s0, c0)) => (
            used(s0.map(|s| s.total), cpu_at_end.0.map(|s| s.total)),
            used(s0.map(|s| s.system), cpu_at_end.0.map(|s| s.system)),
            used(c0, cpu_at_end.1),
        ),
        None => (None, None, None),
    };
    d.close_all();
    let q = |p: f64| {
        if d.hist.is_empty() {
            0
        } else {
            d.hist.value_at_quantile(p)
        }
    };
    Ok(ClientResult {
        requested: spec.conns,
        conns: opened,
        requests: d.requests,
        window_ns: spec.window.as_nanos() as u64,
        errors: connect_errors + d.io_errors,
        connect_errors,
        io_errors: d.io_errors,
        setup_ns: setup.as_nanos() as u64,
        first_error: d.first_error.clone(),
        p50_ns: q(0.5),
        p90_ns: q(0.9),
        p99_ns: q(0.99),
        p999_ns: q(0.999),
        max_ns: d.hist.max(),
        server_cpu_ns,
        server_system_ns,
        client_cpu_ns,
        stamped: d.stamped,
        arrival_p50_ns: (!d.arrival_hist.is_empty()).then(|| d.arrival_hist.value_at_quantile(0.5)),
        arrival_p99_ns: (!d.arrival_hist.is_empty())
            .then(|| d.arrival_hist.value_at_quantile(0.99)),
    })
}

/// User + system CPU time of process `pid` so far, from `/proc/<pid>/stat` (all its
/// threads, including those that have exited), in nanoseconds. Resolution: one clock tick
/// (10 ms at the usual 100 Hz), so a window of a second or more reads within about 1%.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    stat_cpu_ns(&format!("/proc/{pid}/stat"))
}

/// A process's CPU time so far, in nanoseconds: user + system, and the system part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuSplit {
    /// User + system time.
    pub total: u64,
    /// System time (the kernel's work on the process's behalf).
    pub system: u64,
}

/// [`process_cpu_ns`] with its system part ([`CpuSplit`]), from the same read.
pub fn process_cpu_split_ns(pid: u32) -> Option<CpuSplit> {
    stat_cpu_split_ns(&format!("/proc/{pid}/stat"))
}

/// [`process_cpu_ns`] of the calling process.
pub fn self_cpu_ns() -> Option<u64> {
    stat_cpu_ns("/proc/self/stat")
}

fn stat_cpu_ns(path: &str) -> Option<u64> {
    stat_cpu_split_ns(path).map(|split| split.total)
}

fn stat_cpu_split_ns(path: &str) -> Option<CpuSplit> {
    let stat = std::fs::read_to_string(path).ok()?;
    let [utime, stime, ..] = sys::stat_cpu_ticks(&stat)?;
    let ns = |ticks: u64| ticks * 1_000_000_000 / sys::clock_ticks_per_second();
    Some(CpuSplit {
        total: ns(utime + stime),
        system: ns(stime),
    })
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks (see
/// [`sys::stat_cpu_ticks`]).
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let [utime, stime, ..] = sys::stat_cpu_ticks(stat)?;
    Some(utime + stime)
}

/// Opens `conns` connections to `addr` as [`run_client`] does (each served one `msg`-byte
/// echo, so the server has accepted it and its task has run), then leaves them silent:
/// calls `opened` with how many are open and the first error, and holds them for `hold`.
/// Returns how many were open. (The parent reads the server's RSS meanwhile.)
pub fn hold_idle(
    addr: SocketAddr,
    conns: usize,
    setup_limit: Duration,
    hold: Duration,
    opened: impl FnOnce(usize, Option<&str>),
) -> Result<usize, String> {
    let _ = raise_nofile();
    let spec = LoadSpec {
        addr,
        conns,
        msg: IDLE_PING,
        warmup: Duration::ZERO,
        window: Duration::ZERO,
        setup_limit,
        server_pid: None,
    };
    let mut d = Driver::new(spec.msg, After::Idle)?;
    let (open, _, _) = d.ramp(&spec)?;
    opened(open, d.first_error.as_deref());
    std::thread::sleep(hold);
    d.close_all();
    Ok(open)
}

/// Bytes of the one echo each idle connection exchanges before going quiet.
pub const IDLE_PING: usize = 64;

/// RSS in bytes of process `pid` (from `/proc/<pid>/statm`).
pub fn rss_of(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * if page > 0 { page as u64 } else { 4096 })
}

/// Where the requests in flight wait at one instant: established loopback connections to
/// the server's port with bytes received and not yet read, on the server's side (a request
/// it has not read) and on the load generator's (an echo it has not read). The closed loop
/// keeps one request per connection in flight, so the two counts say which side holds the
/// queue, and so whose queue a latency percentile measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// Server-side sockets with an unread request.
    pub at_server: u64,
    /// Load-generator-side sockets with an unread echo.
    pub at_client: u64,
}

/// [`Waiting`] now, for the server listening on `port` (`/proc/net/tcp`: IPv4, where the
/// experiment's servers listen). Reading it for 20,000 sockets costs the calling process
/// about 40 ms of kernel time (`/usr/bin/time cat /proc/net/tcp` inside a
/// 10,000-connection run, AMD EPYC).
pub fn waiting_on(port: u16) -> io::Result<Waiting> {
    Ok(parse_waiting(
        &std::fs::read_to_string("/proc/net/tcp")?,
        port,
    ))
}

/// [`waiting_on`]'s parser: per line `sl local rem st tx_queue:rx_queue ...` with addresses as
/// `HEXIP:HEXPORT`; only established sockets (`st` 01) count. Lines it cannot read are
/// skipped.
pub fn parse_waiting(proc_net_tcp: &str, port: u16) -> Waiting {
    let port_of = |addr: &str| {
        addr.rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    let mut w = Waiting::default();
    for line in proc_net_tcp.lines().skip(1) {
        let mut f = line.split_whitespace().skip(1);
        let (Some(local), Some(remote), Some(state), Some(queues)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let unread = queues
            .split_once(':')
            .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok())
            .unwrap_or(0);
        if state != "01" || unread == 0 {
            continue;
        }
        if port_of(local) == Some(port) {
            w.at_server += 1;
        } else if port_of(remote) == Some(port) {
            w.at_client += 1;
        }
    }
    w
}

/// Kernel threads of process `pid` (the `Threads:` line of `/proc/<pid>/status`).
pub fn threads_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Memory mappings of process `pid` (lines of `/proc/<pid>/maps`): what `vm.max_map_count`
/// limits. A stackful runtime's stacks show here (may: two per coroutine; ours: see
/// `ult::stack::GuardKind`).
pub fn mappings_of(pid: u32) -> Option<u64> {
    let maps = std::fs::read(format!("/proc/{pid}/maps")).ok()?;
    Some(maps.iter().filter(|&&b| b == b'\n').count() as u64)
}

/// Open descriptors of process `pid` (entries of `/proc/<pid>/fd`).
pub fn fds_of(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// A child process that is killed and reaped when dropped, whose stdout lines arrive on a
/// channel and whose last stderr lines are kept for error messages.
pub struct PeerProcess {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

const STDERR_KEEP: usize = 8;

impl PeerProcess {
    /// Starts `cmd` with stdin, stdout and stderr piped; `name` is used in errors.
    pub fn spawn(name: &str, mut cmd: Command) -> Result<PeerProcess, String> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let keep = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { return };
                    if let Ok(mut k) = keep.lock() {
                        if k.len() == STDERR_KEEP {
                            k.pop_front();
                        }
                        k.push_back(line);
                    }
                }
            });
        }
        Ok(PeerProcess {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes `line` and a newline to the child's stdin.
    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        let name = &self.name;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{name} has no stdin"))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("writing to {name}: {e}"))
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines the child wrote on stderr, joined (empty if none).
    pub fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .map(|k| k.iter().map(String::as_str).collect::<Vec<_>>().join(" / "))
            .unwrap_or_default()
    }

    fn why_gone(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => format!("exited with {s}"),
            Ok(None) => "closed its stdout".to_string(),
            Err(e) => format!("cannot be waited for: {e}"),
        };
        // Give the stderr reader a moment to collect the child's last words.
        std::thread::sleep(Duration::from_millis(20));
        let tail = self.stderr_tail();
        if tail.is_empty() {
            format!("{} {status}", self.name)
        } else {
            format!("{} {status}: {tail}", self.name)
        }
    }

    /// Waits up to `timeout` for a stdout line starting with `prefix`; returns the rest of
    /// the line, trimmed. Other lines are skipped.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.trim().to_string());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{} printed no `{prefix}` line within {:.1} s{}",
                        self.name,
                        timeout.as_secs_f64(),
                        match self.stderr_tail() {
                            t if t.is_empty() => String::new(),
                            t => format!(" (stderr: {t})"),
                        }
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => return Err(self.why_gone()),
            }
        }
    }

    /// Waits up to `timeout` for the child to exit; returns its status and the stdout lines
    /// not consumed yet. On timeout the child is killed and `Err` says so.
    pub fn finish(mut self, timeout: Duration) -> Result<(ExitStatus, Vec<String>), String> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(line) => out.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) if left.is_zero() => {
                    return Err(format!(
                        "{} ran longer than {:.1} s and was killed",
                        self.name,
                        timeout.as_secs_f64()
                    ));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        // Stdout is closed: the child is exiting (or closed it on purpose).
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok((status, out)),
                Ok(None) if Instant::now() >= deadline => {
                    return Err(format!(
                        "{} did not exit within {:.1} s and was killed",
                        self.name,
                        timeout.as_secs_f64()
                    ))
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("waiting for {}: {e}", self.name)),
            }
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // Kill and reap: no child outlives the experiment, none is left a zombie.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The child-process entry points, parsed from `args` (the words after `lab internal-peer`).
#[derive(Parser, Debug)]
#[command(name = "lab internal-peer", no_binary_name = true)]
enum PeerArgs {
    /// Serve until killed; prints `PORT <n>`.
    #[command(name = "echo-server")]
    Server {
        /// Which server (a bad name is a usage error, exit code 2).
        #[arg(long = "impl", value_parser = clap::builder::PossibleValuesParser::new(IMPLS))]
        imp: String,
    },
    /// Closed-loop load; prints one JSON `ClientResult` line.
    #[command(name = "echo-client")]
    Client {
        /// Server address (ip:port).
        #[arg(long)]
        addr: SocketAddr,
        /// Connections.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        conns: u64,
        /// Request size in bytes.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
        msg: u64,
        /// Warm-up before the measured window, ms.
        #[arg(long, default_value_t = 200)]
        warmup_ms: u64,
        /// Measured window, ms.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        window_ms: u64,
        /// Budget for opening the connections, ms.
        #[arg(long, default_value_t = 30_000)]
        setup_ms: u64,
        /// Once the connections are open and quiet, print `READY <n>` and wait up to this
        /// long for a line on stdin before starting the load (0: do not wait).
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
        /// The server's process id: its CPU time over the measured window goes into the
        /// result (`server_cpu_ns`).
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Hold idle connections; prints `OPEN <n>` once they are open.
    #[command(name = "echo-idle")]
    Idle {
        /// Server address (ip:port).
        #[arg(long)]
        addr: SocketAddr,
        /// Connections.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        conns: u64,
        /// How long to hold them, ms.
        #[arg(long)]
        hold_ms: u64,
        /// Budget for opening the connections, ms.
        #[arg(long, default_value_t = 30_000)]
        setup_ms: u64,
    },
}

/// Waits up to `timeout` for a line (or EOF) on stdin.
fn wait_stdin_line(timeout: Duration) {
    let mut pfd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd that lives for the call, count 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc > 0 {
        let mut line = String::new();
        let _ = io::stdin().lock().read_line(&mut line);
    }
}

/// Runs one `lab internal-peer echo-*` child: `args` are the words after `internal-peer`
/// (`["echo-server", "--impl", "tokio"]`). Returns the process exit code: 0 on success, 1 on
/// failure (message on stderr), 2 on bad arguments.
pub fn internal_peer(args: &[String]) -> i32 {
    let parsed = match PeerArgs::try_parse_from(args) {
        Ok(p) => p,
        Err(e) => {
            // Usage errors go to stderr, `--help` to stdout, as clap would print them.
            if e.use_stderr() {
                eprint!("{}", e.render());
            } else {
                print!("{}", e.render());
            }
            return e.exit_code();
        }
    };
    let result = match parsed {
        PeerArgs::Server { imp } => serve(&imp),
        PeerArgs::Client {
            addr,
            conns,
            msg,
            warmup_ms,
            window_ms,
            setup_ms,
            pause_ms,
            server_pid,
        } => run_client_with(
            &LoadSpec {
                addr,
                conns: conns as usize,
                msg: msg as usize,
                warmup: Duration::from_millis(warmup_ms),
                window: Duration::from_millis(window_ms),
                setup_limit: Duration::from_millis(setup_ms),
                server_pid,
            },
            |n| {
                if pause_ms > 0 {
                    println!("READY {n}");
                    let _ = io::stdout().flush();
                    wait_stdin_line(Duration::from_millis(pause_ms));
                }
            },
        )
        .and_then(|r| serde_json::to_string(&r).map_err(|e| e.to_string()))
        .map(|json| println!("{json}")),
        PeerArgs::Idle {
            addr,
            conns,
            hold_ms,
            setup_ms,
        } => hold_idle(
            addr,
            conns as usize,
            Duration::from_millis(setup_ms),
            Duration::from_millis(hold_ms),
            |n, err| {
                match err {
                    Some(e) => println!("OPEN {n} {e}"),
                    None => println!("OPEN {n}"),
                }
                let _ = io::stdout().flush();
            },
        )
        .map(|_| ()),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("lab internal-peer: {e}");
            1
        }
    }
}
