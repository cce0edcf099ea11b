//! The `may` peer, run in a child process (`lab internal-peer may-create|may-yield`).
//!
//! `may`'s scheduler starts worker, timer and I/O threads on first use and never stops them,
//! so running it inside the lab process would leave those threads competing with every later
//! measurement (and would make `fork` slower). The lab therefore re-executes itself with a
//! hidden subcommand that calls one function here and prints a [`PeerOutput`] as JSON, exactly
//! like the Go peers. The child inherits the lab's CPU pinning; may is configured with one
//! worker so its coroutines share one kernel thread, like our many-to-one ULTs.
//!
//! Safety of `may::coroutine::spawn`: it is `unsafe` because a coroutine that migrates between
//! worker threads may observe another thread's thread-locals. With one worker nothing
//! migrates, and the closures here touch no thread-local state.

use crate::peers::PeerOutput;
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
        }
    })
}
