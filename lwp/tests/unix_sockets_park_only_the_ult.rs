//! `lwp::net::UnixListener` and `UnixStream`: an echo over a Unix domain socket under every
//! model, with more connections than LWPs; pairs, timeouts, EOF, errors and std conversions.

mod sync_support;

use std::io::{ErrorKind, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lwp::net::{UnixListener, UnixStream};
use lwp::{Model, Runtime};
use sync_support::watchdog_slow;

const MODELS: [Model; 3] = [
    Model::ManyToOne,
    Model::OneToOne,
    Model::ManyToMany { lwps: 2 },
];

/// A fresh directory for this test's sockets (removed at the end of the test).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("lwp-unix-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn echo_over_a_unix_socket_under_every_model() {
    watchdog_slow("unix echo", || {
        let dir = TempDir::new("echo");
        for (i, model) in MODELS.into_iter().enumerate() {
            let path = dir.0.join(format!("echo-{i}.sock"));
            let rt = Runtime::new(model).unwrap();
            let total = rt.run(move || {
                let listener = UnixListener::bind(&path).unwrap();
                let server = lwp::spawn(move || {
                    for conn in listener.incoming().take(20) {
                        let mut conn = conn.unwrap();
                        lwp::spawn(move || {
                            let mut buf = [0u8; 64];
                            loop {
                                match conn.read(&mut buf).unwrap() {
                                    0 => break,
                                    n => conn.write_all(&buf[..n]).unwrap(),
                                }
                            }
                        });
                    }
                });
                let clients: Vec<_> = (0..20u8)
                    .map(|c| {
                        let path = path.clone();
                        lwp::spawn(move || {
                            let mut s = UnixStream::connect(&path).unwrap();
                            let mut sum = 0u64;
                            for round in 0..10u8 {
                                s.write_all(&[c, round]).unwrap();
                                let mut back = [0u8; 2];
                                s.read_exact(&mut back).unwrap();
                                assert_eq!(back, [c, round]);
                                sum += u64::from(back[1]);
                            }
                            sum
                        })
                    })
                    .collect();
                let total: u64 = clients.into_iter().map(|h| h.join().unwrap()).sum();
                server.join().unwrap();
                total
            });
            assert_eq!(total, 20 * 45, "{model}");
        }
    });
}

#[test]
fn pairs_time_out_see_eof_and_convert_to_and_from_std() {
    watchdog_slow("unix pair", || {
        let rt = Runtime::new(Model::ManyToMany { lwps: 2 }).unwrap();
        rt.run(|| {
            let (mut a, b) = UnixStream::pair().unwrap();
            b.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            assert_eq!(b.read_timeout().unwrap(), Some(Duration::from_millis(20)));
            let t0 = Instant::now();
            let err = (&b).read(&mut [0u8; 8]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut);
            assert!(t0.elapsed() >= Duration::from_millis(20));
            assert!(
                b.set_read_timeout(Some(Duration::ZERO)).is_err(),
                "0 is refused, as in std"
            );

            a.write_all(b"last words").unwrap();
            a.shutdown(std::net::Shutdown::Write).unwrap();
            let mut got = String::new();
            (&b).read_to_string(&mut got).unwrap();
            assert_eq!(got, "last words", "then EOF");

            // To std and back: the std half blocks its thread, as std does.
            let std_b = b.into_std().unwrap();
            let mut b = UnixStream::from_std(std_b).unwrap();
            let writer = lwp::spawn(move || a.write(b"x").map(|_| a));
            let mut one = [0u8; 1];
            // `a` was shut down for writing: the write fails, and `b` sees EOF.
            assert!(writer.join().unwrap().is_err());
            assert_eq!(b.read(&mut one).unwrap(), 0);
        });
    });
}

#[test]
fn connecting_to_nothing_is_an_error_and_binding_twice_too() {
    let dir = TempDir::new("errors");
    let missing = dir.0.join("nobody-here.sock");
    let rt = Runtime::new(Model::ManyToOne).unwrap();
    let (missing_kind, taken_kind) = rt.run(move || {
        let missing_kind = UnixStream::connect(&missing).unwrap_err().kind();
        let path = missing.with_file_name("taken.sock");
        let _first = UnixListener::bind(&path).unwrap();
        let taken_kind = UnixListener::bind(&path).unwrap_err().kind();
        (missing_kind, taken_kind)
    });
    assert_eq!(missing_kind, ErrorKind::NotFound);
    assert_eq!(taken_kind, ErrorKind::AddrInUse);
}

