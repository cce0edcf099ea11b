//! The echo experiment's plumbing never hangs and never leaves a child behind: the load
//! generator bounds connection set-up and its window whatever the server does, and
//! `PeerProcess` times out, kills and reaps.

use benches::echo::{self, LoadSpec, PeerProcess};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

fn spec(addr: SocketAddr, conns: usize, setup_ms: u64) -> LoadSpec {
    LoadSpec {
        addr,
        conns,
        msg: 64,
        warmup: Duration::from_millis(10),
        window: Duration::from_millis(50),
        setup_limit: Duration::from_millis(setup_ms),
        server_pid: None,
    }
}

#[test]
fn nobody_listening_counts_connect_errors() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // closed again: connections are refused
    let t = Instant::now();
    let r = echo::run_client(&spec(addr, 5, 2_000)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(
        (r.conns, r.connect_errors, r.errors, r.requests),
        (0, 5, 5, 0)
    );
    assert!(r.first_error.is_some());
}

#[test]
fn a_server_that_never_answers_is_bounded_by_the_setup_budget() {
    // Accepts (the kernel does, into the backlog) but never reads nor writes.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = Instant::now();
    let r = echo::run_client(&spec(addr, 3, 300)).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(r.conns, 0);
    assert_eq!(r.connect_errors, 3);
    let e = r.first_error.unwrap();
    assert!(e.contains("budget"), "{e}");
    drop(l);
}

#[test]
fn a_server_that_hangs_up_counts_io_errors() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            drop(s); // close at once
        }
    });
    let r = echo::run_client(&spec(addr, 4, 2_000)).unwrap();
    assert_eq!(r.requests, 0);
    assert_eq!(r.errors, 4, "{r:?}");
}

fn gone(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_peer_process_is_killed_and_reaped_when_dropped() {
    let mut c = Command::new("sh");
    c.args(["-c", "echo noise; echo PORT 4242; exec sleep 100"]);
    let mut p = PeerProcess::spawn("test child", c).unwrap();
    assert_eq!(
        p.wait_line("PORT ", Duration::from_secs(5)).unwrap(),
        "4242"
    );
    let pid = p.pid();
    assert!(p.is_running());
    drop(p);
    assert!(gone(pid), "child {pid} outlived its guard");
}

#[test]
fn waiting_for_a_line_times_out() {
    let mut c = Command::new("sh");
    c.args(["-c", "exec sleep 100"]);
    let mut p = PeerProcess::spawn("silent child", c).unwrap();
    let t = Instant::now();
    let e = p
        .wait_line("PORT ", Duration::from_millis(200))
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(e.contains("printed no `PORT ` line"), "{e}");
}

#[test]
fn a_child_that_dies_is_reported_with_its_stderr() {
    let mut c = Command::new("sh");
    c.args(["-c", "echo boom >&2; exit 3"]);
    let mut p = PeerProcess::spawn("dying child", c).unwrap();
    let e = p.wait_line("PORT ", Duration::from_secs(5)).unwrap_err();
    assert!(e.contains("dying child"), "{e}");
    assert!(e.contains("boom"), "{e}");
}

#[test]
fn finishing_a_child_that_runs_too_long_kills_it() {
    let mut c = Command::new("sh");
    c.args(["-c", "echo partial; exec sleep 100"]);
    let p = PeerProcess::spawn("slow child", c).unwrap();
    let pid = p.pid();
    let t = Instant::now();
    let e = p.finish(Duration::from_millis(300)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(e.contains("killed"), "{e}");
    assert!(gone(pid));

    let mut c = Command::new("sh");
    c.args(["-c", "read x; echo got $x"]);
    let mut p = PeerProcess::spawn("echoing child", c).unwrap();
    p.send_line("GO").unwrap();
    let (status, lines) = p.finish(Duration::from_secs(5)).unwrap();
    assert!(status.success());
    assert_eq!(lines, vec!["got GO".to_string()]);
}

#[test]
fn internal_peer_rejects_bad_arguments() {
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(echo::internal_peer(&args(&[])), 2);
    assert_eq!(echo::internal_peer(&args(&["echo-nothing"])), 2);
    assert_eq!(
        echo::internal_peer(&args(&[
            "echo-client",
            "--addr",
            "not-an-address",
            "--conns",
            "1",
            "--window-ms",
            "10"
        ])),
        2
    );
    assert_eq!(
        echo::internal_peer(&args(&[
            "echo-client",
            "--addr",
            "127.0.0.1:9",
            "--conns",
            "0",
            "--window-ms",
            "10"
        ])),
        2,
        "zero connections is refused"
    );
    // An unknown server is a usage error (exit 2), refused before anything listens.
    assert_eq!(
        echo::internal_peer(&args(&["echo-server", "--impl", "nope"])),
        2
    );
}
