//! The `may` peer, run in a child process (`lab internal-peer may-*`).
//!
//! `may`'s scheduler starts worker, timer and I/O threads on first use and never stops them,
//! so running it inside the lab process would leave those threads competing with every later
//! measurement (and would make `fork` slower). The lab therefore re-executes itself with a
//! hidden subcommand that calls one function here and prints a [`PeerOutput`] as JSON, exactly
//! like the Go peers. The child inherits the lab's CPU pinning.
//!
//! Two configurations:
//! - `create` / `switch` rows ([`create`], [`yield_pingpong`]) and the channel round trip of
//!   `runtime` ([`chan_pingpong`]): one worker, so coroutines share one kernel thread, like
//!   our many-to-one ULTs;
//! - `runtime`'s many-core rows ([`spawn_join`], [`skynet`], [`parked`]): `workers` workers
//!   (the lab passes the number of cores) and may's default stack size, like our
//!   many-to-many runtime with default stacks.
//!
//! Safety of `may::coroutine::spawn`: it is `unsafe` because a coroutine that migrates between
//! worker threads may observe another thread's thread-locals (a Rust function may cache a
//! thread-local's address across a call that switches). With one worker nothing migrates.
//! With several workers, coroutines may migrate, so every closure spawned here is restricted
//! to code that holds no thread-local reference across a switch point: arithmetic, atomics,
//! allocation (glibc's malloc reads its thread cache afresh on every call and never switches
//! inside), and may's own primitives (`spawn`, `join`, `park`, `yield_now`, `may::sync::mpsc`),
//! which are the operations may is built to switch in. None of them uses `std::thread_local!`
//! state, `println!`, `std::thread::current()` or a std lock. Panics are not expected (the
//! panic machinery uses thread-locals); a panic in a coroutine is reported as a failure.

use crate::peers::PeerOutput;
use crate::rtkernels::ParkedOutput;
use crate::stats;
use std::time::Instant;

fn configure() {
    may::config().set_workers(1).set_stack_size(0x4000);
}

/// Runs `f` inside a may coroutine and returns its result.
fn in_coroutine<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    configure();
    // SAFETY: one worker thread (configured above), so the coroutine never migrates; `f`
    // does not rely on thread-locals across switch points.
    let h = unsafe { may::coroutine::spawn(f) };
    h.join()
        .map_err(|_| "the may coroutine panicked".to_string())
}

/// Configures may with `workers` workers and its default stack size (runtime rows).
fn configure_workers(workers: usize) {
    may::config().set_workers(workers.max(1));
}

/// Runs `f` inside a may coroutine on `workers` workers and returns its result.
///
/// # Safety
/// With more than one worker the coroutine may migrate between kernel threads: `f` must hold
/// no thread-local reference across a switch point (see the module docs for what the closures
/// of this module restrict themselves to).
unsafe fn in_coroutine_on<T: Send + 'static>(
    workers: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    configure_workers(workers);
    // SAFETY: the caller guarantees `f` holds no thread-local reference across a switch point.
    let h = unsafe { may::coroutine::spawn(f) };
    h.join()
        .map_err(|_| "the may coroutine panicked".to_string())
}

fn runtime_name(workers: usize) -> String {
    format!(
        "may {} ({} worker{}, default stacks, coroutine pool of {})",
        crate::peers::MAY_VERSION,
        workers,
        if workers == 1 { "" } else { "s" },
        may::config().get_pool_capacity()
    )
}

/// Coroutine spawn + join: `w` warm-up, `n` timed in a batch, `m` timed one by one.
pub fn create(n: u64, m: u64, w: u64) -> Result<PeerOutput, String> {
    in_coroutine(move || {
        let op = || {
            // SAFETY: see the module docs: one worker, no thread-local use.
            let h = unsafe { may::coroutine::spawn(|| std::hint::black_box(0u8)) };
            let _ = h.join();
        };
        for _ in 0..w {
            op();
        }
        let t0 = Instant::now();
        for _ in 0..n {
            op();
        }
        let total = t0.elapsed();
        let mut h = stats::new_histogram();
        for _ in 0..m {
            let s = Instant::now();
            op();
            stats::record(&mut h, s.elapsed().as_nanos() as u64, 1);
        }
        PeerOutput {
            ops: n,
            switches: 0,
            total_ns: total.as_nanos() as u64,
            hist: h
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
            runtime: format!("may {} (1 worker)", crate::peers::MAY_VERSION),
            extra: 0,
        }
    })
}

