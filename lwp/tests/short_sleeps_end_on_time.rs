//! A sleep shorter than a millisecond on an idle LWP ends near its deadline, not at the next
//! whole millisecond of `epoll_wait`'s timeout (the reactor arms a timerfd for near
//! deadlines), under both models whose LWPs sleep in their reactor; and never early.
//!
//! Not a performance target: a correctness bound with wide margins. Each case keeps the
//! fastest of 20 sleeps, so a loaded machine that delays some wake-ups cannot fail it, while
//! millisecond rounding would put every one of the 20 at 1 ms or more.

mod sync_support;

use std::time::{Duration, Instant};

use lwp::{Model, Runtime};
use sync_support::watchdog_slow;

#[test]
fn a_200_microsecond_sleep_on_an_idle_lwp_ends_well_before_a_millisecond() {
    watchdog_slow("short sleeps", || {
        for model in [Model::ManyToOne, Model::ManyToMany { lwps: 2 }] {
            let rt = Runtime::new(model).unwrap();
            let took = rt.run(|| {
                (0..20)
                    .map(|_| {
                        let start = Instant::now();
                        lwp::sleep(Duration::from_micros(200));
                        start.elapsed()
                    })
                    .collect::<Vec<_>>()
            });
            let fastest = took.iter().min().copied().unwrap();
            assert!(
                took.iter().all(|&t| t >= Duration::from_micros(200)),
                "{model}: a sleep ended early: {took:?}"
            );
            assert!(
                fastest < Duration::from_micros(900),
                "{model}: the fastest of 20 sleeps of 200 µs took {fastest:?}"
            );
        }
    });
}
