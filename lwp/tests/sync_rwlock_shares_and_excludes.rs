//! `lwp::sync::RwLock`: readers share, writers exclude, a waiting writer holds back new
//! readers (writer preference) without starving queued readers, poisoning and deadlines.

mod sync_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, TryLockError};
use std::time::{Duration, Instant};

use lwp::sync::RwLock;
use sync_support::{in_ult, size, watchdog};

#[test]
fn readers_hold_the_lock_together() {
    let max = in_ult("rwlock-share", || {
        let lock = Arc::new(RwLock::new(0));
        let inside = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (lock, inside, max) = (lock.clone(), inside.clone(), max.clone());
                ult::spawn(move || {
                    let _r = lock.read().unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    for _ in 0..10 {
                        ult::yield_now();
                    }
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        max.load(Ordering::SeqCst)
    });
    assert_eq!(max, 4);
}

#[test]
fn writers_exclude_readers_and_each_other() {
    let (n, m) = (size(8), size(300));
    watchdog("rwlock-exclude", move || {
        let lock = Arc::new(RwLock::new((0usize, 0usize)));
        let mut threads = Vec::new();
        for t in 0..2 {
            let lock = lock.clone();
            threads.push(std::thread::spawn(move || {
                ult::run(move || {
                    let hs: Vec<_> = (0..n)
                        .map(|i| {
                            let lock = lock.clone();
                            ult::spawn(move || {
                                for _ in 0..m {
                                    if (i + t) % 2 == 0 {
                                        // Writer: both fields move together.
                                        let mut g = lock.write().unwrap();
                                        g.0 += 1;
                                        ult::yield_now();
                                        g.1 += 1;
                                    } else {
                                        let g = lock.read().unwrap();
                                        let a = g.0;
                                        ult::yield_now();
                                        assert_eq!(a, g.0, "a writer got in beside a reader");
                                        assert_eq!(g.0, g.1, "a reader saw a half-done write");
                                    }
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
        for t in threads {
            t.join().unwrap();
        }
        let g = lock.read().unwrap();
        assert_eq!(g.0, n * m); // half of 2n ULTs write m times
        assert_eq!(g.0, g.1);
    });
}

#[test]
fn a_waiting_writer_holds_back_new_readers_but_queued_readers_follow_it() {
    in_ult("rwlock-writer-preference", || {
        let lock = Arc::new(RwLock::new(Vec::new()));
        let first_reader = lock.read().unwrap();
        let l2 = lock.clone();
        let writer = ult::spawn(move || l2.write().unwrap().push("writer"));
        ult::yield_now(); // the writer is now queued behind the reader
        assert!(
            matches!(lock.try_read(), Err(TryLockError::WouldBlock)),
            "a new reader must not overtake a waiting writer"
        );
        let l3 = lock.clone();
        let late_reader = ult::spawn(move || l3.read().unwrap().clone());
        ult::yield_now();
        assert!(!late_reader.is_finished());
        drop(first_reader);
        writer.join().unwrap();
        assert_eq!(late_reader.join().unwrap(), vec!["writer"]);
    });
}

#[test]
fn a_stream_of_readers_does_not_starve_a_writer() {
    let reads_before_write = in_ult("rwlock-writer-starvation", || {
        let lock = Arc::new(RwLock::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (lock, reads) = (lock.clone(), reads.clone());
                ult::spawn(move || loop {
                    let g = lock.read().unwrap();
                    if *g {
                        return;
                    }
                    reads.fetch_add(1, Ordering::SeqCst);
                    ult::yield_now();
                    drop(g);
                })
            })
            .collect();
        ult::yield_now();
        let before = reads.load(Ordering::SeqCst);
        *lock.write().unwrap() = true;
        let during = reads.load(Ordering::SeqCst) - before;
        for r in readers {
            r.join().unwrap();
        }
        during
    });
    assert!(
        reads_before_write < 20,
        "{reads_before_write} reads overtook the writer"
    );
}

#[test]
fn timeouts_give_up_and_leave_the_lock_usable() {
    in_ult("rwlock-timeout", || {
        let lock = Arc::new(RwLock::new(1));
        let w = lock.write().unwrap();
        let l2 = lock.clone();
        let h = ult::spawn(move || {
            let start = Instant::now();
            let r = l2.read_timeout(Duration::from_millis(20)).is_err();
            let w = l2.write_timeout(Duration::from_millis(20)).is_err();
            (r, w, start.elapsed())
        });
        let (r, wr, waited) = h.join().unwrap();
        assert!(r && wr);
        assert!(waited >= Duration::from_millis(40));
        drop(w);
        let r = lock.read().unwrap();
        let l3 = lock.clone();
        let h = ult::spawn(move || l3.write_timeout(Duration::from_millis(10)).is_err());
        assert!(h.join().unwrap(), "a reader holds it");
        assert!(
            lock.try_read().is_ok(),
            "the timed-out writer no longer holds readers back"
        );
        drop(r);
        *lock.try_write().unwrap() += 1;
        assert_eq!(*lock.read().unwrap(), 2);
    });
}

#[test]
fn a_panic_while_write_locked_poisons_but_a_read_lock_does_not() {
    in_ult("rwlock-poison", || {
        let lock = Arc::new(RwLock::new(0));
        let l2 = lock.clone();
        let _ = ult::spawn(move || {
            let _g = l2.read().unwrap();
            panic!("boom while reading");
        })
        .join();
        assert!(!lock.is_poisoned());
        let l3 = lock.clone();
        let _ = ult::spawn(move || {
            let _g = l3.write().unwrap();
            panic!("boom while writing");
        })
        .join();
        assert!(lock.is_poisoned());
        assert!(lock.read().is_err());
        assert!(lock.write().is_err());
    });
}
