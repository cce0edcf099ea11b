//! A ULT that its runtime's shutdown destroys (one-to-one cancels parked ULTs; every model
//! cancels queued ones) is joined with `Err(ult::CANCELLED)`, not a hang or a panic.

use std::sync::mpsc;
use std::time::Duration;

use lwp::{Model, Runtime};

#[test]
fn joining_a_ult_cancelled_at_shutdown_returns_the_cancelled_payload() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
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
        let _ = tx.send(payload.downcast_ref::<&str>().copied());
    });
    let got = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("join of a cancelled ULT returned within 60 s");
    assert_eq!(got, Some(ult::CANCELLED));
}
