//! `HyperIo` is real poll-based I/O: a pending read or write returns `Pending` and wakes the
//! task's waker, it never parks the ULT inside `poll`. So a service future woken by a timer
//! makes progress while the connection also waits for the socket, one task can drive a
//! server, a client connection and its requests at once (one ULT, many-to-one), and bodies
//! larger than the socket buffers flow through blocked writes.

#![cfg(feature = "hyper")]

mod sync_support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use lwp::hyper_rt::{HyperIo, LwpSleep, LwpTimer};
use lwp::net::{TcpListener, TcpStream};
use lwp::{Model, Runtime};

/// Polls both futures in the same task until both are done.
async fn join2<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(move |cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                ra = x;
                rb = y;
                Poll::Pending
            }
        }
    })
    .await
}

/// A connected pair of lwp streams (server side, client side).
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    server.set_nodelay(true).expect("nodelay");
    client.set_nodelay(true).expect("nodelay");
    (server, client)
}

/// GET /slow/N waits N ms on an `LwpSleep` before answering; POST echoes the body.
async fn handler(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    if let Some(ms) = path.strip_prefix("/slow/") {
        let ms: u64 = ms.parse().unwrap_or(0);
        LwpSleep::new(Duration::from_millis(ms)).await;
        return Ok(Response::new(Full::new(Bytes::from(format!("slept {ms}")))));
    }
    let body = req.into_body().collect().await?.to_bytes();
    Ok(Response::new(Full::new(body)))
}

/// Server, client connection and requests all in one future (so one task, one ULT).
async fn everything_in_one_task(server_io: TcpStream, client_io: TcpStream, big: usize) {
    let server = hyper::server::conn::http1::Builder::new()
        .timer(LwpTimer)
        .serve_connection(HyperIo::new(server_io), hyper::service::service_fn(handler));
    let client = async move {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(HyperIo::new(client_io))
                .await
                .expect("handshake");
        let requests = async move {
            for i in 0..20u64 {
                sender.ready().await.expect("ready");
                let req = Request::get(format!("/slow/{}", i % 3))
                    .header("host", "x")
                    .body(Full::new(Bytes::new()))
                    .expect("request");
                let resp = sender.send_request(req).await.expect("send");
                assert_eq!(resp.status(), StatusCode::OK);
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                assert_eq!(body, format!("slept {}", i % 3).as_bytes());
            }
            // Larger than any socket buffer: both sides' writes block on the way.
            let payload: Bytes = (0..big)
                .map(|i| (i % 253) as u8)
                .collect::<Vec<u8>>()
                .into();
            for _ in 0..2 {
                sender.ready().await.expect("ready");
                let req = Request::post("/echo")
                    .header("host", "x")
                    .body(Full::new(payload.clone()))
                    .expect("request");
                let resp = sender.send_request(req).await.expect("send big");
                assert_eq!(resp.status(), StatusCode::OK);
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                assert!(body == payload, "echoed body differs");
            }
            // Dropping the sender ends the client connection, which closes the socket,
            // which ends the server connection.
        };
        let (conn_result, ()) = join2(conn, requests).await;
        conn_result.expect("client connection");
    };
    let (served, ()) = join2(server, client).await;
    served.expect("server connection");
}

#[test]
fn one_task_drives_server_client_and_requests_on_one_ult() {
    for model in [Model::ManyToOne, Model::ManyToMany { lwps: 2 }] {
        sync_support::watchdog_slow("hyper_io_wakes_tasks_not_ults", move || {
            Runtime::new(model).expect("runtime").run(|| {
                let (s, c) = pair();
                lwp::block_on(everything_in_one_task(s, c, 8 << 20));
            })
        });
    }
}

#[test]
fn service_woken_by_a_timer_answers_while_the_connection_waits_to_read() {
    // Each connection on its own ULT, as usual; the service's sleep is woken by the timer
    // thread while the connection's ULT is waiting (hyper also polls the socket for EOF).
    let elapsed = sync_support::watchdog_slow("hyper_io_wakes_tasks_not_ults", || {
        Runtime::new(Model::ManyToOne).expect("runtime").run(|| {
            let (s, c) = pair();
            let server = lwp::spawn(move || {
                lwp::block_on(
                    hyper::server::conn::http1::Builder::new()
                        .timer(LwpTimer)
                        .serve_connection(HyperIo::new(s), hyper::service::service_fn(handler)),
                )
                .map_err(|e| e.to_string())
            });
            let t0 = Instant::now();
            lwp::block_on(async move {
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake::<_, Full<Bytes>>(HyperIo::new(c))
                        .await
                        .expect("handshake");
                let conn = lwp::spawn(move || lwp::block_on(Box::pin(conn)).is_ok());
                for _ in 0..5 {
                    sender.ready().await.expect("ready");
                    let req = Request::get("/slow/20")
                        .header("host", "x")
                        .body(Full::new(Bytes::new()))
                        .expect("request");
                    let resp = sender.send_request(req).await.expect("send");
                    let body = resp.into_body().collect().await.expect("body").to_bytes();
                    assert_eq!(body, "slept 20");
                }
                drop(sender);
                assert!(conn.join().expect("client connection ULT"));
            });
            let elapsed = t0.elapsed();
            assert!(server.join().expect("server ULT").is_ok());
            elapsed
        })
    });
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
}

#[test]
fn infallible_service_on_a_plain_thread_block_on() {
    // Outside any runtime: the HyperIo watchers run on the default runtime, the futures on
    // plain threads.
    sync_support::watchdog_slow("hyper_io_wakes_tasks_not_ults", || {
        let (s, c) = pair();
        let server = std::thread::spawn(move || {
            let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"plain"))))
            });
            lwp::block_on(
                hyper::server::conn::http1::Builder::new().serve_connection(HyperIo::new(s), svc),
            )
            .is_ok()
        });
        lwp::block_on(async move {
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(HyperIo::new(c))
                    .await
                    .expect("handshake");
            let requests = async move {
                for _ in 0..3 {
                    let req = Request::get("/")
                        .header("host", "x")
                        .body(Full::new(Bytes::new()))
                        .expect("request");
                    let resp = sender.send_request(req).await.expect("send");
                    let body = resp.into_body().collect().await.expect("body").to_bytes();
                    assert_eq!(body, "plain");
                }
            };
            let (conn_result, ()) = join2(conn, requests).await;
            conn_result.expect("client connection");
        });
        assert!(server.join().expect("server thread"));
    });
}
