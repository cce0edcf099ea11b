use lwp::channel;
use std::time::Instant;
fn main() {
    for model in [lwp::Model::ManyToOne, lwp::Model::ManyToMany { lwps: 2 }] {
        let rt = lwp::Runtime::new(model).unwrap();
        let per = rt.run(|| {
            let n = 1_000_000u64;
            let (a_tx, a_rx) = channel::bounded::<u64>(1);
            let (b_tx, b_rx) = channel::bounded::<u64>(1);
            let echo = lwp::spawn(move || {
                for v in a_rx.iter() {
                    b_tx.send(v).unwrap();
                }
            });
            let t = Instant::now();
            for i in 0..n {
                a_tx.send(i).unwrap();
                b_rx.recv().unwrap();
            }
            let e = t.elapsed();
            drop(a_tx);
            echo.join().unwrap();
            e.as_nanos() as f64 / n as f64
        });
        println!("{model}: channel round trip {per:.0} ns");
        let per = rt.run(|| {
            let n = 1_000_000u64;
            let p = lwp::spawn(move || {
                for _ in 0..n {
                    lwp::yield_now()
                }
            });
            let t = Instant::now();
            for _ in 0..n {
                lwp::yield_now()
            }
            let e = t.elapsed();
            p.join().unwrap();
            e.as_nanos() as f64 / n as f64
        });
        println!("{model}: yield round trip {per:.0} ns");
    }
}
