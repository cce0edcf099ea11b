//! Fairness between started and never-started ULTs: a new ULT starts even when its LWP
//! always has yielding ULTs to run (found by the echo experiment: accepted connections whose
//! ULTs never started while others were busy).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn a_new_ult_runs_although_others_always_yield() {
    for model in [lwp::Model::ManyToOne, lwp::Model::ManyToMany { lwps: 2 }] {
        let rt = lwp::Runtime::builder()
            .model(model)
            .sysmon_warnings(false)
            .build()
            .unwrap();
        let ran = rt.run(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let busy: Vec<_> = (0..2)
                .map(|_| {
                    let s = stop.clone();
                    lwp::spawn(move || {
                        while !s.load(Relaxed) {
                            lwp::yield_now()
                        }
                    })
                })
                .collect();
            lwp::yield_now();
            let ran = Arc::new(AtomicBool::new(false));
            let r2 = ran.clone();
            let t0 = Instant::now();
            lwp::spawn(move || r2.store(true, Relaxed));
            while !ran.load(Relaxed) && t0.elapsed() < Duration::from_secs(2) {
                lwp::yield_now();
            }
            stop.store(true, Relaxed);
            for b in busy {
                b.join().unwrap();
            }
            ran.load(Relaxed)
        });
        assert!(ran, "{model}: the new ULT never ran while others yielded");
    }
}
