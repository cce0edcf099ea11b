//! Experiment `echo` (issue 4): a TCP echo server over loopback under the three threading
//! models of our runtime, beside tokio and may, at 1, 100 and 10,000 connections; requests
//! per second and latency percentiles, and the server's memory with 10,000 idle connections.
//!
//! The servers and the load generator live in [`crate::echo`]; every run starts two children
//! of the lab binary (`ctx.self_exe`): `lab internal-peer echo-server --impl X` (prints its
//! port) and `lab internal-peer echo-client ...` (a closed loop on one epoll thread, prints a
//! JSON [`ClientResult`]). Per run:
//! 1. start the server, wait for `PORT`, read its RSS;
//! 2. start the client with `--pause-ms`: it opens the connections (each one served one echo,
//!    at most [`crate::echo::RAMP_PENDING`] waiting, so the accept queue never overflows),
//!    prints `READY n` and waits: the server now holds n idle connections, and its RSS,
//!    threads and memory mappings are read (the idle rows come from the largest count);
//! 3. tell the client to go: warm-up, then the measured window; read its JSON, which also
//!    holds the CPU time the server process and the client used during the window (the
//!    client reads `/proc/<pid>/stat` at both ends of it): the table's "server CPU per
//!    request" and "load generator CPU" columns. Where the client is busy most of the window
//!    it is the bottleneck, and the findings say so: requests/s then say how much CPU a
//!    server leaves the client, and CPU per request compares the servers' own cost. Halfway
//!    through the window the lab itself counts the connections whose request waits unread
//!    at the server and those whose echo waits unread at the client (`/proc/net/tcp`,
//!    [`echo::Waiting`]): with one request in flight per connection, that says whose queue
//!    the latency percentiles measure. The CPU share alone cannot: beside a server that
//!    keeps the other CPU busy, a client that holds nearly every request reads as 80% busy;
//!    the read costs the lab about 40 ms of kernel time at 10,000 connections, once per
//!    run;
//! 4. kill both (a [`PeerProcess`] kills and reaps its child when dropped, on every path).
//!
//! Repetitions are interleaved (for rep: for connections: for server), each row's figure is
//! the median over repetitions with min and max. The servers' order changes each repetition
//! ([`rep_order`]), so no server always runs right after the same one: a run
//! inherits whatever the previous one left behind (the one-to-one server's 10,000 kernel
//! threads are torn down by the kernel after it is reaped), and with a fixed order that cost
//! fell on the many-to-many rows every time. The two servers the targets compare then run
//! more repetitions on their own, alternating ([`rows_of_rep`]): on the 2-vCPU machine single
//! pairs at 10,000 connections spread from 0.85x to 1.17x, so a verdict on three pairs was
//! decided by the draw. Rows that cannot run say why: `Missing`
//! outside the lab binary (tests), `NotApplicable` when the open-files hard limit, the
//! ephemeral port range, the thread limit or `vm.max_map_count` is too small for the count,
//! `Failed` when no repetition completed. A run that could not open all its connections
//! within the set-up budget still counts, and its errors column says what happened.
//!
//! The verdict rows judge issue 4's target from this run's medians: under many-to-many, at
//! least tokio's requests/s and no worse p99, at 100 and at 10,000 connections. Beside the
//! median ratio they give the range of the ratios of single repetition pairs (paired by
//! index, so each pair ran minutes apart at most): a range that straddles 1 is a tie, whatever
//! the verdict says.
//!
//! Called by `bin/lab.rs` (`lab echo`); everything else here is pure and tested.

use super::{Ctx, Mode, Model, Status};
use crate::echo::{self, ClientResult, PeerProcess, IMPLS};
use crate::plot::{Bar, HBars, PlotSpec};
use crate::report::{Plot, Section, Table};
use crate::stats::{fmt_bytes, fmt_ns, fmt_ratio, Summary};
use serde::Serialize;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The load generator's CPU share (of one CPU, over the window) from which the findings call
/// it the bottleneck.
const SATURATED_CLIENT: f64 = 0.9;

/// The share of the waiting requests that wait at the load generator (echoes it has not
/// read yet) from which the findings say a server's latency columns measure its queue.
const QUEUE_AT_CLIENT: f64 = 0.8;

/// Parameters of one run of the experiment.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Repetitions of every row.
    pub reps: usize,
    /// Repetitions of the rows the targets compare ([`TARGET_PAIR`] at every count above 1),
    /// at least `reps`: the extra ones run after the others, the pair interleaved. A verdict on
    /// medians of three noisy pairs is decided by chance where the two are close. Quick mode
    /// runs eleven: with seven, four runs of one build on the 2-vCPU development machine split
    /// three verdicts to one at each count while the pooled pairs passed (`lab pool-echo`,
    /// 1.15x and 1.07x tokio's requests/s over 21 pairs); the median of eleven wanders about
    /// a fifth less than the median of seven.
    pub target_reps: usize,
    /// Connection counts, ascending.
    pub conns: Vec<usize>,
    /// Request (and echo) size in bytes.
    pub msg: usize,
    /// Warm-up before the measured window, plus [`Params::warmup_per_conn`] per connection
    /// (the first round of requests on 10,000 connections is a burst, not a steady state).
    pub warmup: Duration,
    /// Extra warm-up per connection.
    pub warmup_per_conn: Duration,
    /// Measured window of every run.
    pub window: Duration,
    /// Budget for opening the connections of one run.
    pub setup_limit: Duration,
    /// The count whose runs also give the idle-connection memory rows (the largest).
    pub idle_conns: usize,
    /// How long to wait for a server to print its port.
    pub server_start: Duration,
}

impl Params {
    /// Defaults of a mode.
    pub fn for_mode(mode: Mode) -> Params {
        match mode {
            Mode::Smoke => Params {
                reps: 1,
                target_reps: 1,
                conns: vec![1, 8, 64],
                msg: 64,
                warmup: Duration::from_millis(20),
                warmup_per_conn: Duration::ZERO,
                window: Duration::from_millis(100),
                setup_limit: Duration::from_secs(5),
                idle_conns: 64,
                server_start: Duration::from_secs(10),
            },
            Mode::Quick => Params {
                reps: 3,
                target_reps: 11,
                conns: vec![1, 100, 10_000],
                msg: 64,
                warmup: Duration::from_millis(200),
                warmup_per_conn: Duration::from_micros(30),
                window: Duration::from_millis(500),
                setup_limit: Duration::from_secs(8),
                idle_conns: 10_000,
                server_start: Duration::from_secs(10),
            },
            Mode::Full => Params {
                reps: 5,
                target_reps: 15,
                conns: vec![1, 100, 10_000],
                msg: 64,
                warmup: Duration::from_millis(500),
                warmup_per_conn: Duration::from_micros(50),
                window: Duration::from_secs(3),
                setup_limit: Duration::from_secs(30),
                idle_conns: 10_000,
                server_start: Duration::from_secs(10),
            },
        }
    }

    /// Repetitions of the row of `server` at `conns` connections.
    pub fn reps_of(&self, server: &str, conns: usize) -> usize {
        if is_target_row(server, conns) {
            self.target_reps.max(self.reps)
        } else {
            self.reps
        }
    }

    /// Warm-up of a run with `conns` connections.
    pub fn warmup_for(&self, conns: usize) -> Duration {
        self.warmup + self.warmup_per_conn * conns.min(1_000_000) as u32
    }
}

