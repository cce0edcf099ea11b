//! `lwp::scope`: scoped ULTs borrow from their spawner's stack, the scope waits for all of
//! them, joined or not, and panics travel as with `std::thread::scope`, under every model.

mod sync_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use lwp::{Model, Runtime};
use sync_support::{panic_message, watchdog_slow};

fn models() -> [Model; 3] {
    [
        Model::ManyToOne,
        Model::OneToOne,
        Model::ManyToMany { lwps: 2 },
    ]
}

#[test]
fn scoped_ults_mutate_borrowed_chunks_and_spawn_more_under_every_model() {
    for model in models() {
        watchdog_slow(&format!("{model}"), move || {
            let rt = Runtime::new(model).unwrap();
            rt.run(move || {
                let mut data = vec![0u64; 64];
                let label = String::from("chunk");
                let spawned_inside = AtomicUsize::new(0);
                lwp::scope(|s| {
                    for (i, chunk) in data.chunks_mut(8).enumerate() {
                        let (label, spawned_inside) = (&label, &spawned_inside);
                        s.spawn(move || {
                            for x in chunk.iter_mut() {
                                *x += i as u64 + 1;
                                lwp::yield_now();
                            }
                            // A scoped ULT spawns into the same scope through `s`.
                            s.spawn(move || {
                                assert_eq!(label, "chunk");
                                spawned_inside.fetch_add(1, Ordering::SeqCst);
                            });
                        });
                    }
                });
                let expected: Vec<u64> = (0..64).map(|j| j / 8 + 1).collect();
                assert_eq!(data, expected, "{model}");
                assert_eq!(spawned_inside.load(Ordering::SeqCst), 8, "{model}");
            });
        });
    }
}

#[test]
fn the_scope_waits_for_unjoined_ults_and_drops_their_results_first() {
    struct Recorder<'a>(&'a AtomicUsize);
    impl Drop for Recorder<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    for model in models() {
        watchdog_slow(&format!("{model}"), move || {
            let rt = Runtime::new(model).unwrap();
            rt.run(move || {
                let finished = AtomicUsize::new(0);
                let results_dropped = AtomicUsize::new(0);
                lwp::scope(|s| {
                    for _ in 0..4 {
                        s.spawn(|| {
                            lwp::sleep(Duration::from_millis(20));
                            finished.fetch_add(1, Ordering::SeqCst);
                            // Returned, never joined: the scope drops it before it ends.
                            Recorder(&results_dropped)
                        });
                    }
                    assert_eq!(finished.load(Ordering::SeqCst), 0, "nothing waited yet");
                });
                assert_eq!(finished.load(Ordering::SeqCst), 4, "{model}");
                assert_eq!(results_dropped.load(Ordering::SeqCst), 4, "{model}");
            });
        });
    }
}

#[test]
fn join_returns_values_and_panics_and_an_unjoined_panic_fails_the_scope() {
    for model in models() {
        watchdog_slow(&format!("{model}"), move || {
            let rt = Runtime::new(model).unwrap();
            rt.run(move || {
                let base = 40u64;
                let (value, payload) = lwp::scope(|s| {
                    let ok = s.spawn(|| base + 2);
                    let bad = s.spawn(|| -> u64 { panic!("scoped boom") });
                    (ok.join().unwrap(), bad.join().unwrap_err())
                });
                assert_eq!(value, 42);
                assert_eq!(panic_message(&*payload), "scoped boom");

                // Nobody joins the panicking ULT: the scope panics, after the others ended.
                let other_done = AtomicBool::new(false);
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    lwp::scope(|s| {
                        s.spawn(|| panic!("unjoined boom"));
                        s.spawn(|| {
                            lwp::sleep(Duration::from_millis(10));
                            other_done.store(true, Ordering::SeqCst);
                        });
                    })
                }));
                let payload = outcome.expect_err("an unjoined panic fails the scope");
                assert_eq!(panic_message(&*payload), "a scoped ULT panicked", "{model}");
                assert!(
                    other_done.load(Ordering::SeqCst),
                    "{model}: waited for the rest"
                );

                // The body's own panic is resumed, also only after its ULTs ended.
                let other_done = AtomicBool::new(false);
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    lwp::scope(|s| {
                        s.spawn(|| {
                            lwp::sleep(Duration::from_millis(10));
                            other_done.store(true, Ordering::SeqCst);
                        });
                        panic!("body boom");
                    })
                }));
                assert_eq!(
                    panic_message(&*outcome.unwrap_err()),
                    "body boom",
                    "{model}"
                );
                assert!(
                    other_done.load(Ordering::SeqCst),
                    "{model}: waited before resuming"
                );
            });
        });
    }
}

