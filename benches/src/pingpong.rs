//! The switch loops: two execution contexts that hand control back and forth, optionally
//! walking a private working set before every hand-over. Shared by the `switch` experiment
//! (no working set: the direct cost) and the `cache` experiment (a working set: direct plus
//! indirect cost).
//!
//! Every loop has the same shape, so costs are comparable across models. Side A (the
//! calling thread, which the caller has pinned) and side B each run `warm + rounds`
//! iterations; one *round* is: A walks its set, A hands over (switch), B walks its set, B
//! hands back (switch). A times its last `rounds` rounds, which hold `2 * rounds` switches
//! and `2 * rounds` walks. The hand-over is:
//!
//! | loop | hand-over | B runs on |
//! |---|---|---|
//! | [`ult_yield`] | `ult::yield_now` in a many-to-one executor | the same kernel thread |
//! | [`futex`] | store a turn word, `FUTEX_WAKE`; wait with `FUTEX_WAIT` | another kernel thread, on `cpus.1` |
//! | [`pipes`] | write one byte to the other's pipe, block reading one's own | a forked process |
//!
//! [`walks`] times the same walks with no switch (the baseline the cache experiment
//! subtracts), [`pipe_overhead`] one process writing and reading its own pipe and
//! [`futex_overhead`] one thread making a hand-over's futex calls without anyone to switch to
//! (the parts of a hand-over that are not a switch, subtracted lmbench-style).
//!
//! Software counters are opened before the partner is created (see `counters`), so they
//! cover both sides, warm-up included.

use crate::counters::{HwCounters, HwCounts, SoftCounters, SoftCounts};
use crate::sys::{self, Pipe, WorkingSet};
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The two private working sets of a cache run.
#[derive(Debug, Clone)]
pub struct Work {
    /// Side A's set.
    pub a: Arc<WorkingSet>,
    /// Side B's set.
    pub b: Arc<WorkingSet>,
}

/// The outcome of one timed loop.
#[derive(Debug, Clone)]
pub struct Timed {
    /// Time of the timed rounds.
    pub elapsed: Duration,
    /// Switches in the timed rounds (2 per round).
    pub switches: u64,
    /// Switches including warm-up (what the counters saw).
    pub all_switches: u64,
    /// Software counters over the whole loop.
    pub counts: SoftCounts,
    /// Hardware counters over the whole loop, if asked for: the counts or why not.
    pub hw: Option<Result<HwCounts, String>>,
}

impl Timed {
    /// A ping-pong's result: two switches per round, `warm` untimed rounds before the
    /// `rounds` timed in `elapsed`.
    fn two_per_round(
        elapsed: Duration,
        warm: u64,
        rounds: u64,
        counts: SoftCounts,
        hw: Option<Result<HwCounts, String>>,
    ) -> Timed {
        Timed {
            elapsed,
            switches: 2 * rounds,
            all_switches: 2 * (warm + rounds),
            counts,
            hw,
        }
    }

    /// Nanoseconds per switch in the timed rounds (walks included).
    pub fn ns_per_switch(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.switches.max(1) as f64
    }
}

fn hw_start(hw: bool) -> Option<Result<HwCounters, String>> {
    hw.then(HwCounters::start)
}

fn hw_stop(c: Option<Result<HwCounters, String>>) -> Option<Result<HwCounts, String>> {
    c.map(|r| r.and_then(HwCounters::stop))
}

/// Two ULTs yielding to each other in a many-to-one executor on the calling kernel thread.
pub fn ult_yield(work: Option<&Work>, warm: u64, rounds: u64, hw: bool) -> Result<Timed, String> {
    // Without work the rounds are the bare `yield_now` loop a user writes (and the
    // criterion bench times). A test of the empty `Option` in every round kept it live
    // across the switches: `lab -q switch`, six interleaved runs of each build on the AMD
    // EPYC machine, 15.6-25.4 ns per round trip (median 25.0) with the test, 14.0-16.3 ns
    // (median 14.9) without.
    match work {
        None => ult_yield_rounds::<false>(None, warm, rounds, hw),
        Some(w) => ult_yield_rounds::<true>(Some(w), warm, rounds, hw),
    }
}

