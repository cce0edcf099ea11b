//! `lwp::channel::Select`: parks until one of several receives or sends (channels of any
//! message types) can proceed, wakes for messages, freed room, parked partners and
//! disconnection, times out, spreads its choice over ready operations, and loses no wake-up
//! when many producers race one selecting consumer.

mod sync_support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use lwp::channel::{
    bounded, unbounded, ReadyTimeoutError, Select, TryReadyError, TryRecvError, TrySendError,
};
use lwp::{Model, Runtime};
use sync_support::{in_ult, watchdog_slow};

#[test]
fn a_receive_select_wakes_for_the_channel_that_gets_a_message() {
    watchdog_slow("recv select", || {
        let rt = Runtime::new(Model::ManyToMany { lwps: 2 }).unwrap();
        rt.run(|| {
            let (_numbers_tx, numbers) = bounded::<u64>(2);
            let (words_tx, words) = unbounded::<String>();
            let sender = lwp::spawn(move || {
                lwp::sleep(Duration::from_millis(20));
                words_tx.send("late".to_string()).unwrap();
                words_tx // kept alive: the select must wake for the message, not a disconnect
            });
            let mut sel = Select::new();
            let on_numbers = sel.recv(&numbers);
            let on_words = sel.recv(&words);
            assert_ne!(on_numbers, on_words);
            let t0 = Instant::now();
            assert_eq!(sel.ready(), on_words);
            assert!(t0.elapsed() >= Duration::from_millis(10), "it waited");
            assert_eq!(words.try_recv().as_deref(), Ok("late"));
            drop(sender.join().unwrap());
        });
    });
}

#[test]
fn a_send_select_wakes_when_room_frees_and_a_disconnect_counts_as_ready() {
    in_ult("send select", || {
        let (a_tx, a_rx) = bounded::<u8>(1);
        let (b_tx, b_rx) = bounded::<u8>(1);
        a_tx.send(1).unwrap();
        b_tx.send(2).unwrap();
        let drain = ult::spawn(move || {
            ult::sleep(Duration::from_millis(10));
            assert_eq!(b_rx.recv(), Ok(2)); // frees b's slot
            b_rx
        });
        let mut sel = Select::new();
        let on_a = sel.send(&a_tx);
        let on_b = sel.send(&b_tx);
        assert_eq!(sel.try_ready(), Err(TryReadyError), "both full");
        assert_eq!(sel.ready(), on_b);
        assert_eq!(b_tx.try_send(3), Ok(()));
        let b_rx = drain.join().unwrap();
        assert_eq!(b_rx.recv(), Ok(3));

        // b is full again; once a's receiver is gone, a send on a would not block.
        b_tx.send(4).unwrap();
        let dropper = ult::spawn(move || {
            ult::sleep(Duration::from_millis(5));
            drop(a_rx);
        });
        assert_eq!(sel.ready(), on_a);
        assert!(matches!(
            a_tx.try_send(5),
            Err(TrySendError::Disconnected(5))
        ));
        dropper.join().unwrap();

        // Removing an operation keeps the others' indices.
        sel.remove(on_a);
        assert_eq!(
            sel.ready_timeout(Duration::from_millis(5)),
            Err(ReadyTimeoutError)
        );
        drop(b_rx);
        assert_eq!(sel.ready(), on_b);
    });
}

