//! Stress, bounded in size and time: a million spawns, random yields, channel and mutex
//! traffic across LWPs. Every message arrives exactly once and every join returns.
//! A watchdog fails the test instead of hanging CI if anything deadlocks.

mod sync_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lwp::channel;
use lwp::sync::Mutex;
use lwp::{Model, Runtime};

fn scale(n: usize) -> usize {
    // Debug builds are ~10x slower; keep the same shape at a tenth of the size there.
    if cfg!(debug_assertions) {
        n / 10
    } else {
        n
    }
}

#[test]
fn a_million_spawns_all_join() {
    let n = scale(1_000_000);
    let total =
        sync_support::watchdog_for("stress_across_lwps", Duration::from_secs(120), move || {
            let rt = Runtime::new(Model::ManyToMany { lwps: 2 }).unwrap();
            rt.run(move || {
                // Batches keep the number of live ULTs (and stacks) bounded.
                let mut sum = 0u64;
                for batch in 0..(n / 1000) {
                    let hs: Vec<_> = (0..1000u64)
                        .map(|i| lwp::spawn(move || i + batch as u64))
                        .collect();
                    sum += hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>();
                }
                sum
            })
        });
    let batches = (n / 1000) as u64;
    let expected = batches * (999 * 1000 / 2) + 1000 * (batches * (batches - 1) / 2);
    assert_eq!(total, expected);
}

#[test]
fn channel_and_mutex_traffic_with_random_yields_loses_nothing() {
    let producers = 8u64;
    let per_producer = scale(20_000) as u64;
    let (sum, count, locked) =
        sync_support::watchdog_for("stress_across_lwps", Duration::from_secs(120), move || {
            let rt = Runtime::new(Model::ManyToMany { lwps: 3 }).unwrap();
            rt.run(move || {
                let (tx, rx) = channel::bounded::<u64>(64);
                let shared = Arc::new(Mutex::new(0u64));
                let hs: Vec<_> = (0..producers)
                    .map(|p| {
                        let tx = tx.clone();
                        let shared = shared.clone();
                        lwp::spawn(move || {
                            let mut rng = p.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                            for i in 0..per_producer {
                                rng ^= rng << 13;
                                rng ^= rng >> 7;
                                rng ^= rng << 17;
                                if rng % 7 == 0 {
                                    lwp::yield_now();
                                }
                                if rng % 5 == 0 {
                                    *shared.lock().unwrap() += 1;
                                }
                                tx.send(p * per_producer + i).unwrap();
                            }
                            rng
                        })
                    })
                    .collect();
                drop(tx);
                // Several consumers race for the messages.
                let seen_sum = Arc::new(AtomicU64::new(0));
                let seen_count = Arc::new(AtomicU64::new(0));
                let consumers: Vec<_> = (0..4)
                    .map(|_| {
                        let rx = rx.clone();
                        let s = seen_sum.clone();
                        let c = seen_count.clone();
                        lwp::spawn(move || {
                            for v in rx.iter() {
                                s.fetch_add(v, Ordering::Relaxed);
                                c.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                for c in consumers {
                    c.join().unwrap();
                }
                let locked = *shared.lock().unwrap();
                (
                    seen_sum.load(Ordering::Relaxed),
                    seen_count.load(Ordering::Relaxed),
                    locked,
                )
            })
        });
    let n = producers * per_producer;
    assert_eq!(count, n, "every message arrives exactly once");
    assert_eq!(sum, n * (n - 1) / 2, "no message duplicated or lost");
    assert!(locked > 0);
}

#[test]
fn ping_pong_across_lwps_loses_no_wakeup() {
    let rounds = scale(100_000) as u64;
    let got =
        sync_support::watchdog_for("stress_across_lwps", Duration::from_secs(120), move || {
            let rt = Runtime::new(Model::ManyToMany { lwps: 2 }).unwrap();
            rt.run(move || {
                let (a_tx, a_rx) = channel::bounded::<u64>(0);
                let (b_tx, b_rx) = channel::bounded::<u64>(0);
                let echo = lwp::spawn(move || {
                    for v in a_rx.iter() {
                        b_tx.send(v + 1).unwrap();
                    }
                });
                let mut v = 0;
                for _ in 0..rounds {
                    a_tx.send(v).unwrap();
                    v = b_rx.recv().unwrap();
                }
                drop(a_tx);
                echo.join().unwrap();
                v
            })
        });
    assert_eq!(got, rounds);
}
