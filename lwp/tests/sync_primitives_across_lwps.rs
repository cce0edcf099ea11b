//! The same primitives under the many-to-many and one-to-one models, where waiters and
//! notifiers really run in parallel on several kernel threads: exact counts, no lost
//! wake-ups, every message once.

mod sync_support;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lwp::channel;
use lwp::sync::{Barrier, Condvar, Mutex, RwLock, Semaphore, WaitGroup};
use lwp::{Model, Runtime};
use sync_support::{size, watchdog};

fn models() -> Vec<Model> {
    vec![Model::ManyToMany { lwps: 4 }, Model::OneToOne]
}

#[test]
fn mutex_rwlock_and_semaphore_keep_exact_counts_across_lwps() {
    let (n, m) = (size(16), size(300));
    for model in models() {
        watchdog(model.name(), move || {
            let rt = Runtime::new(model).expect("runtime");
            rt.run(move || {
                let counter = Arc::new(Mutex::new(0usize));
                let rw = Arc::new(RwLock::new((0usize, 0usize)));
                let sem = Arc::new(Semaphore::new(2));
                let inside = Arc::new(AtomicUsize::new(0));
                let hs: Vec<_> = (0..n)
                    .map(|i| {
                        let (counter, rw, sem, inside) =
                            (counter.clone(), rw.clone(), sem.clone(), inside.clone());
                        lwp::spawn(move || {
                            for _ in 0..m {
                                {
                                    let mut g = counter.lock().unwrap();
                                    let v = *g;
                                    lwp::yield_now();
                                    *g = v + 1;
                                }
                                if i % 2 == 0 {
                                    let mut g = rw.write().unwrap();
                                    g.0 += 1;
                                    lwp::yield_now();
                                    g.1 += 1;
                                } else {
                                    let g = rw.read().unwrap();
                                    assert_eq!(g.0, g.1);
                                }
                                let _p = sem.acquire();
                                assert!(inside.fetch_add(1, Ordering::SeqCst) < 2);
                                lwp::yield_now();
                                inside.fetch_sub(1, Ordering::SeqCst);
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                assert_eq!(*counter.lock().unwrap(), n * m);
                assert_eq!(rw.read().unwrap().0, n.div_ceil(2) * m);
                assert_eq!(sem.available_permits(), 2);
            });
        });
    }
}

#[test]
fn condvar_barrier_waitgroup_and_channels_across_lwps() {
    let n = size(2_000);
    for model in models() {
        watchdog(model.name(), move || {
            let rt = Runtime::new(model).expect("runtime");
            rt.run(move || {
                // Condvar producer/consumer pairs.
                let q = Arc::new((Mutex::new(VecDeque::new()), Condvar::new()));
                let q2 = q.clone();
                let producer = lwp::spawn(move || {
                    for i in 0..n {
                        q2.0.lock().unwrap().push_back(i);
                        q2.1.notify_one();
                    }
                });
                let mut got = 0;
                while got < n {
                    let mut g =
                        q.1.wait_while(q.0.lock().unwrap(), |d| d.is_empty())
                            .unwrap();
                    got += g.drain(..).count();
                }
                producer.join().unwrap();

                // Barrier generations and a wait group.
                let barrier = Arc::new(Barrier::new(4));
                let leaders = Arc::new(AtomicUsize::new(0));
                let wg = WaitGroup::new();
                for _ in 0..4 {
                    let (b, l, wg) = (barrier.clone(), leaders.clone(), wg.clone());
                    lwp::spawn(move || {
                        for _ in 0..50 {
                            if b.wait().is_leader() {
                                l.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        drop(wg);
                    });
                }
                wg.wait();
                assert_eq!(leaders.load(Ordering::SeqCst), 50);

                // Channels of each flavour, 4 senders x 2 receivers.
                for cap in [None, Some(1), Some(0)] {
                    let (tx, rx) = match cap {
                        None => channel::unbounded(),
                        Some(c) => channel::bounded(c),
                    };
                    for s in 0..4usize {
                        let tx = tx.clone();
                        lwp::spawn(move || {
                            for i in 0..n {
                                tx.send(s * n + i).unwrap();
                            }
                        });
                    }
                    drop(tx);
                    let rs: Vec<_> = (0..2)
                        .map(|_| {
                            let rx = rx.clone();
                            lwp::spawn(move || rx.iter().collect::<Vec<_>>())
                        })
                        .collect();
                    drop(rx);
                    let mut all: Vec<usize> =
                        rs.into_iter().flat_map(|r| r.join().unwrap()).collect();
                    all.sort_unstable();
                    assert!(
                        all.into_iter().eq(0..4 * n),
                        "cap {cap:?}: lost or duplicated"
                    );
                }
            });
        });
    }
}
