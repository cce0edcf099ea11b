//! The echo servers of the `echo` experiment, run in-process (each in a thread of its own,
//! its port coming back through a channel): every implementation echoes bytes back exactly,
//! and the load generator drives it with no errors and sane percentiles.

use benches::echo::{self, LoadSpec, IMPLS};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

/// Starts `imp` in a detached thread and returns its address (the thread serves until the
/// test process exits).
fn start(imp: &'static str) -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let tx2 = tx.clone();
        if let Err(e) = echo::serve_on(imp, move |port| {
            let _ = tx2.send(Ok(port));
        }) {
            let _ = tx.send(Err(e));
        }
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(port)) => SocketAddr::from(([127, 0, 0, 1], port)),
        Ok(Err(e)) => panic!("{imp} did not start: {e}"),
        Err(_) => panic!("{imp} announced no port within 10 s"),
    }
}

fn round_trip(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    back
}

#[test]
fn every_server_echoes_exactly_and_sustains_a_closed_loop() {
    for imp in IMPLS {
        let addr = start(imp);
        // Larger than one read (4 KiB): the echo comes back in pieces, in order.
        let msg: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(round_trip(addr, &msg), msg, "{imp} changed the bytes");

        let r = echo::run_client(&LoadSpec {
            addr,
            conns: 8,
            msg: 64,
            warmup: Duration::from_millis(20),
            window: Duration::from_millis(150),
            setup_limit: Duration::from_secs(10),
            server_pid: None,
        })
        .unwrap();
        assert_eq!(r.errors, 0, "{imp}: {:?}", r.first_error);
        assert_eq!((r.requested, r.conns), (8, 8), "{imp}");
        assert!(r.requests > 0, "{imp} completed no request");
        assert!(r.rps() > 0.0);
        assert!(
            r.p50_ns > 0 && r.p50_ns <= r.p90_ns && r.p90_ns <= r.p99_ns && r.p99_ns <= r.max_ns,
            "{imp}: percentiles out of order: {r:?}"
        );
        assert_eq!(r.window_ns, 150_000_000);
    }
}

#[test]
fn idle_connections_are_served_once_then_held() {
    let addr = start("lwp-mn");
    let mut seen = None;
    let n = echo::hold_idle(
        addr,
        50,
        Duration::from_secs(10),
        Duration::from_millis(50),
        |n, err| seen = Some((n, err.map(str::to_string))),
    )
    .unwrap();
    assert_eq!(n, 50);
    assert_eq!(seen, Some((50, None)));
}

#[test]
fn an_unknown_server_is_an_error_not_a_hang() {
    let e = echo::serve_on("nginx", |_| panic!("must not listen")).unwrap_err();
    assert!(e.contains("unknown echo server `nginx`"), "{e}");
}

#[test]
fn every_server_survives_peers_that_hang_up_and_keeps_serving() {
    for imp in IMPLS {
        let addr = start(imp);
        // A peer that connects and leaves at once, and one that sends without ever reading
        // its echo and then leaves (closing with unread data resets the connection).
        drop(TcpStream::connect(addr).unwrap());
        {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&[7u8; 3000]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(round_trip(addr, b"still here"), b"still here", "{imp}");
    }
}
