//! The same program runs unchanged under the three threading models.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lwp::{Model, Runtime};

fn models() -> Vec<Model> {
    vec![
        Model::ManyToOne,
        Model::OneToOne,
        Model::ManyToMany { lwps: 2 },
    ]
}

lwp::local! {
    static MINE: std::cell::Cell<u32> = std::cell::Cell::new(0);
}

#[test]
fn spawn_join_yield_park_sleep_and_locals_work_under_every_model() {
    for model in models() {
        let rt = Runtime::new(model).unwrap();
        let out = rt.run(move || {
            // spawn + join with values and names
            let hs: Vec<_> = (0..20u32)
                .map(|i| {
                    lwp::Builder::new()
                        .name(format!("w{i}"))
                        .spawn(move || {
                            MINE.with(|m| m.set(i));
                            lwp::yield_now();
                            assert_eq!(lwp::current().name(), Some(format!("w{i}").as_str()));
                            MINE.with(|m| m.get())
                        })
                        .unwrap()
                })
                .collect();
            let vals: Vec<u32> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(vals, (0..20).collect::<Vec<_>>(), "{model}");
            // park / unpark across ULTs
            let parked = lwp::spawn(|| {
                lwp::park();
                7
            });
            lwp::sleep(Duration::from_millis(5));
            parked.ult().unpark();
            assert_eq!(parked.join().unwrap(), 7);
            // sleep parks only the ULT and lasts at least as asked
            let t = Instant::now();
            lwp::sleep(Duration::from_millis(20));
            assert!(t.elapsed() >= Duration::from_millis(20));
            // panics come back through join
            let err = lwp::spawn(|| panic!("oops")).join().unwrap_err();
            assert_eq!(err.downcast_ref::<&str>(), Some(&"oops"));
            model
        });
        assert_eq!(out, model);
    }
}

#[test]
fn many_ults_share_work_under_every_model() {
    for model in models() {
        let rt = Runtime::new(model).unwrap();
        let counter = Arc::new(AtomicUsize::new(0));
        let c = counter.clone();
        let n = if model == Model::OneToOne { 200 } else { 5_000 };
        rt.run(move || {
            let hs: Vec<_> = (0..n)
                .map(|_| {
                    let c = c.clone();
                    lwp::spawn(move || {
                        lwp::yield_now();
                        c.fetch_add(1, Ordering::Relaxed);
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        });
        assert_eq!(counter.load(Ordering::Relaxed), n, "{model}");
        let m = rt.metrics();
        assert!(m.spawns >= n as u64, "{model}: {m:?}");
    }
}

#[test]
fn spawning_from_a_plain_thread_uses_the_default_runtime() {
    let h = lwp::spawn(lwp::in_ult);
    assert!(h.join().unwrap());
    assert_eq!(lwp::run(|| 3 + 4), 7);
}

#[test]
fn a_bad_runtime_configuration_is_an_error() {
    let err = Runtime::builder().lwps(0).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let err = lwp::Builder::new()
        .name("nul\0".into())
        .spawn(|| ())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
