//! Sync primitives: guards the uncontended fast paths and the contended hand-over.
//!
//! - `lwp/mutex_uncontended`: lock + unlock with nobody else around (one CAS each way).
//! - `lwp/mutex_contended_2ults`: two ULTs on one LWP taking turns on one mutex, yielding
//!   while holding it, so every lock attempt of the other parks and is handed the lock.
//! - `std/mutex_uncontended`: std's mutex, for scale.

use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use std::time::Instant;

fn bench(c: &mut Criterion) {
    let m = lwp::sync::Mutex::new(0u64);
    c.bench_function("lwp/mutex_uncontended", |b| {
        b.iter(|| *m.lock().unwrap() += 1)
    });
    let s = std::sync::Mutex::new(0u64);
    c.bench_function("std/mutex_uncontended", |b| {
        b.iter(|| *s.lock().unwrap() += 1)
    });
    let rt = lwp::Runtime::new(lwp::Model::ManyToOne).unwrap();
    c.bench_function("lwp/mutex_contended_2ults", |b| {
        b.iter_custom(|n| {
            rt.run(move || {
                let m = Arc::new(lwp::sync::Mutex::new(0u64));
                let m2 = m.clone();
                let other = lwp::spawn(move || {
                    for _ in 0..n {
                        let mut g = m2.lock().unwrap();
                        *g += 1;
                        lwp::yield_now();
                    }
                });
                let t = Instant::now();
                for _ in 0..n {
                    let mut g = m.lock().unwrap();
                    *g += 1;
                    lwp::yield_now();
                }
                let e = t.elapsed();
                other.join().unwrap();
                assert_eq!(*m.lock().unwrap(), 2 * n);
                e
            })
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
