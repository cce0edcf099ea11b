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
