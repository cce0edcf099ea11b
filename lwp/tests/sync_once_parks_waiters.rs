//! `lwp::sync::OnceLock` and `LazyLock`: one initialisation, waiters that park (so an
//! initialiser that parks does not hang its LWP), recovery from a failed or cancelled
//! initialiser, and std's API.

mod sync_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use lwp::sync::{LazyLock, OnceLock};
use lwp::{Model, Runtime};
use sync_support::{panic_message, watchdog_slow};

#[test]
fn under_many_to_one_waiters_park_while_the_initialiser_sleeps_and_the_lwp_runs_on() {
    watchdog_slow("many-to-one", || {
        let rt = Runtime::new(Model::ManyToOne).unwrap();
        rt.run(|| {
            let cell = Arc::new(OnceLock::new());
            let inits = Arc::new(AtomicUsize::new(0));
            let ticks = Arc::new(AtomicUsize::new(0));
            let callers: Vec<_> = (0..5)
                .map(|_| {
                    let (cell, inits) = (cell.clone(), inits.clone());
                    lwp::spawn(move || {
                        *cell.get_or_init(|| {
                            inits.fetch_add(1, Ordering::SeqCst);
                            lwp::sleep(Duration::from_millis(30)); // parks inside the init
                            42u32
                        })
                    })
                })
                .collect();
            // Runs on the same (only) LWP meanwhile: it would not, were a waiter blocking it.
            let ticker = {
                let ticks = ticks.clone();
                lwp::spawn(move || {
                    for _ in 0..5 {
                        ticks.fetch_add(1, Ordering::SeqCst);
                        lwp::sleep(Duration::from_millis(2));
                    }
                })
            };
            let values: Vec<u32> = callers.into_iter().map(|h| h.join().unwrap()).collect();
            ticker.join().unwrap();
            assert_eq!(values, [42; 5]);
            assert_eq!(inits.load(Ordering::SeqCst), 1, "initialised once");
            assert_eq!(ticks.load(Ordering::SeqCst), 5);
        });
    });
}

#[test]
fn a_panicking_or_failing_initialiser_leaves_the_cell_empty_for_the_next_caller() {
    watchdog_slow("panic", || {
        let rt = Runtime::new(Model::ManyToMany { lwps: 2 }).unwrap();
        rt.run(|| {
            let cell = Arc::new(OnceLock::<String>::new());
            let first = {
                let cell = cell.clone();
                lwp::spawn(move || {
                    cell.get_or_init(|| {
                        lwp::sleep(Duration::from_millis(20));
                        panic!("init boom")
                    })
                    .clone()
                })
            };
            lwp::sleep(Duration::from_millis(5)); // the first is initialising
            let second = {
                let cell = cell.clone();
                lwp::spawn(move || cell.get_or_init(|| "second".to_string()).clone())
            };
            assert_eq!(panic_message(&*first.join().unwrap_err()), "init boom");
            assert_eq!(second.join().unwrap(), "second", "a waiter took over");

            let cell = OnceLock::<u8>::new();
            assert_eq!(cell.get_or_try_init(|| Err("nope")), Err("nope"));
            assert!(cell.get().is_none(), "an error leaves it empty");
            assert_eq!(cell.get_or_try_init(|| Ok::<u8, ()>(7)), Ok(&7));
        });
    });
}

#[test]
fn reentrant_initialisation_panics_instead_of_waiting_for_itself() {
    watchdog_slow("reentrant", || {
        ult::run(|| {
            let cell = Arc::new(OnceLock::<u32>::new());
            let inner = cell.clone();
            let h = ult::spawn(move || *inner.get_or_init(|| *inner.get_or_init(|| 1) + 1));
            let payload = h.join().unwrap_err();
            assert_eq!(
                panic_message(&*payload),
                "lwp::sync::OnceLock: reentrant initialisation"
            );
            assert!(cell.get().is_none());
            assert_eq!(cell.get_or_init(|| 5), &5, "usable after the failed init");
        });
    });
}

#[test]
fn ults_and_kernel_threads_racing_initialise_once() {
    watchdog_slow("race", || {
        static CELL: OnceLock<usize> = OnceLock::new();
        static INITS: AtomicUsize = AtomicUsize::new(0);
        let init = || {
            INITS.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            99
        };
        let rt = Runtime::new(Model::ManyToMany { lwps: 2 }).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(move || *CELL.get_or_init(init)))
            .collect();
        let ults: Vec<_> = (0..8)
            .map(|_| rt.spawn(move || *CELL.get_or_init(init)))
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), 99);
        }
        for u in ults {
            assert_eq!(u.join().unwrap(), 99);
        }
        assert_eq!(INITS.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn an_initialiser_cancelled_at_shutdown_leaves_the_cell_empty() {
    watchdog_slow("cancel", || {
        let cell = Arc::new(OnceLock::<u32>::new());
        let (started_tx, started_rx) = mpsc::channel();
        {
            let rt = Runtime::new(Model::OneToOne).unwrap();
            let c = cell.clone();
            let _h = rt.spawn(move || {
                c.get_or_init(|| {
                    started_tx.send(()).unwrap();
                    loop {
                        lwp::park(); // never unparked: cancelled when the runtime goes
                    }
                });
            });
            started_rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            cell.get_or_init(|| 3),
            &3,
            "no longer marked as initialising"
        );
    });
}

#[test]
fn std_api_set_take_into_inner_clone_and_drop() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let cell = OnceLock::new();
    assert_eq!(cell.set(1), Ok(()));
    assert_eq!(cell.set(2), Err(2));
    assert_eq!(format!("{cell:?}"), "OnceLock(1)");
    let copy = cell.clone();
    assert_eq!(copy.into_inner(), Some(1));
    let mut cell = cell;
    *cell.get_mut().unwrap() += 10;
    assert_eq!(cell.take(), Some(11));
    assert_eq!(format!("{cell:?}"), "OnceLock(<uninit>)");
    assert_eq!(OnceLock::from(5u8).get(), Some(&5));

    let drops = Arc::new(AtomicUsize::new(0));
    let cell = OnceLock::new();
    let _ = cell.set(Counted(drops.clone()));
    drop(cell);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "dropped with the cell, once"
    );
}

#[test]
fn lazy_lock_computes_once_and_is_poisoned_by_a_panicking_computation() {
    watchdog_slow("lazy", || {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        static TABLE: LazyLock<Vec<u32>> = LazyLock::new(|| {
            RUNS.fetch_add(1, Ordering::SeqCst);
            lwp::sleep(Duration::from_millis(10));
            vec![1, 2, 3]
        });
        let rt = Runtime::new(Model::ManyToOne).unwrap();
        let sums: Vec<u32> = rt.run(|| {
            let hs: Vec<_> = (0..4)
                .map(|_| lwp::spawn(|| TABLE.iter().sum::<u32>()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(sums, [6; 4]);
        assert_eq!(RUNS.load(Ordering::SeqCst), 1);

        let lazy: LazyLock<u32, _> = LazyLock::new(|| -> u32 { panic!("lazy boom") });
        let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| *lazy));
        assert_eq!(panic_message(&*first.unwrap_err()), "lazy boom");
        let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| *lazy));
        assert_eq!(
            panic_message(&*again.unwrap_err()),
            "lwp::sync::LazyLock: the initialiser panicked earlier"
        );
        let untouched = LazyLock::new(|| 8u8);
        assert!(LazyLock::into_inner(untouched).is_err(), "never ran");
    });
}