/// Two coroutines on one worker each yield `w + n` times; the first times its last `n`
/// yields, which hold `2n` switches.
pub fn yield_pingpong(n: u64, w: u64) -> Result<PeerOutput, String> {
    in_coroutine(move || {
        // SAFETY: see the module docs.
        let other = unsafe {
            may::coroutine::spawn(move || {
                for _ in 0..w + n {
                    may::coroutine::yield_now();
                }
            })
        };
        for _ in 0..w {
            may::coroutine::yield_now();
        }
        let t0 = Instant::now();
        for _ in 0..n {
            may::coroutine::yield_now();
        }
        let total = t0.elapsed();
        let _ = other.join();
        PeerOutput {
            ops: 0,
            switches: 2 * n,
            total_ns: total.as_nanos() as u64,
            hist: Vec::new(),
            runtime: format!("may {} (1 worker)", crate::peers::MAY_VERSION),
            extra: 0,
        }
    })
}

/// Coroutine spawn + join on `workers` workers: `n` coroutines (rounded up to whole batches),
/// spawned `batch` at a time from a coroutine and joined before the next batch.
pub fn spawn_join(n: u64, batch: u64, workers: usize) -> Result<PeerOutput, String> {
    let batch = batch.max(1);
    let batches = n.div_ceil(batch);
    let body = move || {
        let run = |k: u64| {
            for _ in 0..k {
                let hs: Vec<_> = (0..batch)
                    // SAFETY: the spawned closure only returns its argument (module docs).
                    .map(|i| unsafe { may::coroutine::spawn(move || std::hint::black_box(i)) })
                    .collect();
                for h in hs {
                    let _ = h.join();
                }
            }
        };
        run(1); // warm-up: workers started, pool primed
        let t0 = Instant::now();
        run(batches);
        t0.elapsed()
    };
    // SAFETY: the closure spawns, joins and does arithmetic only (module docs).
    let total = unsafe { in_coroutine_on(workers, body)? };
    Ok(PeerOutput {
        ops: batches * batch,
        total_ns: total.as_nanos() as u64,
        runtime: runtime_name(workers),
        ..PeerOutput::default()
    })
}

fn skynet_co(tx: may::sync::mpsc::Sender<u64>, num: u64, size: u64, div: u64) {
    if size == 1 {
        let _ = tx.send(num);
        return;
    }
    let (ctx, rx) = may::sync::mpsc::channel::<u64>();
    let sub = size / div;
    for i in 0..div {
        let ctx = ctx.clone();
        // SAFETY: the spawned closure recurses into this function: channels, spawn and
        // arithmetic only (module docs).
        unsafe {
            may::coroutine::spawn(move || skynet_co(ctx, num + i * sub, sub, div));
        }
    }
    drop(ctx);
    let mut sum = 0;
    for _ in 0..div {
        sum += rx.recv().unwrap_or(0);
    }
    let _ = tx.send(sum);
}

/// skynet on `workers` workers: a tree of fan-out 10 with `leaves` leaves (a power of 10), each
/// node a coroutine that sums its children's values received through a channel. `ops` =
/// leaves, `total_ns` = the whole tree, `extra` = the sum (checked by the lab).
pub fn skynet(leaves: u64, workers: usize) -> Result<PeerOutput, String> {
    let body = move || {
        let (tx, rx) = may::sync::mpsc::channel::<u64>();
        let t0 = Instant::now();
        // SAFETY: as in skynet_co.
        unsafe {
            may::coroutine::spawn(move || skynet_co(tx, 0, leaves, 10));
        }
        let sum = rx.recv().unwrap_or(0);
        (t0.elapsed(), sum)
    };
    // SAFETY: the closure spawns the root and receives from a channel (module docs).
    let (total, sum) = unsafe { in_coroutine_on(workers, body)? };
    Ok(PeerOutput {
        ops: leaves,
        total_ns: total.as_nanos() as u64,
        runtime: runtime_name(workers),
        extra: sum as i64,
        ..PeerOutput::default()
    })
}

