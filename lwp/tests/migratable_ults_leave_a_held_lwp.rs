//! Migratable ULTs (`lwp::Builder::migratable`) under many-to-many: their socket I/O works as
//! any ULT's, and while a ULT that never yields holds one LWP, they go on running on the
//! other one, whichever LWP they started on and whichever reactor their socket is in (sysmon
//! polls the held LWP's reactor; the wake-up of a migratable ULT is stealable work).

mod sync_support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lwp::net::TcpStream;
use lwp::{Model, Runtime};

const CLIENTS: usize = 8;
const HOLD: Duration = Duration::from_millis(300);
/// sysmon needs its threshold (10 ms) to see the held LWP; then each of its looks (every
/// 2.5 ms) turns readiness into wake-ups. Rounds are counted only after this margin.
const MARGIN: Duration = Duration::from_millis(60);

/// The name of the kernel thread (LWP) running the caller.
fn lwp_name() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

#[test]
fn migratable_socket_ults_keep_running_while_one_lwp_is_held() {
    sync_support::watchdog_slow("migratable_ults_leave_a_held_lwp", || {
        // An echo peer on plain kernel threads, so its speed does not depend on the LWPs.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });

        let rt = Runtime::builder()
            .model(Model::ManyToMany { lwps: 2 })
            .sysmon_warnings(false)
            .build()
            .unwrap();
        rt.run(move || {
            let stop = Arc::new(AtomicBool::new(false));
            let clients: Vec<_> = (0..CLIENTS)
                .map(|i| {
                    let stop = stop.clone();
                    let b = lwp::Builder::new().name(format!("client-{i}"));
                    // SAFETY: the closure keeps no thread-local reference and no `!Send`
                    // value across a switch (the stream, a counter and a Vec it owns).
                    let b = unsafe { b.migratable() };
                    b.spawn(move || {
                        let mut s = TcpStream::connect(addr).unwrap();
                        s.set_nodelay(true).unwrap();
                        // (when the round trip completed, the LWP it completed on)
                        let mut rounds: Vec<(Instant, String)> = Vec::new();
                        let mut byte = i as u8;
                        while !stop.load(Ordering::Relaxed) {
                            s.write_all(&[byte]).unwrap();
                            let mut back = [0u8; 1];
                            s.read_exact(&mut back).unwrap();
                            assert_eq!(back[0], byte, "client {i}: the echo changed");
                            byte = byte.wrapping_add(1);
                            rounds.push((Instant::now(), lwp_name()));
                        }
                        rounds
                    })
                    .unwrap()
                })
                .collect();
            lwp::sleep(Duration::from_millis(50));
            // A ULT that never yields: it holds whichever LWP runs it for HOLD.
            let held: Arc<Mutex<Option<(Instant, Instant, String)>>> = Arc::default();
            let hog = {
                let held = held.clone();
                lwp::spawn(move || {
                    let start = Instant::now();
                    while start.elapsed() < HOLD {
                        std::hint::spin_loop();
                    }
                    *held.lock().unwrap() = Some((start, Instant::now(), lwp_name()));
                })
            };
            hog.join().unwrap();
            lwp::sleep(Duration::from_millis(30));
            stop.store(true, Ordering::Relaxed);
            let (from, to, held_lwp) = held.lock().unwrap().clone().unwrap();
            for (i, c) in clients.into_iter().enumerate() {
                let rounds = c.join().unwrap();
                let during: Vec<&(Instant, String)> = rounds
                    .iter()
                    .filter(|(at, _)| *at > from + MARGIN && *at < to)
                    .collect();
                assert!(
                    !during.is_empty(),
                    "client {i} made no round trip while {held_lwp} was held \
                     ({} rounds in all, on {:?})",
                    rounds.len(),
                    rounds
                        .iter()
                        .map(|r| &r.1)
                        .collect::<std::collections::BTreeSet<_>>()
                );
                assert!(
                    during.iter().all(|(_, on)| *on != held_lwp),
                    "client {i} completed a round trip on the held LWP {held_lwp}"
                );
            }
        });
    });
}
