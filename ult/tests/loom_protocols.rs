//! Model checks of the park/unpark and join protocols in `ult::state` with loom, over every
//! interleaving loom explores. Run with:
//! `RUSTFLAGS="--cfg loom" cargo test -p ult --test loom_protocols --release`
//! (without `--cfg loom` this file compiles to nothing).
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use ult::state::{Completion, Life, RunState};

/// A ULT parks once while another thread unparks it once. Whatever the interleaving, the ULT
/// ends up runnable exactly once: either its `park` consumed the token without suspending,
/// or exactly one of {scheduler, unparker} queued it.
#[test]
fn park_and_unpark_queue_the_ult_exactly_once() {
    loom::model(|| {
        let state = Arc::new(RunState::new());
        let queued = Arc::new(AtomicUsize::new(0));

        let unparker = {
            let state = state.clone();
            let queued = queued.clone();
            thread::spawn(move || {
                if state.unpark() {
                    queued.fetch_add(1, Ordering::SeqCst);
                }
            })
        };

        // The ULT's park, then (if it suspended) its scheduler's after-park step.
        let returned_at_once = state.take_token();
        if !returned_at_once && !state.try_park() {
            queued.fetch_add(1, Ordering::SeqCst); // the scheduler requeues it
        }
        unparker.join().unwrap();

        let q = queued.load(Ordering::SeqCst);
        if returned_at_once {
            assert_eq!(q, 0, "park returned at once: nobody may queue the ULT");
        } else {
            assert_eq!(q, 1, "the parked ULT must be queued exactly once");
        }
    });
}

/// Two unparkers race against one park: still queued at most once, never lost.
#[test]
fn two_unparkers_never_queue_twice() {
    loom::model(|| {
        let state = Arc::new(RunState::new());
        let queued = Arc::new(AtomicUsize::new(0));
        let spawn_unparker = |state: Arc<RunState>, queued: Arc<AtomicUsize>| {
            thread::spawn(move || {
                if state.unpark() {
                    queued.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let a = spawn_unparker(state.clone(), queued.clone());
        let b = spawn_unparker(state.clone(), queued.clone());
        let returned_at_once = state.take_token();
        if !returned_at_once && !state.try_park() {
            queued.fetch_add(1, Ordering::SeqCst);
        }
        a.join().unwrap();
        b.join().unwrap();
        let q = queued.load(Ordering::SeqCst);
        assert!(q <= 1, "queued {q} times");
        assert_eq!(q == 0, returned_at_once, "not woken although unparked");
    });
}

/// The join handshake: the joiner either sees completion or is woken, never neither; and
/// the cell is freed exactly once, after both sides are done with it.
#[test]
fn joiner_is_woken_or_sees_completion_and_the_cell_is_freed_once() {
    loom::model(|| {
        // References: the scheduler's and the join handle's.
        let life = Arc::new(Life::new(2));
        let woken = Arc::new(AtomicUsize::new(0));
        let frees = Arc::new(AtomicUsize::new(0));
        let completer = {
            let (life, woken, frees) = (life.clone(), woken.clone(), frees.clone());
            thread::spawn(move || match life.complete_and_release() {
                Completion::Released { last } => {
                    if last {
                        frees.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Completion::WakeWaiter => {
                    woken.fetch_add(1, Ordering::SeqCst);
                    if life.release() {
                        frees.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        let must_wait = life.set_waiter();
        if must_wait {
            // The joiner parks until woken; loom explores the completer running meanwhile.
            while woken.load(Ordering::SeqCst) == 0 {
                thread::yield_now();
            }
        }
        assert!(life.is_complete());
        if life.release_maybe_unique() {
            frees.fetch_add(1, Ordering::SeqCst);
        }
        completer.join().unwrap();
        let w = woken.load(Ordering::SeqCst);
        assert_eq!(
            w,
            usize::from(must_wait),
            "woken exactly when it had to wait"
        );
        assert_eq!(frees.load(Ordering::SeqCst), 1, "freed exactly once");
    });
}

/// A detached ULT (its join handle dropped while it runs): whichever side lets go last frees
/// the cell, exactly once.
#[test]
fn a_detached_cell_is_freed_once() {
    loom::model(|| {
        let life = Arc::new(Life::new(2));
        let frees = Arc::new(AtomicUsize::new(0));
        let completer = {
            let (life, frees) = (life.clone(), frees.clone());
            thread::spawn(move || {
                if life.complete_and_release() == (Completion::Released { last: true }) {
                    frees.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        if life.release_maybe_unique() {
            frees.fetch_add(1, Ordering::SeqCst);
        }
        completer.join().unwrap();
        assert_eq!(frees.load(Ordering::SeqCst), 1, "freed exactly once");
    });
}
