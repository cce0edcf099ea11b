//! Every message sent on an `lwp::channel` arrives exactly once, in per-sender FIFO order,
//! with several senders and receivers, whether they are ULTs on one kernel thread, plain
//! threads, or both; for unbounded, bounded and rendezvous channels.

mod sync_support;

use std::sync::Arc;

use lwp::channel::{self, Receiver, Sender};
use lwp::sync::Mutex;
use sync_support::{in_ult, size, watchdog};

const SENDERS: usize = 4;

fn per_sender() -> usize {
    size(10_000)
}

type Msg = (usize, usize);
type MakeChannel = fn() -> (Sender<Msg>, Receiver<Msg>);

fn flavors() -> Vec<(&'static str, MakeChannel)> {
    vec![
        ("unbounded", || channel::unbounded()),
        ("bounded(1)", || channel::bounded(1)),
        ("bounded(16)", || channel::bounded(16)),
        ("rendezvous", || channel::bounded(0)),
    ]
}

/// Checks that `got` (what each receiver saw, in its order) holds every `(sender, seq)`
/// exactly once, and each receiver saw each sender's messages in increasing order.
fn check(flavor: &str, got: Vec<Vec<(usize, usize)>>, n: usize) {
    let mut seen = vec![vec![false; n]; SENDERS];
    for (r, msgs) in got.iter().enumerate() {
        let mut last = [None; SENDERS];
        for &(s, i) in msgs {
            assert!(!seen[s][i], "{flavor}: ({s}, {i}) delivered twice");
            seen[s][i] = true;
            assert!(
                match last[s] {
                    Some(l) => l < i,
                    None => true,
                },
                "{flavor}: receiver {r} got ({s}, {i}) after ({s}, {:?})",
                last[s]
            );
            last[s] = Some(i);
        }
    }
    let missing = seen.iter().flatten().filter(|s| !**s).count();
    assert_eq!(missing, 0, "{flavor}: {missing} messages lost");
}

#[test]
fn ult_senders_and_receivers_on_one_thread_get_every_message_once_in_order() {
    let n = per_sender();
    for (flavor, make) in flavors() {
        let got = in_ult(flavor, move || {
            let (tx, rx) = make();
            let senders: Vec<_> = (0..SENDERS)
                .map(|s| {
                    let tx = tx.clone();
                    ult::spawn(move || {
                        for i in 0..n {
                            tx.send((s, i)).unwrap();
                            if i % 97 == 0 {
                                ult::yield_now();
                            }
                        }
                    })
                })
                .collect();
            drop(tx);
            let receivers: Vec<_> = (0..3)
                .map(|_| {
                    let rx = rx.clone();
                    ult::spawn(move || rx.iter().collect::<Vec<_>>())
                })
                .collect();
            drop(rx);
            for s in senders {
                s.join().unwrap();
            }
            receivers
                .into_iter()
                .map(|r| r.join().unwrap())
                .collect::<Vec<_>>()
        });
        check(flavor, got, n);
    }
}

#[test]
fn thread_senders_and_receivers_get_every_message_once_in_order() {
    let n = per_sender();
    for (flavor, make) in flavors() {
        let got = watchdog(flavor, move || {
            let (tx, rx) = make();
            let senders: Vec<_> = (0..SENDERS)
                .map(|s| {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        for i in 0..n {
                            tx.send((s, i)).unwrap();
                        }
                    })
                })
                .collect();
            drop(tx);
            let receivers: Vec<_> = (0..2)
                .map(|_| {
                    let rx = rx.clone();
                    std::thread::spawn(move || rx.iter().collect::<Vec<_>>())
                })
                .collect();
            drop(rx);
            for s in senders {
                s.join().unwrap();
            }
            receivers
                .into_iter()
                .map(|r| r.join().unwrap())
                .collect::<Vec<_>>()
        });
        check(flavor, got, n);
    }
}

