use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
fn main() {
    let rt = lwp::Runtime::builder()
        .model(lwp::Model::ManyToOne)
        .sysmon_warnings(false)
        .build()
        .unwrap();
    for _ in 0..3 {
        let per = rt.run(|| {
            let n = 2_000_000u64;
            let turn = Arc::new(AtomicU64::new(0));
            let me = lwp::unparker();
            let t2 = turn.clone();
            let b = lwp::spawn(move || {
                for i in 0..n {
                    while t2.load(Ordering::Acquire) != 2 * i + 1 {
                        lwp::park();
                    }
                    t2.store(2 * i + 2, Ordering::Release);
                    me.unpark();
                }
            });
            lwp::yield_now();
            let bu = b.ult().unparker();
            let t = Instant::now();
            for i in 0..n {
                turn.store(2 * i + 1, Ordering::Release);
                bu.unpark();
                while turn.load(Ordering::Acquire) != 2 * i + 2 {
                    lwp::park();
                }
            }
            let e = t.elapsed();
            b.join().unwrap();
            e.as_nanos() as f64 / n as f64
        });
        println!("park/unpark round trip {per:.0} ns");
    }
}
