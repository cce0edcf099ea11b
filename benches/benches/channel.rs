//! Channel cost: guards the park/unpark path between ULTs.
//!
//! - `lwp/channel_round_trip_1lwp`: two ULTs on one LWP exchange a value through two
//!   `bounded(1)` channels; one iteration is a full round trip (two sends, two receives, two
//!   parks, two wake-ups, four switches). Target (issue 3): at most 80 ns.
//! - `lwp/channel_round_trip_2lwps`: the same pair on a two-LWP runtime (they may end up on
//!   different LWPs: cross-CPU wake-ups).
//! - `lwp/unbounded_send_recv`: one ULT sends and receives its own message (no parking).

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::{Duration, Instant};

fn round_trips(rt: &lwp::Runtime, iters: u64) -> Duration {
    rt.run(move || {
        let (to_b, from_a) = lwp::channel::bounded::<u64>(1);
        let (to_a, from_b) = lwp::channel::bounded::<u64>(1);
        let echo = lwp::spawn(move || {
            for v in from_a.iter() {
                if to_a.send(v).is_err() {
                    break;
                }
            }
        });
        to_b.send(0).unwrap();
        from_b.recv().unwrap();
        let t = Instant::now();
        for i in 0..iters {
            to_b.send(i).unwrap();
            from_b.recv().unwrap();
        }
        let e = t.elapsed();
        drop(to_b);
        echo.join().unwrap();
        e
    })
}

fn bench(c: &mut Criterion) {
    let one = lwp::Runtime::builder()
        .model(lwp::Model::ManyToOne)
        .sysmon_warnings(false)
        .build()
        .unwrap();
    c.bench_function("lwp/channel_round_trip_1lwp", |b| {
        b.iter_custom(|n| round_trips(&one, n))
    });
    let two = lwp::Runtime::builder().lwps(2).build().unwrap();
    c.bench_function("lwp/channel_round_trip_2lwps", |b| {
        b.iter_custom(|n| round_trips(&two, n))
    });
    c.bench_function("lwp/unbounded_send_recv", |b| {
        b.iter_custom(|n| {
            one.run(move || {
                let (tx, rx) = lwp::channel::unbounded::<u64>();
                let t = Instant::now();
                for i in 0..n {
                    tx.send(i).unwrap();
                    std::hint::black_box(rx.recv().unwrap());
                }
                t.elapsed()
            })
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