/// The server implementations in table order: id, label, colour group.
pub fn servers(cores: usize) -> Vec<(&'static str, String, Model)> {
    IMPLS
        .iter()
        .map(|&id| {
            let (label, model) = match id {
                "lwp-m1" => ("lwp many-to-one: ULTs on 1 LWP".to_string(), Model::Ult),
                "lwp-11" => (
                    "lwp one-to-one: a kernel thread per connection".to_string(),
                    Model::KernelThread,
                ),
                "lwp-mn" => (
                    format!("lwp many-to-many: ULTs on {cores} LWPs, migratable"),
                    Model::Ult,
                ),
                "lwp-mn-home" => (
                    format!("lwp many-to-many: ULTs on {cores} LWPs, stay on their first"),
                    Model::Ult,
                ),
                "tokio" => (
                    format!("tokio multi-thread, {cores} workers, async tasks"),
                    Model::Peer,
                ),
                "may" => (format!("may, {cores} workers, coroutines"), Model::Peer),
                _ => (
                    "event loop, 1 thread, epoll via mio (finite-state machine)".to_string(),
                    Model::Peer,
                ),
            };
            (id, label, model)
        })
        .collect()
}

/// One (server, connection count) row.
#[derive(Debug, Clone, Serialize)]
pub struct EchoRow {
    /// `server/conns`, e.g. `lwp-mn/100`.
    pub id: String,
    /// Server implementation id (`lwp-mn`, `tokio`...).
    pub server: String,
    /// Label in tables and plots.
    pub label: String,
    /// Colour group.
    pub model: Model,
    /// Connections asked for.
    pub conns: usize,
    /// Whether it was measured.
    pub status: Status,
    /// Requests per second, per completed repetition.
    pub rps: Vec<f64>,
    /// Median latency (ns), per completed repetition.
    pub p50_ns: Vec<f64>,
    /// 99th-percentile latency (ns), per completed repetition.
    pub p99_ns: Vec<f64>,
    /// Largest latency (ns), per completed repetition.
    pub max_ns: Vec<f64>,
    /// Connection set-up time (ns), per completed repetition.
    pub setup_ns: Vec<f64>,
    /// Connections lost or never opened, per completed repetition.
    pub errors: Vec<u64>,
    /// Connections that were open, per completed repetition.
    pub opened: Vec<usize>,
    /// Server CPU time per request (ns), per completed repetition that could read it.
    pub server_cpu_per_req_ns: Vec<f64>,
    /// The kernel's share of the server's CPU time ([`ClientResult::server_kernel_share`]),
    /// per completed repetition that could read it.
    pub server_kernel_share: Vec<f64>,
    /// The load generator's CPU time over the window (1.0 = one CPU throughout), per
    /// completed repetition that could read it.
    pub client_cpu_share: Vec<f64>,
    /// Median time from a request's send to its echo's arrival in the load generator's
    /// kernel (receive timestamps, [`ClientResult::arrival_p50_ns`]), per repetition that
    /// had stamps.
    pub arrival_p50_ns: Vec<f64>,
    /// 99th percentile of the same, per repetition that had stamps.
    pub arrival_p99_ns: Vec<f64>,
    /// Connections whose request waited unread at the server, mid-window, per repetition
    /// that could read `/proc/net/tcp` ([`echo::Waiting`]).
    pub waiting_at_server: Vec<f64>,
    /// Connections whose echo waited unread at the load generator, at the same instants.
    pub waiting_at_client: Vec<f64>,
    /// What went wrong in repetitions (deduplicated, first few).
    pub problems: Vec<String>,
    /// Repetitions that failed outright.
    pub failed_reps: usize,
}

impl EchoRow {
    fn new(server: &str, label: &str, model: Model, conns: usize) -> EchoRow {
        EchoRow {
            id: format!("{server}/{conns}"),
            server: server.to_string(),
            label: label.to_string(),
            model,
            conns,
            status: Status::Measured,
            rps: Vec::new(),
            p50_ns: Vec::new(),
            p99_ns: Vec::new(),
            max_ns: Vec::new(),
            setup_ns: Vec::new(),
            errors: Vec::new(),
            opened: Vec::new(),
            server_cpu_per_req_ns: Vec::new(),
            server_kernel_share: Vec::new(),
            client_cpu_share: Vec::new(),
            arrival_p50_ns: Vec::new(),
            arrival_p99_ns: Vec::new(),
            waiting_at_server: Vec::new(),
            waiting_at_client: Vec::new(),
            problems: Vec::new(),
            failed_reps: 0,
        }
    }

    /// Requests/s over repetitions, when measured.
    pub fn rps_summary(&self) -> Option<Summary> {
        self.measured().then(|| Summary::of(&self.rps)).flatten()
    }

    /// p99 latency over repetitions, when measured.
    pub fn p99_summary(&self) -> Option<Summary> {
        self.measured().then(|| Summary::of(&self.p99_ns)).flatten()
    }

    /// p50 latency over repetitions, when measured.
    pub fn p50_summary(&self) -> Option<Summary> {
        self.measured().then(|| Summary::of(&self.p50_ns)).flatten()
    }

    fn measured(&self) -> bool {
        self.status == Status::Measured
    }

    fn problem(&mut self, what: String) {
        if self.problems.len() < 4 && !self.problems.contains(&what) {
            self.problems.push(what);
        }
    }

    /// Records a completed repetition.
    pub fn record(&mut self, r: &ClientResult) {
        self.rps.push(r.rps());
        self.p50_ns.push(r.p50_ns as f64);
        self.p99_ns.push(r.p99_ns as f64);
        self.max_ns.push(r.max_ns as f64);
        self.setup_ns.push(r.setup_ns as f64);
        self.errors.push(r.errors);
        self.opened.push(r.conns);
        self.server_cpu_per_req_ns
            .extend(r.server_cpu_per_request_ns());
        self.server_kernel_share.extend(r.server_kernel_share());
        self.client_cpu_share.extend(r.client_cpu_share());
        self.arrival_p50_ns
            .extend(r.arrival_p50_ns.map(|v| v as f64));
        self.arrival_p99_ns
            .extend(r.arrival_p99_ns.map(|v| v as f64));
        if let Some(e) = &r.first_error {
            self.problem(e.clone());
        }
    }

    /// Records where a completed repetition's requests waited mid-window.
    pub fn record_waiting(&mut self, w: &echo::Waiting) {
        self.waiting_at_server.push(w.at_server as f64);
        self.waiting_at_client.push(w.at_client as f64);
    }

    /// Records a repetition that failed outright.
    pub fn record_failure(&mut self, why: String) {
        self.failed_reps += 1;
        self.problem(why);
    }

    /// After the last repetition: `Failed` if none completed.
    pub fn finish(&mut self) {
        if self.measured() && self.rps.is_empty() {
            let why = self
                .problems
                .first()
                .cloned()
                .unwrap_or_else(|| "no repetition completed".into());
            self.status = Status::Failed(why);
        }
    }
}

/// Server memory with idle connections, from the runs of [`Params::idle_conns`].
#[derive(Debug, Clone, Serialize)]
pub struct IdleRow {
    /// Server id.
    pub server: String,
    /// Label.
    pub label: String,
    /// Colour group.
    pub model: Model,
    /// Connections asked for.
    pub conns: usize,
    /// Whether it was measured.
    pub status: Status,
    /// Server RSS (bytes) once listening, before any connection, per repetition.
    pub rss_before: Vec<f64>,
    /// Server RSS (bytes) while holding the idle connections, per repetition.
    pub rss_holding: Vec<f64>,
    /// (holding - before) / connections open, per repetition.
    pub per_conn: Vec<f64>,
    /// Connections open, per repetition.
    pub opened: Vec<usize>,
    /// Server threads while holding, per repetition.
    pub threads: Vec<f64>,
    /// Server memory mappings while holding, per repetition.
    pub mappings: Vec<f64>,
}

impl IdleRow {
    /// Bytes per idle connection over repetitions, when measured.
    pub fn per_conn_summary(&self) -> Option<Summary> {
        (self.status == Status::Measured)
            .then(|| Summary::of(&self.per_conn))
            .flatten()
    }
}

pub use super::Verdict;

