//! The `echo` experiment's judgement and bookkeeping, without timing anything (verdicts,
//! machine limits, rows that cannot run), plus one smoke run through the lab binary when
//! the binary forwards `internal-peer echo-*`.

use benches::echo::ClientResult;
use benches::experiments::echo::{self, judge, EchoRow, Limits, Params, Verdict};
use benches::experiments::{Mode, Status};
use indicatif::ProgressBar;
use std::path::Path;
use std::process::Command;

fn result(rps: f64, p99_ns: u64) -> ClientResult {
    ClientResult {
        requested: 100,
        conns: 100,
        requests: rps as u64,
        window_ns: 1_000_000_000,
        p50_ns: p99_ns / 2,
        p90_ns: p99_ns,
        p99_ns,
        p999_ns: p99_ns,
        max_ns: p99_ns,
        ..ClientResult::default()
    }
}

/// The load rows of an empty run, every one moved to 100 connections and marked measured,
/// with no figures yet.
fn measured_rows_at_100() -> Vec<EchoRow> {
    let out = echo::run_with(Mode::Smoke, 1, 1, None, |_| ProgressBar::hidden());
    let mut rows: Vec<EchoRow> = out.rows;
    for r in rows.iter_mut() {
        r.conns = 100;
        r.status = Status::Measured;
    }
    rows
}

/// The load rows of an empty run, with lwp-mn and tokio at 100 connections given
/// (requests/s, p99 ns) per repetition.
fn rows(ours: &[(f64, u64)], tokio: &[(f64, u64)]) -> Vec<EchoRow> {
    let mut rows = measured_rows_at_100();
    for r in rows.iter_mut() {
        let given = match r.server.as_str() {
            "lwp-mn" => ours,
            "tokio" => tokio,
            _ => &[],
        };
        for &(rps, p99) in given {
            r.record(&result(rps, p99));
        }
    }
    rows.retain(|r| r.server == "lwp-mn" || r.server == "tokio");
    rows.truncate(2);
    rows
}

#[test]
fn the_target_needs_both_throughput_and_tail_latency() {
    let r = rows(&[(100_000.0, 900), (110_000.0, 1000)], &[(100_000.0, 1000)]);
    let t = judge(&r, 100);
    assert_eq!(t.verdict, Verdict::Pass, "{t:?}");
    assert!((t.rps_ratio.unwrap() - 1.05).abs() < 1e-9);
    assert!((t.p99_ratio.unwrap() - 0.95).abs() < 1e-9);
    assert_eq!(t.reps_meeting, "1/1", "repetitions are paired by index");
    assert_eq!(
        t.paired_rps_ratios,
        vec![1.0],
        "one pair: 100k against 100k"
    );

    // Faster but with a worse tail: FAIL.
    let t = judge(&rows(&[(200_000.0, 1001)], &[(100_000.0, 1000)]), 100);
    assert_eq!(t.verdict, Verdict::Fail);
    // Better tail but slower: FAIL.
    let t = judge(&rows(&[(99_000.0, 10)], &[(100_000.0, 1000)]), 100);
    assert_eq!(t.verdict, Verdict::Fail);
    assert_eq!(t.reps_meeting, "0/1");
    // Equal is enough.
    let t = judge(&rows(&[(100_000.0, 1000)], &[(100_000.0, 1000)]), 100);
    assert_eq!(t.verdict, Verdict::Pass);
}

#[test]
fn no_verdict_without_both_rows() {
    let mut r = rows(&[(100_000.0, 900)], &[]);
    r[1].finish(); // tokio: no repetition completed
    assert!(matches!(r[1].status, Status::Failed(_)));
    let t = judge(&r, 100);
    assert_eq!(t.verdict, Verdict::Unknown);
    assert!(t.note.unwrap().contains("tokio"));
    assert_eq!(
        judge(&r, 10_000).verdict,
        Verdict::Unknown,
        "no rows at that count"
    );
}

