//! The many-to-one executor runs ULTs in FIFO order and `yield_now` goes to the back.

use std::sync::{Arc, Mutex};

#[test]
fn yields_interleave_round_robin() {
    let log = ult::run(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let hs: Vec<_> = (0..3)
            .map(|id| {
                let log = log.clone();
                ult::spawn(move || {
                    for step in 0..3 {
                        log.lock().unwrap().push((step, id));
                        ult::yield_now();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let v = log.lock().unwrap().clone();
        v
    });
    let expected: Vec<_> = (0..3).flat_map(|s| (0..3).map(move |i| (s, i))).collect();
    assert_eq!(log, expected);
}

#[test]
fn current_has_id_and_name() {
    ult::run(|| {
        let me = ult::current();
        assert_eq!(me.name(), Some("main"));
        let h = ult::Builder::new()
            .name("child".into())
            .spawn(|| {
                let c = ult::current();
                (c.id(), c.name().map(str::to_owned))
            })
            .unwrap();
        let child_id = h.id();
        let (id, name) = h.join().unwrap();
        assert_eq!(id, child_id);
        assert_ne!(id, me.id());
        assert_eq!(name.as_deref(), Some("child"));
        let anon = ult::spawn(|| ult::current().name().is_none())
            .join()
            .unwrap();
        assert!(anon);
    });
    assert!(ult::try_current().is_none());
}

#[test]
fn spawn_outside_an_executor_is_an_error_not_a_crash() {
    let err = ult::Builder::new().spawn(|| ()).unwrap_err();
    assert!(err.to_string().contains("no ULT executor"), "{err}");
    let err = ult::Builder::new()
        .name("a\0b".into())
        .spawn(|| ())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// A yield between two ULTs switches on the run queue's memo of its front ULT's run. The
/// partner here changes every round, and each new one reuses the finished one's cell and
/// worker (the thread's caches) and starts on the memo's frame: each step checks who runs,
/// and the order. (A memo trusted without its check is caught by
/// `a_lenders_yield_runs_each_ult_ahead_as_itself`, where the front changes between two
/// live ULTs.)
#[test]
fn yield_partners_that_come_and_go_each_run_as_themselves() {
    let log = ult::run(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        for round in 0..50u32 {
            let partner_log = log.clone();
            let partner = ult::spawn(move || {
                let me = ult::current().id();
                for step in 0..3u32 {
                    partner_log
                        .lock()
                        .unwrap()
                        .push((round, step, "partner", me));
                    ult::yield_now();
                    assert_eq!(ult::current().id(), me, "round {round} step {step}");
                }
            });
            let partner_id = partner.id();
            let root = ult::current().id();
            for step in 0..4u32 {
                ult::yield_now();
                log.lock().unwrap().push((round, step, "root", root));
            }
            partner.join().unwrap();
            // The partner ran as itself on every step.
            let v = log.lock().unwrap();
            let partner_steps = v
                .iter()
                .filter(|e| e.0 == round && e.2 == "partner")
                .inspect(|e| assert_eq!(e.3, partner_id))
                .count();
            assert_eq!(partner_steps, 3);
        }
        let v = log.lock().unwrap().clone();
        v
    });
    // Strict alternation within each round: partner, root, partner, root, partner, root, root.
    let pattern = [
        "partner", "root", "partner", "root", "partner", "root", "root",
    ];
    for (round, chunk) in log.chunks(pattern.len()).enumerate() {
        let who: Vec<_> = chunk.iter().map(|e| e.2).collect();
        assert_eq!(who, pattern, "round {round}");
    }
    assert_eq!(log.len(), 50 * pattern.len());
}

/// The root's yield runs the ULTs ahead of it in place, one after another: each runs as
/// itself (its own stack and identity), although the front of the queue changes between
/// them, and in FIFO order.
#[test]
fn a_lenders_yield_runs_each_ult_ahead_as_itself() {
    let (log, ids) = ult::run(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let spawn = |name: &'static str| {
            let log = log.clone();
            ult::spawn(move || {
                let mut seen = 0u32;
                for _ in 0..3 {
                    seen += 1;
                    log.lock().unwrap().push((name, ult::current().id(), seen));
                    ult::yield_now();
                }
            })
        };
        let (p, q) = (spawn("p"), spawn("q"));
        let ids = (p.id(), q.id());
        for _ in 0..3 {
            ult::yield_now();
        }
        p.join().unwrap();
        q.join().unwrap();
        let log = log.lock().unwrap().clone();
        (log, ids)
    });
    let expected: Vec<_> = (1..=3)
        .flat_map(|n| [("p", ids.0, n), ("q", ids.1, n)])
        .collect();
    assert_eq!(log, expected);
}
