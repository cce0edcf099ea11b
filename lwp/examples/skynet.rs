use lwp::channel;
use std::time::Instant;
fn skynet(num: u64, size: u64, div: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let (tx, rx) = channel::bounded::<u64>(div as usize);
    let sub = size / div;
    for i in 0..div {
        let tx = tx.clone();
        lwp::spawn(move || {
            let _ = tx.send(skynet(num + i * sub, sub, div));
        });
    }
    drop(tx);
    rx.iter().sum()
}
fn main() {
    for lwps in [1usize, 2] {
        let rt = lwp::Runtime::builder()
            .lwps(lwps)
            .sysmon_warnings(false)
            .build()
            .unwrap();
        for _ in 0..3 {
            let (e, s) = rt.run(|| {
                let t = Instant::now();
                let s = skynet(0, 1_000_000, 10);
                (t.elapsed(), s)
            });
            println!("lwps={lwps}: skynet 1M {:?} sum {s}", e);
        }
        println!("{:?}", rt.metrics());
    }
}
