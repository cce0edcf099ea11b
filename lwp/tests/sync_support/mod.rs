//! Shared by the integration tests: a watchdog that turns a deadlock into a test failure,
//! and size knobs that shrink under Miri.
//!
//! Every scenario runs on its own std thread; if it has not finished within the limit the
//! test panics (the stuck thread is leaked, the process still exits), so a primitive that
//! blocks the kernel thread instead of parking the ULT fails CI instead of hanging it.

#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

/// How long any one scenario may take before it counts as deadlocked.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Scales a stress size down under Miri.
pub const fn size(n: usize) -> usize {
    if cfg!(miri) {
        if n < 10 {
            n
        } else {
            10
        }
    } else {
        n
    }
}

/// How long a network, file or hyper scenario may take (they move real data through the
/// kernel, in debug builds too).
pub const SLOW_LIMIT: Duration = Duration::from_secs(60);

/// Runs `f` on a fresh std thread and returns its result; panics if it panics or if it does
/// not finish within [`LIMIT`].
pub fn watchdog<T, F>(name: &str, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    watchdog_for(name, LIMIT, f)
}

/// [`watchdog`] with [`SLOW_LIMIT`].
pub fn watchdog_slow<T, F>(name: &str, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    watchdog_for(name, SLOW_LIMIT, f)
}

/// [`watchdog`] with its own limit.
pub fn watchdog_for<T, F>(name: &str, limit: Duration, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let v = f();
            let _ = tx.send(());
            v
        })
        .expect("spawn watchdog thread");
    match rx.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(v) => v,
            Err(payload) => std::panic::resume_unwind(payload),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name}: did not finish within {limit:?} (deadlock or lost wake-up?)")
        }
    }
}

/// Runs `f` as the root ULT of a many-to-one executor (every ULT on one kernel thread),
/// under the watchdog.
pub fn in_ult<T, F>(name: &str, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    watchdog(name, move || ult::run(f))
}

/// The text of a panic payload (`&str` or `String`; empty for anything else).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Runs `f` in a ULT of a one-LWP (many-to-one) `lwp` runtime beside a ULT that sleeps 1 ms
/// at a time, 100 times; returns what `f` returned and how many sleeps the neighbour had
/// finished when `f` returned. An `f` that blocks the LWP for 200 ms sees none; one that
/// parks only its ULT sees most of 200.
pub fn one_lwp_beside_a_ticker<T, F>(f: F) -> (T, usize)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let rt = lwp::Runtime::new(lwp::Model::ManyToOne).expect("a one-LWP runtime");
    rt.run(move || {
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = lwp::spawn({
            let ticks = ticks.clone();
            move || {
                for _ in 0..100 {
                    lwp::sleep(Duration::from_millis(1));
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let out = f();
        let seen = ticks.load(Ordering::SeqCst);
        ticker.join().expect("the ticker does not panic");
        (out, seen)
    })
}
