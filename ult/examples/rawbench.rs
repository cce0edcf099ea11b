//! The floor for `yieldbench`: a raw corosensei resume+suspend round trip (two switches),
//! timed the same way. Run both pinned to one CPU and compare the ratio.
use corosensei::{Coroutine, CoroutineResult};
use std::time::Instant;

fn main() {
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let mut co: Coroutine<(), (), ()> = Coroutine::new(|y, ()| loop {
        y.suspend(());
    });
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..n {
            match co.resume(()) {
                CoroutineResult::Yield(()) => {}
                CoroutineResult::Return(()) => unreachable!(),
            }
        }
        println!(
            "raw resume+suspend {:.1} ns",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
}