#[test]
fn a_failed_scoped_spawn_is_an_error_and_the_scope_still_ends() {
    watchdog_slow("bad name", || {
        let rt = Runtime::new(Model::ManyToMany { lwps: 2 }).unwrap();
        rt.run(|| {
            let borrowed = String::from("still here");
            let (err, ok) = lwp::scope(|s| {
                let err = lwp::Builder::new()
                    .name("bad\0name".into())
                    .spawn_scoped(s, || borrowed.len())
                    .expect_err("a name with a NUL byte is refused");
                let ok = lwp::Builder::new()
                    .name("good".into())
                    .spawn_scoped(s, || borrowed.len())
                    .unwrap();
                assert_eq!(ok.ult().name(), Some("good"));
                (err, ok.join().unwrap())
            });
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            assert_eq!(ok, borrowed.len());
        });
    });
}

#[test]
fn a_scope_opened_on_a_plain_kernel_thread_runs_its_ults_on_the_default_runtime() {
    watchdog_slow("plain thread", || {
        let words = ["a", "bb", "ccc"];
        let lens: Vec<usize> = lwp::scope(|s| {
            let hs: Vec<_> = words
                .iter()
                .map(|w| {
                    s.spawn(move || {
                        assert!(lwp::in_ult(), "scoped ULTs are ULTs");
                        w.len()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(lens, [1, 2, 3]);
    });
}

#[test]
fn a_scope_inside_ult_run_runs_its_ults_on_that_single_thread_executor() {
    watchdog_slow("ult::run", || {
        let owner_thread = std::thread::current().id();
        ult::run(move || {
            let mut hits = [0u8; 3];
            lwp::scope(|s| {
                for hit in hits.iter_mut() {
                    s.spawn(move || {
                        assert_eq!(std::thread::current().id(), owner_thread);
                        ult::yield_now();
                        *hit += 1;
                    });
                }
            });
            assert_eq!(hits, [1, 1, 1]);
        });
    });
}

/// Under one-to-one a runtime's shutdown cancels parked ULTs, each on its own kernel thread,
/// in no set order. The scope owner's stack must outlive the scoped ULTs' destructors, which
/// still read what they borrowed from it.
#[test]
fn a_cancelled_scope_owner_leaks_its_stack_so_cancelled_scoped_ults_still_see_their_borrows() {
    const ALIVE: u64 = 0x5ca1_ab1e;
    const DROPPED: u64 = 0xdead;
    static CHECKS: AtomicUsize = AtomicUsize::new(0);
    static SAW_DEAD: AtomicUsize = AtomicUsize::new(0);
    struct Canary(u64);
    impl Drop for Canary {
        fn drop(&mut self) {
            self.0 = DROPPED;
        }
    }
    struct Check<'a>(&'a Canary);
    impl Drop for Check<'_> {
        fn drop(&mut self) {
            // Volatile, so the read is not folded away: a freed owner's frame would show.
            // SAFETY: a plain read of a `u64` the scope promises is still borrowed.
            let seen = unsafe { std::ptr::read_volatile(&self.0 .0) };
            if seen != ALIVE {
                SAW_DEAD.fetch_add(1, Ordering::SeqCst);
            }
            CHECKS.fetch_add(1, Ordering::SeqCst);
        }
    }
    watchdog_slow("cancel", || {
        let rt = Runtime::new(Model::OneToOne).unwrap();
        let (started_tx, started_rx) = mpsc::channel();
        let owner = rt.spawn(move || {
            let canary = Canary(ALIVE);
            lwp::scope(|s| {
                for _ in 0..4 {
                    let canary = &canary;
                    s.spawn(move || {
                        let _check = Check(canary);
                        loop {
                            lwp::park(); // nobody unparks: cancelled at shutdown
                        }
                    });
                }
                started_tx.send(()).unwrap();
            });
            unreachable!("the scope's ULTs never finish");
        });
        started_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50)); // all parked, the owner in the scope
        drop(rt);
        assert_eq!(
            CHECKS.load(Ordering::SeqCst),
            4,
            "every scoped ULT was cancelled"
        );
        assert_eq!(
            SAW_DEAD.load(Ordering::SeqCst),
            0,
            "a borrow outlived its owner"
        );
        let payload = owner.join().expect_err("the owner was cancelled");
        assert_eq!(panic_message(&*payload), ult::CANCELLED);
    });
}
