//! A yield round trip between two ULTs on a one-LWP many-to-many runtime, timed by the same
//! kernel as the lab's `runtime` experiment ([`benches::rtkernels::lwp_yield_pingpong`]) for
//! issue 3's "100x cheaper than a futex round trip" row: three passes of N round trips
//! (default 3M), each printed. Pin it for stable figures:
//!
//! `taskset -c 1 cargo run --release -p benches --example yieldonly`
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
        .expect("start a one-LWP runtime");
    for _ in 0..3 {
        let per = benches::rtkernels::lwp_yield_pingpong(&rt, 1, n);
        println!("lwp yield round trip {per:.1} ns");
    }
}