/// Issue 4's target at one connection count: many-to-many vs tokio.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRow {
    /// Connections.
    pub conns: usize,
    /// Medians of lwp-mn: (requests/s, p99 ns).
    pub ours: Option<(f64, f64)>,
    /// Medians of tokio: (requests/s, p99 ns).
    pub tokio: Option<(f64, f64)>,
    /// ours / tokio requests/s (target: >= 1).
    pub rps_ratio: Option<f64>,
    /// ours / tokio p99 (target: <= 1).
    pub p99_ratio: Option<f64>,
    /// The verdict at the medians.
    pub verdict: Verdict,
    /// Repetitions (paired by index) that met both halves, e.g. `2/3`.
    pub reps_meeting: String,
    /// ours / tokio requests/s of each repetition pair (paired by index): their spread says
    /// whether the median ratio is a lead or a tie.
    pub paired_rps_ratios: Vec<f64>,
    /// Why no verdict, or a caveat (errors in a row).
    pub note: Option<String>,
}

/// The order in which repetition `rep` runs the rows, given each row's connection count in
/// table order (grouped by count): count by count as in the table, and within a count the
/// servers rotated left by `rep`, reversed on odd repetitions (a rotation alone keeps every
/// server's predecessor; the reversal changes it).
pub fn rep_order(conns: &[usize], rep: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(conns.len());
    let mut start = 0;
    while start < conns.len() {
        let end = start
            + conns[start..]
                .iter()
                .take_while(|&&c| c == conns[start])
                .count();
        let len = end - start;
        let group = (0..len).map(|k| start + (k + rep) % len);
        if rep % 2 == 1 {
            order.extend(group.rev());
        } else {
            order.extend(group);
        }
        start = end;
    }
    order
}

/// The servers that issue 4's targets compare: ours (many-to-many), then tokio.
pub const TARGET_PAIR: [&str; 2] = ["lwp-mn", "tokio"];

/// Whether a row of `server` at `conns` connections is one that a target compares.
pub fn is_target_row(server: &str, conns: usize) -> bool {
    conns > 1 && TARGET_PAIR.contains(&server)
}

/// The rows repetition `rep` runs, in order, given each row's (server, connections) in table
/// order: every row (in [`rep_order`]) while `rep < reps`, after that only the target rows
/// ([`is_target_row`]), count by count, the pair's order swapping every repetition
/// ([`rep_order`]'s rotation and reversal cancel out for a group of two).
pub fn rows_of_rep(rows: &[(&str, usize)], rep: usize, reps: usize) -> Vec<usize> {
    if rep < reps {
        let conns: Vec<usize> = rows.iter().map(|r| r.1).collect();
        return rep_order(&conns, rep);
    }
    let targets: Vec<usize> = (0..rows.len())
        .filter(|&i| is_target_row(rows[i].0, rows[i].1))
        .collect();
    let mut order = Vec::with_capacity(targets.len());
    for group in targets.chunk_by(|&a, &b| rows[a].1 == rows[b].1) {
        if rep % 2 == 1 {
            order.extend(group.iter().rev());
        } else {
            order.extend(group);
        }
    }
    order
}

/// Judges the target at `conns` from the rows: PASS when lwp-mn's median requests/s is at
/// least tokio's and its median p99 at most tokio's.
pub fn judge(rows: &[EchoRow], conns: usize) -> TargetRow {
    let get = |server: &str| rows.iter().find(|r| r.server == server && r.conns == conns);
    let ours_row = get(TARGET_PAIR[0]);
    let tokio_row = get(TARGET_PAIR[1]);
    let med = |r: Option<&EchoRow>| {
        r.and_then(|r| Some((r.rps_summary()?.median, r.p99_summary()?.median)))
    };
    let (ours, tokio) = (med(ours_row), med(tokio_row));
    let mut note = None;
    let (rps_ratio, p99_ratio, verdict) = match (ours, tokio) {
        (Some((orps, op99)), Some((trps, tp99))) if trps > 0.0 && tp99 > 0.0 => {
            let (a, b) = (orps / trps, op99 / tp99);
            let v = if a >= 1.0 && b <= 1.0 {
                Verdict::Pass
            } else {
                Verdict::Fail
            };
            (Some(a), Some(b), v)
        }
        (Some(_), Some(_)) => {
            note = Some("tokio's figures are zero: no ratio".into());
            (None, None, Verdict::Unknown)
        }
        _ => {
            note = Some(
                [("lwp-mn", ours_row), ("tokio", tokio_row)]
                    .iter()
                    .filter(|(_, r)| med(*r).is_none())
                    .map(|(name, r)| match r {
                        Some(r) => format!("{name}: {}", r.status.text()),
                        None => format!("{name}: no row"),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            (None, None, Verdict::Unknown)
        }
    };
    let (reps_meeting, paired_rps_ratios) = match (ours_row, tokio_row) {
        (Some(o), Some(t)) if ours.is_some() && tokio.is_some() => {
            let n = o.rps.len().min(t.rps.len());
            let met = (0..n)
                .filter(|&i| o.rps[i] >= t.rps[i] && o.p99_ns[i] <= t.p99_ns[i])
                .count();
            let ratios = (0..n)
                .filter(|&i| t.rps[i] > 0.0)
                .map(|i| o.rps[i] / t.rps[i])
                .collect();
            (format!("{met}/{n}"), ratios)
        }
        _ => ("-".into(), Vec::new()),
    };
    let errs = [ours_row, tokio_row]
        .iter()
        .flatten()
        .filter(|r| r.errors.iter().any(|&e| e > 0))
        .map(|r| r.server.clone())
        .collect::<Vec<_>>();
    if !errs.is_empty() && note.is_none() {
        note = Some(format!(
            "{} lost or could not open connections in some repetitions",
            errs.join(" and ")
        ));
    }
    TargetRow {
        conns,
        ours,
        tokio,
        rps_ratio,
        p99_ratio,
        verdict,
        paired_rps_ratios,
        reps_meeting,
        note,
    }
}

/// What `echo` measured.
pub struct Outcome {
    /// The load rows, in table order (by connections, then server).
    pub rows: Vec<EchoRow>,
    /// The idle-connection memory rows, one per server.
    pub idle: Vec<IdleRow>,
    /// Issue 4's target at each connection count above 1.
    pub targets: Vec<TargetRow>,
    /// The report section.
    pub section: Section,
}

/// Limits of this machine that decide whether a connection count can run.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// Hard RLIMIT_NOFILE (each child raises its soft limit to it).
    pub nofile_hard: Option<u64>,
    /// Size of the ephemeral port range.
    pub ephemeral_ports: Option<u64>,
    /// min(RLIMIT_NPROC, kernel.threads-max).
    pub threads: Option<u64>,
    /// vm.max_map_count.
    pub max_map_count: Option<u64>,
}

impl Limits {
    /// Reads the limits of this process and machine.
    pub fn read() -> Limits {
        let read_u64 = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        let mut nproc = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass, which lives for the call.
        let nproc = (unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut nproc) } == 0)
            .then_some(nproc.rlim_cur);
        let threads_max = read_u64("/proc/sys/kernel/threads-max");
        Limits {
            nofile_hard: echo::nofile_limits().ok().map(|(_, h)| h),
            ephemeral_ports: echo::ephemeral_ports(),
            threads: match (nproc, threads_max) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            max_map_count: read_u64("/proc/sys/vm/max_map_count"),
        }
    }

    /// Why `server` cannot run with `conns` connections here, if it cannot. Each process
    /// (server, client) needs `conns` descriptors plus slack; the client needs a local port
    /// per connection; one-to-one needs a kernel thread per connection; every live ULT or
    /// may coroutine stack takes two memory mappings (one-to-one: four, its thread's stack
    /// too).
    pub fn blocks(&self, server: &str, conns: usize) -> Option<String> {
        let n = conns as u64;
        if let Some(h) = self.nofile_hard {
            if h < n + 256 {
                return Some(format!(
                    "{conns} connections need about {} open files per process, the hard limit \
                     (ulimit -Hn) is {h}",
                    n + 256
                ));
            }
        }
        if let Some(p) = self.ephemeral_ports {
            if p < n + 1024 {
                return Some(format!(
                    "{conns} connections need as many local ports, net.ipv4.ip_local_port_range \
                     holds {p}"
                ));
            }
        }
        if server == "lwp-11" {
            if let Some(t) = self.threads {
                if t < n + 1024 {
                    return Some(format!(
                        "one-to-one needs a kernel thread per connection ({conns}); the thread \
                         limit (min of ulimit -u and kernel.threads-max) is {t}"
                    ));
                }
            }
        }
        let maps_per = if server == "lwp-11" { 4 } else { 2 };
        if let Some(m) = self.max_map_count {
            if server != "tokio" && m < maps_per * n + 4096 {
                return Some(format!(
                    "{conns} stacks need about {} memory mappings, vm.max_map_count is {m}",
                    maps_per * n + 4096
                ));
            }
        }
        None
    }
}

