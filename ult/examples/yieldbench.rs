mod common;
use std::time::Instant;
fn main() {
    let n = common::iterations(10_000_000);
    for _ in 0..3 {
        let per = ult::run(move || {
            let p = ult::spawn(move || {
                for _ in 0..n {
                    ult::yield_now()
                }
            });
            let t = Instant::now();
            for _ in 0..n {
                ult::yield_now()
            }
            let e = t.elapsed();
            p.join().unwrap();
            e.as_nanos() as f64 / n as f64
        });
        let solo = ult::run(move || {
            let t = Instant::now();
            for _ in 0..n {
                ult::yield_now()
            }
            t.elapsed().as_nanos() as f64 / n as f64
        });
        println!("two-ULT round trip {per:.1} ns, solo yield {solo:.1} ns");
    }
}
