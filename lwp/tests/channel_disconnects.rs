//! Disconnection, as in std and crossbeam: when every sender is gone, receivers drain what
//! is left and then get `Disconnected` (parked ones are woken); when every receiver is gone,
//! senders get their message back (parked ones too, rendezvous included).

mod sync_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lwp::channel::{
    bounded, unbounded, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use sync_support::in_ult;

#[test]
fn receivers_drain_then_see_disconnected_once_all_senders_are_gone() {
    in_ult("disconnect-senders", || {
        for cap in [None, Some(4)] {
            let (tx, rx) = match cap {
                None => unbounded(),
                Some(c) => bounded(c),
            };
            let tx2 = tx.clone();
            tx.send(1).unwrap();
            tx2.send(2).unwrap();
            drop(tx);
            assert_eq!(rx.try_recv(), Ok(1), "one sender left: still connected");
            drop(tx2);
            assert_eq!(rx.recv(), Ok(2), "buffered messages survive the disconnect");
            assert_eq!(rx.recv(), Err(RecvError));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
            assert_eq!(
                rx.recv_timeout(Duration::from_secs(5)),
                Err(RecvTimeoutError::Disconnected)
            );
        }
    });
}

#[test]
fn parked_receivers_wake_when_the_last_sender_goes() {
    in_ult("disconnect-wakes-receivers", || {
        let (tx, rx) = bounded::<u8>(0);
        let woken = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (rx, woken) = (rx.clone(), woken.clone());
                ult::spawn(move || {
                    assert_eq!(rx.recv(), Err(RecvError));
                    woken.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        ult::yield_now();
        assert_eq!(woken.load(Ordering::SeqCst), 0);
        drop(tx);
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(woken.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn senders_get_their_message_back_once_all_receivers_are_gone() {
    in_ult("disconnect-receivers", || {
        let (tx, rx) = unbounded();
        let rx2 = rx.clone();
        drop(rx);
        assert!(tx.send(1).is_ok(), "one receiver left");
        drop(rx2);
        assert_eq!(tx.send(7), Err(SendError(7)));
        assert_eq!(tx.try_send(8), Err(TrySendError::Disconnected(8)));
        assert_eq!(
            tx.send_timeout(9, Duration::from_secs(5)),
            Err(SendTimeoutError::Disconnected(9))
        );
    });
}

#[test]
fn parked_senders_get_their_message_back_when_the_last_receiver_goes() {
    in_ult("disconnect-wakes-senders", || {
        // A full bounded channel and a rendezvous channel, each with a parked sender.
        let (full_tx, full_rx) = bounded(1);
        full_tx.send(String::from("buffered")).unwrap();
        let (rv_tx, rv_rx) = bounded(0);
        let h1 = ult::spawn(move || full_tx.send(String::from("blocked")));
        let h2 = ult::spawn(move || rv_tx.send(String::from("offered")));
        ult::yield_now();
        assert!(
            !h1.is_finished() && !h2.is_finished(),
            "both senders are parked"
        );
        drop(full_rx);
        drop(rv_rx);
        assert_eq!(h1.join().unwrap(), Err(SendError(String::from("blocked"))));
        assert_eq!(h2.join().unwrap(), Err(SendError(String::from("offered"))));
    });
}

#[test]
fn messages_left_behind_are_dropped_exactly_once() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let (tx, rx) = bounded(8);
        for _ in 0..5 {
            tx.send(Counted(drops.clone())).unwrap();
        }
        drop(rx);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            5,
            "dropped when the receivers went"
        );
        let back = tx.send(Counted(drops.clone())).unwrap_err().into_inner();
        drop(back);
        assert_eq!(drops.load(Ordering::SeqCst), 6);
    }
    {
        let (tx, rx) = unbounded();
        for _ in 0..3 {
            tx.send(Counted(drops.clone())).unwrap();
        }
        drop(tx);
        drop(rx);
    }
    assert_eq!(drops.load(Ordering::SeqCst), 9);
}

#[test]
fn dropping_a_sender_inside_a_message_drop_does_not_deadlock() {
    // The last receiver drops queued messages; one of them owns the channel's last other
    // sender. This must not re-enter the channel's internal lock.
    struct Holds(#[allow(dead_code)] Option<lwp::channel::Sender<Holds>>);
    sync_support::watchdog("disconnect-reentrant", || {
        let (tx, rx) = unbounded::<Holds>();
        tx.send(Holds(Some(tx.clone()))).unwrap();
        drop(tx);
        drop(rx);
    });
}
