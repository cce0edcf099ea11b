//! Socket I/O on ULTs: guards the reactor path (would-block, park, readiness, unpark).
//!
//! - `lwp/tcp_echo_round_trip`: a client ULT and an echo-server ULT on a one-LWP runtime
//!   exchange 64 bytes over loopback; one iteration is write + read on each side, with each
//!   read parking on the reactor.
//! - `std/tcp_echo_round_trip`: the same with std sockets and a kernel thread per side.
//! - `lwp/pipe_round_trip` and `std/pipe_round_trip`: one byte there and back through two
//!   pipes, between two ULTs on a one-LWP runtime (`lwp::io::pipe`: each read parks its ULT
//!   and the other runs, no kernel switch) and between two kernel threads (std's pipes: each
//!   read blocks its thread, a kernel switch each way, as lmbench's `lat_pipe`).

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

/// One iteration: a byte from the measuring side to the echoing side and back.
fn pipe_round_trips<R: Read, W: Write>(
    n: u64,
    (mut from_echo, mut to_echo): (R, W),
) -> std::time::Duration {
    let mut byte = [1u8];
    let t = Instant::now();
    for _ in 0..n {
        to_echo.write_all(&byte).unwrap();
        from_echo.read_exact(&mut byte).unwrap();
    }
    t.elapsed()
}

/// The echoing side: returns every byte until its input reaches EOF.
fn pipe_echo<R: Read, W: Write>(mut input: R, mut output: W) {
    let mut byte = [0u8];
    while let Ok(()) = input.read_exact(&mut byte) {
        output.write_all(&byte).unwrap();
    }
}

fn bench_pipes(c: &mut Criterion) {
    let rt = lwp::Runtime::new(lwp::Model::ManyToOne).unwrap();
    c.bench_function("lwp/pipe_round_trip", |b| {
        b.iter_custom(|n| {
            rt.run(move || {
                let (echo_in, to_echo) = lwp::io::pipe().unwrap();
                let (from_echo, echo_out) = lwp::io::pipe().unwrap();
                let echo = lwp::spawn(move || pipe_echo(echo_in, echo_out));
                let e = pipe_round_trips(n, (from_echo, to_echo));
                echo.join().unwrap();
                e
            })
        })
    });
    c.bench_function("std/pipe_round_trip", |b| {
        b.iter_custom(|n| {
            let (echo_in, to_echo) = std::io::pipe().unwrap();
            let (from_echo, echo_out) = std::io::pipe().unwrap();
            let echo = std::thread::spawn(move || pipe_echo(echo_in, echo_out));
            let e = pipe_round_trips(n, (from_echo, to_echo));
            echo.join().unwrap();
            e
        })
    });
}

criterion_group!(benches, bench, bench_pipes);
criterion_main!(benches);
