//! The lecture's point, both sides: a ULT stuck in a real blocking system call stalls every
//! other ULT under many-to-one, while under many-to-many fresh ULTs keep completing (sysmon
//! hands their LWP's stealable work to another LWP).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lwp::{Model, Runtime};

/// While one ULT blocks in `read` for 300 ms, a plain kernel thread spawns a short ULT
/// into the runtime every millisecond; returns how many completed during the first 200 ms of
/// the blocking window.
fn completed_during_block(model: Model) -> (usize, lwp::MetricsSnapshot) {
    let rt = Runtime::builder()
        .model(model)
        .sysmon_threshold(Duration::from_millis(10))
        .sysmon_warnings(false)
        .build()
        .unwrap();
    let (mut reader, mut writer) = UnixStream::pair().unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let blocker = rt
        .spawn_with(lwp::Builder::new().name("blocker".into()), move || {
            started_tx.send(()).unwrap();
            let mut b = [0u8; 1];
            reader.read_exact(&mut b).unwrap(); // a real blocking system call
        })
        .unwrap();
    started_rx.recv().unwrap();
    let writer_thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        writer.write_all(b"x").unwrap();
    });
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    while start.elapsed() < Duration::from_millis(200) {
        let d = done.clone();
        handles.push(rt.spawn(move || {
            d.fetch_add(1, Ordering::SeqCst);
        }));
        std::thread::sleep(Duration::from_millis(1));
    }
    let during = done.load(Ordering::SeqCst);
    blocker.join().unwrap();
    for h in handles {
        h.join().unwrap();
    }
    writer_thread.join().unwrap();
    (during, rt.metrics())
}

#[test]
fn many_to_one_stalls_every_ult_during_a_blocking_call() {
    let (during, m) = completed_during_block(Model::ManyToOne);
    assert!(
        during == 0,
        "under many-to-one nothing should complete while the LWP is blocked: {during}"
    );
    assert!(m.sysmon_stalls >= 1, "sysmon noticed the stall: {m:?}");
    assert_eq!(
        m.sysmon_interventions, 0,
        "many-to-one has no LWP to hand off to"
    );
}

#[test]
fn many_to_many_keeps_completing_fresh_ults_during_a_blocking_call() {
    let (during, m) = completed_during_block(Model::ManyToMany { lwps: 2 });
    assert!(
        during >= 50,
        "under many-to-many fresh ULTs keep completing while one LWP blocks: {during} ({m:?})"
    );
}

#[test]
fn sysmon_adds_an_lwp_when_every_lwp_is_blocked() {
    // One LWP, blocked by a ULT in a blocking call: sysmon must start another so that
    // stealable work (ULTs that never ran) completes.
    let rt = Runtime::builder()
        .lwps(1)
        .sysmon_threshold(Duration::from_millis(10))
        .sysmon_warnings(false)
        .build()
        .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let elapsed = rt.run(move || {
        let start = Instant::now();
        // Queue fresh work first, then block this ULT's LWP in a real system call.
        let hs: Vec<_> = (0..100)
            .map(|_| {
                let d = d.clone();
                lwp::spawn(move || {
                    d.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        while d.load(Ordering::SeqCst) < 100 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5)); // never yields to the scheduler
        }
        let e = start.elapsed();
        for h in hs {
            h.join().unwrap();
        }
        e
    });
    assert_eq!(done.load(Ordering::SeqCst), 100);
    assert!(
        elapsed < Duration::from_secs(5),
        "work was stuck behind the blocked LWP"
    );
    let m = rt.metrics();
    assert!(m.sysmon_interventions >= 1, "{m:?}");
    assert!(m.lwps_started >= 2, "sysmon started an extra LWP: {m:?}");
}