#[test]
fn disconnection_of_every_sender_makes_a_receive_ready() {
    in_ult("disconnect", || {
        let (tx, rx) = unbounded::<()>();
        let mut sel = Select::new();
        let on_rx = sel.recv(&rx);
        let h = ult::spawn(move || {
            ult::sleep(Duration::from_millis(5));
            drop(tx);
        });
        assert_eq!(sel.ready(), on_rx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        h.join().unwrap();
    });
}

#[test]
fn a_timeout_passes_when_nothing_gets_ready_and_then_the_channels_still_work() {
    in_ult("timeout", || {
        let (tx, rx) = bounded::<u32>(1);
        let (_tx2, rx2) = unbounded::<u32>();
        let mut sel = Select::new();
        sel.recv(&rx);
        sel.recv(&rx2);
        let t0 = Instant::now();
        assert_eq!(
            sel.ready_timeout(Duration::from_millis(20)),
            Err(ReadyTimeoutError)
        );
        assert!(t0.elapsed() >= Duration::from_millis(20));
        assert_eq!(
            sel.ready_deadline(Instant::now()),
            Err(ReadyTimeoutError),
            "a deadline in the past does not wait"
        );
        // The timed-out select left no watch behind that would get in the way.
        tx.send(7).unwrap();
        assert_eq!(rx.recv(), Ok(7));
        let mut empty = Select::new();
        assert_eq!(
            empty.ready_timeout(Duration::from_millis(1)),
            Err(ReadyTimeoutError)
        );
    });
}

#[test]
fn a_rendezvous_receive_is_ready_while_a_sender_is_parked() {
    in_ult("rendezvous", || {
        let (tx, rx) = bounded::<&str>(0);
        let mut sel = Select::new();
        let on_rx = sel.recv(&rx);
        assert_eq!(sel.try_ready(), Err(TryReadyError), "nobody is sending");
        let sender = ult::spawn(move || tx.send("hand-off").unwrap());
        assert_eq!(sel.ready(), on_rx);
        assert_eq!(rx.try_recv(), Ok("hand-off"));
        sender.join().unwrap();
    });
}

#[test]
fn ready_spreads_its_choice_over_operations_that_are_all_ready() {
    in_ult("fairness", || {
        let (a_tx, a_rx) = unbounded::<()>();
        let (b_tx, b_rx) = unbounded::<()>();
        a_tx.send(()).unwrap();
        b_tx.send(()).unwrap();
        let mut sel = Select::new();
        let a = sel.recv(&a_rx);
        let b = sel.recv(&b_rx);
        let mut counts = [0u32; 2];
        for _ in 0..1000 {
            counts[sel.ready()] += 1;
        }
        assert!(counts[a] > 200 && counts[b] > 200, "{counts:?}");
    });
}

#[test]
#[should_panic(expected = "Select::ready with no operations would wait forever")]
fn ready_with_no_operations_panics() {
    Select::new().ready();
}

/// Producers on several LWPs and kernel threads feed four channels; one consumer takes every
/// message through a select loop. A lost wake-up would leave the consumer parked forever
/// (the watchdog fails the test); a duplicate or a loss shows in the set of messages.
#[test]
fn one_selecting_consumer_gets_every_message_of_racing_producers_exactly_once() {
    const PER_PRODUCER: u64 = 2_000;
    watchdog_slow("select stress", || {
        let rt = Runtime::new(Model::ManyToMany { lwps: 2 }).unwrap();
        let channels: Vec<_> = (0..4).map(|_| bounded::<u64>(2)).collect();
        let mut producers = Vec::new();
        for (c, (tx, _)) in channels.iter().enumerate() {
            for p in 0..2u64 {
                let tx = tx.clone();
                let id = (c as u64 * 2 + p) * PER_PRODUCER;
                if p == 0 {
                    producers.push(rt.spawn(move || {
                        for i in 0..PER_PRODUCER {
                            tx.send(id + i).unwrap();
                        }
                    }));
                } else {
                    let t = std::thread::spawn(move || {
                        for i in 0..PER_PRODUCER {
                            tx.send(id + i).unwrap();
                        }
                    });
                    producers.push(rt.spawn(move || lwp::blocking(|| t.join().unwrap())));
                }
            }
        }
        let receivers: Vec<_> = channels.into_iter().map(|(_, rx)| rx).collect();
        let got = rt.run(move || {
            let mut sel = Select::new();
            for rx in &receivers {
                sel.recv(rx);
            }
            let mut live = receivers.len();
            let mut seen = HashSet::new();
            while live > 0 {
                let i = sel.ready();
                match receivers[i].try_recv() {
                    Ok(v) => assert!(seen.insert(v), "{v} delivered twice"),
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Disconnected) => {
                        sel.remove(i);
                        live -= 1;
                    }
                }
            }
            seen
        });
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(got.len() as u64, 8 * PER_PRODUCER, "every message, once");
    });
}