/// Channel ping-pong between two coroutines on one worker through two `may::sync::mpsc`
/// channels (may's channels are unbounded): `w` warm-up round trips, then `n` timed.
pub fn chan_pingpong(n: u64, w: u64) -> Result<PeerOutput, String> {
    in_coroutine(move || {
        let (to_b, from_a) = may::sync::mpsc::channel::<u64>();
        let (to_a, from_b) = may::sync::mpsc::channel::<u64>();
        // SAFETY: one worker (in_coroutine), nothing migrates; the echo loop uses may's
        // channels only.
        let echo = unsafe {
            may::coroutine::spawn(move || {
                while let Ok(v) = from_a.recv() {
                    if to_a.send(v).is_err() {
                        break;
                    }
                }
            })
        };
        let mut ok = true;
        for i in 0..w {
            ok &= to_b.send(i).is_ok() && from_b.recv().is_ok();
        }
        let t0 = Instant::now();
        for i in 0..n {
            ok &= to_b.send(i).is_ok() && from_b.recv().is_ok();
        }
        let total = t0.elapsed();
        drop(to_b);
        let _ = echo.join();
        (ok, total)
    })
    .and_then(|(ok, total)| {
        if !ok {
            return Err("a may channel send or receive failed".into());
        }
        Ok(PeerOutput {
            ops: n,
            total_ns: total.as_nanos() as u64,
            runtime: format!("may {} (1 worker)", crate::peers::MAY_VERSION),
            ..PeerOutput::default()
        })
    })
}

/// `n` coroutines parked at once (default stacks, `workers` workers): the RSS growth they
/// cost. Spawning happens on the calling (main) thread, so that a failure of may's stack
/// allocator (it panics when `mmap` fails, e.g. at `vm.max_map_count`) is caught here and
/// reported as an error instead of killing a worker and leaving the process hanging.
pub fn parked(n: u64, workers: usize) -> Result<ParkedOutput, String> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    configure_workers(workers);
    // Start the scheduler and its pool before the baseline.
    // SAFETY: the closure does nothing.
    let warm = unsafe { may::coroutine::spawn(|| ()) };
    let _ = warm.join();
    let before = crate::sys::rss_bytes().ok_or("cannot read /proc/self/statm")?;
    let pte_before = crate::rtkernels::page_table_bytes();
    let started = Arc::new(AtomicU64::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(n as usize);
    let mut failure = None;
    // may's panic message would go to stderr on every attempt; one line from us is enough.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for i in 0..n {
        let (s, r) = (started.clone(), release.clone());
        let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: the closure uses atomics and may's park only (module docs).
            unsafe {
                may::coroutine::spawn(move || {
                    s.fetch_add(1, Ordering::Relaxed);
                    // Acquire: pairs with the Release store below, before the unparks; park
                    // may return spuriously, so the flag decides.
                    while !r.load(Ordering::Acquire) {
                        may::coroutine::park();
                    }
                })
            }
        }));
        match spawned {
            Ok(h) => handles.push(h),
            Err(payload) => {
                let what = crate::peers::panic_text(&*payload);
                failure = Some(format!(
                    "may's spawn panicked after {i} of {n} coroutines ({what}); \
                     vm.max_map_count is {}",
                    ult::stack::read_max_map_count()
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| "unknown".into())
                ));
                break;
            }
        }
    }
    std::panic::set_hook(hook);
    let count = handles.len() as u64;
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    while started.load(Ordering::Relaxed) < count && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let after = crate::sys::rss_bytes().ok_or("cannot read /proc/self/statm")?;
    let pte_after = crate::rtkernels::page_table_bytes();
    let reached = started.load(Ordering::Relaxed);
    // Release: pairs with the Acquire load in the parked coroutines.
    release.store(true, Ordering::Release);
    for h in &handles {
        h.coroutine().unpark();
    }
    if let Some(f) = failure {
        // Do not join: after a failed spawn may's state is not trusted; the process exits.
        return Err(f);
    }
    for h in handles {
        let _ = h.join();
    }
    if reached < count {
        return Err(format!(
            "only {reached} of {count} may coroutines started within 300 s"
        ));
    }
    Ok(ParkedOutput {
        requested: n,
        parked: count,
        rss_growth_bytes: after as i64 - before as i64,
        page_table_growth_bytes: pte_before.zip(pte_after).map(|(b, a)| a as i64 - b as i64),
        runtime: runtime_name(workers),
        shortfall: None,
    })
}
