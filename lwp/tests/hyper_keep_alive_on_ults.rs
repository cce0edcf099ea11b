//! hyper's HTTP/1 server and client, both on ULTs, exchange 10,000 requests over one
//! keep-alive loopback connection (many-to-many, 2 LWPs), every status and body checked;
//! the same exchange, shorter, under the other two models.

#![cfg(feature = "hyper")]

mod sync_support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::rt::Executor;
use hyper::{Request, Response, StatusCode};
use lwp::hyper_rt::{HyperIo, LwpExecutor, LwpTimer};
use lwp::net::{TcpListener, TcpStream};
use lwp::{Model, Runtime};

/// Accepts one connection and serves it with hyper until the client closes it.
fn serve_one(listener: TcpListener) -> hyper::Result<()> {
    let (stream, _) = listener.accept().expect("accept");
    stream.set_nodelay(true).expect("nodelay");
    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
        let body = format!("hello {}", req.uri().path());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(LwpTimer)
        .serve_connection(HyperIo::new(stream), service);
    lwp::block_on(conn)
}

/// Sends `n` GETs over one connection; returns the time the requests took.
fn client(addr: SocketAddr, n: usize) -> Duration {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (done_tx, done_rx) = lwp::channel::bounded(1);
    let elapsed = lwp::block_on(async move {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(HyperIo::new(stream))
                .await
                .expect("handshake");
        // The connection future runs on its own ULT.
        LwpExecutor.execute(async move {
            let _ = done_tx.send(conn.await.map_err(|e| e.to_string()));
        });
        let t0 = Instant::now();
        for i in 0..n {
            sender.ready().await.expect("sender ready");
            let req = Request::get(format!("/{i}"))
                .header("host", "loopback")
                .body(Full::new(Bytes::new()))
                .expect("request");
            let resp = sender.send_request(req).await.expect("send_request");
            assert_eq!(resp.status(), StatusCode::OK, "request {i}");
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(body, format!("hello /{i}").as_bytes(), "request {i}");
        }
        t0.elapsed()
    });
    // Dropping the sender (above) lets the connection finish cleanly.
    let conn_result = done_rx.recv().expect("connection ULT reported");
    assert!(conn_result.is_ok(), "client connection: {conn_result:?}");
    elapsed
}

fn exchange(model: Model, n: usize) -> Duration {
    sync_support::watchdog_slow("hyper_keep_alive_on_ults", move || {
        let rt = Runtime::new(model).expect("runtime");
        rt.run(move || {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = lwp::spawn(move || serve_one(listener));
            let elapsed = client(addr, n);
            let served = server.join().expect("server ULT panicked");
            assert!(served.is_ok(), "server connection: {served:?}");
            elapsed
        })
    })
}

#[test]
fn ten_thousand_requests_over_one_keep_alive_connection_many_to_many() {
    let n = 10_000;
    let elapsed = exchange(Model::ManyToMany { lwps: 2 }, n);
    eprintln!(
        "hyper on ULTs, many-to-many (2 LWPs): {n} requests in {:.1} ms ({:.1} us/request)",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}

#[test]
fn keep_alive_requests_under_many_to_one_and_one_to_one() {
    for model in [Model::ManyToOne, Model::OneToOne] {
        let n = 1_000;
        let elapsed = exchange(model, n);
        eprintln!(
            "hyper on ULTs, {model}: {n} keep-alive requests in {:.1} ms",
            elapsed.as_secs_f64() * 1e3
        );
    }
}
