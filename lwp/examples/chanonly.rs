use lwp::channel;
use std::time::Instant;
fn main() {
    let rt = lwp::Runtime::new(lwp::Model::ManyToOne).unwrap();
    for _ in 0..3 {
        let per = rt.run(|| {
            let n = 3_000_000u64;
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
        println!("channel round trip {per:.0} ns");
    }
}