#[test]
fn connection_errors_are_kept_and_noted() {
    let mut r = rows(&[(100_000.0, 900)], &[(90_000.0, 1000)]);
    let mut bad = result(80_000.0, 1000);
    bad.errors = 7;
    bad.first_error = Some("connection set-up ran out of its budget".into());
    r[1].record(&bad);
    let t = judge(&r, 100);
    assert!(t.note.unwrap().contains("tokio"));
    assert_eq!(r[1].problems.len(), 1);
}

#[test]
fn limits_too_small_make_rows_not_applicable() {
    let roomy = Limits {
        nofile_hard: Some(1 << 20),
        ephemeral_ports: Some(28_232),
        threads: Some(100_000),
        max_map_count: Some(65_530),
    };
    assert_eq!(roomy.blocks("lwp-11", 10_000), None);
    assert_eq!(roomy.blocks("tokio", 10_000), None);
    let files = Limits {
        nofile_hard: Some(4096),
        ..roomy.clone()
    };
    assert!(files
        .blocks("tokio", 10_000)
        .unwrap()
        .contains("open files"));
    assert_eq!(files.blocks("tokio", 100), None);
    let ports = Limits {
        ephemeral_ports: Some(10_000),
        ..roomy.clone()
    };
    assert!(ports.blocks("may", 10_000).unwrap().contains("local ports"));
    let threads = Limits {
        threads: Some(8_000),
        ..roomy.clone()
    };
    assert!(threads
        .blocks("lwp-11", 10_000)
        .unwrap()
        .contains("kernel thread"));
    assert_eq!(
        threads.blocks("lwp-mn", 10_000),
        None,
        "only one-to-one needs threads"
    );
    let maps = Limits {
        max_map_count: Some(30_000),
        ..roomy
    };
    assert!(maps
        .blocks("lwp-11", 10_000)
        .unwrap()
        .contains("vm.max_map_count"));
    assert_eq!(maps.blocks("lwp-mn", 10_000), None);
    assert_eq!(
        maps.blocks("tokio", 10_000),
        None,
        "tokio tasks have no stacks"
    );
}

#[test]
fn quick_mode_measures_the_issue_counts() {
    let p = Params::for_mode(Mode::Quick);
    assert_eq!(p.conns, vec![1, 100, 10_000]);
    assert_eq!(p.idle_conns, 10_000);
    assert!(p.warmup_for(10_000) > p.warmup_for(1));
    let full = Params::for_mode(Mode::Full);
    assert!(full.reps > p.reps && full.window > p.window);
}

#[test]
fn outside_the_lab_binary_every_row_is_missing() {
    let out = echo::run_with(Mode::Quick, 3, 3, None, |_| ProgressBar::hidden());
    // Three counts of seven servers, and one idle row per server.
    assert_eq!(out.rows.len(), 21);
    assert!(out
        .rows
        .iter()
        .all(|r| matches!(r.status, Status::Missing(_))));
    assert_eq!(out.idle.len(), 7);
    assert_eq!(out.targets.len(), 2);
    assert!(out.targets.iter().all(|t| t.verdict == Verdict::Unknown));
    let s = &out.section;
    assert_eq!(s.id, "echo");
    assert_eq!(s.tables.len(), 3);
    assert_eq!(s.plots.len(), 3);
    let md = s.tables[1].to_markdown();
    assert!(md.contains("**missing**"), "{md}");
}

fn lab_forwards_echo(lab: &Path) -> bool {
    Command::new(lab)
        .args(["internal-peer", "echo-server", "--impl", "nope"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).contains("invalid value 'nope' for '--impl"))
        .unwrap_or(false)
}

