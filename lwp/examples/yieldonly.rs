//! A yield round trip between two ULTs on a one-LWP many-to-many runtime, as the lab's
//! `runtime` experiment times it for issue 3's "100x cheaper than a futex round trip" row:
//! three passes of N round trips (default 3M), each printed. Pin it for stable figures:
//!
//! `taskset -c 1 cargo run --release -p lwp --example yieldonly`
use std::time::Instant;
fn main() {
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000_000);
    let rt = lwp::Runtime::builder()
        .lwps(1)
        .pin(true)
        .sysmon_warnings(false)
        .build()
        .unwrap();
    for _ in 0..3 {
        let per = rt.run(move || {
            let partner = lwp::spawn(move || {
                for _ in 0..n + 1 {
                    lwp::yield_now();
                }
            });
            lwp::yield_now();
            let t = Instant::now();
            for _ in 0..n {
                lwp::yield_now();
            }
            let e = t.elapsed();
            let _ = partner.join();
            e.as_nanos() as f64 / n as f64
        });
        println!("lwp yield round trip {per:.1} ns");
    }
}
