//! The many-to-one executor's direct hand-off (a yielding or parking ULT runs the next ones
//! on its own stack, see `ult::raw::Nest`) keeps the scheduler's semantics: FIFO order with
//! the yielder going to the back, wake-ups from other kernel threads and timers still
//! delivered while one ULT never really suspends, panics still reach `join`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn a_yielding_root_takes_its_turn_behind_the_others() {
    let log = ult::run(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let hs: Vec<_> = (1..3)
            .map(|id| {
                let log = log.clone();
                ult::spawn(move || {
                    for step in 0..3 {
                        log.lock().unwrap().push((step, id));
                        ult::yield_now();
                    }
                })
            })
            .collect();
        for step in 0..3 {
            ult::yield_now();
            log.lock().unwrap().push((step, 0));
        }
        for h in hs {
            h.join().unwrap();
        }
        let v = log.lock().unwrap().clone();
        v
    });
    // The root yields first, so each round is: 1, 2, then the root.
    let expected: Vec<_> = (0..3).flat_map(|s| [(s, 1), (s, 2), (s, 0)]).collect();
    assert_eq!(log, expected);
}

#[test]
fn a_yield_spinning_ult_sees_a_wake_up_from_another_kernel_thread() {
    let woke = ult::run(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let waiter = ult::spawn({
            let flag = flag.clone();
            move || {
                ult::park();
                flag.store(true, Ordering::Release);
            }
        });
        ult::yield_now(); // the waiter parks
        let unparker = waiter.ult().unparker();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            unparker.unpark();
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !flag.load(Ordering::Acquire) && Instant::now() < deadline {
            ult::yield_now();
        }
        t.join().unwrap();
        waiter.join().unwrap();
        flag.load(Ordering::Acquire)
    });
    assert!(woke, "the remote wake-up never reached the parked ULT");
}

#[test]
fn a_yield_spinning_ult_lets_timers_fire() {
    let slept = ult::run(|| {
        let done = Arc::new(AtomicBool::new(false));
        let sleeper = ult::spawn({
            let done = done.clone();
            move || {
                ult::sleep(Duration::from_millis(10));
                done.store(true, Ordering::Release);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done.load(Ordering::Acquire) && Instant::now() < deadline {
            ult::yield_now();
        }
        sleeper.join().unwrap();
        done.load(Ordering::Acquire)
    });
    assert!(slept, "the sleeper's timer never fired");
}

#[test]
fn a_parked_root_wakes_while_the_ult_that_woke_it_still_runs() {
    let log = ult::run(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let root = ult::current();
        let child = ult::spawn({
            let log = log.clone();
            move || {
                log.lock().unwrap().push("child: unpark root");
                root.unpark();
                ult::yield_now();
                log.lock().unwrap().push("child: after yield");
            }
        });
        ult::park();
        log.lock().unwrap().push("root: woke");
        child.join().unwrap();
        let v = log.lock().unwrap().clone();
        v
    });
    assert_eq!(
        log,
        ["child: unpark root", "root: woke", "child: after yield"]
    );
}

#[test]
fn nested_ults_can_spawn_join_and_panic() {
    let (sum, panicked) = ult::run(|| {
        let parents: Vec<_> = (0..4u32)
            .map(|p| {
                ult::spawn(move || {
                    let kids: Vec<_> = (0..4u32).map(|k| ult::spawn(move || p * 10 + k)).collect();
                    kids.into_iter().map(|k| k.join().unwrap()).sum::<u32>()
                })
            })
            .collect();
        let bad = ult::spawn(|| -> u32 { panic!("nested panic") });
        let sum: u32 = parents.into_iter().map(|p| p.join().unwrap()).sum();
        (sum, bad.join().is_err())
    });
    assert_eq!(sum, (0..4u32).map(|p| 4 * p * 10 + 6).sum::<u32>());
    assert!(panicked);
}

#[test]
fn every_parked_ult_wakes_exactly_once_under_hand_off() {
    let wakes = ult::run(|| {
        let wakes = Arc::new(AtomicU32::new(0));
        let hs: Vec<_> = (0..50)
            .map(|_| {
                let wakes = wakes.clone();
                ult::spawn(move || {
                    ult::park();
                    wakes.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        ult::yield_now(); // all of them park
        for h in &hs {
            h.ult().unpark();
        }
        for h in hs {
            h.join().unwrap();
        }
        wakes.load(Ordering::Relaxed)
    });
    assert_eq!(wakes, 50);
}
