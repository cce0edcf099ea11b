//! Thin, safe wrappers over the system calls the experiments time: CPU affinity, futexes,
//! pipes, `fork` / `posix_spawn` / `waitpid`, and the working-set walk of the cache
//! experiment.
//!
//! Every `unsafe` block of the lab that talks to the kernel lives here, each with its
//! `// SAFETY:` argument, so the experiment modules stay safe code.
//!
//! Invariants and contracts:
//! - [`fork_run`] is `unsafe`: the closure runs in a child forked from a possibly
//!   multithreaded process, so it may call only async-signal-safe functions (the helpers
//!   [`Pipe::read_byte`], [`Pipe::write_byte`] and [`walk`] qualify: `read`, `write` and
//!   plain arithmetic) and must neither allocate nor panic. The child always ends in `_exit`.
//! - [`PinGuard`] restores the calling thread's previous affinity mask when dropped, so an
//!   experiment that pins itself leaves the lab's main thread as it found it.
//! - File descriptors are owned by [`Pipe`] and closed exactly once, on drop.
//! - [`MaxMapCountGuard`] (the lab's `--raise-limits`) writes `vm.max_map_count` back to its
//!   previous value when dropped, and from a SIGINT/SIGTERM/SIGHUP handler if the lab is
//!   interrupted (best effort: the handler only calls async-signal-safe functions, then
//!   re-raises the signal with its default action). At most one guard exists at a time.
//!
//! Called by `pingpong` (the switch loops), `experiments::create`, `experiments::runtime`,
//! `probe`, `echo` (the CPU times of server and load generator, [`stat_cpu_ticks`]; the
//! load generator's receive timestamps, [`recv_stamped`]) and
//! `bin/lab.rs` (the limit guard, and the lab's own CPU time).

use std::ffi::CStr;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// The CPUs the calling thread may run on (its affinity mask), in ascending order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit array for which all-zero is a valid value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed; pid 0 is this thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET only reads the set; every index is below CPU_SETSIZE.
    Ok((0..max)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Restricts the calling thread to `cpus`.
pub fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: all-zero is a valid (empty) cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    for &c in cpus {
        if c >= max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {c} is beyond CPU_SETSIZE ({max})"),
            ));
        }
        // SAFETY: c < CPU_SETSIZE, checked above.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Pins the calling thread to one CPU until dropped, then restores the previous mask.
#[derive(Debug)]
pub struct PinGuard {
    previous: Vec<usize>,
}

impl PinGuard {
    /// Pins the calling thread to `cpus` (threads and processes it creates inherit the mask).
    pub fn pin(cpus: &[usize]) -> io::Result<PinGuard> {
        let previous = allowed_cpus()?;
        set_affinity(cpus)?;
        Ok(PinGuard { previous })
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let _ = set_affinity(&self.previous);
    }
}

/// The CPU the calling thread runs on now.
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    usize::try_from(c).ok()
}

/// Blocks while `*word == expected` (FUTEX_WAIT_PRIVATE). Returns at once if the word
/// already differs; may return spuriously, so callers loop.
pub fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a live, aligned u32 for the duration of the call (it is borrowed);
    // a null timeout means "no timeout". The kernel only reads the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes at most `n` threads blocked in [`futex_wait`] on `word`.
pub fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access memory besides
    // using the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            n,
        );
    }
}

/// One pipe: a read end and a write end, closed on drop.
#[derive(Debug)]
pub struct Pipe {
    read: libc::c_int,
    write: libc::c_int,
}

