//! The per-LWP timeline and the TLP computed from it.

use std::time::{Duration, Instant};

use lwp::Runtime;

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn two_busy_lwps_give_tlp_near_two_and_one_gives_one() {
    let rt = Runtime::builder()
        .lwps(2)
        .timeline(true)
        .disable_sysmon()
        .build()
        .unwrap();
    rt.run(|| {
        // Two CPU-bound ULTs that never block: with two LWPs they run in parallel.
        let a = lwp::spawn(|| spin(Duration::from_millis(150)));
        let b = lwp::spawn(|| spin(Duration::from_millis(150)));
        a.join().unwrap();
        b.join().unwrap();
    });
    let tl = rt.timeline().expect("timeline was enabled");
    assert_eq!(tl.lwps.len(), 2);
    let h = tl.tlp();
    let tlp = h.tlp.expect("something ran");
    assert!((1.0..=2.0).contains(&tlp), "TLP within bounds: {tlp}");
    assert!(
        h.c[2] > 0.0,
        "both LWPs were running at the same time at some point: {:?}",
        h.c
    );
    assert!((h.c.iter().sum::<f64>() - 1.0).abs() < 1e-9);

    let single = Runtime::builder()
        .model(lwp::Model::ManyToOne)
        .timeline(true)
        .build()
        .unwrap();
    single.run(|| spin(Duration::from_millis(30)));
    let h = single.timeline().unwrap().tlp();
    assert_eq!(h.c.len(), 2);
    assert!(
        (h.tlp.unwrap() - 1.0).abs() < 1e-9,
        "one LWP: TLP is exactly 1"
    );
    assert!(h.c[1] > 0.0);
}