/// [`ult_yield`]'s body; with `WORK` false, `work` is ignored.
fn ult_yield_rounds<const WORK: bool>(
    work: Option<&Work>,
    warm: u64,
    rounds: u64,
    hw: bool,
) -> Result<Timed, String> {
    let soft = SoftCounters::start();
    let hwc = hw_start(hw);
    let work = work.cloned();
    let result = ult::try_run(ult::Builder::new().name("pingpong-a".into()), move || {
        let wb = work.as_ref().map(|w| w.b.clone());
        let partner = ult::Builder::new()
            .name("pingpong-b".into())
            .spawn(move || {
                for _ in 0..warm + rounds {
                    if let (true, Some(b)) = (WORK, &wb) {
                        black_box(b.walk());
                    }
                    ult::yield_now();
                }
            })
            .map_err(|e| format!("spawning the partner ULT: {e}"))?;
        let wa = work.as_ref().map(|w| w.a.clone());
        // The round is written out in both loops rather than called as a closure: the
        // compiler kept such a closure out of line (it is called twice, and a switch makes
        // it big), so every round paid a function whose prologue saves the six registers a
        // switch clobbers, while `coroutine_raw`'s round, small, was inlined into its loop.
        // Both kernels now time a loop with the switch in its body (`lab -q switch`, AMD
        // EPYC, two runs each: 27.9-28.3 ns per round trip with the closure, 22.0-23.9 ns
        // without).
        for _ in 0..warm {
            if let (true, Some(a)) = (WORK, &wa) {
                black_box(a.walk());
            }
            ult::yield_now();
        }
        let t0 = Instant::now();
        for _ in 0..rounds {
            if let (true, Some(a)) = (WORK, &wa) {
                black_box(a.walk());
            }
            ult::yield_now();
        }
        let elapsed = t0.elapsed();
        partner
            .join()
            .map_err(|_| "the partner ULT panicked".to_string())?;
        Ok::<Duration, String>(elapsed)
    });
    let hw = hw_stop(hwc);
    let counts = soft.stop();
    let elapsed = match result {
        Ok(Ok(Ok(e))) => e,
        Ok(Ok(Err(e))) => return Err(e),
        Ok(Err(_)) => return Err("the root ULT panicked".into()),
        Err(e) => return Err(format!("starting the ULT executor: {e}")),
    };
    Ok(Timed::two_per_round(elapsed, warm, rounds, counts, hw))
}

/// The floor under every ULT switch: the calling thread resumes a raw corosensei coroutine
/// that suspends at once, with no scheduler in between (two switches per round, as in
/// `cargo bench -p benches --bench switch`'s `corosensei/resume_suspend`).
pub fn coroutine_raw(warm: u64, rounds: u64) -> Result<Timed, String> {
    use corosensei::{Coroutine, CoroutineResult};
    let mut co: Coroutine<(), (), ()> = Coroutine::new(|yielder, ()| loop {
        yielder.suspend(());
    });
    let soft = SoftCounters::start();
    let mut round = || match co.resume(()) {
        CoroutineResult::Yield(()) => Ok(()),
        CoroutineResult::Return(()) => Err("the raw coroutine returned".to_string()),
    };
    for _ in 0..warm {
        round()?;
    }
    let t0 = Instant::now();
    for _ in 0..rounds {
        round()?;
    }
    let elapsed = t0.elapsed();
    let counts = soft.stop();
    Ok(Timed::two_per_round(elapsed, warm, rounds, counts, None))
}

/// Turn word values: whose turn it is.
const TURN_A: u32 = 0;
const TURN_B: u32 = 1;

fn wait_turn(turn: &AtomicU32, mine: u32) {
    loop {
        // Acquire: pairs with the Release store in `hand_over`, so the other side's work
        // happens-before ours.
        let v = turn.load(Ordering::Acquire);
        if v == mine {
            return;
        }
        sys::futex_wait(turn, v);
    }
}

fn hand_over(turn: &AtomicU32, to: u32) {
    // Release: pairs with the Acquire load in `wait_turn`.
    turn.store(to, Ordering::Release);
    sys::futex_wake(turn, 1);
}

/// Two kernel threads handing a turn word back and forth through futexes. The caller's
/// thread is side A (pin it first); side B pins itself to `cpu_b`.
pub fn futex(
    work: Option<&Work>,
    cpu_b: usize,
    warm: u64,
    rounds: u64,
    hw: bool,
) -> Result<Timed, String> {
    let turn = AtomicU32::new(TURN_A);
    let soft = SoftCounters::start();
    let hwc = hw_start(hw);
    let wa = work.map(|w| &*w.a);
    let wb = work.map(|w| &*w.b);
    let elapsed = std::thread::scope(|s| {
        let turn = &turn;
        let partner = s.spawn(move || {
            let pinned = sys::set_affinity(&[cpu_b]);
            for _ in 0..warm + rounds {
                wait_turn(turn, TURN_B);
                if let Some(b) = wb {
                    black_box(b.walk());
                }
                hand_over(turn, TURN_A);
            }
            pinned
        });
        let round = || {
            if let Some(a) = wa {
                black_box(a.walk());
            }
            hand_over(turn, TURN_B);
            wait_turn(turn, TURN_A);
        };
        for _ in 0..warm {
            round();
        }
        let t0 = Instant::now();
        for _ in 0..rounds {
            round();
        }
        let elapsed = t0.elapsed();
        match partner.join() {
            Ok(Ok(())) => Ok(elapsed),
            Ok(Err(e)) => Err(format!("pinning the partner thread to CPU {cpu_b}: {e}")),
            Err(_) => Err("the partner thread panicked".to_string()),
        }
    })?;
    let hw = hw_stop(hwc);
    let counts = soft.stop();
    Ok(Timed::two_per_round(elapsed, warm, rounds, counts, hw))
}

