//! Model checks of the idle-LWP protocol (`lwp::idle`) with loom: in every interleaving,
//! an LWP that goes to sleep while work is being published is woken (or sees the work
//! itself), so no wake-up is lost. Loom reports a deadlock if the sleeper could park forever.
//! Run with: `RUSTFLAGS="--cfg loom" cargo test -p lwp --test loom_idle --release`.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use lwp::idle::IdleSet;

/// Stealable work: the waker publishes work and wakes a sleeper only if nobody spins.
#[test]
fn stealable_work_never_leaves_a_sleeper_asleep() {
    loom::model(|| {
        let idle = Arc::new(IdleSet::new());
        let work = Arc::new(AtomicBool::new(false));
        let sleeper = {
            let idle = idle.clone();
            let work = work.clone();
            thread::spawn(move || {
                // Spin once (search), then publish idleness, fence, search again, park.
                if idle.try_start_spinning(1) {
                    let found = work.load(Ordering::SeqCst);
                    idle.stop_spinning();
                    if found {
                        return;
                    }
                }
                idle.register(0);
                IdleSet::fence();
                if !work.load(Ordering::SeqCst) {
                    thread::park();
                    assert!(work.load(Ordering::SeqCst), "woken without work");
                }
                idle.unregister(0);
            })
        };
        work.store(true, Ordering::SeqCst);
        IdleSet::fence();
        if let Some(lwp) = idle.pop_sleeper() {
            assert_eq!(lwp, 0);
            sleeper.thread().unpark();
        }
        sleeper.join().unwrap();
    });
}

/// A home wake-up: the waker pushes to the LWP's inbox, fences, and unparks it if its
/// `sleeping` flag is set.
#[test]
fn home_wakeup_reaches_a_sleeping_lwp() {
    loom::model(|| {
        let inbox = Arc::new(AtomicBool::new(false));
        let sleeping = Arc::new(AtomicBool::new(false));
        let lwp = {
            let inbox = inbox.clone();
            let sleeping = sleeping.clone();
            thread::spawn(move || {
                sleeping.store(true, Ordering::SeqCst);
                IdleSet::fence();
                if !inbox.load(Ordering::SeqCst) {
                    thread::park();
                    assert!(inbox.load(Ordering::SeqCst));
                }
                sleeping.store(false, Ordering::SeqCst);
            })
        };
        inbox.store(true, Ordering::SeqCst);
        IdleSet::fence();
        if sleeping.load(Ordering::SeqCst) {
            lwp.thread().unpark();
        }
        lwp.join().unwrap();
    });
}

/// Two wakers, one sleeper: the sleeper is taken at most once from the idle list.
#[test]
fn a_sleeper_is_popped_at_most_once() {
    loom::model(|| {
        let idle = Arc::new(IdleSet::new());
        idle.register(7);
        let a = {
            let idle = idle.clone();
            thread::spawn(move || idle.pop_sleeper())
        };
        let b = idle.pop_sleeper();
        let a = a.join().unwrap();
        assert_eq!(a.is_some() as u8 + b.is_some() as u8, 1);
        assert!(!idle.anyone_idle());
    });
}
