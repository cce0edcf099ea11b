//! Switch cost: guards against regressions in the ULT context-switch path.
//!
//! - `corosensei/resume_suspend`: the floor, a raw coroutine round trip (two switches).
//! - `ult/yield_round_trip`: two ULTs on the many-to-one executor yielding to each other;
//!   one iteration is A -> scheduler -> B -> scheduler -> A (four coroutine switches).
//!   Target (issue 2): at most 3x the raw round trip, measured in the same run.

use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn raw_round_trip(c: &mut Criterion) {
    use corosensei::{Coroutine, CoroutineResult};
    let mut co: Coroutine<(), (), ()> = Coroutine::new(|y, ()| loop {
        y.suspend(());
    });
    c.bench_function("corosensei/resume_suspend", |b| {
        b.iter(|| match co.resume(()) {
            CoroutineResult::Yield(()) => {}
            CoroutineResult::Return(()) => unreachable!(),
        })
    });
}

/// Times `iters` yield round trips between two ULTs inside one executor run.
fn ult_yield_round_trips(iters: u64) -> Duration {
    ult::run(move || {
        let stop = Arc::new(AtomicBool::new(false));
        // The partner counts in a local, not an atomic: a locked add per round would be
        // part of the measured round trip.
        let partner = ult::spawn({
            let stop = stop.clone();
            move || {
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    rounds += 1;
                    ult::yield_now();
                }
                rounds
            }
        });
        ult::yield_now(); // partner starts
        let start = Instant::now();
        for _ in 0..iters {
            ult::yield_now();
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let partner_rounds = partner.join().unwrap();
        assert!(partner_rounds >= iters);
        elapsed
    })
}

fn ult_yield(c: &mut Criterion) {
    c.bench_function("ult/yield_round_trip", |b| {
        b.iter_custom(ult_yield_round_trips)
    });
}

criterion_group!(benches, raw_round_trip, ult_yield);
criterion_main!(benches);
