//! A parked waiter is woken exactly once per notification: releasing one permit, sending one
//! message, unlocking once lets exactly one parked ULT through, and the others stay parked.

mod sync_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lwp::channel;
use lwp::sync::{Mutex, Semaphore};
use sync_support::in_ult;

const WAITERS: usize = 6;

fn settle() {
    for _ in 0..50 {
        ult::yield_now();
    }
}

#[test]
fn each_semaphore_release_wakes_exactly_one_waiter() {
    in_ult("wake-once-semaphore", || {
        let sem = Arc::new(Semaphore::new(0));
        let through = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..WAITERS)
            .map(|_| {
                let (sem, through) = (sem.clone(), through.clone());
                ult::spawn(move || {
                    sem.acquire().forget();
                    through.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        settle();
        assert_eq!(through.load(Ordering::SeqCst), 0);
        for k in 1..=WAITERS {
            sem.release();
            settle();
            assert_eq!(through.load(Ordering::SeqCst), k);
        }
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn each_message_wakes_exactly_one_parked_receiver() {
    in_ult("wake-once-channel", || {
        let (tx, rx) = channel::unbounded::<usize>();
        let through = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..WAITERS)
            .map(|_| {
                let (rx, through) = (rx.clone(), through.clone());
                ult::spawn(move || {
                    rx.recv().unwrap();
                    through.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        settle();
        for k in 1..=WAITERS {
            tx.send(k).unwrap();
            settle();
            assert_eq!(through.load(Ordering::SeqCst), k);
            assert!(rx.is_empty(), "the message went to a parked receiver");
        }
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn each_unlock_lets_exactly_one_parked_ult_in() {
    in_ult("wake-once-mutex", || {
        let m = Arc::new(Mutex::new(0usize));
        let guard = m.lock().unwrap();
        let entered = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let hs: Vec<_> = (0..WAITERS)
            .map(|_| {
                let (m, entered, gate) = (m.clone(), entered.clone(), gate.clone());
                ult::spawn(move || {
                    let mut g = m.lock().unwrap();
                    *g += 1;
                    entered.fetch_add(1, Ordering::SeqCst);
                    // Hold the lock until the test lets this holder go.
                    gate.acquire().forget();
                })
            })
            .collect();
        settle();
        assert_eq!(entered.load(Ordering::SeqCst), 0);
        drop(guard);
        for k in 1..=WAITERS {
            settle();
            assert_eq!(entered.load(Ordering::SeqCst), k, "one holder at a time");
            gate.release();
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.lock().unwrap(), WAITERS);
    });
}