#[test]
fn timer_channels_fire_after_their_delay_tick_and_never() {
    in_ult("timers", || {
        let t0 = Instant::now();
        let once = lwp::channel::after(Duration::from_millis(15));
        let at = once.recv().unwrap();
        assert!(at.duration_since(t0) >= Duration::from_millis(15));
        assert!(once.recv().is_err(), "one message, then disconnected");

        let ticks = lwp::channel::tick(Duration::from_millis(5));
        let first = ticks.recv().unwrap();
        let second = ticks.recv().unwrap();
        assert!(second.duration_since(first) >= Duration::from_millis(4));
        drop(ticks); // the ticking ULT ends at its next tick

        let too_late = lwp::channel::after(Duration::MAX);
        assert_eq!(
            too_late.try_recv(),
            Err(TryRecvError::Empty),
            "never, not disconnected"
        );

        let nothing = lwp::channel::never::<u8>();
        let deadline = lwp::channel::after(Duration::from_millis(10));
        let mut sel = Select::new();
        let on_nothing = sel.recv(&nothing);
        let on_deadline = sel.recv(&deadline);
        assert_eq!(sel.ready(), on_deadline);
        assert_ne!(on_nothing, on_deadline);
        assert_eq!(
            nothing.try_recv(),
            Err(TryRecvError::Empty),
            "never, not disconnected"
        );
    });
}

#[test]
fn the_select_macro_runs_the_arm_that_completed_and_its_bodies_act_on_the_callers_loop() {
    use lwp::channel::{RecvError, SendError};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    in_ult("select!", || {
        // Receives: a loop that sums until the channel is disconnected, `break` in a body.
        let (tx, rx) = bounded::<u64>(4);
        let (_other_tx, other) = unbounded::<String>();
        let producer = ult::spawn(move || {
            for i in 1..=10 {
                tx.send(i).unwrap();
            }
        });
        let mut sum = 0;
        loop {
            lwp::select! {
                recv(rx) -> n => match n {
                    Ok(n) => sum += n,
                    Err(RecvError) => break,
                },
                recv(other) -> s => panic!("nothing is sent there: {s:?}"),
            }
        }
        assert_eq!(sum, 55);
        producer.join().unwrap();

        // Defaults: without a timeout it does not wait; with one it waits that long.
        let (_keep, idle) = unbounded::<u8>();
        let now = lwp::select! {
            recv(idle) -> _ => "message",
            default => "nothing ready",
        };
        assert_eq!(now, "nothing ready");
        let t0 = Instant::now();
        let later = lwp::select! {
            recv(idle) -> _ => "message",
            default(Duration::from_millis(15)) => "timed out",
        };
        assert_eq!(later, "timed out");
        assert!(t0.elapsed() >= Duration::from_millis(15));

        // A temporary channel (a timer) as an operation.
        let fired = lwp::select! {
            recv(idle) -> _ => false,
            recv(lwp::channel::after(Duration::from_millis(5))) -> at => at.is_ok(),
        };
        assert!(fired);

        // Sends: the value moves only if the send completes.
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let (full_tx, full_rx) = bounded::<Counted>(1);
        full_tx.send(Counted(drops.clone())).unwrap();
        let sent = lwp::select! {
            send(full_tx, Counted(drops.clone())) -> res => res.is_ok(),
            default => false,
        };
        assert!(!sent, "full: the default ran");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "the unsent value was dropped, once"
        );
        assert_eq!(full_rx.len(), 1, "the queued message is untouched");
        drop(full_rx.recv().unwrap());
        let sent = lwp::select! {
            send(full_tx, Counted(drops.clone())) -> res => res.is_ok(),
            default => false,
        };
        assert!(sent, "room now: sent");
        drop(full_rx);
        // A disconnected send gives its value back.
        let (unsent_tx, unsent_rx) = bounded::<String>(1);
        drop(unsent_rx);
        let returned = lwp::select! {
            send(unsent_tx, "kept".to_string()) -> res => res,
        };
        assert_eq!(returned, Err(SendError("kept".to_string())));
        drop(full_tx);
    });
}
