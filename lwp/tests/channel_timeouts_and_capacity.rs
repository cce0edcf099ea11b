//! Deadlines and capacity: `recv_timeout` waits at least its timeout, `send_timeout` on a
//! full channel too; a bounded channel makes senders wait when full; a message or a slot
//! that arrives while a waiter times out is never lost.

mod sync_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lwp::channel::{bounded, unbounded, RecvTimeoutError, SendTimeoutError, TrySendError};
use sync_support::{in_ult, size, watchdog};

#[test]
fn recv_timeout_returns_timeout_after_at_least_the_timeout() {
    in_ult("recv-timeout", || {
        let (_tx, rx) = unbounded::<u8>();
        for ms in [1u64, 20, 50] {
            let start = Instant::now();
            assert_eq!(
                rx.recv_timeout(Duration::from_millis(ms)),
                Err(RecvTimeoutError::Timeout)
            );
            let waited = start.elapsed();
            assert!(waited >= Duration::from_millis(ms), "{waited:?} < {ms} ms");
            assert!(waited < Duration::from_secs(5), "{waited:?}");
        }
        let start = Instant::now();
        assert_eq!(
            rx.recv_deadline(start + Duration::from_millis(10)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(start.elapsed() >= Duration::from_millis(10));
    });
}

#[test]
fn recv_timeout_in_a_ult_lets_other_ults_run_meanwhile() {
    in_ult("recv-timeout-parks", || {
        let (tx, rx) = unbounded();
        let ticks = Arc::new(AtomicUsize::new(0));
        let t2 = ticks.clone();
        let h = ult::spawn(move || {
            for _ in 0..5 {
                t2.fetch_add(1, Ordering::SeqCst);
                ult::sleep(Duration::from_millis(2));
            }
            tx.send("done").unwrap();
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok("done"));
        assert_eq!(ticks.load(Ordering::SeqCst), 5);
        h.join().unwrap();
    });
}

#[test]
fn a_full_bounded_channel_makes_the_sender_wait() {
    in_ult("bounded-full", || {
        let (tx, rx) = bounded(2);
        assert_eq!(tx.capacity(), Some(2));
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        assert!(tx.is_full());
        assert_eq!(tx.len(), 2);
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        let start = Instant::now();
        assert_eq!(
            tx.send_timeout(3, Duration::from_millis(20)),
            Err(SendTimeoutError::Timeout(3))
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
        // A parked sender goes through as soon as a slot frees up.
        let h = ult::spawn(move || {
            tx.send(3).unwrap();
            tx
        });
        ult::yield_now();
        assert!(!h.is_finished(), "the sender is parked on the full channel");
        assert_eq!(rx.recv(), Ok(1));
        let tx = h.join().unwrap();
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![2, 3]);
        assert!(tx.is_empty());
        assert_eq!(unbounded::<u8>().0.capacity(), None);
    });
}

#[test]
fn a_message_racing_a_receive_timeout_is_never_lost() {
    let rounds = size(300);
    for (name, cap) in [
        ("unbounded", None),
        ("bounded", Some(1)),
        ("rendezvous", Some(0)),
    ] {
        watchdog(name, move || {
            let (tx, rx) = match cap {
                None => unbounded(),
                Some(c) => bounded(c),
            };
            let mut received = 0usize;
            let mut sent = 0usize;
            for round in 0..rounds {
                let rx2 = rx.clone();
                let receiver = std::thread::spawn(move || {
                    rx2.recv_timeout(Duration::from_micros(100)).is_ok() as usize
                });
                std::thread::sleep(Duration::from_micros(50 + round as u64 % 100));
                // For the rendezvous channel a send only succeeds when a receiver takes it.
                sent += tx.send_timeout(round, Duration::from_micros(200)).is_ok() as usize;
                received += receiver.join().unwrap();
            }
            received += rx.try_iter().count();
            assert_eq!(received, sent, "{name}: a message was lost or duplicated");
        });
    }
}

#[test]
fn into_iter_ends_when_senders_are_gone() {
    in_ult("into-iter", || {
        let (tx, rx) = unbounded();
        let h = ult::spawn(move || {
            for i in 0..10 {
                tx.send(i).unwrap();
            }
        });
        let v: Vec<i32> = rx.into_iter().collect();
        h.join().unwrap();
        assert_eq!(v, (0..10).collect::<Vec<_>>());
    });
}
