//! The cooperative budget: a ULT whose socket operations never have to wait (here, UDP sends,
//! which the kernel accepts at once) still yields now and then, so the other ULTs of its LWP
//! run meanwhile instead of after it.

mod sync_support;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

#[test]
fn a_ult_whose_sockets_are_always_ready_still_lets_others_run() {
    let (seen_during, total_sends) = sync_support::watchdog_slow("coop budget", || {
        let rt = lwp::Runtime::builder()
            .model(lwp::Model::ManyToOne)
            .sysmon_warnings(false)
            .build()
            .unwrap();
        rt.run(|| {
            let ticks = Arc::new(AtomicU64::new(0));
            let ticker = {
                let ticks = ticks.clone();
                lwp::spawn(move || {
                    // Counts every time it gets the LWP, then gives it back.
                    while ticks.fetch_add(1, Relaxed) < u64::MAX / 2 {
                        lwp::yield_now();
                    }
                })
            };
            lwp::yield_now(); // the ticker starts and yields back
            let before = ticks.load(Relaxed);
            let rx = lwp::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let tx = lwp::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = rx.local_addr().unwrap();
            let sends = 2_000u64;
            for _ in 0..sends {
                tx.send_to(b"x", to).unwrap();
            }
            let seen_during = ticks.load(Relaxed) - before;
            ticks.store(u64::MAX, Relaxed); // stops the ticker
            ticker.join().unwrap();
            (seen_during, sends)
        })
    });
    // Without the budget the ticker would not run once during the sends (one LWP, no send
    // ever waits); with a budget of 128 it runs about once per 128 sends.
    assert!(
        seen_during >= total_sends / 256,
        "the other ULT ran {seen_during} times during {total_sends} sends that never waited"
    );
}
