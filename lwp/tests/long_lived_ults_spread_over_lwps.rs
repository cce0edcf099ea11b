//! Placement of long-lived ULTs: a started ULT never moves to another LWP, so an LWP that
//! already holds many (here 1,200 spawned in one burst from one ULT, which would otherwise
//! mostly start where they were spawned) starts new ones on a less loaded LWP instead, and
//! the split ends up even.

mod sync_support;

use std::time::{Duration, Instant};

#[test]
fn a_burst_of_long_lived_ults_ends_up_split_evenly() {
    let resident = sync_support::watchdog_slow("placement", || {
        let rt = lwp::Runtime::builder()
            .model(lwp::Model::ManyToMany { lwps: 2 })
            .disable_sysmon()
            .build()
            .unwrap();
        let n = 1_200usize;
        let (tx, rx) = lwp::channel::bounded::<()>(0);
        let (started_tx, started_rx) = lwp::channel::unbounded::<()>();
        let spawner = rt.spawn(move || {
            (0..n)
                .map(|_| {
                    let rx = rx.clone();
                    let started = started_tx.clone();
                    lwp::spawn(move || {
                        let _ = started.send(());
                        // Lives until the test lets go of the sender.
                        let _ = rx.recv();
                    })
                })
                .collect::<Vec<_>>()
        });
        let children = spawner.join().unwrap();
        for _ in 0..n {
            started_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("every ULT starts");
        }
        // Every child has started and parks in `recv` (the counts settle once they did).
        let t0 = Instant::now();
        let resident = loop {
            let r = rt.resident_ults();
            if r.iter().sum::<u64>() == n as u64 || t0.elapsed() > Duration::from_secs(10) {
                break r;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        drop(tx);
        for c in children {
            c.join().unwrap();
        }
        // A joiner may return just before the LWP counted the finish: let the count settle.
        let t0 = Instant::now();
        while rt.resident_ults().iter().sum::<u64>() != 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "finished ULTs still count: {:?}",
                rt.resident_ults()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        resident
    });
    assert_eq!(resident.len(), 2, "two LWPs: {resident:?}");
    assert_eq!(resident.iter().sum::<u64>(), 1_200, "{resident:?}");
    let (lo, hi) = (resident[0].min(resident[1]), resident[0].max(resident[1]));
    // The placement rule lets the busier LWP hold a sixteenth more, plus 16.
    assert!(
        hi <= lo + lo / 16 + 17,
        "1,200 long-lived ULTs split {resident:?}"
    );
}
