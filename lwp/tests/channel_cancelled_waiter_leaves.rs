//! A ULT destroyed while parked in a channel operation (a one-to-one runtime unwinds its
//! parked ULTs when dropped) leaves the channel's waiter list on its way out: later
//! operations must not hand a message to its dead frame, nor take one from it.

use std::time::Duration;

use lwp::channel;
use lwp::{Model, Runtime};

#[test]
fn a_receiver_unwound_while_parked_gets_no_later_message() {
    let (tx, rx) = channel::bounded::<u64>(1);
    let rx_outside = rx.clone();
    {
        let rt = Runtime::new(Model::OneToOne).unwrap();
        rt.run(move || {
            lwp::spawn(move || {
                // Parks: the channel is empty and a sender exists (outside the runtime).
                let _ = rx.recv();
                unreachable!("nobody sends while the runtime lives");
            });
            lwp::sleep(Duration::from_millis(50)); // let it park
        });
    } // dropping the runtime unwinds the parked receiver
    tx.send(5).unwrap();
    assert_eq!(
        rx_outside.try_recv(),
        Ok(5),
        "the message was buffered, not handed to the destroyed receiver"
    );
}

#[test]
fn a_sender_unwound_while_parked_takes_its_message_with_it() {
    let (tx, rx) = channel::bounded::<String>(0);
    let tx_outside = tx.clone();
    {
        let rt = Runtime::new(Model::OneToOne).unwrap();
        rt.run(move || {
            lwp::spawn(move || {
                // Parks: rendezvous, and no receiver waits.
                let _ = tx.send("lost with its ULT".to_string());
            });
            lwp::sleep(Duration::from_millis(50)); // let it park
        });
    }
    assert_eq!(
        rx.try_recv(),
        Err(channel::TryRecvError::Empty),
        "no offer from a destroyed sender"
    );
    drop(tx_outside);
    assert_eq!(rx.try_recv(), Err(channel::TryRecvError::Disconnected));
}