/// What one run produced.
struct RunOut {
    client: ClientResult,
    rss_before: Option<u64>,
    rss_holding: Option<u64>,
    threads_holding: Option<u64>,
    mappings_holding: Option<u64>,
    waiting: Option<echo::Waiting>,
}

fn child(exe: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(exe);
    c.arg("internal-peer")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("LWP_SYSMON_QUIET", "1");
    c
}

/// One run: a fresh server, a client with `conns` connections; both killed on return.
fn run_one(exe: &Path, server: &str, conns: usize, p: &Params) -> Result<RunOut, String> {
    let mut srv = PeerProcess::spawn(
        &format!("the {server} echo server"),
        child(exe, &["echo-server", "--impl", server]),
    )?;
    let port: u16 = {
        let line = srv.wait_line("PORT ", p.server_start)?;
        line.parse()
            .map_err(|_| format!("the {server} echo server printed a bad port: {line:?}"))?
    };
    let pid = srv.pid();
    let idle_run = conns == p.idle_conns;
    if idle_run {
        // Let the runtime finish starting (its threads' first pages) before the baseline.
        std::thread::sleep(Duration::from_millis(50));
    }
    let rss_before = echo::rss_of(pid);
    let warmup = p.warmup_for(conns);
    let pause = p.setup_limit + Duration::from_secs(10);
    let addr = format!("127.0.0.1:{port}");
    let args = [
        "echo-client".to_string(),
        "--addr".into(),
        addr,
        "--conns".into(),
        conns.to_string(),
        "--msg".into(),
        p.msg.to_string(),
        "--warmup-ms".into(),
        warmup.as_millis().to_string(),
        "--window-ms".into(),
        p.window.as_millis().max(1).to_string(),
        "--setup-ms".into(),
        p.setup_limit.as_millis().to_string(),
        "--pause-ms".into(),
        pause.as_millis().to_string(),
        "--server-pid".into(),
        pid.to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cli = PeerProcess::spawn("the echo load generator", child(exe, &args))?;
    // Wait for the connections: the client has its own set-up budget, so this only guards
    // against a client that hangs.
    cli.wait_line("READY ", p.setup_limit + Duration::from_secs(10))?;
    if idle_run {
        // Every connection has had its echo; let the last tasks park.
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss_holding = echo::rss_of(pid);
    let threads_holding = echo::threads_of(pid);
    let mappings_holding = echo::mappings_of(pid);
    cli.send_line("GO")?;
    // Halfway through the window, see which side holds the requests in flight.
    std::thread::sleep(warmup + p.window / 2);
    let waiting = echo::waiting_on(port).ok();
    let (status, lines) = cli.finish(p.window / 2 + Duration::from_secs(15))?;
    if !status.success() {
        return Err(format!("the echo load generator exited with {status}"));
    }
    let json = lines
        .iter()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| "the echo load generator printed no result".to_string())?;
    let client: ClientResult = serde_json::from_str(json)
        .map_err(|e| format!("bad result from the echo load generator ({e})"))?;
    if !srv.is_running() {
        return Err(format!(
            "the {server} echo server died during the run: {}",
            srv.stderr_tail()
        ));
    }
    Ok(RunOut {
        client,
        rss_before,
        rss_holding,
        threads_holding,
        mappings_holding,
        waiting,
    })
}

/// Runs the experiment. `--reps N` sets every row's repetitions, the target pair's included.
pub fn run(ctx: &Ctx) -> Outcome {
    let defaults = Params::for_mode(ctx.mode);
    let (reps, target_reps) = match ctx.reps_override {
        Some(n) => (n, n),
        None => (defaults.reps, defaults.target_reps),
    };
    run_with(ctx.mode, reps, target_reps, ctx.self_exe.as_deref(), |n| {
        ctx.bar("echo", n)
    })
}

/// Runs the experiment in `mode` with `reps` repetitions of every row and `target_reps` (at
/// least `reps`) of the target pair's rows, re-executing `exe` (the lab binary) for the
/// servers and the load generator; without it every row is `Missing`. `bar(n)` makes the
/// progress bar for n runs.
pub fn run_with(
    mode: Mode,
    reps: usize,
    target_reps: usize,
    exe: Option<&Path>,
    bar: impl FnOnce(u64) -> indicatif::ProgressBar,
) -> Outcome {
    let mut p = Params::for_mode(mode);
    p.reps = reps.max(1);
    p.target_reps = target_reps.max(p.reps);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let limits = Limits::read();
    let t0 = Instant::now();
    let mut rows = Vec::new();
    for &c in &p.conns {
        for (id, label, model) in servers(cores) {
            let mut r = EchoRow::new(id, &label, model, c);
            if exe.is_none() {
                r.status = Status::Missing(
                    "not running inside the lab binary (servers and load generator run as \
                     `lab internal-peer` children)"
                        .into(),
                );
            } else if let Some(why) = limits.blocks(id, c) {
                r.status = Status::NotApplicable(why);
            }
            rows.push(r);
        }
    }
    let mut idle: Vec<IdleRow> = servers(cores)
        .into_iter()
        .map(|(id, label, model)| IdleRow {
            server: id.to_string(),
            label,
            model,
            conns: p.idle_conns,
            status: rows
                .iter()
                .find(|r| r.server == id && r.conns == p.idle_conns)
                .map(|r| r.status.clone())
                .unwrap_or_else(|| Status::NotApplicable("no run at this count".into())),
            rss_before: Vec::new(),
            rss_holding: Vec::new(),
            per_conn: Vec::new(),
            opened: Vec::new(),
            threads: Vec::new(),
            mappings: Vec::new(),
        })
        .collect();
    let runs: usize = rows
        .iter()
        .filter(|r| r.measured())
        .map(|r| p.reps_of(&r.server, r.conns))
        .sum();
    let pb = bar(runs as u64);
    if let Some(exe) = exe {
        for rep in 0..p.target_reps {
            let keys: Vec<(&str, usize)> =
                rows.iter().map(|r| (r.server.as_str(), r.conns)).collect();
            let order = rows_of_rep(&keys, rep, p.reps);
            for i in order {
                let row = &mut rows[i];
                if !row.measured() {
                    continue;
                }
                let (server, conns) = (row.server.clone(), row.conns);
                // A row that failed outright twice is not retried: it would only burn time.
                if row.failed_reps >= 2 {
                    pb.inc(1);
                    continue;
                }
                pb.set_message(format!(
                    "rep {}/{}: {server}, {conns} conns",
                    rep + 1,
                    p.reps_of(&server, conns)
                ));
                match run_one(exe, &server, conns, &p) {
                    Ok(out) => {
                        row.record(&out.client);
                        if let Some(w) = &out.waiting {
                            row.record_waiting(w);
                        }
                        // The idle rows keep one sample per common repetition.
                        if conns == p.idle_conns && rep < p.reps {
                            if let Some(ir) = idle.iter_mut().find(|r| r.server == server) {
                                if let (Some(b), Some(h)) = (out.rss_before, out.rss_holding) {
                                    ir.rss_before.push(b as f64);
                                    ir.rss_holding.push(h as f64);
                                    ir.opened.push(out.client.conns);
                                    ir.per_conn.push(
                                        (h as f64 - b as f64) / out.client.conns.max(1) as f64,
                                    );
                                    if let Some(t) = out.threads_holding {
                                        ir.threads.push(t as f64);
                                    }
                                    if let Some(m) = out.mappings_holding {
                                        ir.mappings.push(m as f64);
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => row.record_failure(e),
                }
                pb.inc(1);
            }
        }
    }
    pb.finish_and_clear();
    for r in rows.iter_mut() {
        r.finish();
    }
    for ir in idle.iter_mut() {
        if ir.status == Status::Measured && ir.per_conn.is_empty() {
            ir.status = rows
                .iter()
                .find(|r| r.server == ir.server && r.conns == ir.conns)
                .map(|r| match &r.status {
                    Status::Measured => Status::Failed("the server's RSS could not be read".into()),
                    s => s.clone(),
                })
                .unwrap_or_else(|| Status::Failed("no run".into()));
        }
    }
    let targets: Vec<TargetRow> = p
        .conns
        .iter()
        .filter(|&&c| c > 1)
        .map(|&c| judge(&rows, c))
        .collect();
    let wall = t0.elapsed();
    let section = section(mode, &p, cores, &limits, &rows, &idle, &targets, wall);
    Outcome {
        rows,
        idle,
        targets,
        section,
    }
}

/// Formats requests per second: `812`, `45.3k`, `1.23M`.
pub fn fmt_rps(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v >= 1e6 {
        format!("{}M", crate::stats::sig3(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", crate::stats::sig3(v / 1e3))
    } else {
        format!("{v:.0}")
    }
}

fn range(s: &Summary, f: impl Fn(f64) -> String) -> String {
    format!("{} ({} - {})", f(s.median), f(s.min), f(s.max))
}

/// The target table.
pub fn targets_table(targets: &[TargetRow]) -> Table {
    let mut t = Table::new(&[
        "issue 4 target (many-to-many vs tokio)",
        "lwp-mn req/s, p99",
        "tokio req/s, p99",
        "req/s ratio (>= 1): medians (pairs min - max)",
        "p99 ratio (<= 1)",
        "verdict",
        "repetitions meeting it",
        "note",
    ])
    .caption("Targets, judged on this run's medians");
    let pair = |x: Option<(f64, f64)>| {
        x.map(|(r, l)| format!("{} req/s, {}", fmt_rps(r), fmt_ns(l)))
            .unwrap_or_else(|| "n/a".into())
    };
    let ratio = |x: Option<f64>| x.map(fmt_ratio).unwrap_or_else(|| "n/a".into());
    for r in targets {
        t.row(vec![
            format!(
                "{} connections: at least tokio's requests/s, no worse p99",
                r.conns
            ),
            pair(r.ours),
            pair(r.tokio),
            match (r.rps_ratio, Summary::of(&r.paired_rps_ratios)) {
                (Some(m), Some(p)) if p.n > 1 => {
                    format!(
                        "{} ({} - {})",
                        fmt_ratio(m),
                        fmt_ratio(p.min),
                        fmt_ratio(p.max)
                    )
                }
                (m, _) => ratio(m),
            },
            ratio(r.p99_ratio),
            format!("**{}**", r.verdict.word()),
            r.reps_meeting.clone(),
            r.note.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t
}

#[allow(clippy::too_many_arguments)]
fn section(
    mode: Mode,
    p: &Params,
    cores: usize,
    limits: &Limits,
    rows: &[EchoRow],
    idle: &[IdleRow],
    targets: &[TargetRow],
    wall: Duration,
) -> Section {
    let mut t = Table::new(&[
        "server",
        "connections",
        "requests/s: median (min - max)",
        "p50 latency",
        "p99 latency: median (min - max)",
        "max latency",
        "to the echo's arrival: p50, p99",
        "vs tokio req/s",
        "server CPU per request",
        "load generator CPU",
        "requests waiting mid-window: at server / at load generator",
        "connection set-up",
        "errors",
        "reps",
    ]);
    let mut rps_bars = Vec::new();
    let mut p99_bars = Vec::new();
    for r in rows {
        let tokio = rows
            .iter()
            .find(|x| x.server == "tokio" && x.conns == r.conns)
            .and_then(EchoRow::rps_summary);
        let label = format!("{} ({})", r.server, r.conns);
        match (r.rps_summary(), r.p99_summary(), r.p50_summary()) {
            (Some(rps), Some(p99), Some(p50)) => {
                let errors: u64 = r.errors.iter().sum();
                let err_cell = if errors == 0 && r.failed_reps == 0 {
                    "0".to_string()
                } else {
                    let mut parts = Vec::new();
                    if errors > 0 {
                        parts.push(format!(
                            "{errors} connections lost or not opened over {} reps (open: {})",
                            r.errors.len(),
                            r.opened
                                .iter()
                                .map(|o| o.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    if r.failed_reps > 0 {
                        parts.push(format!("{} reps failed", r.failed_reps));
                    }
                    if let Some(first) = r.problems.first() {
                        parts.push(format!("first: {first}"));
                    }
                    parts.join("; ")
                };
                let max = Summary::of(&r.max_ns).map(|s| fmt_ns(s.median));
                let setup = Summary::of(&r.setup_ns).map(|s| fmt_ns(s.median));
                t.row(vec![
                    r.label.clone(),
                    r.conns.to_string(),
                    range(&rps, fmt_rps),
                    fmt_ns(p50.median),
                    range(&p99, fmt_ns),
                    max.unwrap_or_else(|| "n/a".into()),
                    match (
                        Summary::of(&r.arrival_p50_ns),
                        Summary::of(&r.arrival_p99_ns),
                    ) {
                        (Some(a), Some(b)) => {
                            format!("{}, {}", fmt_ns(a.median), fmt_ns(b.median))
                        }
                        _ => "n/a".into(),
                    },
                    tokio
                        .filter(|t| t.median > 0.0)
                        .map(|t| fmt_ratio(rps.median / t.median))
                        .unwrap_or_else(|| "n/a".into()),
                    Summary::of(&r.server_cpu_per_req_ns)
                        .map(|s| fmt_ns(s.median))
                        .unwrap_or_else(|| "n/a".into()),
                    Summary::of(&r.client_cpu_share)
                        .map(|s| format!("{:.0}%", s.median * 100.0))
                        .unwrap_or_else(|| "n/a".into()),
                    match (
                        Summary::of(&r.waiting_at_server),
                        Summary::of(&r.waiting_at_client),
                    ) {
                        (Some(a), Some(b)) => format!("{:.0} / {:.0}", a.median, b.median),
                        _ => "n/a".into(),
                    },
                    setup.unwrap_or_else(|| "n/a".into()),
                    err_cell,
                    format!("{}", rps.n),
                ]);
                rps_bars.push(Bar {
                    label: label.clone(),
                    value: 1e9 / rps.median,
                    min: 1e9 / rps.max,
                    max: 1e9 / rps.min,
                    group: r.model.group(),
                    text: format!("{} req/s", fmt_rps(rps.median)),
                });
                p99_bars.push(Bar {
                    label,
                    value: p99.median,
                    min: p99.min,
                    max: p99.max,
                    group: r.model.group(),
                    text: fmt_ns(p99.median),
                });
            }
            _ => {
                let mut cells = vec![r.label.clone(), r.conns.to_string(), r.status.text()];
                cells.extend(std::iter::repeat_n("-".to_string(), 11));
                t.row(cells);
                for bars in [&mut rps_bars, &mut p99_bars] {
                    bars.push(Bar {
                        label: format!("{label} ({})", r.status.short()),
                        value: f64::NAN,
                        min: f64::NAN,
                        max: f64::NAN,
                        group: r.model.group(),
                        text: String::new(),
                    });
                }
            }
        }
    }

    let mut it = Table::new(&[
        "server",
        "idle connections",
        "RSS before",
        "RSS holding them",
        "per connection: median (min - max)",
        "threads holding them",
        "memory mappings holding them",
    ])
    .caption(format!(
        "Server memory with {} idle connections",
        p.idle_conns
    ));
    let mut idle_bars = Vec::new();
    for r in idle {
        match r.per_conn_summary() {
            Some(s) => {
                let med = |v: &[f64]| Summary::of(v).map(|s| s.median);
                let b = |v: Option<f64>| {
                    v.map(|x| fmt_bytes(x.max(0.0) as u64))
                        .unwrap_or_else(|| "n/a".into())
                };
                let signed = |x: f64| {
                    if x < 0.0 {
                        format!("-{}", fmt_bytes((-x) as u64))
                    } else {
                        fmt_bytes(x as u64)
                    }
                };
                it.row(vec![
                    r.label.clone(),
                    Summary::of(&r.opened.iter().map(|&o| o as f64).collect::<Vec<_>>())
                        .map(|s| format!("{:.0}", s.median))
                        .unwrap_or_else(|| "n/a".into()),
                    b(med(&r.rss_before)),
                    b(med(&r.rss_holding)),
                    format!(
                        "{} ({} - {})",
                        signed(s.median),
                        signed(s.min),
                        signed(s.max)
                    ),
                    med(&r.threads)
                        .map(|t| format!("{t:.0}"))
                        .unwrap_or_else(|| "n/a".into()),
                    med(&r.mappings)
                        .map(|m| format!("{m:.0}"))
                        .unwrap_or_else(|| "n/a".into()),
                ]);
                idle_bars.push(Bar {
                    label: r.server.clone(),
                    value: s.median,
                    min: s.min,
                    max: s.max,
                    group: r.model.group(),
                    text: signed(s.median),
                });
            }
            None => {
                let mut cells = vec![r.label.clone(), r.conns.to_string(), r.status.text()];
                cells.extend(std::iter::repeat_n("-".to_string(), 4));
                it.row(cells);
                idle_bars.push(Bar {
                    label: format!("{} ({})", r.server, r.status.short()),
                    value: f64::NAN,
                    min: f64::NAN,
                    max: f64::NAN,
                    group: r.model.group(),
                    text: String::new(),
                });
            }
        }
    }

    let (findings, flags) = findings(p, rows, idle, targets);
    let mut notes = vec![
        format!(
            "This machine has {cores} CPUs and the load generator shares them with the server: \
             the client is one thread in a busy epoll loop, so the server effectively gets what \
             is left ({} CPU(s) at best). Throughput here is that of client and server together; \
             ratios between servers are fair (same client, same machine, interleaved), absolute \
             numbers are not a server's capacity.",
            cores.saturating_sub(1).max(1)
        ),
        "Closed loop: each connection has one request in flight, so at N connections the \
         latency is about N / throughput (Little's law); at 10,000 connections p99 is mostly \
         queueing in client and server, not service time. The column \"to the echo's \
         arrival\" stops the clock when the echo reaches the load generator's kernel (a \
         software receive timestamp), before it waits to be read; the column of requests \
         waiting says which side held the queue halfway through the window."
            .into(),
        format!(
            "Connection set-up is not measured in the window: the client opens the connections \
             first, each served one {}-byte echo, at most {} waiting for it (so the accept \
             queue, {} deep for every server, never overflows and no SYN is dropped), within a \
             {:.0} s budget. The set-up column is that time; a count that does not fit the \
             budget runs with the connections that opened, and the errors column says so.",
            p.msg,
            echo::RAMP_PENDING,
            echo::BACKLOG,
            p.setup_limit.as_secs_f64()
        ),
        format!(
            "Idle rows: the server's RSS (/proc/PID/statm) once it listens, and again with all \
             {} connections open, each having exchanged one echo and then silent (the \
             client's pause before the load); per connection = difference / connections. \
             Stacks: {} KiB for our ULTs and may's coroutines (touched pages only count); \
             one-to-one also has a 128 KiB kernel-thread stack per connection.",
            p.idle_conns,
            echo::CONN_STACK / 1024
        ),
        format!(
            "Limits read at start: open files hard limit {}, ephemeral ports {}, threads {}, \
             vm.max_map_count {}. Each child raises its soft open-files limit to the hard limit; \
             server and client are separate processes, so each needs one descriptor per \
             connection (plus slack), not two.",
            opt(limits.nofile_hard),
            opt(limits.ephemeral_ports),
            opt(limits.threads),
            opt(limits.max_map_count)
        ),
        "Every server and client is a child process (`lab internal-peer echo-server|\
         echo-client`) with a timeout, killed and reaped when its run ends, so no runtime's \
         threads outlive a run. Nothing is pinned: server and client threads go where the \
         kernel puts them."
            .into(),
        format!(
            "The experiment took {:.0} s of wall time.",
            wall.as_secs_f64()
        ),
    ];
    if mode == Mode::Smoke {
        notes.push("Smoke mode: tiny counts and windows, the numbers mean nothing.".into());
    }

    let raw = serde_json::json!({
        "params": p,
        "limits": limits,
        "cores": cores,
        "wall_s": wall.as_secs_f64(),
        "rows": rows.iter().map(|r| serde_json::json!({
            "row": r,
            "rps": r.rps_summary(),
            "p50_ns": r.p50_summary(),
            "p99_ns": r.p99_summary(),
        })).collect::<Vec<_>>(),
        "idle": idle.iter().map(|r| serde_json::json!({
            "row": r, "per_conn": r.per_conn_summary(),
        })).collect::<Vec<_>>(),
        "targets": targets,
    });

    let mut tables = vec![targets_table(targets), t, it];
    tables[1].caption = Some(format!(
        "Echo of {} bytes, closed loop, {} repetitions interleaved{}",
        p.msg,
        p.reps,
        if p.target_reps > p.reps {
            format!(
                " ({} for lwp many-to-many and tokio above 1 connection)",
                p.target_reps
            )
        } else {
            String::new()
        }
    ));
    Section {
        id: "echo".into(),
        title: "TCP echo server: three threading models beside tokio and may".into(),
        command: "cargo run --release -p benches --bin lab -- echo".into(),
        claim: "A server written with simple blocking calls, one thread per connection, is \
                easier to write (\"使用简单容易理解的阻塞调用可以简化整体结构\": blocking calls \
                keep the structure simple), but kernel threads make every thread operation a \
                system call, and user-level threads alone block together; the lecture \
                concludes that combining the two levels brings a gain that hardly pays for its \
                complexity (\"事实上这种做法带来的性能提升也难以弥补其复杂性带来的困难\"). \
                Here the same blocking-style echo server runs on ULTs under the three models, \
                against an event-driven (finite-state-machine style) tokio server and may's \
                coroutines."
            .into(),
        measured: vec![
            format!(
                "A TCP echo over loopback: each connection sends {} bytes and waits for them \
                 back before sending again (closed loop) for a {} ms window after a warm-up \
                 of {} ms plus {} µs per connection; at {} connections. The load generator is \
                 the same program for every server: one thread, non-blocking sockets, a \
                 level-triggered epoll loop, every request's latency in an HDR histogram.",
                p.msg,
                p.window.as_millis(),
                p.warmup.as_millis(),
                p.warmup_per_conn.as_micros(),
                p.conns
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "Servers: the same accept loop and one task per connection (read up to 4 KiB, \
             write it back) on lwp many-to-one, one-to-one and many-to-many (`lwp::net`, a ULT \
             per connection), on tokio's multi-thread runtime and on may; and, as the floor, \
             the lecture's finite-state-machine server in its barest form (one thread, one \
             edge-triggered epoll loop through `mio`, per connection a buffer and the echo's \
             position in it). Each in its own process, started fresh for every run, \
             listening with the same backlog."
                .into(),
            format!(
                "{} repetitions, interleaved (for each repetition: for each connection count: \
                 each server in turn, in an order that changes every repetition so that no \
                 server always follows the same one); tables show the median over repetitions \
                 with min and max.{}",
                p.reps,
                if p.target_reps > p.reps {
                    format!(
                        " The two servers the targets compare (lwp many-to-many and tokio) run \
                         {} more repetitions at every count above 1, alternating, after the \
                         others: {} in all, so that a verdict between two close servers rests \
                         on more than {} pairs.",
                        p.target_reps - p.reps,
                        p.target_reps,
                        p.reps
                    )
                } else {
                    String::new()
                }
            ),
        ],
        tables,
        plots: vec![
            Plot {
                file: "echo-throughput.svg".into(),
                alt: "Echo throughput per server and connection count, as time per request"
                    .into(),
                spec: PlotSpec::HBars(HBars {
                    title: "Echo: wall time per request = 1 / throughput (shorter is better; log scale)"
                        .into(),
                    axis: "time per request, client and server together (log scale)".into(),
                    bars: rps_bars,
                    groups: Model::legend(),
                }),
            },
            Plot {
                file: "echo-p99.svg".into(),
                alt: "Echo p99 latency per server and connection count".into(),
                spec: PlotSpec::HBars(HBars {
                    title: "Echo: p99 latency (median over reps, whiskers min-max; log scale)"
                        .into(),
                    axis: "p99 latency (log scale)".into(),
                    bars: p99_bars,
                    groups: Model::legend(),
                }),
            },
            Plot {
                file: "echo-idle.svg".into(),
                alt: "Server memory per idle connection".into(),
                spec: PlotSpec::HBarsBytes(HBars {
                    title: format!(
                        "Server RSS per idle connection, {} held open (log scale)",
                        p.idle_conns
                    ),
                    axis: "bytes per connection (log scale)".into(),
                    bars: idle_bars,
                    groups: Model::legend(),
                }),
            },
        ],
        findings,
        flags,
        notes,
        raw,
    }
}

fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "unknown".into())
}

/// What the numbers say, and what looks wrong.
/// The server CPU per request of `server`'s row at `conns` connections, over its repetitions.
fn cpu_per_request(rows: &[EchoRow], server: &str, conns: usize) -> Option<Summary> {
    rows.iter()
        .find(|r| r.server == server && r.conns == conns)
        .and_then(|r| Summary::of(&r.server_cpu_per_req_ns))
}

/// The finding that puts each runtime's server CPU per request at `conns` connections as a
/// multiple of the bare event loop's (the floor); `None` without an event-loop figure.
pub fn floor_finding(rows: &[EchoRow], conns: usize) -> Option<String> {
    let floor = cpu_per_request(rows, "event-loop", conns)?;
    let above: Vec<String> = ["lwp-m1", "lwp-mn", "tokio", "may"]
        .iter()
        .filter_map(|&s| {
            let x = cpu_per_request(rows, s, conns)?;
            Some(format!(
                "{s} {}",
                fmt_ratio(x.median / floor.median.max(1e-9))
            ))
        })
        .collect();
    if above.is_empty() {
        return None;
    }
    Some(format!(
        "At {conns} connection{} the bare event loop (no runtime, one thread) spent {} of \
         server CPU per request; the others, as multiples of that: {}. What a runtime costs \
         above the kernel's own work on the sockets is the part above 1x.",
        if conns == 1 { "" } else { "s" },
        fmt_ns(floor.median),
        above.join(", ")
    ))
}

/// The finding that splits each server's CPU per request at `conns` connections into the
/// kernel's part (system time) and the rest: how much of a server's cost its runtime could
/// change at all. `None` unless at least two servers have the figures.
pub fn kernel_share_finding(rows: &[EchoRow], conns: usize) -> Option<String> {
    let mut seen = Vec::new();
    let parts: Vec<String> = rows
        .iter()
        .filter(|r| r.conns == conns && r.status == Status::Measured)
        .filter(|r| {
            // One entry per server (a report has one row per server and count).
            let first = !seen.contains(&r.server.as_str());
            seen.push(r.server.as_str());
            first
        })
        .filter_map(|r| {
            let share = Summary::of(&r.server_kernel_share)?.median;
            let per_request = Summary::of(&r.server_cpu_per_req_ns)?.median;
            Some(format!(
                "{} {:.0}% ({} in user space)",
                r.server,
                100.0 * share,
                fmt_ns(per_request * (1.0 - share))
            ))
        })
        .collect();
    if parts.len() < 2 {
        return None;
    }
    Some(format!(
        "At {conns} connection{} the kernel's share of each server's CPU time (system time, \
         which the kernel samples at its clock tick; medians): {}. Only the rest is the \
         runtime's own work and the application's, so that is all a runtime can save.",
        if conns == 1 { "" } else { "s" },
        parts.join(", ")
    ))
}

/// What the target pair's single repetition pairs say, by a sign test on their requests/s
/// ratios (at least five pairs): whether many-to-many served more often than fair coins
/// would make it, or whether the run cannot tell the two apart.
pub fn paired_finding(conns: usize, paired_rps_ratios: &[f64]) -> Option<String> {
    let s = crate::stats::sign_test(paired_rps_ratios).filter(|s| s.pairs >= 5)?;
    Some(format!(
        "At {conns} connections many-to-many served more requests/s than tokio in {} of {} \
         pairs: {} (sign test, p = {:.2}).",
        s.above,
        s.pairs,
        if s.p < 0.05 {
            "a difference this run resolves"
        } else {
            "no more uneven than fair coin tosses often are, so this run cannot tell which \
             of the two serves more"
        },
        s.p
    ))
}

/// Where the requests in flight waited at `conns` connections, per server over its
/// mid-window samples ([`EchoRow::waiting_at_server`]); `None` without samples or with
/// nothing waiting.
pub fn queue_finding(rows: &[EchoRow], conns: usize) -> Option<String> {
    let shares: Vec<(&str, f64)> = rows
        .iter()
        .filter(|r| r.conns == conns)
        .filter_map(|r| {
            let client: f64 = r.waiting_at_client.iter().sum();
            let total = client + r.waiting_at_server.iter().sum::<f64>();
            (total > 0.0).then(|| (r.server.as_str(), client / total))
        })
        .collect();
    if shares.is_empty() {
        return None;
    }
    let list = shares
        .iter()
        .map(|(s, v)| format!("{s} {:.0}%", v * 100.0))
        .collect::<Vec<_>>()
        .join(", ");
    let high: Vec<&str> = shares
        .iter()
        .filter(|(_, v)| *v >= QUEUE_AT_CLIENT)
        .map(|(s, _)| *s)
        .collect();
    let verdict = if high.is_empty() {
        String::new()
    } else {
        format!(
            " Where it is {:.0}% or more ({}), the queue is the load generator's: the latency \
             columns there measure mostly how long the load generator takes to come round to \
             a connection, not how fast the server answers.",
            QUEUE_AT_CLIENT * 100.0,
            high.join(", ")
        )
    };
    Some(format!(
        "At {conns} connections, halfway through each window, the share of the waiting \
         requests that were echoes the load generator had not read yet (the rest were \
         requests the server had not read; receive queues in `/proc/net/tcp`): {list}.{verdict}"
    ))
}

/// Many-to-many's and tokio's latency to the echo's arrival at `conns` connections (the
/// server's response time without the load generator's own queue), beside the end-to-end
/// p99 the target uses; `None` where either has no stamped repetition.
pub fn arrival_finding(rows: &[EchoRow], conns: usize) -> Option<String> {
    let get = |server: &str| {
        let r = rows
            .iter()
            .find(|r| r.server == server && r.conns == conns && r.measured())?;
        Some((
            Summary::of(&r.arrival_p50_ns)?,
            Summary::of(&r.arrival_p99_ns)?,
        ))
    };
    let ((ours50, ours99), (tokio50, tokio99)) = (get("lwp-mn")?, get("tokio")?);
    Some(format!(
        "At {conns} connections, from a request's send to its echo's arrival in the load \
         generator's kernel (software receive timestamps, so without the time the echo then \
         waits to be read): many-to-many p50 {} and p99 {}, tokio p50 {} and p99 {}; p99 \
         {} of tokio's. The target's p99 is the end-to-end one, which includes the load \
         generator's queue.",
        fmt_ns(ours50.median),
        fmt_ns(ours99.median),
        fmt_ns(tokio50.median),
        fmt_ns(tokio99.median),
        fmt_ratio(ours99.median / tokio99.median.max(1e-9))
    ))
}

fn findings(
    p: &Params,
    rows: &[EchoRow],
    idle: &[IdleRow],
    targets: &[TargetRow],
) -> (Vec<String>, Vec<String>) {
    let mut f = Vec::new();
    let mut flags = Vec::new();
    for t in targets {
        if let (Some(a), Some(b)) = (t.rps_ratio, t.p99_ratio) {
            f.push(format!(
                "At {} connections, many-to-many served {} tokio's requests/s with {} its p99: \
                 the target is **{}** on this run's medians ({} repetitions met it{}).",
                t.conns,
                fmt_ratio(a),
                fmt_ratio(b),
                t.verdict.word(),
                t.reps_meeting,
                match Summary::of(&t.paired_rps_ratios) {
                    Some(p) if p.n > 1 => format!(
                        "; the requests/s ratio of single repetition pairs ranged {} - {}",
                        fmt_ratio(p.min),
                        fmt_ratio(p.max)
                    ),
                    _ => String::new(),
                }
            ));
            if let Some(sentence) = paired_finding(t.conns, &t.paired_rps_ratios) {
                f.push(sentence);
            }
        } else {
            f.push(format!(
                "At {} connections the target could not be judged: {}.",
                t.conns,
                t.note.clone().unwrap_or_else(|| "a row is missing".into())
            ));
        }
    }
    for &c in &p.conns {
        let at: Vec<(&EchoRow, Summary)> = rows
            .iter()
            .filter(|r| r.conns == c)
            .filter_map(|r| Some((r, r.rps_summary()?)))
            .collect();
        if at.len() >= 2 {
            let best = at
                .iter()
                .max_by(|a, b| a.1.median.total_cmp(&b.1.median))
                .map(|(r, s)| (r.server.clone(), s.median));
            let worst = at
                .iter()
                .min_by(|a, b| a.1.median.total_cmp(&b.1.median))
                .map(|(r, s)| (r.server.clone(), s.median));
            if let (Some((bs, bv)), Some((ws, wv))) = (best, worst) {
                f.push(format!(
                    "{c} connection{}: fastest {bs} ({} req/s), slowest {ws} ({} req/s, {} \
                     slower).",
                    if c == 1 { "" } else { "s" },
                    fmt_rps(bv),
                    fmt_rps(wv),
                    fmt_ratio(bv / wv.max(1e-9))
                ));
            }
        }
    }
    // Where the load generator is the bottleneck, requests/s say how much CPU each server
    // left it; the servers' own cost per request is then the fairer comparison.
    for &c in &p.conns {
        let at_c = || rows.iter().filter(move |r| r.conns == c);
        let shares: Vec<f64> = at_c()
            .flat_map(|r| r.client_cpu_share.iter().copied())
            .collect();
        let Some(share) = Summary::of(&shares) else {
            continue;
        };
        if share.median < SATURATED_CLIENT {
            continue;
        }
        let cost = |s: &str| cpu_per_request(rows, s, c);
        let costs = match (cost("lwp-mn"), cost("tokio")) {
            (Some(ours), Some(tokio)) => format!(
                " Server CPU per request: many-to-many {}, tokio {} ({} of tokio's).",
                fmt_ns(ours.median),
                fmt_ns(tokio.median),
                fmt_ratio(ours.median / tokio.median.max(1e-9))
            ),
            _ => String::new(),
        };
        f.push(format!(
            "At {c} connections the load generator (one thread) was busy {:.0}% of the window \
             (median over all runs): it is the bottleneck, so requests/s there measure how \
             much CPU each server leaves it as much as the server's own speed.{costs}",
            share.median * 100.0
        ));
    }
    for &c in p.conns.iter().filter(|&&c| c > 1) {
        f.extend(queue_finding(rows, c));
        f.extend(arrival_finding(rows, c));
    }
    // The lecture's three models, side by side at the largest count.
    if let Some(&c) = p.conns.last() {
        let get = |s: &str| {
            rows.iter()
                .find(|r| r.server == s && r.conns == c)
                .and_then(EchoRow::rps_summary)
        };
        if let (Some(m1), Some(k), Some(mn)) = (get("lwp-m1"), get("lwp-11"), get("lwp-mn")) {
            f.push(format!(
                "Our three models at {c} connections: many-to-one {} req/s, one-to-one {} \
                 (a kernel thread per connection), many-to-many {}: one-to-one reaches {} of \
                 many-to-many's throughput.",
                fmt_rps(m1.median),
                fmt_rps(k.median),
                fmt_rps(mn.median),
                fmt_ratio(k.median / mn.median.max(1e-9))
            ));
        }
    }
    f.extend(p.conns.iter().filter_map(|&c| floor_finding(rows, c)));
    f.extend(
        p.conns
            .iter()
            .filter_map(|&c| kernel_share_finding(rows, c)),
    );
    let per: Vec<String> = idle
        .iter()
        .filter_map(|r| {
            let s = r.per_conn_summary()?;
            Some(format!(
                "{} {}",
                r.server,
                if s.median < 0.0 {
                    "less than nothing (noise)".to_string()
                } else {
                    fmt_bytes(s.median as u64)
                }
            ))
        })
        .collect();
    if !per.is_empty() {
        f.push(format!(
            "Memory per idle connection held by the server ({} connections): {}.",
            p.idle_conns,
            per.join(", ")
        ));
    }
    for r in rows {
        if let Status::Failed(e) = &r.status {
            flags.push(format!("`{}` failed: {e}", r.id));
        }
        if r.failed_reps > 0 && r.measured() {
            flags.push(format!(
                "`{}`: {} of {} repetitions failed ({})",
                r.id,
                r.failed_reps,
                r.failed_reps + r.rps.len(),
                r.problems.first().cloned().unwrap_or_default()
            ));
        }
        let errs: u64 = r.errors.iter().sum();
        if errs > 0 {
            flags.push(format!(
                "`{}`: {errs} connections lost or never opened over {} repetitions ({})",
                r.id,
                r.errors.len(),
                r.problems.first().cloned().unwrap_or_default()
            ));
        }
        if r.measured() && r.rps.iter().any(|&v| v <= 0.0) {
            flags.push(format!(
                "`{}`: a repetition completed no request in its window",
                r.id
            ));
        }
        if let (Some(p50), Some(p99)) = (r.p50_summary(), r.p99_summary()) {
            if p50.median > p99.median {
                flags.push(format!(
                    "`{}`: median p50 above median p99: impossible within one run",
                    r.id
                ));
            }
        }
        if let Some(s) = r.rps_summary() {
            if s.spread() > 2.0 {
                flags.push(format!(
                    "`{}` was unstable: its best repetition served {} its worst",
                    r.id,
                    fmt_ratio(s.spread())
                ));
            }
            // Little's law: a closed loop cannot complete more than conns / p50-ish; a rate
            // far above conns / p50 means the clock or the counting is wrong.
            if let Some(p50) = r.p50_summary() {
                if p50.median > 0.0 && s.median > 4.0 * r.conns as f64 * 1e9 / p50.median {
                    flags.push(format!(
                        "`{}`: {} req/s is more than 4x what {} connections with a {} median \
                         latency allow (Little's law): counting looks wrong",
                        r.id,
                        fmt_rps(s.median),
                        r.conns,
                        fmt_ns(p50.median)
                    ));
                }
            }
        }
    }
    for r in idle {
        if let Some(s) = r.per_conn_summary() {
            if s.median < 0.0 {
                flags.push(format!(
                    "`{}` idle: RSS went down while holding connections (median {} per \
                     connection): the reading is noise",
                    r.server,
                    fmt_bytes((-s.median) as u64)
                ));
            }
        }
    }
    (f, flags)
}
