//! A hyper server on ULTs (one ULT per connection) answers clients that use std's blocking
//! `TcpStream` on a plain kernel thread: raw HTTP/1.1 requests, keep-alive, and
//! `Connection: close`.

#![cfg(feature = "hyper")]

mod sync_support;

use std::convert::Infallible;
use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use lwp::hyper_rt::{HyperIo, LwpTimer};
use lwp::net::TcpListener;
use lwp::{Model, Runtime};

/// Reads one response (head and `Content-Length` body) from a blocking std stream.
fn read_response(s: &mut std::net::TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = s.read(&mut chunk).expect("read head");
        assert!(n > 0, "EOF before the end of the response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("ASCII head");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .expect("Content-Length");
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).expect("read body");
        assert!(n > 0, "EOF inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(body.len(), len, "no bytes beyond the body");
    (head, body)
}

#[test]
fn hyper_server_on_ults_answers_blocking_std_clients() {
    const CONNECTIONS: usize = 8;
    const REQUESTS: usize = 3;
    for model in [
        Model::ManyToMany { lwps: 2 },
        Model::ManyToOne,
        Model::OneToOne,
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let rt = Runtime::new(model).expect("runtime");
            rt.run(move || {
                let conns: Vec<_> = (0..CONNECTIONS)
                    .map(|_| {
                        let (stream, _) = listener.accept().expect("accept");
                        lwp::spawn(move || {
                            let service =
                                hyper::service::service_fn(|req: Request<Incoming>| async move {
                                    let body = format!("you asked for {}", req.uri().path());
                                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                                });
                            let conn = hyper::server::conn::http1::Builder::new()
                                .timer(LwpTimer)
                                .serve_connection(HyperIo::new(stream), service);
                            lwp::block_on(conn).map_err(|e| e.to_string())
                        })
                    })
                    .collect();
                conns
                    .into_iter()
                    .map(|h| h.join().expect("connection ULT panicked"))
                    .collect::<Vec<_>>()
            })
        });
        // Clients: plain kernel threads with std's blocking sockets, all at once.
        let clients = sync_support::watchdog_slow("hyper_server_answers_std_client", move || {
            let hs: Vec<_> = (0..CONNECTIONS)
                .map(|c| {
                    std::thread::spawn(move || {
                        let mut s = std::net::TcpStream::connect(addr).expect("connect");
                        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                        for r in 0..REQUESTS {
                            let last = r + 1 == REQUESTS;
                            let req = format!(
                                "GET /c{c}/r{r} HTTP/1.1\r\nHost: x\r\n{}\r\n",
                                if last { "Connection: close\r\n" } else { "" }
                            );
                            s.write_all(req.as_bytes()).expect("write request");
                            let (head, body) = read_response(&mut s);
                            assert!(head.starts_with("HTTP/1.1 200"), "head: {head}");
                            assert_eq!(body, format!("you asked for /c{c}/r{r}").as_bytes());
                        }
                        // After `Connection: close` the server closes: EOF.
                        let mut rest = Vec::new();
                        s.read_to_end(&mut rest).expect("read to EOF");
                        assert!(rest.is_empty(), "bytes after the last response");
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().is_ok())
                .filter(|ok| *ok)
                .count()
        });
        assert_eq!(clients, CONNECTIONS, "{model}: some client failed");
        let results = sync_support::watchdog_slow("hyper_server_answers_std_client", move || {
            server.join().expect("server thread panicked")
        });
        for r in results {
            assert!(r.is_ok(), "{model}: server connection: {r:?}");
        }
    }
}

#[test]
fn minimal_raw_request_gets_200() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        Runtime::new(Model::ManyToMany { lwps: 2 })
            .expect("runtime")
            .run(move || {
                let (stream, _) = listener.accept().expect("accept");
                let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                lwp::block_on(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(HyperIo::new(stream), service),
                )
                .map_err(|e| e.to_string())
            })
    });
    let head = sync_support::watchdog_slow("hyper_server_answers_std_client", move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let (head, body) = read_response(&mut s);
        assert_eq!(body, b"ok");
        head
    });
    assert!(head.starts_with("HTTP/1.1 200"), "head: {head}");
    // The client closed: the server's connection ends cleanly.
    let served = sync_support::watchdog_slow("hyper_server_answers_std_client", move || {
        server.join().expect("server thread")
    });
    assert!(served.is_ok(), "{served:?}");
}
