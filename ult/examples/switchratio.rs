//! Yield round trip between two ULTs against a raw corosensei resume+suspend round trip,
//! interleaved in one process (A B A B ...) so that the vCPU's speed drift hits both alike.
//! Prints the medians and the median of the per-pair ratios (issue 2's target: at most 3x).
//!
//! `taskset -c 1 cargo run --release -p ult --example switchratio`
mod common;
use corosensei::{Coroutine, CoroutineResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let n = common::iterations(1_000_000);
    let rounds = 21;
    let (raw, ult, ratio) = ult::run(move || {
        let stop = Arc::new(AtomicBool::new(false));
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
        let mut co: Coroutine<(), (), ()> = Coroutine::new(|y, ()| loop {
            y.suspend(());
        });
        let (mut raw, mut ult, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..n {
                match co.resume(()) {
                    CoroutineResult::Yield(()) => {}
                    CoroutineResult::Return(()) => unreachable!(),
                }
            }
            let r = t.elapsed().as_nanos() as f64 / n as f64;
            let t = Instant::now();
            for _ in 0..n {
                ult::yield_now();
            }
            let u = t.elapsed().as_nanos() as f64 / n as f64;
            raw.push(r);
            ult.push(u);
            ratio.push(u / r);
        }
        stop.store(true, Ordering::Relaxed);
        let partner_rounds = partner.join().unwrap();
        assert!(partner_rounds >= n * rounds as u64);
        (
            common::median(&mut raw),
            common::median(&mut ult),
            common::median(&mut ratio),
        )
    });
    println!("raw corosensei round trip {raw:.2} ns, ULT yield round trip {ult:.2} ns, ratio {ratio:.2}x (median of {rounds} pairs)");
}
