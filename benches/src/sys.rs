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
//!
//! Called by `pingpong` (the switch loops), `experiments::create` and `probe`.

use std::ffi::CStr;
use std::io;
use std::sync::atomic::AtomicU32;

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

/// The page size.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
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