/// Two processes passing a byte through two pipes (lmbench `lat_ctx` with two processes).
/// The child is forked from the calling thread and inherits its CPU pinning.
pub fn pipes(work: Option<&Work>, warm: u64, rounds: u64, hw: bool) -> Result<Timed, String> {
    let to_b = Pipe::new().map_err(|e| format!("pipe: {e}"))?;
    let to_a = Pipe::new().map_err(|e| format!("pipe: {e}"))?;
    let wa = work.map(|w| &*w.a);
    let wb = work.map(|w| &*w.b);
    let total = warm + rounds;
    let soft = SoftCounters::start();
    let hwc = hw_start(hw);
    let child = {
        let (to_b, to_a) = (&to_b, &to_a);
        // SAFETY: the child only reads and writes pipes (read/write are async-signal-safe),
        // walks memory it already owns (its copy-on-write snapshot), and returns a code that
        // fork_run passes to _exit. It neither allocates nor panics.
        unsafe {
            sys::fork_run(move || {
                for _ in 0..total {
                    if !to_b.read_byte() {
                        return 3;
                    }
                    if let Some(b) = wb {
                        black_box(b.walk());
                    }
                    if !to_a.write_byte() {
                        return 4;
                    }
                }
                0
            })
        }
    };
    let pid = child.map_err(|e| format!("fork: {e}"))?;
    let mut failed = None;
    let round = || -> bool {
        if let Some(a) = wa {
            black_box(a.walk());
        }
        to_b.write_byte() && to_a.read_byte()
    };
    for _ in 0..warm {
        if !round() {
            failed = Some("a pipe read or write failed during warm-up");
            break;
        }
    }
    let t0 = Instant::now();
    if failed.is_none() {
        for _ in 0..rounds {
            if !round() {
                failed = Some("a pipe read or write failed");
                break;
            }
        }
    }
    let elapsed = t0.elapsed();
    if failed.is_some() {
        // SAFETY: kill has no memory-safety preconditions; pid is our child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let status = sys::wait_child(pid);
    let hw = hw_stop(hwc);
    let counts = soft.stop();
    if let Some(f) = failed {
        return Err(f.to_string());
    }
    match status {
        Ok(0) => {}
        Ok(code) => return Err(format!("the pipe partner process exited with {code}")),
        Err(e) => return Err(format!("the pipe partner process: {e}")),
    }
    Ok(Timed::two_per_round(elapsed, warm, rounds, counts, hw))
}

/// One process writing a byte to its own pipe and reading it back, `warm + n` times; returns
/// the time of the last `n` (each is the non-switch part of one pipe hand-over).
pub fn pipe_overhead(warm: u64, n: u64) -> Result<Duration, String> {
    let p = Pipe::new().map_err(|e| format!("pipe: {e}"))?;
    for _ in 0..warm {
        if !(p.write_byte() && p.read_byte()) {
            return Err("pipe write+read failed".into());
        }
    }
    let t0 = Instant::now();
    for _ in 0..n {
        if !(p.write_byte() && p.read_byte()) {
            return Err("pipe write+read failed".into());
        }
    }
    Ok(t0.elapsed())
}

/// One thread doing the system calls of a futex hand-over without a switch, `warm + n` times:
/// `FUTEX_WAKE` with no waiter, and `FUTEX_WAIT` on a word that no longer holds the expected
/// value (returns `EAGAIN` at once). Returns the time of the last `n`.
pub fn futex_overhead(warm: u64, n: u64) -> Duration {
    let word = AtomicU32::new(TURN_A);
    let once = || {
        sys::futex_wake(&word, 1);
        sys::futex_wait(&word, TURN_B);
    };
    for _ in 0..warm {
        once();
    }
    let t0 = Instant::now();
    for _ in 0..n {
        once();
    }
    t0.elapsed()
}

/// One thread walking `ws` `warm + n` times with no switch; returns the time of the last `n`.
pub fn walks(ws: &WorkingSet, warm: u64, n: u64) -> Duration {
    for _ in 0..warm {
        black_box(ws.walk());
    }
    let t0 = Instant::now();
    for _ in 0..n {
        black_box(ws.walk());
    }
    t0.elapsed()
}
