//! A rendezvous channel (`bounded(0)`) has no buffer: a send completes only when a receiver
//! takes the message, `try_send` succeeds only if a receiver is already waiting, and
//! `send_timeout` takes its message back if nobody came.

mod sync_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lwp::channel::{bounded, SendTimeoutError, TrySendError};
use sync_support::in_ult;

#[test]
fn send_waits_until_a_receiver_takes_the_message() {
    in_ult("rendezvous-send-waits", || {
        let (tx, rx) = bounded(0);
        let sent = Arc::new(AtomicBool::new(false));
        let sent2 = sent.clone();
        let h = ult::spawn(move || {
            tx.send(42).unwrap();
            sent2.store(true, Ordering::SeqCst);
        });
        for _ in 0..20 {
            ult::yield_now();
        }
        assert!(
            !sent.load(Ordering::SeqCst),
            "no receiver yet: the sender must wait"
        );
        assert_eq!(rx.len(), 0);
        assert!(rx.is_full() && rx.is_empty());
        assert_eq!(rx.recv(), Ok(42));
        h.join().unwrap();
        assert!(sent.load(Ordering::SeqCst));
    });
}

#[test]
fn try_send_succeeds_only_with_a_waiting_receiver() {
    in_ult("rendezvous-try-send", || {
        let (tx, rx) = bounded(0);
        assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
        let h = ult::spawn(move || rx.recv().unwrap());
        ult::yield_now(); // the receiver parks
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(
            tx.try_send(3),
            Err(TrySendError::Full(3)),
            "only one receiver waited"
        );
        assert_eq!(h.join().unwrap(), 2);
    });
}

#[test]
fn send_timeout_takes_the_message_back_when_nobody_comes() {
    in_ult("rendezvous-send-timeout", || {
        let (tx, rx) = bounded::<u32>(0);
        let start = Instant::now();
        assert_eq!(
            tx.send_timeout(5, Duration::from_millis(20)),
            Err(SendTimeoutError::Timeout(5))
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(rx.try_recv().ok(), None, "the withdrawn offer is gone");
    });
}

#[test]
fn a_thread_and_a_ult_rendezvous_in_both_directions() {
    sync_support::watchdog("rendezvous-mixed", || {
        let (to_ult, from_thread) = bounded::<u32>(0);
        let (to_thread, from_ult) = bounded::<u32>(0);
        let exec = std::thread::spawn(move || {
            ult::run(move || {
                for v in from_thread.iter() {
                    to_thread.send(v + 1).unwrap();
                }
            })
        });
        for i in 0..1000 {
            to_ult.send(i).unwrap();
            assert_eq!(from_ult.recv(), Ok(i + 1));
        }
        drop(to_ult);
        exec.join().unwrap();
    });
}