#[test]
fn ults_on_two_executors_and_threads_exchange_every_message_once() {
    let n = per_sender();
    for (flavor, make) in flavors() {
        let got = watchdog(flavor, move || {
            let (tx, rx) = make();
            let collected = Arc::new(Mutex::new(Vec::new()));
            let mut threads = Vec::new();
            // Executor A: two sending ULTs and one receiving ULT.
            {
                let (tx, rx, collected) = (tx.clone(), rx.clone(), collected.clone());
                threads.push(std::thread::spawn(move || {
                    ult::run(move || {
                        let hs: Vec<_> = (0..2)
                            .map(|s| {
                                let tx = tx.clone();
                                ult::spawn(move || {
                                    for i in 0..n {
                                        tx.send((s, i)).unwrap();
                                    }
                                })
                            })
                            .collect();
                        drop(tx);
                        let r = ult::spawn(move || rx.iter().collect::<Vec<_>>());
                        for h in hs {
                            h.join().unwrap();
                        }
                        collected.lock().unwrap().push(r.join().unwrap());
                    })
                }));
            }
            // Executor B: one receiving ULT.
            {
                let (rx, collected) = (rx.clone(), collected.clone());
                threads.push(std::thread::spawn(move || {
                    ult::run(move || {
                        let r = ult::spawn(move || rx.iter().collect::<Vec<_>>());
                        collected.lock().unwrap().push(r.join().unwrap());
                    })
                }));
            }
            // Two plain sender threads and one plain receiver thread.
            for s in 2..SENDERS {
                let tx = tx.clone();
                threads.push(std::thread::spawn(move || {
                    for i in 0..n {
                        tx.send((s, i)).unwrap();
                    }
                }));
            }
            {
                let (rx, collected) = (rx.clone(), collected.clone());
                threads.push(std::thread::spawn(move || {
                    let v = rx.iter().collect::<Vec<_>>();
                    collected.lock().unwrap().push(v);
                }));
            }
            drop((tx, rx));
            for t in threads {
                t.join().unwrap();
            }
            let v = std::mem::take(&mut *collected.lock().unwrap());
            v
        });
        check(flavor, got, n);
    }
}

/// Timeouts racing notifications across kernel threads: ULT receivers on two LWPs and
/// plain-thread senders all use very short timeouts and retry, so waiters are often picked
/// by a notifier on another thread just as their deadline passes (and must then take what
/// they were given). Nothing may be lost or delivered twice.
#[test]
fn short_timeouts_racing_notifiers_lose_and_duplicate_nothing() {
    use std::time::Duration;
    let n = per_sender() / 4;
    for (flavor, make) in flavors() {
        let got = watchdog(flavor, move || {
            let (tx, rx) = make();
            let rt = lwp::Runtime::new(lwp::Model::ManyToMany { lwps: 2 }).unwrap();
            let senders: Vec<_> = (0..SENDERS)
                .map(|s| {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        for i in 0..n {
                            let mut msg = (s, i);
                            loop {
                                match tx.send_timeout(msg, Duration::from_micros(20)) {
                                    Ok(()) => break,
                                    Err(channel::SendTimeoutError::Timeout(m)) => msg = m,
                                    Err(e) => panic!("{e:?}"),
                                }
                            }
                        }
                    })
                })
                .collect();
            drop(tx);
            let got = rt.run(move || {
                let receivers: Vec<_> = (0..3)
                    .map(|_| {
                        let rx = rx.clone();
                        lwp::spawn(move || {
                            let mut mine = Vec::new();
                            loop {
                                match rx.recv_timeout(Duration::from_micros(20)) {
                                    Ok(m) => mine.push(m),
                                    Err(channel::RecvTimeoutError::Timeout) => {}
                                    Err(channel::RecvTimeoutError::Disconnected) => break,
                                }
                            }
                            mine
                        })
                    })
                    .collect();
                drop(rx);
                receivers
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<_>>()
            });
            for s in senders {
                s.join().unwrap();
            }
            got
        });
        check(flavor, got, n);
    }
}
