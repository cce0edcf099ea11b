//! `Barrier` releases whole generations with one leader each and is reusable; `Semaphore`
//! bounds concurrency, is FIFO and never loses a permit to a timeout; `WaitGroup` waits for
//! every clone.

mod sync_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lwp::sync::{Barrier, Semaphore, WaitGroup};
use sync_support::{in_ult, size, watchdog};

#[test]
fn barrier_releases_each_generation_together_with_one_leader() {
    let (n, gens) = (size(8), size(50));
    in_ult("barrier-generations", move || {
        let barrier = Arc::new(Barrier::new(n));
        let arrived = Arc::new(AtomicUsize::new(0));
        let leaders = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let (b, arrived, leaders) = (barrier.clone(), arrived.clone(), leaders.clone());
                ult::spawn(move || {
                    for g in 0..gens {
                        arrived.fetch_add(1, Ordering::SeqCst);
                        if b.wait().is_leader() {
                            leaders.fetch_add(1, Ordering::SeqCst);
                        }
                        // Nobody passes generation g before all n arrived in it.
                        assert!(arrived.load(Ordering::SeqCst) >= (g + 1) * n);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(leaders.load(Ordering::SeqCst), gens);
    });
}

#[test]
fn barrier_joins_ults_and_threads() {
    watchdog("barrier-mixed", || {
        let barrier = Arc::new(Barrier::new(3));
        let b1 = barrier.clone();
        let exec = std::thread::spawn(move || {
            ult::run(move || {
                let b2 = b1.clone();
                let h = ult::spawn(move || b2.wait().is_leader());
                let me = b1.wait().is_leader();
                me as u32 + h.join().unwrap() as u32
            })
        });
        let me = barrier.wait().is_leader() as u32;
        assert_eq!(me + exec.join().unwrap(), 1);
    });
}

#[test]
fn barrier_wait_timeout_withdraws_the_arrival() {
    in_ult("barrier-timeout", || {
        let b = Barrier::new(2);
        let start = Instant::now();
        assert!(b.wait_timeout(Duration::from_millis(20)).is_none());
        assert!(start.elapsed() >= Duration::from_millis(20));
        // The withdrawn arrival does not count: one arrival alone still waits.
        assert!(b.wait_timeout(Duration::from_millis(5)).is_none());
    });
}

#[test]
fn semaphore_bounds_how_many_ults_are_inside() {
    let n = size(20);
    let max = in_ult("semaphore-bound", move || {
        let sem = Arc::new(Semaphore::new(3));
        let inside = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let (sem, inside, max) = (sem.clone(), inside.clone(), max.clone());
                ult::spawn(move || {
                    for _ in 0..10 {
                        let _p = sem.acquire();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(now, Ordering::SeqCst);
                        ult::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(sem.available_permits(), 3);
        max.load(Ordering::SeqCst)
    });
    assert_eq!(max, 3);
}

#[test]
fn semaphore_serves_waiters_in_arrival_order() {
    let order = in_ult("semaphore-fifo", || {
        let sem = Arc::new(Semaphore::new(0));
        let order = Arc::new(lwp::sync::Mutex::new(Vec::new()));
        let hs: Vec<_> = (0..5)
            .map(|i| {
                let (sem, order) = (sem.clone(), order.clone());
                let h = ult::spawn(move || {
                    sem.acquire().forget();
                    order.lock().unwrap().push(i);
                });
                ult::yield_now(); // i is queued before i + 1 starts
                h
            })
            .collect();
        for _ in 0..5 {
            sem.release();
        }
        // A newcomer cannot take a permit that was handed to a waiter.
        assert!(sem.try_acquire().is_none());
        for h in hs {
            h.join().unwrap();
        }
        let v = order.lock().unwrap().clone();
        v
    });
    assert_eq!(order, vec![0, 1, 2, 3, 4]);
}

#[test]
fn semaphore_never_loses_a_permit_to_a_racing_timeout() {
    let rounds = size(300);
    watchdog("semaphore-race", move || {
        let sem = Arc::new(Semaphore::new(0));
        let acquired = Arc::new(AtomicUsize::new(0));
        for round in 0..rounds {
            let (s2, a2) = (sem.clone(), acquired.clone());
            let waiter = std::thread::spawn(move || {
                if let Some(p) = s2.acquire_timeout(Duration::from_micros(100)) {
                    p.forget();
                    a2.fetch_add(1, Ordering::SeqCst);
                }
            });
            std::thread::sleep(Duration::from_micros(50 + round as u64 % 100));
            sem.release();
            waiter.join().unwrap();
        }
        // Every released permit was either taken by a waiter or is still available.
        assert_eq!(
            acquired.load(Ordering::SeqCst) + sem.available_permits(),
            rounds
        );
    });
}

#[test]
fn waitgroup_waits_for_every_clone() {
    let n = size(16);
    in_ult("waitgroup", move || {
        let done = Arc::new(AtomicUsize::new(0));
        let wg = WaitGroup::new();
        for i in 0..n {
            let (wg, done) = (wg.clone(), done.clone());
            ult::spawn(move || {
                for _ in 0..i {
                    ult::yield_now();
                }
                done.fetch_add(1, Ordering::SeqCst);
                drop(wg);
            });
        }
        // A plain thread takes part too.
        let (wg2, done2) = (wg.clone(), done.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            done2.fetch_add(1, Ordering::SeqCst);
            drop(wg2);
        });
        wg.wait();
        assert_eq!(done.load(Ordering::SeqCst), n + 1);
    });
}

#[test]
fn waitgroup_wait_timeout_gives_up_while_clones_live() {
    in_ult("waitgroup-timeout", || {
        let wg = WaitGroup::new();
        let other = wg.clone();
        let start = Instant::now();
        assert!(!wg.wait_timeout(Duration::from_millis(20)));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(other.count(), 1, "the waiter gave its own unit up");
        let w2 = other.clone();
        drop(other);
        assert!(
            w2.wait_timeout(Duration::from_millis(20)),
            "last unit: no wait"
        );
    });
}
