//! The async bridge: run any `Future` to completion on a green thread.
//!
//! [`block_on`] polls the future; while it is pending, the calling ULT parks (its LWP runs
//! other ULTs) until the future's waker fires, which unparks it. On a plain kernel thread
//! the same code parks the thread, so it also works outside a runtime. The waker is an
//! [`ult::Unparker`], so waking from any thread (a reactor, a timer, another LWP) is safe, and
//! a wake that arrives while the future is being polled leaves a park token, so it is never
//! lost.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

struct UnparkWaker(ult::Unparker);

impl Wake for UnparkWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on the calling ULT (or kernel thread) and returns its output.
///
/// ```
/// let rt = lwp::Runtime::builder().lwps(1).build().unwrap();
/// let v = rt.run(|| lwp::block_on(async { 40 + 2 }));
/// assert_eq!(v, 42);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(UnparkWaker(ult::unparker())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        ult::park();
    }
}
