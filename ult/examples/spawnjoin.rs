mod common;
use std::time::Instant;
fn main() {
    for _ in 0..3 {
        let per = ult::run(|| {
            let n = common::iterations(2_000_000);
            let t = Instant::now();
            for i in 0..n {
                std::hint::black_box(ult::spawn(move || i).join().unwrap());
            }
            t.elapsed().as_nanos() as f64 / n as f64
        });
        println!("spawn+join {per:.1} ns");
    }
}
