//! `lwp::sync::Mutex` gives mutual exclusion to ULTs (parking them, never their kernel
//! thread), to plain threads and to mixes of both; poisons like std; honours deadlines;
//! and does not let a barging holder starve a waiter.

mod sync_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, TryLockError};
use std::time::{Duration, Instant};

use lwp::sync::Mutex;
use sync_support::{in_ult, size, watchdog};

/// A non-atomic read-modify-write with a switch in the middle: loses updates unless the
/// mutex really excludes.
fn bump(counter: &Mutex<usize>, yield_inside: bool) {
    let mut g = counter.lock().unwrap();
    let v = *g;
    if yield_inside {
        ult::yield_now();
    }
    *g = v + 1;
}

#[test]
fn ults_on_one_thread_increment_an_exact_total_with_yields_inside_the_lock() {
    let (n, m) = (size(16), size(500));
    let total = in_ult("mutex-ults", move || {
        let counter = Arc::new(Mutex::new(0usize));
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let c = counter.clone();
                ult::spawn(move || {
                    for _ in 0..m {
                        bump(&c, true);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let total = *counter.lock().unwrap();
        total
    });
    assert_eq!(total, n * m);
}

#[test]
fn plain_threads_increment_an_exact_total() {
    let (n, m) = (size(8), size(5_000));
    let total = watchdog("mutex-threads", move || {
        let counter = Arc::new(Mutex::new(0usize));
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let c = counter.clone();
                std::thread::spawn(move || {
                    for i in 0..m {
                        let mut g = c.lock().unwrap();
                        let v = *g;
                        if i % 64 == 0 {
                            std::thread::yield_now();
                        }
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let total = *counter.lock().unwrap();
        total
    });
    assert_eq!(total, n * m);
}

#[test]
fn ults_on_two_executors_and_plain_threads_share_one_mutex() {
    let m = size(2_000);
    let total = watchdog("mutex-mixed", move || {
        let counter = Arc::new(Mutex::new(0usize));
        let mut threads = Vec::new();
        for _ in 0..2 {
            let c = counter.clone();
            // An executor thread with four ULTs.
            threads.push(std::thread::spawn(move || {
                ult::run(move || {
                    let hs: Vec<_> = (0..4)
                        .map(|_| {
                            let c = c.clone();
                            ult::spawn(move || {
                                for _ in 0..m {
                                    bump(&c, true);
                                }
                            })
                        })
                        .collect();
                    for h in hs {
                        h.join().unwrap();
                    }
                })
            }));
        }
        for _ in 0..2 {
            let c = counter.clone();
            threads.push(std::thread::spawn(move || {
                for _ in 0..m {
                    bump(&c, false);
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        let total = *counter.lock().unwrap();
        total
    });
    assert_eq!(total, 2 * 4 * m + 2 * m);
}

#[test]
fn a_panic_while_locked_poisons_the_mutex() {
    in_ult("mutex-poison", || {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let r = ult::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("boom while holding the lock");
        })
        .join();
        assert!(r.is_err());
        assert!(m.is_poisoned());
        match m.lock() {
            Err(poisoned) => assert_eq!(**poisoned.get_ref(), 1),
            Ok(_) => panic!("lock() must report the poison"),
        }
        assert!(matches!(m.try_lock(), Err(TryLockError::Poisoned(_))));
        m.clear_poison();
        assert!(m.lock().is_ok());
        // A panic that does not happen while locked does not poison.
        let m3 = m.clone();
        let _ = ult::spawn(move || {
            drop(m3.lock().unwrap());
            panic!("boom after unlocking");
        })
        .join();
        assert!(!m.is_poisoned());
    });
    // into_inner reports the poison too.
    let m = Arc::new(Mutex::new(5));
    let m2 = m.clone();
    let _ = std::thread::spawn(move || {
        let _g = m2.lock().unwrap();
        panic!("boom");
    })
    .join();
    let m = Arc::try_unwrap(m).unwrap_or_else(|_| panic!("still shared"));
    assert_eq!(m.into_inner().unwrap_err().into_inner(), 5);
}

#[test]
fn lock_timeout_gives_up_while_held_and_succeeds_once_free() {
    in_ult("mutex-timeout", || {
        let m = Arc::new(Mutex::new(0));
        let held = m.lock().unwrap();
        // From another ULT of the same kernel thread: must park, not block the thread.
        let m2 = m.clone();
        let h = ult::spawn(move || {
            let start = Instant::now();
            let r = m2.lock_timeout(Duration::from_millis(30));
            (matches!(r, Err(TryLockError::WouldBlock)), start.elapsed())
        });
        let (timed_out, waited) = h.join().unwrap();
        assert!(timed_out);
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
        let m3 = m.clone();
        let h = ult::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(5);
            *m3.try_lock_until(deadline).unwrap() += 1;
        });
        ult::sleep(Duration::from_millis(5));
        drop(held);
        h.join().unwrap();
        assert_eq!(*m.lock().unwrap(), 1);
    });
}

#[test]
fn a_barging_holder_cannot_starve_a_waiter() {
    let rounds = in_ult("mutex-starvation", || {
        let m = Arc::new(Mutex::new(()));
        let waiter_done = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicUsize::new(0));
        let (m2, done2, rounds2) = (m.clone(), waiter_done.clone(), rounds.clone());
        // The hog relocks immediately after every unlock, yielding while it holds the lock.
        let hog = ult::spawn(move || {
            for i in 0..10_000 {
                if done2.load(Ordering::SeqCst) {
                    rounds2.store(i, Ordering::SeqCst);
                    return;
                }
                let _g = m2.lock().unwrap();
                ult::yield_now();
            }
            rounds2.store(usize::MAX, Ordering::SeqCst);
        });
        ult::yield_now(); // let the hog take the lock first
        drop(m.lock().unwrap());
        waiter_done.store(true, Ordering::SeqCst);
        hog.join().unwrap();
        rounds.load(Ordering::SeqCst)
    });
    assert!(rounds < 10, "the waiter waited {rounds} rounds of the hog");
}
