//! Socket I/O on ULTs: guards the reactor path (would-block, park, readiness, unpark).
//!
//! - `lwp/tcp_echo_round_trip`: a client ULT and an echo-server ULT on a one-LWP runtime
//!   exchange 64 bytes over loopback; one iteration is write + read on each side, with each
//!   read parking on the reactor.
//! - `std/tcp_echo_round_trip`: the same with std sockets and a kernel thread per side.

use criterion::{criterion_group, criterion_main, Criterion};
use std::io::{Read, Write};
use std::time::Instant;

fn bench(c: &mut Criterion) {
    let rt = lwp::Runtime::new(lwp::Model::ManyToOne).unwrap();
    c.bench_function("lwp/tcp_echo_round_trip", |b| {
        b.iter_custom(|n| {
            rt.run(move || {
                let l = lwp::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                let server = lwp::spawn(move || {
                    let (mut s, _) = l.accept().unwrap();
                    let mut buf = [0u8; 64];
                    while let Ok(()) = s.read_exact(&mut buf) {
                        s.write_all(&buf).unwrap();
                    }
                });
                let mut c = lwp::net::TcpStream::connect(addr).unwrap();
                c.set_nodelay(true).unwrap();
                let mut buf = [7u8; 64];
                let t = Instant::now();
                for _ in 0..n {
                    c.write_all(&buf).unwrap();
                    c.read_exact(&mut buf).unwrap();
                }
                let e = t.elapsed();
                drop(c);
                server.join().unwrap();
                e
            })
        })
    });
    c.bench_function("std/tcp_echo_round_trip", |b| {
        b.iter_custom(|n| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let server = std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 64];
                while let Ok(()) = s.read_exact(&mut buf) {
                    s.write_all(&buf).unwrap();
                }
            });
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_nodelay(true).unwrap();
            let mut buf = [7u8; 64];
            let t = Instant::now();
            for _ in 0..n {
                c.write_all(&buf).unwrap();
                c.read_exact(&mut buf).unwrap();
            }
            let e = t.elapsed();
            drop(c);
            server.join().unwrap();
            e
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
