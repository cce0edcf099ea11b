//! Spawn+join cost: guards the ULT creation path.
//!
//! - `ult/spawn_join_pooled`: spawn a ULT and join it from the root ULT, the finished ULT's
//!   worker coroutine and stack reused by the next (the normal case). Target (issue 2): at
//!   most 60 ns.
//! - `ult/spawn_join_fresh`: the same with the pool (idle workers included) emptied before
//!   each spawn, so every ULT maps and faults in a new stack (why stacks are pooled).
//! - `corosensei/create_run_fresh_stack`: a raw corosensei coroutine on a new default stack.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::{Duration, Instant};

fn spawn_join(iters: u64, fresh: bool) -> Duration {
    ult::run(move || {
        // Warm the pool.
        ult::spawn(|| ()).join().unwrap();
        let mut total = Duration::ZERO;
        let start = Instant::now();
        for _ in 0..iters {
            if fresh {
                let t = Instant::now();
                ult::stack::clear_pool();
                total += t.elapsed(); // excluded below: unmapping is not creation cost
            }
            let h = ult::spawn(|| std::hint::black_box(1u64));
            std::hint::black_box(h.join().unwrap());
        }
        start.elapsed() - total
    })
}

fn bench(c: &mut Criterion) {
    c.bench_function("ult/spawn_join_pooled", |b| {
        b.iter_custom(|n| spawn_join(n, false))
    });
    let mut g = c.benchmark_group("fresh");
    g.sample_size(20);
    g.bench_function("ult/spawn_join_fresh", |b| {
        b.iter_custom(|n| spawn_join(n, true))
    });
    g.bench_function("corosensei/create_run_fresh_stack", |b| {
        b.iter(|| {
            let mut co: corosensei::Coroutine<(), (), u64> =
                corosensei::Coroutine::new(|_, ()| std::hint::black_box(1));
            co.resume(())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
