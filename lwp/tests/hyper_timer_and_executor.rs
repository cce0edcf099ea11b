//! `LwpTimer` sleeps complete at their deadline inside ULTs and on plain threads, can be
//! reset and dropped, and drive hyper's `header_read_timeout`; `LwpExecutor` runs futures on
//! ULTs.

#![cfg(feature = "hyper")]

mod sync_support;

use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::rt::{Executor, Timer};
use hyper::{Request, Response};
use lwp::hyper_rt::{HyperIo, LwpExecutor, LwpSleep, LwpTimer};
use lwp::net::TcpListener;
use lwp::{Model, Runtime};

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn sleeps_complete_at_their_deadline_in_ults_and_on_threads() {
    let d = Duration::from_millis(20);
    // Plain thread.
    let t0 = Instant::now();
    lwp::block_on(LwpTimer.sleep(d));
    assert!(t0.elapsed() >= d);
    // ULTs of each model, several at once.
    for model in [
        Model::ManyToOne,
        Model::OneToOne,
        Model::ManyToMany { lwps: 2 },
    ] {
        let times = sync_support::watchdog_slow("hyper_timer_and_executor", move || {
            Runtime::new(model).expect("runtime").run(move || {
                let hs: Vec<_> = (1..=8u64)
                    .map(|i| {
                        lwp::spawn(move || {
                            let want = Duration::from_millis(5 * i);
                            let t0 = Instant::now();
                            lwp::block_on(LwpTimer.sleep_until(t0 + want));
                            (want, t0.elapsed())
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().expect("sleeper"))
                    .collect::<Vec<_>>()
            })
        });
        for (want, got) in times {
            assert!(
                got >= want,
                "{model}: woke after {got:?}, deadline {want:?}"
            );
            assert!(got < want + Duration::from_secs(5), "{model}: {got:?}");
        }
    }
}

#[test]
fn reset_moves_the_deadline_both_ways() {
    let mut s = LwpTimer.sleep(Duration::from_secs(3600));
    let t0 = Instant::now();
    LwpTimer.reset(&mut s, t0 + Duration::from_millis(10));
    lwp::block_on(s.as_mut());
    assert!(t0.elapsed() >= Duration::from_millis(10));
    assert!(t0.elapsed() < Duration::from_secs(5));

    // Later: a registered sleep moved further out does not fire at the old deadline.
    let mut s = LwpSleep::new(Duration::from_millis(5));
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut s).poll(&mut cx).is_pending());
    s.reset(Instant::now() + Duration::from_secs(3600));
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        0,
        "woken at the old deadline"
    );
    assert!(Pin::new(&mut s).poll(&mut cx).is_pending());
}

#[test]
fn dropped_sleeps_never_wake_and_far_deadlines_are_fine() {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let t0 = Instant::now();
    let first_deadline = Duration::from_millis(300);
    let mut sleeps: Vec<_> = (0..10_000)
        .map(|i| LwpSleep::until(t0 + first_deadline + Duration::from_millis(i % 7)))
        .collect();
    for s in &mut sleeps {
        assert!(Pin::new(s).poll(&mut cx).is_pending());
    }
    drop(sleeps);
    let dropped_in_time = t0.elapsed() < first_deadline;
    // A deadline beyond what `Instant` represents never completes, and does not panic.
    let mut never = LwpSleep::new(Duration::MAX);
    assert!(never.deadline().is_none());
    assert!(Pin::new(&mut never).poll(&mut cx).is_pending());
    // A live sleep past their deadlines still fires, and only its waker runs.
    lwp::block_on(LwpSleep::until(
        t0 + first_deadline + Duration::from_millis(50),
    ));
    if dropped_in_time {
        assert_eq!(counter.0.load(Ordering::SeqCst), 0, "a dropped sleep woke");
    }
    // A sleep whose deadline passed is ready at once.
    let mut past = LwpSleep::until(Instant::now());
    assert!(Pin::new(&mut past).poll(&mut cx).is_ready());
}

#[test]
fn header_read_timeout_closes_a_silent_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        Runtime::new(Model::ManyToMany { lwps: 2 })
            .expect("runtime")
            .run(move || {
                let (stream, _) = listener.accept().expect("accept");
                let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
                });
                lwp::block_on(
                    hyper::server::conn::http1::Builder::new()
                        .timer(LwpTimer)
                        .header_read_timeout(Duration::from_millis(200))
                        .serve_connection(HyperIo::new(stream), svc),
                )
                .map_err(|e| e.is_timeout())
            })
    });
    let elapsed = sync_support::watchdog_slow("hyper_timer_and_executor", move || {
        let mut c = std::net::TcpStream::connect(addr).expect("connect");
        let t0 = Instant::now();
        // Half a request head, then silence.
        c.write_all(b"GET / HTTP/1.1\r\n").expect("write");
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest); // EOF (or a reset) when the server gives up
        t0.elapsed()
    });
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let served = sync_support::watchdog_slow("hyper_timer_and_executor", move || {
        server.join().expect("server thread")
    });
    assert_eq!(
        served,
        Err(true),
        "the connection should end in a timeout error"
    );
}

#[test]
fn executor_runs_futures_on_ults() {
    // From a plain thread: on the default runtime.
    let (tx, rx) = std::sync::mpsc::channel();
    LwpExecutor.execute(async move {
        LwpSleep::new(Duration::from_millis(1)).await;
        let _ = tx.send(lwp::in_ult());
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(true));
    // From a ULT: on that runtime; a large future is fine.
    let sum = sync_support::watchdog_slow("hyper_timer_and_executor", || {
        Runtime::new(Model::ManyToOne).expect("runtime").run(|| {
            let (tx, rx) = lwp::channel::unbounded();
            for i in 0..100u64 {
                let tx = tx.clone();
                let ballast = [i as u8; 4096];
                LwpExecutor.execute(async move {
                    LwpSleep::new(Duration::from_millis(i % 5)).await;
                    let _ = tx.send(i + u64::from(ballast[4095] - i as u8));
                });
            }
            drop(tx);
            rx.iter().sum::<u64>()
        })
    });
    assert_eq!(sum, 4950);
}