impl Pipe {
    /// Creates a pipe (close-on-exec).
    pub fn new() -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a writable array of two ints, as pipe2 requires.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pipe {
            read: fds[0],
            write: fds[1],
        })
    }

    /// Writes one byte, retrying on EINTR. Async-signal-safe; never allocates or panics.
    pub fn write_byte(&self) -> bool {
        let b = [1u8];
        loop {
            // SAFETY: `b` is a readable one-byte buffer; the fd is open while `self` lives.
            let n = unsafe { libc::write(self.write, b.as_ptr().cast(), 1) };
            if n == 1 {
                return true;
            }
            // SAFETY: __errno_location returns this thread's errno slot; reading it is
            // async-signal-safe.
            if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return false;
        }
    }

    /// Reads one byte, retrying on EINTR; false on EOF or error. Async-signal-safe.
    pub fn read_byte(&self) -> bool {
        let mut b = [0u8];
        loop {
            // SAFETY: `b` is a writable one-byte buffer; the fd is open while `self` lives.
            let n = unsafe { libc::read(self.read, b.as_mut_ptr().cast(), 1) };
            if n == 1 {
                return true;
            }
            // SAFETY: as in write_byte.
            if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return false;
        }
    }

    /// Closes the write end now (the reader then sees EOF once the data is drained).
    pub fn close_write(&mut self) {
        if self.write >= 0 {
            // SAFETY: the fd is owned by this Pipe and closed only here or on drop.
            unsafe { libc::close(self.write) };
            self.write = -1;
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        for fd in [self.read, self.write] {
            if fd >= 0 {
                // SAFETY: the fds are owned by this Pipe and closed exactly once.
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// Forks; the child runs `f` and exits with its return value via `_exit`. Returns the
/// child's pid to the parent.
///
/// # Safety
/// `f` runs in a child forked from a possibly multithreaded process: it may call only
/// async-signal-safe functions (no allocation, no locks, no panics, no `println!`). Data it
/// borrows is the child's copy-on-write snapshot of the parent's memory.
pub unsafe fn fork_run<F: FnOnce() -> i32>(f: F) -> io::Result<libc::pid_t> {
    // SAFETY: fork has no memory-safety preconditions for the parent; the child's obligations
    // are the caller's contract above.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = f();
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(code) };
    }
    Ok(pid)
}

/// Forks a child that does nothing but `_exit(0)`.
pub fn fork_exit() -> io::Result<libc::pid_t> {
    // SAFETY: the child calls only _exit (inside fork_run), which is async-signal-safe.
    unsafe { fork_run(|| 0) }
}

/// Waits for `pid` and returns its exit status (or an error if it was killed by a signal).
pub fn wait_child(pid: libc::pid_t) -> io::Result<i32> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid writable int; pid is our child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return Err(err);
    }
    if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Err(io::Error::other(format!(
            "child {pid} was killed by signal {}",
            libc::WTERMSIG(status)
        )))
    } else {
        Err(io::Error::other(format!(
            "child {pid} ended with status {status}"
        )))
    }
}

