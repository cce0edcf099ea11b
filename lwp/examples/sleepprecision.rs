//! How long `lwp::sleep(d)` really takes when the LWP has nothing else to do (it sleeps in
//! its reactor): medians and p90 of 200 sleeps per duration, per model, beside
//! `std::thread::sleep` on a kernel thread (the floor: the kernel's own wake-up latency).
//!
//! `cargo run --release -p lwp --example sleepprecision`
use std::time::{Duration, Instant};

/// Median, p90 and min of 200 runs of `sleep(d)`, in µs.
fn spread(mut took: Vec<Duration>) -> (f64, f64, f64) {
    took.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (us(took[100]), us(took[180]), us(took[0]))
}

fn timed(d: Duration, sleep: impl Fn(Duration)) -> Vec<Duration> {
    (0..200)
        .map(|_| {
            let t = Instant::now();
            sleep(d);
            t.elapsed()
        })
        .collect()
}

fn print(who: &str, us: u64, (median, p90, min): (f64, f64, f64)) {
    println!("{who}: sleep {us:>5} µs took median {median:>7.1} µs, p90 {p90:>7.1} µs, min {min:>7.1} µs");
}

fn main() {
    for us in [50u64, 200, 700, 1500, 5000] {
        let d = Duration::from_micros(us);
        print(
            "std::thread::sleep",
            us,
            spread(timed(d, std::thread::sleep)),
        );
    }
    for model in [lwp::Model::ManyToOne, lwp::Model::ManyToMany { lwps: 2 }] {
        let rt = lwp::Runtime::new(model).expect("a runtime");
        for us in [50u64, 200, 700, 1500, 5000] {
            let d = Duration::from_micros(us);
            let took = rt.run(move || timed(d, lwp::sleep));
            print(&model.to_string(), us, spread(took));
        }
    }
}
