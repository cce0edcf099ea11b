//! A finished ULT's worker coroutine (and its stack) serves the next spawn on the thread,
//! whatever the stack sizes asked for, and nothing of one ULT leaks into the next.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn address_of_a_local() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

#[test]
fn consecutive_ults_reuse_one_stack_at_the_same_depth() {
    let (a, b) = ult::run(|| {
        let a = ult::spawn(address_of_a_local).join().unwrap();
        let b = ult::spawn(address_of_a_local).join().unwrap();
        (a, b)
    });
    // The first ULT's worker (its coroutine, suspended at the same point of its loop) ran
    // the second: the same frame address.
    assert_eq!(a, b, "the second ULT did not run where the first one did");
}

#[test]
fn each_ult_gets_the_stack_size_it_asked_for_among_idle_workers_of_other_sizes() {
    ult::run(|| {
        let sizes = [64 * 1024, 16 * 1024, 128 * 1024, 64 * 1024, 16 * 1024];
        for _ in 0..3 {
            // Leaves idle workers of every size behind, most recent last.
            for &size in &sizes {
                let got = ult::Builder::new()
                    .stack_size(size)
                    .spawn(|| ult::current().stack_size())
                    .unwrap()
                    .join()
                    .unwrap();
                assert_eq!(got, size, "asked for {size}");
            }
        }
    });
}

#[test]
fn a_reused_worker_starts_each_ult_afresh() {
    ult::local! {
        static SEEN: std::cell::Cell<u32> = std::cell::Cell::new(0);
    }
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    ult::run(move || {
        for i in 0..100u32 {
            let f = f.clone();
            let h = ult::spawn(move || {
                // A ULT-local starts at its initial value in every ULT.
                let before = SEEN.with(|s| s.replace(i + 1));
                f.fetch_add(1, Ordering::Relaxed);
                if i % 10 == 0 {
                    panic!("ULT {i} panics");
                }
                (before, ult::current().id())
            });
            match h.join() {
                Ok((before, _)) => assert_eq!(before, 0, "ULT {i} saw another ULT's local"),
                Err(_) => assert_eq!(i % 10, 0),
            }
        }
    });
    assert_eq!(finished.load(Ordering::Relaxed), 100);
}
