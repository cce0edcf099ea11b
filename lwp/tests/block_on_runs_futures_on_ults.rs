//! `lwp::block_on` parks the ULT while its future is pending and resumes it when woken.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A future completed by another kernel thread after `delay`.
struct Delayed {
    state: Arc<Mutex<(bool, Option<Waker>)>>,
}

impl Delayed {
    fn new(delay: Duration) -> Delayed {
        let state = Arc::new(Mutex::new((false, None::<Waker>)));
        let s = state.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let mut g = s.lock().unwrap();
            g.0 = true;
            if let Some(w) = g.1.take() {
                w.wake();
            }
        });
        Delayed { state }
    }
}

impl Future for Delayed {
    type Output = &'static str;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
        let mut g = self.state.lock().unwrap();
        if g.0 {
            Poll::Ready("done")
        } else {
            g.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[test]
fn a_pending_future_parks_only_its_ult() {
    let rt = lwp::Runtime::new(lwp::Model::ManyToOne).unwrap();
    let (out, ticks) = rt.run(|| {
        let ticker = lwp::spawn(|| {
            let mut n = 0;
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(80) {
                n += 1;
                lwp::sleep(Duration::from_millis(2));
            }
            n
        });
        let out = lwp::block_on(Delayed::new(Duration::from_millis(100)));
        (out, ticker.join().unwrap())
    });
    assert_eq!(out, "done");
    assert!(
        ticks >= 10,
        "the single LWP kept running the ticker: {ticks}"
    );
}

#[test]
fn block_on_works_on_a_plain_thread() {
    assert_eq!(
        lwp::block_on(Delayed::new(Duration::from_millis(10))),
        "done"
    );
}