#[test]
fn a_smoke_run_through_the_lab_binary_measures_every_row() {
    let lab = Path::new(env!("CARGO_BIN_EXE_lab"));
    if !lab_forwards_echo(lab) {
        eprintln!(
            "skipped: this lab binary does not forward `internal-peer echo-*` to \
             benches::echo::internal_peer yet"
        );
        return;
    }
    let out = echo::run_with(Mode::Smoke, 1, 2, Some(lab), |_| ProgressBar::hidden());
    for r in &out.rows {
        // The target pair ran its second repetition above 1 connection; the rest ran once.
        let reps = if echo::is_target_row(&r.server, r.conns) {
            2
        } else {
            1
        };
        assert_eq!(r.status, Status::Measured, "{}: {:?}", r.id, r.problems);
        assert_eq!(r.rps.len(), reps, "{} at {}", r.id, r.conns);
        assert!(r.rps.iter().all(|&v| v > 0.0), "{}", r.id);
        assert_eq!(r.errors, vec![0; reps], "{}: {:?}", r.id, r.problems);
        // The client read the server's and its own CPU time at both ends of the window.
        assert_eq!(r.server_cpu_per_req_ns.len(), reps, "{}", r.id);
        assert_eq!(r.client_cpu_share.len(), reps, "{}", r.id);
        // Every echo carried its arrival time, which comes before the load generator read
        // it: the arrival median cannot exceed the end-to-end one (3 significant digits).
        assert_eq!(r.arrival_p99_ns.len(), reps, "{}", r.id);
        for (arrival, e2e) in r.arrival_p50_ns.iter().zip(&r.p50_ns) {
            assert!(
                *arrival <= e2e * 1.002 + 1_000.0,
                "{}: {arrival} > {e2e}",
                r.id
            );
        }
        // The lab looked at the receive queues once per repetition.
        assert_eq!(r.waiting_at_server.len(), reps, "{}", r.id);
    }
    for t in &out.targets {
        assert_eq!(t.reps_meeting.split('/').nth(1), Some("2"), "{}", t.conns);
    }
    for i in &out.idle {
        assert_eq!(i.status, Status::Measured, "{}", i.server);
        assert_eq!(i.opened, vec![64]);
    }
    assert!(out.targets.iter().all(|t| t.verdict != Verdict::Unknown));
}

