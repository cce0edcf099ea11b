//! Park/unpark: no lost wake-ups, exactly-once wake, tokens like std.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn unpark_before_park_makes_park_return_at_once() {
    ult::run(|| {
        ult::unparker().unpark();
        ult::park(); // consumes the token; must not hang
        let start = Instant::now();
        ult::park_timeout(Duration::from_millis(30)); // no token left: waits
        assert!(start.elapsed() >= Duration::from_millis(30));
    });
}

#[test]
fn a_parked_ult_wakes_exactly_once() {
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = wakes.clone();
    ult::run(move || {
        let sleeper = ult::spawn({
            let w = w.clone();
            move || {
                ult::park();
                w.fetch_add(1, Ordering::SeqCst);
                // A second park must wait for a second unpark (three unparks of a parked
                // ULT leave at most one token).
                ult::park();
                w.fetch_add(1, Ordering::SeqCst);
            }
        });
        ult::yield_now(); // let it park
        let u = sleeper.ult();
        u.unpark();
        u.unpark();
        u.unpark();
        ult::yield_now();
        ult::yield_now();
        // Woken once; the extra unparks left one token, so the second park returned too.
        assert_eq!(w.load(Ordering::SeqCst), 2);
        sleeper.join().unwrap();
    });
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
}

#[test]
fn unpark_from_another_kernel_thread_wakes_the_ult() {
    let got = ult::run(|| {
        let me = ult::unparker();
        let flag = Arc::new(AtomicUsize::new(0));
        let f = flag.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            f.store(1, Ordering::SeqCst);
            me.unpark();
        });
        while flag.load(Ordering::SeqCst) == 0 {
            ult::park();
        }
        t.join().unwrap();
        flag.load(Ordering::SeqCst)
    });
    assert_eq!(got, 1);
}

#[test]
fn ping_pong_many_rounds_loses_no_wakeup() {
    // Two ULTs hand a baton back and forth 2000 times; a lost wake-up hangs.
    let rounds = 2000;
    let done = ult::run(move || {
        let turn = Arc::new(AtomicUsize::new(0));
        let a_unparker = ult::unparker();
        let b = ult::spawn({
            let turn = turn.clone();
            let a = a_unparker.clone();
            move || {
                for i in 0..rounds {
                    while turn.load(Ordering::Acquire) != 2 * i + 1 {
                        ult::park();
                    }
                    turn.store(2 * i + 2, Ordering::Release);
                    a.unpark();
                }
            }
        });
        let b_unparker = b.ult().unparker();
        for i in 0..rounds {
            turn.store(2 * i + 1, Ordering::Release);
            b_unparker.unpark();
            while turn.load(Ordering::Acquire) != 2 * i + 2 {
                ult::park();
            }
        }
        b.join().unwrap();
        turn.load(Ordering::SeqCst)
    });
    assert_eq!(done, 2 * rounds);
}

#[test]
fn sleep_parks_only_the_ult() {
    let order = ult::run(|| {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let l = log.clone();
        let sleeper = ult::spawn(move || {
            ult::sleep(Duration::from_millis(30));
            l.lock().unwrap().push("sleeper");
        });
        let l = log.clone();
        let busy = ult::spawn(move || l.lock().unwrap().push("busy"));
        busy.join().unwrap();
        sleeper.join().unwrap();
        let v = log.lock().unwrap().clone();
        v
    });
    assert_eq!(order, vec!["busy", "sleeper"]);
}