/// More clients than the listener's backlog (2) holds connect before anyone accepts: the kernel
/// answers `EAGAIN` to the late ones, which then wait in a blocking connect on the blocking
/// pool, and every one of them gets through once the server starts accepting.
#[test]
fn connects_beyond_a_full_backlog_wait_for_room_and_all_get_through() {
    const CLIENTS: usize = 40;
    watchdog_slow("unix backlog", || {
        let dir = TempDir::new("backlog");
        let path = dir.0.join("busy.sock");
        let rt = Runtime::new(Model::ManyToOne).unwrap();
        let accepted = rt.run(move || {
            // A backlog of 2 (std's `bind` asks for the system maximum).
            let socket =
                socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
            socket
                .bind(&socket2::SockAddr::unix(&path).unwrap())
                .unwrap();
            socket.listen(2).unwrap();
            let std_listener: std::os::unix::net::UnixListener =
                std::os::fd::OwnedFd::from(socket).into();
            let listener = UnixListener::from_std(std_listener).unwrap();
            let clients: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let path = path.clone();
                    lwp::spawn(move || UnixStream::connect(&path).map(|mut s| s.write_all(b"!")))
                })
                .collect();
            lwp::sleep(Duration::from_millis(50)); // let them all try before any accept
            let mut accepted = 0;
            for conn in listener.incoming().take(CLIENTS) {
                let mut byte = [0u8; 1];
                conn.unwrap().read_exact(&mut byte).unwrap();
                accepted += 1;
            }
            for c in clients {
                c.join().unwrap().unwrap().unwrap();
            }
            accepted
        });
        assert_eq!(accepted, CLIENTS);
    });
}

#[test]
fn unix_datagrams_wait_for_data_and_for_room_under_every_model() {
    use lwp::net::UnixDatagram;
    watchdog_slow("unix datagrams", || {
        let dir = TempDir::new("dgram");
        for (i, model) in MODELS.into_iter().enumerate() {
            let rt = Runtime::new(model).unwrap();
            let server_path = dir.0.join(format!("server-{i}.sock"));
            let client_path = dir.0.join(format!("client-{i}.sock"));
            rt.run(move || {
                // Addressed datagrams, answered to their sender's address.
                let server = UnixDatagram::bind(&server_path).unwrap();
                let echo = lwp::spawn(move || {
                    let mut buf = [0u8; 64];
                    let (n, from) = server.recv_from(&mut buf).unwrap();
                    let to = from.as_pathname().unwrap().to_path_buf();
                    server.send_to(&buf[..n], to).unwrap();
                    server
                });
                let client = UnixDatagram::bind(&client_path).unwrap();
                client.send_to(b"hello", &server_path).unwrap();
                let mut buf = [0u8; 64];
                let (n, from) = client.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"hello");
                assert_eq!(from.as_pathname(), Some(server_path.as_path()));
                let server = echo.join().unwrap();

                // More datagrams than the receiver's queue holds (10 by default), sent
                // while the receiver sleeps, connected and addressed: each send that finds
                // the queue full parks until the receiver makes room; none is lost.
                let (a, b) = UnixDatagram::pair().unwrap();
                for (sender, receiver, addressed) in [(a, b, false), (client, server, true)] {
                    let to = receiver
                        .local_addr()
                        .unwrap()
                        .as_pathname()
                        .map(|p| p.to_path_buf());
                    let producer = lwp::spawn(move || {
                        for k in 0..50u32 {
                            let bytes = k.to_ne_bytes();
                            match (&to, addressed) {
                                (Some(path), true) => sender.send_to(&bytes, path).unwrap(),
                                _ => sender.send(&bytes).unwrap(),
                            };
                        }
                    });
                    lwp::sleep(Duration::from_millis(20));
                    let mut buf = [0u8; 4];
                    for k in 0..50u32 {
                        assert_eq!(receiver.recv(&mut buf).unwrap(), 4);
                        assert_eq!(u32::from_ne_bytes(buf), k, "{model}, addressed {addressed}");
                    }
                    producer.join().unwrap();
                }

                // A receive with nothing to receive times out.
                let (quiet, _peer) = UnixDatagram::pair().unwrap();
                quiet
                    .set_read_timeout(Some(Duration::from_millis(30)))
                    .unwrap();
                let start = Instant::now();
                assert_eq!(
                    quiet.recv(&mut [0u8; 4]).unwrap_err().kind(),
                    ErrorKind::TimedOut
                );
                assert!(start.elapsed() >= Duration::from_millis(25));
            });
        }
    });
}
