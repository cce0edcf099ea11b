//! TCP echo servers and the load generator of the `echo` experiment (issue 4).
//!
//! Every server runs in a child process of its own (`lab internal-peer echo-server --impl
//! X`), prints `PORT <n>` on stdout once it listens on 127.0.0.1, and serves until killed;
//! so no runtime's threads linger in the lab process, and the parent can read the server's
//! RSS from `/proc/<pid>/statm` (the idle-connections row). The servers are the same program
//! written for each runtime: accept in a loop, one task per connection that reads up to 4 KiB
//! and writes it back until EOF.
//!
//! | impl | server |
//! |---|---|
//! | `lwp-m1` / `lwp-11` / `lwp-mn` | `lwp::net` on a runtime of that model (many-to-one, one-to-one, many-to-many with one LWP per core); a ULT per connection |
//! | `tokio` | tokio multi-thread runtime (one worker per core), a task per connection |
//! | `may` | may with one worker per core, a coroutine per connection |
//!
//! The load generator ([`run_client`]) is the same for every server and runs in its own child
//! process too (`lab internal-peer echo-client`): a closed loop of `conns` connections, each
//! sending a `msg`-byte request and waiting for the whole echo before the next, for a fixed
//! duration; every request's latency goes into an HDR histogram. It is written with plain
//! non-blocking sockets and one `epoll` loop on one thread (so it costs the same whatever
//! server it drives, and uses no runtime under test).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Server implementations the experiment knows.
pub const IMPLS: [&str; 5] = ["lwp-m1", "lwp-11", "lwp-mn", "tokio", "may"];

/// Raises the soft open-files limit to the hard limit (10,000 connections need ~20,000 fds
/// across client and server). Returns the new soft limit.
pub fn raise_nofile() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: setrlimit reads the struct; raising the soft limit up to the hard one is allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}

fn announce(port: u16) {
    println!("PORT {port}");
    let _ = io::stdout().flush();
}

