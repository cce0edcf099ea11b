//! A ULT that its runtime's shutdown destroys (one-to-one cancels parked ULTs; every model
//! cancels queued ones) is joined with `Err(ult::CANCELLED)`, not a hang or a panic.

mod sync_support;

use std::sync::mpsc;
use std::time::Duration;

use lwp::{Model, Runtime};
use sync_support::watchdog_slow;

#[test]
fn joining_a_ult_cancelled_at_shutdown_returns_the_cancelled_payload() {
    let got = watchdog_slow("join a cancelled ULT", || {
        let rt = Runtime::new(Model::OneToOne).unwrap();
        let (parked_tx, parked_rx) = mpsc::channel();
        let parked = rt.spawn(move || {
            parked_tx.send(()).unwrap();
            loop {
                lwp::park(); // nobody unparks it
            }
        });
        parked_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20)); // let it park
        drop(rt);
        let payload = parked.join().expect_err("it never returned");
        payload.downcast_ref::<&str>().copied()
    });
    assert_eq!(got, Some(ult::CANCELLED));
}
