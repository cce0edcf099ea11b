//! `lwp::sync::Condvar`: producer/consumer hand-over, timeouts that really wait, and
//! notifications that reach exactly the waiters they should, never lost to a racing timeout.

mod sync_support;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lwp::sync::{Condvar, Mutex};
use sync_support::{in_ult, size, watchdog};

#[test]
fn producer_and_consumer_ults_hand_over_every_item_in_order() {
    let n = size(5_000);
    let got = in_ult("condvar-prodcons", move || {
        let shared = Arc::new((Mutex::new(VecDeque::new()), Condvar::new(), Condvar::new()));
        let s2 = shared.clone();
        let producer = ult::spawn(move || {
            let (q, not_empty, not_full) = &*s2;
            for i in 0..n {
                let mut g = not_full
                    .wait_while(q.lock().unwrap(), |q| q.len() >= 4)
                    .unwrap();
                g.push_back(i);
                drop(g);
                not_empty.notify_one();
            }
        });
        let (q, not_empty, not_full) = &*shared;
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let mut g = not_empty
                .wait_while(q.lock().unwrap(), |q| q.is_empty())
                .unwrap();
            got.extend(g.drain(..));
            drop(g);
            not_full.notify_one();
        }
        producer.join().unwrap();
        got
    });
    assert!(got.iter().copied().eq(0..n));
}

#[test]
fn producer_thread_and_consumer_ult_hand_over_every_item() {
    let n = size(5_000);
    let sum = watchdog("condvar-mixed", move || {
        let shared = Arc::new((Mutex::new(VecDeque::new()), Condvar::new()));
        let s2 = shared.clone();
        let consumer = std::thread::spawn(move || {
            ult::run(move || {
                let (q, cv) = &*s2;
                let mut sum = 0usize;
                let mut seen = 0;
                while seen < n {
                    let mut g = cv.wait_while(q.lock().unwrap(), |q| q.is_empty()).unwrap();
                    while let Some(v) = g.pop_front() {
                        sum += v;
                        seen += 1;
                    }
                }
                sum
            })
        });
        let (q, cv) = &*shared;
        for i in 0..n {
            q.lock().unwrap().push_back(i);
            cv.notify_one();
        }
        consumer.join().unwrap()
    });
    assert_eq!(sum, n * (n - 1) / 2);
}

#[test]
fn wait_timeout_times_out_when_nobody_notifies() {
    in_ult("condvar-timeout", || {
        let m = Mutex::new(0);
        let cv = Condvar::new();
        let start = Instant::now();
        let (g, res) = cv
            .wait_timeout(m.lock().unwrap(), Duration::from_millis(30))
            .unwrap();
        assert!(res.timed_out());
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(*g, 0, "the mutex is held again");
        drop(g);
        let start = Instant::now();
        let (_g, res) = cv
            .wait_timeout_while(m.lock().unwrap(), Duration::from_millis(20), |v| *v == 0)
            .unwrap();
        assert!(res.timed_out());
        assert!(start.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
fn notify_all_wakes_every_waiter_and_notify_one_exactly_one() {
    let n = size(10);
    in_ult("condvar-notify", move || {
        let shared = Arc::new((Mutex::new(0usize), Condvar::new(), AtomicUsize::new(0)));
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let s = shared.clone();
                ult::spawn(move || {
                    let (m, cv, woken) = &*s;
                    let mut g = m.lock().unwrap();
                    *g += 1; // "I am about to wait", under the mutex
                    let _g = cv.wait(g).unwrap(); // one wait, no loop: count each return
                    woken.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        let (m, cv, woken) = &*shared;
        // Every waiter enqueued itself before releasing the mutex, so once the count is n
        // (read under the mutex) all n are waiting.
        while *m.lock().unwrap() < n {
            ult::yield_now();
        }
        cv.notify_one();
        for _ in 0..50 {
            ult::yield_now();
        }
        assert_eq!(
            woken.load(Ordering::SeqCst),
            1,
            "notify_one woke exactly one"
        );
        cv.notify_all();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(woken.load(Ordering::SeqCst), n);
    });
}

#[test]
fn a_notification_racing_a_timeout_is_never_lost() {
    // A short-timeout waiter and a patient waiter; one notify_one lands around the first
    // one's deadline. Either the short waiter reports it was notified, or the patient one
    // must be woken: a lost notification leaves the patient waiter to time out.
    let rounds = size(200);
    watchdog("condvar-race", move || {
        for round in 0..rounds {
            let shared = Arc::new((Mutex::new(0u32), Condvar::new()));
            let s1 = shared.clone();
            let short = std::thread::spawn(move || {
                let (m, cv) = &*s1;
                let g = m.lock().unwrap();
                let (_g, res) = cv.wait_timeout(g, Duration::from_micros(200)).unwrap();
                !res.timed_out()
            });
            let s2 = shared.clone();
            let patient = std::thread::spawn(move || {
                let (m, cv) = &*s2;
                let mut g = m.lock().unwrap();
                *g += 1;
                let (_g, res) = cv.wait_timeout(g, Duration::from_secs(5)).unwrap();
                !res.timed_out()
            });
            // Wait until the patient waiter is enqueued.
            while *shared.0.lock().unwrap() == 0 {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_micros(150 + (round as u64 % 100)));
            shared.1.notify_one();
            let short_notified = short.join().unwrap();
            if short_notified {
                shared.1.notify_one(); // release the patient waiter
            }
            assert!(patient.join().unwrap(), "round {round}: notification lost");
        }
    });
}