fn lwp_echo_conn(mut s: lwp::net::TcpStream) {
    let mut buf = [0u8; 4096];
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

/// Serves forever with `impl_name` (one of [`IMPLS`]). Returns only on error.
pub fn serve(impl_name: &str) -> Result<(), String> {
    let _ = raise_nofile();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match impl_name {
        "lwp-m1" | "lwp-11" | "lwp-mn" => {
            let model = match impl_name {
                "lwp-m1" => lwp::Model::ManyToOne,
                "lwp-11" => lwp::Model::OneToOne,
                _ => lwp::Model::ManyToMany { lwps: cores },
            };
            let rt = lwp::Runtime::builder()
                .model(model)
                .sysmon_warnings(false)
                .build()
                .map_err(|e| e.to_string())?;
            rt.run(|| {
                let l = lwp::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
                announce(l.local_addr().map_err(|e| e.to_string())?.port());
                loop {
                    match l.accept() {
                        Ok((s, _)) => {
                            let _ = s.set_nodelay(true);
                            // A connection that cannot get a ULT is dropped (closed).
                            let _ = lwp::Builder::new()
                                .stack_size(64 * 1024)
                                .spawn(move || lwp_echo_conn(s));
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
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
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| e.to_string())?;
                announce(l.local_addr().map_err(|e| e.to_string())?.port());
                loop {
                    let (mut s, _) = l.accept().await.map_err(|e| format!("accept: {e}"))?;
                    let _ = s.set_nodelay(true);
                    tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
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
            may::config().set_workers(cores).set_stack_size(0x4000);
            let l = may::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            announce(l.local_addr().map_err(|e| e.to_string())?.port());
            loop {
                let (mut s, _) = l.accept().map_err(|e| format!("accept: {e}"))?;
                let _ = s.set_nodelay(true);
                // SAFETY: the coroutine body touches no thread-local state, so migrating
                // between may's workers cannot observe another thread's locals.
                unsafe {
                    may::coroutine::spawn(move || {
                        let mut buf = [0u8; 4096];
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
                    });
                }
            }
        }
        other => Err(format!(
            "unknown echo server `{other}` (expected one of {})",
            IMPLS.join(", ")
        )),
    }
}

/// What one load-generator run measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ClientResult {
    /// Connections that were open during the measurement.
    pub conns: usize,
    /// Completed requests in the measured window.
    pub requests: u64,
    /// Length of the measured window in nanoseconds.
    pub window_ns: u64,
    /// Connections that failed (connect or I/O error, or early EOF).
    pub errors: u64,
    /// Latency percentiles in nanoseconds: p50, p90, p99, p99.9, max.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest latency.
    pub max_ns: u64,
}

impl ClientResult {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / (self.window_ns.max(1) as f64 / 1e9)
    }
}

struct Conn {
    stream: TcpStream,
    sent_at: Instant,
    got: usize,
    write_pending: usize,
}

/// Closed-loop load: `conns` connections to `addr`, `msg` bytes per request, `warmup` then a
/// measured `window`. One thread, one epoll loop, non-blocking sockets.
pub fn run_client(
    addr: SocketAddr,
    conns: usize,
    msg: usize,
    warmup: Duration,
    window: Duration,
) -> Result<ClientResult, String> {
    let _ = raise_nofile();
    let poller = polling::Poller::new().map_err(|e| e.to_string())?;
    let payload = vec![0x5au8; msg.max(1)];
    let mut open: HashMap<usize, Conn> = HashMap::with_capacity(conns);
    let mut errors = 0u64;
    for key in 0..conns {
        let s = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(_) => {
                errors += 1;
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        // SAFETY: the stream stays open (owned by `open`) until it is deleted from the poller
        // below or the poller is dropped at the end of this function.
        unsafe { poller.add(s.as_raw_fd(), polling::Event::readable(key)) }
            .map_err(|e| e.to_string())?;
        open.insert(
            key,
            Conn {
                stream: s,
                sent_at: Instant::now(),
                got: 0,
                write_pending: 0,
            },
        );
    }
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| e.to_string())?;
    // Send the first request on every connection.
    let mut to_remove = Vec::new();
    for (key, c) in open.iter_mut() {
        c.sent_at = Instant::now();
        match (&c.stream).write(&payload) {
            Ok(n) => c.write_pending = payload.len() - n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.write_pending = payload.len(),
            Err(_) => to_remove.push(*key),
        }
    }
    for k in to_remove.drain(..) {
        open.remove(&k);
        errors += 1;
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + window;
    let mut requests = 0u64;
    let mut events = polling::Events::new();
    let mut buf = vec![0u8; 4096.max(msg)];
    while Instant::now() < end && !open.is_empty() {
        events.clear();
        let timeout = end.saturating_duration_since(Instant::now());
        poller
            .wait(&mut events, Some(timeout.min(Duration::from_millis(100))))
            .map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let key = ev.key;
            let mut failed = false;
            if let Some(c) = open.get_mut(&key) {
                loop {
                    if c.write_pending > 0 {
                        let from = payload.len() - c.write_pending;
                        match (&c.stream).write(&payload[from..]) {
                            Ok(n) => c.write_pending -= n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(_) => {
                                failed = true;
                                break;
                            }
                        }
                    }
                    match (&c.stream).read(&mut buf) {
                        Ok(0) => {
                            failed = true;
                            break;
                        }
                        Ok(n) => {
                            c.got += n;
                            if c.got >= payload.len() {
                                let now = Instant::now();
                                if now >= measure_from && now < end {
                                    requests += 1;
                                    let _ = hist.record(
                                        (now - c.sent_at).as_nanos().max(1).min(u64::MAX as u128)
                                            as u64,
                                    );
                                }
                                c.got = 0;
                                c.sent_at = now;
                                match (&c.stream).write(&payload) {
                                    Ok(n) => c.write_pending = payload.len() - n,
                                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                        c.write_pending = payload.len()
                                    }
                                    Err(_) => {
                                        failed = true;
                                        break;
                                    }
                                }
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    }
                }
                if !failed {
                    let _ = poller.modify(&c.stream, polling::Event::readable(key));
                }
            }
            if failed {
                if let Some(c) = open.remove(&key) {
                    let _ = poller.delete(&c.stream);
                }
                errors += 1;
            }
        }
    }
    let window_ns = end.saturating_duration_since(measure_from).as_nanos() as u64;
    for c in open.values() {
        let _ = poller.delete(&c.stream);
    }
    Ok(ClientResult {
        conns: conns - errors as usize,
        requests,
        window_ns,
        errors,
        p50_ns: hist.value_at_quantile(0.5),
        p90_ns: hist.value_at_quantile(0.9),
        p99_ns: hist.value_at_quantile(0.99),
        p999_ns: hist.value_at_quantile(0.999),
        max_ns: hist.max(),
    })
}

/// Opens `conns` idle connections to `addr` and keeps them open for `hold`; returns how many
/// opened. (The parent reads the server's RSS meanwhile.)
pub fn hold_idle(addr: SocketAddr, conns: usize, hold: Duration) -> usize {
    let _ = raise_nofile();
    let mut open = Vec::with_capacity(conns);
    for _ in 0..conns {
        match TcpStream::connect(addr) {
            Ok(s) => open.push(s),
            Err(_) => break,
        }
    }
    println!("OPEN {}", open.len());
    let _ = io::stdout().flush();
    std::thread::sleep(hold);
    open.len()
}

/// RSS in bytes of process `pid` (from `/proc/<pid>/statm`).
pub fn rss_of(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
