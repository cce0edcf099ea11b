//! Woken migratable ULTs wait in a FIFO: on one LWP they run in the order they were woken,
//! so a ULT woken early is not overtaken by every later wake-up. (They used to share the
//! never-started ULTs' LIFO deque and ran newest first: at 100 echo connections that made the
//! many-to-many server's p99 from a request to its echo 1.6x tokio's.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const ULTS: usize = 6;

#[test]
fn woken_migratable_ults_run_first_woken_first() {
    let rt = lwp::Runtime::builder()
        .model(lwp::Model::ManyToMany { lwps: 1 })
        .sysmon_warnings(false)
        .build()
        .unwrap();
    let (ran, woken) = rt.run(|| {
        let unparkers = Arc::new(Mutex::new(vec![None; ULTS]));
        let parked = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..ULTS)
            .map(|i| {
                let (unparkers, parked, order) = (unparkers.clone(), parked.clone(), order.clone());
                // SAFETY: the closure keeps no thread-local reference and no `!Send` value
                // across a switch (only `Arc`s it owns).
                let builder = unsafe { lwp::Builder::new().migratable() };
                builder
                    .spawn(move || {
                        unparkers.lock().unwrap()[i] = Some(lwp::unparker());
                        // One LWP: nobody else runs between this count and the park.
                        parked.fetch_add(1, Ordering::SeqCst);
                        lwp::park();
                        order.lock().unwrap().push(i);
                    })
                    .unwrap()
            })
            .collect();
        while parked.load(Ordering::SeqCst) < ULTS {
            lwp::yield_now();
        }
        // Wake them in a scrambled order; that order is the one they must run in.
        let wake_order = [3, 0, 5, 1, 4, 2];
        for &i in &wake_order {
            let unparker = unparkers.lock().unwrap()[i].take().unwrap();
            unparker.unpark();
        }
        for h in handles {
            h.join().unwrap();
        }
        let ran = order.lock().unwrap().clone();
        (ran, wake_order.to_vec())
    });
    assert_eq!(ran, woken, "woken ULTs ran out of wake order");
}
