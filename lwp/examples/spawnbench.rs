use std::time::Instant;
fn main() {
    for lwps in [1usize, 2] {
        let rt = lwp::Runtime::builder().lwps(lwps).build().unwrap();
        let (a, b) = rt.run(|| {
            let n = 200_000u64;
            let t = Instant::now();
            for i in 0..n {
                lwp::spawn(move || i).join().unwrap();
            }
            let serial = t.elapsed().as_nanos() as f64 / n as f64;
            let t = Instant::now();
            for _ in 0..(n / 1000) {
                let hs: Vec<_> = (0..1000u64).map(|i| lwp::spawn(move || i)).collect();
                for h in hs {
                    h.join().unwrap();
                }
            }
            (serial, t.elapsed().as_nanos() as f64 / n as f64)
        });
        println!(
            "lwps={lwps}: serial spawn+join {a:.0} ns, batched {b:.0} ns; {:?}",
            rt.metrics()
        );
    }
}
