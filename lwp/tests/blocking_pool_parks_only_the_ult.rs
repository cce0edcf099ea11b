//! `lwp::blocking` runs blocking calls on the pool: the caller parks, its LWP keeps running
//! other ULTs, and a panic in the closure comes back to the caller.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lwp::{Model, Runtime};

#[test]
fn other_ults_run_on_the_same_lwp_while_one_waits_in_the_pool() {
    // Many-to-one: a single LWP. Without the pool the ticker would stall for 200 ms.
    let rt = Runtime::new(Model::ManyToOne).unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = ticks.clone();
    let (ticks_during, value) = rt.run(move || {
        let ticker = lwp::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(150) {
                t.fetch_add(1, Ordering::SeqCst);
                lwp::sleep(Duration::from_millis(2));
            }
        });
        let v = lwp::blocking(|| {
            std::thread::sleep(Duration::from_millis(200)); // blocks a pool thread
            42
        });
        let during = ticks.load(Ordering::SeqCst);
        ticker.join().unwrap();
        (during, v)
    });
    assert_eq!(value, 42);
    assert!(
        ticks_during >= 20,
        "the LWP kept running the ticker: {ticks_during} ticks"
    );
}

#[test]
fn a_panic_in_the_blocking_closure_reaches_the_caller() {
    let rt = Runtime::new(Model::ManyToMany { lwps: 2 }).unwrap();
    let caught = rt.run(|| {
        let r = std::panic::catch_unwind(|| lwp::blocking(|| panic!("in the pool")));
        r.unwrap_err().downcast_ref::<&str>().copied()
    });
    assert_eq!(caught, Some("in the pool"));
}

#[test]
fn outside_a_ult_blocking_runs_inline() {
    let here = std::thread::current().id();
    let there = lwp::blocking(move || std::thread::current().id());
    assert_eq!(here, there);
}