#[test]
fn each_repetition_changes_the_servers_order_and_who_runs_before_whom() {
    // Two counts, three servers each, in table order.
    let conns = [100, 100, 100, 10_000, 10_000, 10_000];
    assert_eq!(echo::rep_order(&conns, 0), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(echo::rep_order(&conns, 1), vec![0, 2, 1, 3, 5, 4]);
    assert_eq!(echo::rep_order(&conns, 2), vec![2, 0, 1, 5, 3, 4]);
    // Within a count, no server has the same predecessor in all of three repetitions.
    for server in 0..3 {
        let predecessors: std::collections::HashSet<Option<usize>> = (0..3)
            .map(|rep| {
                let o = echo::rep_order(&conns, rep);
                let at = o[..3].iter().position(|&i| i == server).unwrap();
                at.checked_sub(1).map(|p| o[p])
            })
            .collect();
        assert!(predecessors.len() > 1, "server {server}: {predecessors:?}");
    }
    // Every repetition runs every row once.
    for rep in 0..6 {
        let mut o = echo::rep_order(&conns, rep);
        o.sort();
        assert_eq!(o, vec![0, 1, 2, 3, 4, 5]);
    }
    assert!(echo::rep_order(&[], 4).is_empty());
}

#[test]
fn repetitions_past_the_common_ones_run_only_the_target_pair_alternating() {
    let rows = [
        ("lwp-mn", 1),
        ("tokio", 1),
        ("may", 1),
        ("lwp-mn", 100),
        ("tokio", 100),
        ("may", 100),
        ("lwp-mn", 10_000),
        ("tokio", 10_000),
        ("may", 10_000),
    ];
    // The common repetitions are rep_order's, unchanged.
    let conns: Vec<usize> = rows.iter().map(|r| r.1).collect();
    for rep in 0..3 {
        assert_eq!(
            echo::rows_of_rep(&rows, rep, 3),
            echo::rep_order(&conns, rep)
        );
    }
    // After them: lwp-mn and tokio at 100 and 10,000, whoever went first swapping each time.
    assert_eq!(echo::rows_of_rep(&rows, 3, 3), vec![4, 3, 7, 6]);
    assert_eq!(echo::rows_of_rep(&rows, 4, 3), vec![3, 4, 6, 7]);
    assert!(!echo::is_target_row("lwp-mn", 1));
    assert!(!echo::is_target_row("may", 100));
    // Quick mode's verdicts rest on eleven pairs, the other rows on three.
    let p = echo::Params::for_mode(Mode::Quick);
    assert_eq!(
        (p.reps_of("tokio", 10_000), p.reps_of("may", 10_000)),
        (11, 3)
    );
}

#[test]
fn cpu_time_is_read_after_the_command_name() {
    // A command name may hold spaces and parentheses: fields count from its last `)`.
    let line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 3 0 9";
    assert_eq!(benches::echo::parse_stat_cpu_ticks(line), Some(281));
    assert_eq!(benches::echo::parse_stat_cpu_ticks("4242 (a) S 1"), None);
    assert_eq!(benches::echo::parse_stat_cpu_ticks("no parenthesis"), None);
}

#[test]
fn cpu_time_of_a_process_grows_while_it_computes() {
    let me = std::process::id();
    let before = benches::echo::process_cpu_ns(me).expect("/proc/<pid>/stat readable");
    assert_eq!(
        benches::echo::process_cpu_ns(u32::MAX),
        None,
        "no such process"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut x = 0u64;
    loop {
        for i in 0..1_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let now = benches::echo::self_cpu_ns().expect("/proc/self/stat readable");
        if now > before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "5 s of computing left the CPU time at {now} ns"
        );
    }
}

#[test]
fn paired_ratios_show_the_spread_behind_the_median() {
    let r = rows(
        &[(90_000.0, 900), (120_000.0, 900), (100_000.0, 900)],
        &[(100_000.0, 1000), (100_000.0, 1000), (100_000.0, 1000)],
    );
    let t = judge(&r, 100);
    assert_eq!(
        t.verdict,
        Verdict::Pass,
        "median 100k against 100k, p99 lower"
    );
    assert_eq!(t.paired_rps_ratios, vec![0.9, 1.2, 1.0]);
    assert_eq!(t.reps_meeting, "2/3");
    let table = echo::targets_table(&[t]);
    let md = format!("{table:?}");
    assert!(md.contains("0.900x") && md.contains("1.20x"), "{md}");
}

#[test]
fn the_system_part_of_a_process_cpu_time_grows_while_it_makes_system_calls() {
    let me = std::process::id();
    let before = benches::echo::process_cpu_split_ns(me).expect("/proc/<pid>/stat readable");
    assert!(before.system <= before.total, "{before:?}");
    assert_eq!(
        benches::echo::process_cpu_split_ns(u32::MAX),
        None,
        "no such process"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        // Each metadata call is a statx system call: kernel time, charged as system time.
        for _ in 0..10_000 {
            let _ = std::hint::black_box(std::fs::metadata("/"));
        }
        let now = benches::echo::process_cpu_split_ns(me).expect("/proc/<pid>/stat readable");
        assert!(now.system <= now.total, "{now:?}");
        if now.system > before.system {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "5 s of system calls left the system time at {} ns",
            now.system
        );
    }
}

#[test]
fn the_kernel_share_finding_splits_each_server_cpu_per_request() {
    let mut rows = measured_rows_at_100();
    for r in rows.iter_mut() {
        // (server CPU per request, of which system time), ns.
        let (per_request_ns, system_ns) = match r.server.as_str() {
            "event-loop" => (4_000, 3_800),
            "lwp-mn" => (5_000, 4_500),
            "tokio" => (6_000, 5_400),
            _ => continue,
        };
        let mut res = result(100_000.0, 1000);
        res.server_cpu_ns = Some(per_request_ns * res.requests);
        res.server_system_ns = Some(system_ns * res.requests);
        assert_eq!(
            res.server_kernel_share(),
            Some(system_ns as f64 / per_request_ns as f64)
        );
        r.record(&res);
    }
    let f = echo::kernel_share_finding(&rows, 100).expect("three servers with figures");
    assert!(f.contains("event-loop 95% (200 ns in user space)"), "{f}");
    assert!(f.contains("lwp-mn 90% (500 ns in user space)"), "{f}");
    assert!(f.contains("tokio 90% (600 ns in user space)"), "{f}");
    assert!(
        !f.contains("may"),
        "rows without a figure are left out: {f}"
    );
    assert_eq!(
        echo::kernel_share_finding(&rows, 10_000),
        None,
        "no rows there"
    );
    rows.retain(|r| r.server == "tokio");
    assert_eq!(
        echo::kernel_share_finding(&rows, 100),
        None,
        "one server is no comparison"
    );
    let without_split = ClientResult {
        server_cpu_ns: Some(1000),
        ..result(1.0, 1)
    };
    assert_eq!(without_split.server_kernel_share(), None);
}

#[test]
fn the_floor_finding_gives_each_runtime_as_a_multiple_of_the_event_loop() {
    let mut rows = measured_rows_at_100();
    for r in rows.iter_mut() {
        let per_request_ns = match r.server.as_str() {
            "event-loop" => 4_000,
            "lwp-mn" => 5_000,
            "tokio" => 6_000,
            _ => continue,
        };
        let mut res = result(100_000.0, 1000);
        res.server_cpu_ns = Some(per_request_ns * res.requests);
        r.record(&res);
    }
    let f = echo::floor_finding(&rows, 100).expect("an event-loop figure");
    assert!(f.contains("4.00 µs"), "{f}");
    assert!(
        f.contains("lwp-mn 1.25x") && f.contains("tokio 1.50x"),
        "{f}"
    );
    assert!(
        !f.contains("may"),
        "rows without a figure are left out: {f}"
    );
    rows.retain(|r| r.server != "event-loop");
    assert_eq!(
        echo::floor_finding(&rows, 100),
        None,
        "no floor, no finding"
    );
}

#[test]
fn a_split_of_pairs_is_reported_as_resolved_or_as_a_coin_toss() {
    use benches::experiments::echo::paired_finding;
    let resolved = paired_finding(100, &[1.1; 7]).unwrap();
    assert!(resolved.contains("7 of 7 pairs"), "{resolved}");
    assert!(resolved.contains("resolves"), "{resolved}");
    let tie = paired_finding(10_000, &[1.02, 0.98, 1.01, 0.97, 0.95, 1.03, 0.99]).unwrap();
    assert!(tie.contains("3 of 7 pairs"), "{tie}");
    assert!(tie.contains("cannot tell"), "{tie}");
    // Too few pairs to say anything.
    assert!(paired_finding(100, &[1.1; 4]).is_none());
}

#[test]
fn waiting_requests_are_counted_on_the_side_that_has_not_read_them() {
    let text =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0\n\
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000040 00:00000000 00000000     0\n\
   2: 0100007F:1F90 0100007F:C351 01 00000000:00000000 00:00000000 00000000     0\n\
   3: 0100007F:C350 0100007F:1F90 01 00000000:00000040 00:00000000 00000000     0\n\
   4: 0100007F:C352 0100007F:1F90 01 00000000:00000080 00:00000000 00000000     0\n\
   5: 0100007F:C353 0100007F:1F91 01 00000000:00000080 00:00000000 00000000     0\n\
   6: 0100007F:C354 0100007F:1F90 06 00000000:00000080 00:00000000 00000000     0\n\
   7: garbage\n";
    // Port 0x1F90 = 8080: the listener's accept backlog (line 0), other ports (5) and
    // sockets that are not established (6) do not count.
    let w = benches::echo::parse_waiting(text, 8080);
    assert_eq!(
        w,
        benches::echo::Waiting {
            at_server: 1,
            at_client: 2
        }
    );
}

#[test]
fn waiting_on_sees_unread_bytes_of_a_live_loopback_connection() {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("local addr").port();
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut server, _) = l.accept().expect("accept");
    let settled = |want: benches::echo::Waiting| {
        // The bytes cross loopback at once; allow a moment for a busy machine.
        for _ in 0..200 {
            let w = benches::echo::waiting_on(port).expect("/proc/net/tcp readable");
            if w == want {
                return w;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        benches::echo::waiting_on(port).expect("/proc/net/tcp readable")
    };
    let none = benches::echo::Waiting::default();
    assert_eq!(settled(none), none);
    client.write_all(b"request").expect("write");
    let req = benches::echo::Waiting {
        at_server: 1,
        at_client: 0,
    };
    assert_eq!(settled(req), req);
    server.write_all(b"echo").expect("write");
    let both = benches::echo::Waiting {
        at_server: 1,
        at_client: 1,
    };
    assert_eq!(settled(both), both);
}

#[test]
fn the_queue_finding_names_the_side_that_holds_the_requests() {
    let mut rows = rows(&[(100_000.0, 900)], &[(100_000.0, 1000)]);
    assert_eq!(
        echo::queue_finding(&rows, 100),
        None,
        "no samples, no finding"
    );
    let w = |at_server, at_client| benches::echo::Waiting {
        at_server,
        at_client,
    };
    // lwp-mn: 2 + 60 at the server, 98 + 40 at the client (69%); tokio 95%.
    rows[0].record_waiting(&w(2, 98));
    rows[0].record_waiting(&w(60, 40));
    rows[1].record_waiting(&w(5, 95));
    let f = echo::queue_finding(&rows, 100).expect("samples at 100");
    assert!(f.contains("lwp-mn 69%, tokio 95%"), "{f}");
    assert!(f.contains("80% or more (tokio)"), "{f}");
    assert_eq!(echo::queue_finding(&rows, 10_000), None, "another count");
    rows[1].record_waiting(&w(95, 5));
    let f = echo::queue_finding(&rows, 100).expect("samples at 100");
    assert!(f.contains("tokio 50%") && !f.contains("or more"), "{f}");
    for r in rows.iter_mut() {
        r.waiting_at_server.iter_mut().for_each(|v| *v = 0.0);
        r.waiting_at_client.iter_mut().for_each(|v| *v = 0.0);
    }
    assert_eq!(echo::queue_finding(&rows, 100), None, "nothing waiting");
}

#[test]
fn the_arrival_finding_compares_many_to_many_with_tokio() {
    let mut rows = rows(&[(100_000.0, 900)], &[(100_000.0, 1000)]);
    assert_eq!(
        echo::arrival_finding(&rows, 100),
        None,
        "no stamps, no finding"
    );
    rows[0].arrival_p50_ns = vec![40_000.0];
    rows[0].arrival_p99_ns = vec![600_000.0];
    assert_eq!(echo::arrival_finding(&rows, 100), None, "tokio has none");
    rows[1].arrival_p50_ns = vec![90_000.0];
    rows[1].arrival_p99_ns = vec![800_000.0];
    let f = echo::arrival_finding(&rows, 100).expect("both stamped");
    assert!(f.contains("p99 0.750x of tokio's"), "{f}");
    assert_eq!(echo::arrival_finding(&rows, 10_000), None, "another count");
}

#[test]
fn a_stamped_read_returns_the_bytes_and_when_they_arrived() {
    use benches::sys::{enable_rx_timestamps, realtime_ns, recv_stamped};
    use std::io::Write;
    use std::os::fd::AsFd;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut client = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (server, _) = l.accept().expect("accept");
    enable_rx_timestamps(server.as_fd()).expect("SO_TIMESTAMPNS");
    // The first socket to ask turns stamping on for the whole kernel from a work queue, so
    // the first packets after it may go unstamped: try a few round trips.
    let mut buf = [0u8; 64];
    let mut stamped = None;
    for _ in 0..200 {
        let before = realtime_ns();
        client.write_all(b"stamp me").expect("write");
        let (n, stamp) = recv_stamped(server.as_fd(), &mut buf).expect("recvmsg");
        let after = realtime_ns();
        assert_eq!(&buf[..n], b"stamp me");
        if let Some(stamp) = stamp {
            stamped = Some((before, stamp, after));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (before, stamp, after) =
        stamped.expect("loopback packets are stamped once timestamps are on");
    // Same clock; allow a millisecond for a clock step between the reads.
    assert!(
        stamp + 1_000_000 >= before && stamp <= after + 1_000_000,
        "{before} <= {stamp} <= {after}"
    );
    // Without the option there is no stamp, and the read still works.
    let mut client = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (plain, _) = l.accept().expect("accept");
    client.write_all(b"plain").expect("write");
    let (n, stamp) = recv_stamped(plain.as_fd(), &mut buf).expect("recvmsg");
    assert_eq!((&buf[..n], stamp), (&b"plain"[..], None));
}
