//! The blocking pool: kernel threads that run blocking calls on behalf of ULTs (Flash's AMPED
//! helpers, Tokio's `spawn_blocking`).
//!
//! [`blocking`] called from a ULT queues the closure, parks only the calling ULT, and resumes
//! it with the closure's result (or its panic) when a pool thread has run it; its LWP runs
//! other ULTs meanwhile. Called from a plain kernel thread it just runs the closure inline.
//!
//! The pool is process-wide and bounded: at most [`max_threads`] threads (default
//! [`DEFAULT_MAX_THREADS`], settable with [`set_max_threads`] or `LWP_BLOCKING_THREADS`);
//! beyond that, jobs wait in a FIFO queue. Threads are started on demand and exit after
//! [`IDLE_TIMEOUT`] without work.
//!
//! Invariant: the job's result slot is written before the ULT is unparked (the slot's mutex
//! orders the two), and the ULT re-checks the slot after every wake, so spurious wakes are
//! harmless.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// Default bound on blocking-pool threads.
pub const DEFAULT_MAX_THREADS: usize = 64;

/// A pool thread with nothing to do for this long exits.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
    max_threads: AtomicUsize,
}

struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

static JOBS_RUN: AtomicU64 = AtomicU64::new(0);

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let max = std::env::var("LWP_BLOCKING_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_MAX_THREADS);
        Pool {
            state: Mutex::new(PoolState {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
            }),
            work: Condvar::new(),
            max_threads: AtomicUsize::new(max),
        }
    })
}

/// The current bound on pool threads.
pub fn max_threads() -> usize {
    pool().max_threads.load(Ordering::Relaxed)
}

/// Changes the bound on pool threads (at least 1). Running threads above a lowered bound
/// finish their job and exit when idle.
pub fn set_max_threads(n: usize) {
    pool().max_threads.store(n.max(1), Ordering::Relaxed);
}

/// Jobs the pool has run since the process started.
pub fn jobs_run() -> u64 {
    JOBS_RUN.load(Ordering::Relaxed)
}

fn submit(job: Job) -> std::io::Result<()> {
    let pool = pool();
    let mut st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    st.queue.push_back(job);
    if st.idle > 0 {
        pool.work.notify_one();
        return Ok(());
    }
    if st.threads < pool.max_threads.load(Ordering::Relaxed) {
        st.threads += 1;
        drop(st);
        let spawned = std::thread::Builder::new()
            .name("lwp-blocking".into())
            .spawn(pool_thread);
        if let Err(e) = spawned {
            let mut st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
            st.threads -= 1;
            if st.threads == 0 {
                // No thread will ever take the job: fail it rather than hang the caller.
                st.queue.pop_back();
                return Err(e);
            }
        }
    }
    Ok(())
}

fn pool_thread() {
    let pool = pool();
    let mut st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(job) = st.queue.pop_front() {
            drop(st);
            job();
            JOBS_RUN.fetch_add(1, Ordering::Relaxed);
            st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        if st.threads > pool.max_threads.load(Ordering::Relaxed) {
            break;
        }
        st.idle += 1;
        let (guard, timeout) = pool
            .work
            .wait_timeout(st, IDLE_TIMEOUT)
            .unwrap_or_else(|e| e.into_inner());
        st = guard;
        st.idle -= 1;
        if timeout.timed_out() && st.queue.is_empty() {
            break;
        }
    }
    st.threads -= 1;
}

/// Runs `f` on the blocking pool and parks the calling ULT until it returns; returns its
/// value, or resumes its panic in the caller. Outside a ULT, runs `f` inline.
///
/// Use it for calls that block in the kernel and have no non-blocking form (file I/O, DNS,
/// `flock`, a C library): the LWP keeps running other ULTs meanwhile.
///
/// ```
/// let rt = lwp::Runtime::builder().lwps(1).build().unwrap();
/// let n = rt.run(|| lwp::blocking(|| std::fs::read("/proc/self/stat").map(|b| b.len())));
/// assert!(n.unwrap() > 0);
/// ```
///
/// # Panics
/// If no pool thread can be started at all (the process is out of threads).
pub fn blocking<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if !ult::in_ult() {
        return f();
    }
    let slot: Arc<Mutex<Option<std::thread::Result<T>>>> = Arc::new(Mutex::new(None));
    let me = ult::unparker();
    let job_slot = slot.clone();
    let job: Job = Box::new(move || {
        let r = panic::catch_unwind(AssertUnwindSafe(f));
        *job_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        me.unpark();
    });
    if let Err(e) = submit(job) {
        panic!("lwp::blocking: cannot start a blocking-pool thread: {e}");
    }
    loop {
        if let Some(r) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
            match r {
                Ok(v) => return v,
                Err(payload) => panic::resume_unwind(payload),
            }
        }
        ult::park();
    }
}