/// Starts `path` (no arguments beyond `argv[0]`, empty environment) with `posix_spawn` and
/// returns its pid.
pub fn posix_spawn(path: &CStr) -> io::Result<libc::pid_t> {
    let argv = [path.as_ptr().cast_mut(), std::ptr::null_mut()];
    let envp = [std::ptr::null_mut::<libc::c_char>()];
    let mut pid: libc::pid_t = 0;
    // SAFETY: `path` is NUL-terminated; argv and envp are NULL-terminated arrays of
    // NUL-terminated strings that outlive the call; null file actions and attributes mean
    // defaults; `pid` is writable.
    let rc = unsafe {
        libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            argv.as_ptr(),
            envp.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(pid)
}

/// Resident set size of this process in bytes, from `/proc/self/statm`.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// Clock ticks per second, the unit of `/proc` CPU times (`sysconf(_SC_CLK_TCK)`; 100 if
/// unknown).
pub fn clock_ticks_per_second() -> u64 {
    sysconf_or(libc::_SC_CLK_TCK, 100)
}

/// Asks the kernel to stamp every packet that arrives for socket `fd` with the time it
/// arrived (`SO_TIMESTAMPNS`, software receive timestamps, `CLOCK_REALTIME`), which
/// [`recv_stamped`] then returns.
pub fn enable_rx_timestamps(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: `fd` is an open descriptor for the call (borrowed); setsockopt reads
    // `size_of::<c_int>()` bytes from `on`, which lives for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `read` on socket `fd` that also returns the arrival time of the last bytes read, in
/// nanoseconds since the Unix epoch, when the socket has [`enable_rx_timestamps`] on and the
/// kernel stamped them (`None` otherwise).
pub fn recv_stamped(
    fd: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Option<u64>)> {
    use std::os::fd::AsRawFd;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one `SCM_TIMESTAMPNS` message (a timespec) and then some, 8-byte aligned as
    // a cmsghdr needs.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid (null name, no iovecs, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at one iovec over `buf` and at `control`, all alive and writable
    // for the call; the kernel writes at most their lengths.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: `msg` was filled by recvmsg, so its control length covers only complete
    // messages inside `control`; CMSG_FIRSTHDR / CMSG_NXTHDR stay inside it (they return
    // null at its end), and a timestamp message's data holds one timespec, read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::timespec);
                if ts.tv_sec > 0 {
                    stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

/// Now, in nanoseconds since the Unix epoch (`CLOCK_REALTIME`, the clock of
/// [`recv_stamped`]'s stamps); 0 before 1970.
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The CPU times of a `/proc/<pid>/stat` line, in clock ticks: utime, stime, cutime and
/// cstime (fields 14-17; the last two are reaped children's). The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn stat_cpu_ticks(stat: &str) -> Option<[u64; 4]> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace().skip(11);
    let mut times = [0u64; 4];
    for t in &mut times {
        *t = fields.next()?.parse().ok()?;
    }
    Some(times)
}

/// The page size.
pub fn page_size() -> u64 {
    sysconf_or(libc::_SC_PAGESIZE, 4096)
}

/// A positive `sysconf` value, or `default`.
fn sysconf_or(name: libc::c_int, default: u64) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(name) };
    if v > 0 {
        v as u64
    } else {
        default
    }
}

/// Bytes between two loads of [`walk`]: one load per cache line.
pub const WALK_STRIDE: usize = 64;

/// A private working set for the cache experiment: `bytes` of memory, touched (so every
/// page is committed) when created.
#[derive(Debug)]
pub struct WorkingSet {
    data: Vec<u64>,
}

impl WorkingSet {
    /// Allocates and fills a working set of `bytes` (rounded down to whole 8-byte words).
    pub fn new(bytes: usize) -> WorkingSet {
        let words = bytes / 8;
        let data: Vec<u64> = (0..words as u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        WorkingSet { data }
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.data.len() * 8
    }

    /// Walks the whole set once; see [`walk`].
    #[inline]
    pub fn walk(&self) -> u64 {
        walk(&self.data)
    }
}

/// Sums one 8-byte word per 64-byte cache line of `buf` with eight independent accumulators.
///
/// Eight chains let the CPU keep several cache misses in flight, so the walk's time tracks
/// how many lines must be refilled (the indirect cost of a switch). A single-chain sum would
/// serialise on the add latency and hide that cost. Async-signal-safe: no allocation, no
/// panic path (indices are within `chunks_exact`).
#[inline(never)]
pub fn walk(buf: &[u64]) -> u64 {
    const W: usize = WALK_STRIDE / 8; // words per line
    let mut acc = [0u64; 8];
    let mut chunks = buf.chunks_exact(8 * W);
    for c in &mut chunks {
        acc[0] = acc[0].wrapping_add(c[0]);
        acc[1] = acc[1].wrapping_add(c[W]);
        acc[2] = acc[2].wrapping_add(c[2 * W]);
        acc[3] = acc[3].wrapping_add(c[3 * W]);
        acc[4] = acc[4].wrapping_add(c[4 * W]);
        acc[5] = acc[5].wrapping_add(c[5 * W]);
        acc[6] = acc[6].wrapping_add(c[6 * W]);
        acc[7] = acc[7].wrapping_add(c[7 * W]);
    }
    for (i, x) in chunks.remainder().iter().step_by(W).enumerate() {
        acc[i & 7] = acc[i & 7].wrapping_add(*x);
    }
    acc.iter().fold(0u64, |s, &a| s.wrapping_add(a))
}

/// Where the kernel exposes `vm.max_map_count`.
pub const MAX_MAP_COUNT_PATH: &str = "/proc/sys/vm/max_map_count";
const MAX_MAP_COUNT_CPATH: &CStr = c"/proc/sys/vm/max_map_count";

/// The value to restore from a signal handler; 0 when no guard is active.
static SAVED_MAX_MAP_COUNT: AtomicU64 = AtomicU64::new(0);
/// Whether a guard exists (only one may).
static GUARD_ACTIVE: AtomicBool = AtomicBool::new(false);
const GUARDED_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Reads `vm.max_map_count`.
pub fn read_max_map_count() -> Result<u64, String> {
    let text = std::fs::read_to_string(MAX_MAP_COUNT_PATH)
        .map_err(|e| format!("reading {MAX_MAP_COUNT_PATH}: {e}"))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{MAX_MAP_COUNT_PATH} holds {:?}: {e}", text.trim()))
}

/// Writes `v` as decimal digits and a newline into `buf`; returns the length. No allocation
/// (used from a signal handler).
pub fn format_decimal(mut v: u64, buf: &mut [u8; 24]) -> usize {
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = digits[n - 1 - i];
    }
    buf[n] = b'\n';
    n + 1
}

/// Writes `v` to `vm.max_map_count` with open/write/close only (async-signal-safe).
fn write_max_map_count_raw(v: u64) -> bool {
    let mut buf = [0u8; 24];
    let len = format_decimal(v, &mut buf);
    // SAFETY: the path is NUL-terminated; open, write and close are async-signal-safe and
    // touch no memory but `buf`, which outlives the calls.
    unsafe {
        let fd = libc::open(
            MAX_MAP_COUNT_CPATH.as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return false;
        }
        let n = libc::write(fd, buf.as_ptr().cast(), len);
        libc::close(fd);
        n == len as isize
    }
}

extern "C" fn restore_max_map_count_and_reraise(sig: libc::c_int) {
    let v = SAVED_MAX_MAP_COUNT.swap(0, Ordering::SeqCst);
    if v != 0 {
        let _ = write_max_map_count_raw(v);
    }
    // SAFETY: signal and raise are async-signal-safe; with the default action restored the
    // re-raised signal ends the process as it would have without our handler.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Whether a process with effective user id `euid` may raise `vm.max_map_count`, and if not,
/// the message the lab prints.
pub fn check_can_raise(euid: u32, current: u64, want: u64) -> Result<(), String> {
    if euid == 0 {
        Ok(())
    } else {
        Err(format!(
            "--raise-limits needs root: vm.max_map_count is {current} and this run needs {want}. \
             Run the lab as root (e.g. `sudo target/release/lab ... --raise-limits`), or raise it \
             yourself with `sudo sysctl -w vm.max_map_count={want}` and restore {current} afterwards"
        ))
    }
}

/// Raises `vm.max_map_count` while it lives and restores the previous value when dropped
/// (also when the lab is interrupted by SIGINT, SIGTERM or SIGHUP, best effort).
#[derive(Debug)]
pub struct MaxMapCountGuard {
    previous: u64,
    raised_to: u64,
    old_actions: Vec<(libc::c_int, libc::sigaction)>,
}

impl MaxMapCountGuard {
    /// Raises the limit to `want`. `Ok(None)` when it is already at least `want` (nothing
    /// changed, nothing to restore); `Err` with a message a person can act on when the
    /// process is not root, the file cannot be written, or another guard is active.
    pub fn raise(want: u64) -> Result<Option<MaxMapCountGuard>, String> {
        let current = read_max_map_count()?;
        if current >= want {
            return Ok(None);
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        check_can_raise(unsafe { libc::geteuid() }, current, want)?;
        if GUARD_ACTIVE.swap(true, Ordering::SeqCst) {
            return Err("vm.max_map_count is already being raised by this process".into());
        }
        SAVED_MAX_MAP_COUNT.store(current, Ordering::SeqCst);
        let mut old_actions = Vec::new();
        for sig in GUARDED_SIGNALS {
            // SAFETY: all-zero is a valid sigaction (no flags, empty mask, SIG_DFL).
            let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
            new.sa_sigaction = restore_max_map_count_and_reraise as extern "C" fn(libc::c_int)
                as libc::sighandler_t;
            // SAFETY: all-zero is a valid sigaction to receive the old one.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: both structs are valid; the handler only calls async-signal-safe
            // functions.
            if unsafe { libc::sigaction(sig, &new, &mut old) } == 0 {
                old_actions.push((sig, old));
            }
        }
        let guard = MaxMapCountGuard {
            previous: current,
            raised_to: want,
            old_actions,
        };
        if let Err(e) = std::fs::write(MAX_MAP_COUNT_PATH, format!("{want}\n")) {
            // Dropping the guard restores the handlers (and rewrites the unchanged value).
            drop(guard);
            return Err(format!(
                "--raise-limits: could not write {want} to {MAX_MAP_COUNT_PATH}: {e} (a \
                 container may mount /proc/sys read-only); raise it on the host with \
                 `sudo sysctl -w vm.max_map_count={want}`"
            ));
        }
        Ok(Some(guard))
    }

    /// The value before the guard raised it.
    pub fn previous(&self) -> u64 {
        self.previous
    }

    /// The value while the guard lives.
    pub fn raised_to(&self) -> u64 {
        self.raised_to
    }
}

impl Drop for MaxMapCountGuard {
    fn drop(&mut self) {
        // Write first, then forget the saved value: a signal arriving in between writes the
        // same value again, which is harmless; the other order could lose the restore.
        let restored = std::fs::write(MAX_MAP_COUNT_PATH, format!("{}\n", self.previous));
        SAVED_MAX_MAP_COUNT.store(0, Ordering::SeqCst);
        if let Err(e) = restored {
            eprintln!(
                "lab: could not restore vm.max_map_count to {}: {e}; restore it with \
                 `sudo sysctl -w vm.max_map_count={}`",
                self.previous, self.previous
            );
        }
        for (sig, old) in &self.old_actions {
            // SAFETY: `old` is the action the kernel returned for `sig`; reinstalling it is
            // always valid.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
        GUARD_ACTIVE.store(false, Ordering::SeqCst);
    }
}
