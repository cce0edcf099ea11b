//! Experiment `create`: the cost of creating and destroying a thread of each kind, against a
//! process, beside peer runtimes.
//!
//! One operation is a complete life: create, let it run an empty body, wait for it to end,
//! reclaim it. Rows (all pinned to one CPU, so no cross-CPU wake-up is measured):
//!
//! | id | operation |
//! |---|---|
//! | `ult-pooled` | `ult::spawn(..).join()` in a many-to-one executor; the stack comes from the per-thread pool (warm) |
//! | `ult-fresh` | the same, with `ult::stack::clear_pool()` after each join, so every spawn maps, faults in and unmaps a new stack |
//! | `kthread` | `std::thread::spawn(..).join()` (glibc caches thread stacks) |
//! | `fork` | `fork()`, child `_exit(0)`, parent `waitpid` |
//! | `posix-spawn` | `posix_spawn("/bin/true")` + `waitpid` (a new program: exec and dynamic loading included) |
//! | `goroutine` | Go: `go func(){wg.Done()}(); wg.Wait()` (external program) |
//! | `may` | may: `coroutine::spawn(..).join()`, 1 worker (child process) |
//! | `tokio` | tokio: `tokio::spawn(async {}).await` on a current_thread runtime |
//!
//! Per repetition, each row runs a timed batch of n operations (its mean is the row's value)
//! and then m operations timed one by one (into an HDR histogram: the per-operation
//! distribution, which includes the cost of reading the clock, reported alongside).

use super::{fmt_summary, median_of, Ctx, Mode, Model, Row, Status};
use crate::peers::{self, PeerOutput};
use crate::plot::{Bar, HBars, PlotSpec};
use crate::report::{Plot, Section, Table};
use crate::stats::{self, fmt_ns, fmt_ratio, ratio, Distribution};
use crate::sys;
use hdrhistogram::Histogram;
use std::ffi::CStr;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Parameters of one run of the experiment.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Repetitions of every row.
    pub reps: usize,
    /// Target duration of one timed batch.
    pub target: Duration,
    /// Operations timed one by one per repetition (at most).
    pub dist_ops: u64,
}

impl Params {
    /// Defaults of a mode.
    pub fn for_mode(mode: Mode) -> Params {
        match mode {
            Mode::Smoke => Params {
                reps: 2,
                target: Duration::from_millis(3),
                dist_ops: 100,
            },
            Mode::Quick => Params {
                reps: 15,
                target: Duration::from_millis(50),
                dist_ops: 2_000,
            },
            Mode::Full => Params {
                reps: 21,
                target: Duration::from_millis(200),
                dist_ops: 20_000,
            },
        }
    }
}

/// What `create` measured.
pub struct Outcome {
    /// The rows, in table order.
    pub rows: Vec<Row>,
    /// Per-operation distributions by row id.
    pub distributions: Vec<(String, Option<Distribution>)>,
    /// The report section.
    pub section: Section,
}

const TRUE_PATH: &CStr = c"/bin/true";

#[derive(Debug, Clone)]
enum Op {
    UltPooled,
    UltFresh,
    Thread,
    Fork,
    PosixSpawn,
    Tokio,
    Go(PathBuf),
    May(PathBuf),
}

fn time_loop(
    n: u64,
    m: u64,
    mut op: impl FnMut() -> Result<(), String>,
) -> Result<(Duration, Histogram<u64>), String> {
    op()?; // warm-up
    let t0 = Instant::now();
    for _ in 0..n {
        op()?;
    }
    let total = t0.elapsed();
    let mut h = stats::new_histogram();
    for _ in 0..m {
        let s = Instant::now();
        op()?;
        stats::record(&mut h, s.elapsed().as_nanos() as u64, 1);
    }
    Ok((total, h))
}

fn from_peer(out: PeerOutput) -> Result<(Duration, Histogram<u64>, u64), String> {
    let mut h = stats::new_histogram();
    for (v, c) in &out.hist {
        stats::record(&mut h, *v, *c);
    }
    if out.ops == 0 {
        return Err("the peer reported zero operations".into());
    }
    Ok((Duration::from_nanos(out.total_ns), h, out.ops))
}

/// Runs `n` batched + `m` sampled operations; returns (ns per op of the batch, histogram).
fn run_op(op: &Op, n: u64, m: u64) -> Result<(f64, Histogram<u64>), String> {
    let (total, h, ops) = match op {
        Op::UltPooled => ult_rows::run::<false>(n, m)?,
        Op::UltFresh => ult_rows::run::<true>(n, m)?,
        Op::Thread => {
            let (t, h) = time_loop(n, m, || {
                std::thread::Builder::new()
                    .spawn(|| black_box(0u8))
                    .map_err(|e| format!("thread spawn: {e}"))?
                    .join()
                    .map(|_| ())
                    .map_err(|_| "a thread panicked".to_string())
            })?;
            (t, h, n)
        }
        Op::Fork => {
            let (t, h) = time_loop(n, m, || {
                let pid = sys::fork_exit().map_err(|e| format!("fork: {e}"))?;
                match sys::wait_child(pid) {
                    Ok(0) => Ok(()),
                    Ok(c) => Err(format!("forked child exited with {c}")),
                    Err(e) => Err(format!("waitpid: {e}")),
                }
            })?;
            (t, h, n)
        }
        Op::PosixSpawn => {
            let (t, h) = time_loop(n, m, || {
                let pid = sys::posix_spawn(TRUE_PATH).map_err(|e| format!("posix_spawn: {e}"))?;
                match sys::wait_child(pid) {
                    Ok(0) => Ok(()),
                    Ok(c) => Err(format!("/bin/true exited with {c}")),
                    Err(e) => Err(format!("waitpid: {e}")),
                }
            })?;
            (t, h, n)
        }
        Op::Tokio => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| format!("tokio runtime: {e}"))?;
            let (t, h) = rt.block_on(async move {
                let op = || async {
                    tokio::spawn(async { black_box(0u8) })
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("tokio task: {e}"))
                };
                op().await?;
                let t0 = Instant::now();
                for _ in 0..n {
                    op().await?;
                }
                let total = t0.elapsed();
                let mut h = stats::new_histogram();
                for _ in 0..m {
                    let s = Instant::now();
                    op().await?;
                    stats::record(&mut h, s.elapsed().as_nanos() as u64, 1);
                }
                Ok::<_, String>((total, h))
            })?;
            (t, h, n)
        }
        Op::Go(bin) => {
            let mut cmd = Command::new(bin);
            cmd.args(["-n", &n.to_string(), "-m", &m.to_string(), "-w", "1000"]);
            from_peer(peers::run_peer(&mut cmd, Duration::from_secs(120))?)?
        }
        Op::May(exe) => {
            let mut cmd = Command::new(exe);
            cmd.args([
                "internal-peer",
                "may-create",
                "--n",
                &n.to_string(),
                "--m",
                &m.to_string(),
            ]);
            from_peer(peers::run_peer(&mut cmd, Duration::from_secs(120))?)?
        }
    };
    Ok((total.as_nanos() as f64 / ops.max(1) as f64, h))
}

/// The two ULT rows. Their loops are written out, as the tokio row's are, so that what is
/// timed is `ult::spawn(..).join()` itself: through [`time_loop`]'s generic closure and its
/// `Result<(), String>`, with `Builder::spawn`, one pooled spawn+join stepped at 624
/// instructions in gdb; in this loop 548, against 534 for the bare loop of
/// `ult/examples/spawnjoin.rs`.
mod ult_rows {
    use super::*;

    /// Runs `n` timed and `m` sampled spawn+joins in a many-to-one executor; `FRESH` empties
    /// the stack pool after each join, so every spawn maps a new stack.
    pub(super) fn run<const FRESH: bool>(
        n: u64,
        m: u64,
    ) -> Result<(Duration, Histogram<u64>, u64), String> {
        let r = ult::try_run(ult::Builder::new().name("create-bench".into()), move || {
            if FRESH {
                ult::stack::clear_pool();
            }
            // Warm-up (the pooled row's first spawn maps the stack the others reuse).
            once::<FRESH>()?;
            let t0 = Instant::now();
            for _ in 0..n {
                once::<FRESH>()?;
            }
            let total = t0.elapsed();
            let mut h = stats::new_histogram();
            for _ in 0..m {
                let s = Instant::now();
                once::<FRESH>()?;
                stats::record(&mut h, s.elapsed().as_nanos() as u64, 1);
            }
            Ok::<_, &'static str>((total, h))
        });
        match r {
            Ok(Ok(Ok((t, h)))) => Ok((t, h, n)),
            Ok(Ok(Err(e))) => Err(e.into()),
            // `ult::spawn` panics where `Builder::spawn` returns the error (no stack, say).
            Ok(Err(panic)) => Err(format!(
                "the root ULT panicked: {}",
                peers::panic_text(&*panic)
            )),
            Err(e) => Err(format!("ult executor: {e}")),
        }
    }

    /// One spawn+join of an empty ULT (plus the pool's emptying for the fresh row).
    #[inline(always)]
    fn once<const FRESH: bool>() -> Result<(), &'static str> {
        let joined = ult::spawn(|| black_box(0u8)).join();
        if FRESH {
            ult::stack::clear_pool();
        }
        match joined {
            Ok(_) => Ok(()),
            Err(_) => Err("a ULT panicked"),
        }
    }
}

/// Nanoseconds one `Instant::now()` takes (median of 5 batches).
pub fn clock_cost_ns() -> f64 {
    let mut v = Vec::new();
    for _ in 0..5 {
        let n = 100_000u32;
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(Instant::now());
        }
        v.push(t0.elapsed().as_nanos() as f64 / n as f64);
    }
    stats::median(&v).unwrap_or(f64::NAN)
}

fn rows_and_ops(ctx: &Ctx) -> Vec<(Row, Option<Op>)> {
    let mut out = Vec::new();
    let mut add = |id: &str, label: &str, model: Model, op: Result<Op, Status>| {
        let mut r = Row::new(id, label, model);
        let op = match op {
            Ok(op) => Some(op),
            Err(s) => {
                r.status = s;
                None
            }
        };
        out.push((r, op));
    };
    add(
        "ult-pooled",
        "ULT spawn+join, pooled stack",
        Model::Ult,
        Ok(Op::UltPooled),
    );
    add(
        "ult-fresh",
        "ULT spawn+join, fresh stack",
        Model::Ult,
        Ok(Op::UltFresh),
    );
    add(
        "kthread",
        "std::thread spawn+join",
        Model::KernelThread,
        Ok(Op::Thread),
    );
    add(
        "fork",
        "fork + _exit + waitpid",
        Model::Process,
        Ok(Op::Fork),
    );
    let true_exists = std::path::Path::new("/bin/true").exists();
    add(
        "posix-spawn",
        "posix_spawn(/bin/true) + waitpid",
        Model::Process,
        if true_exists {
            Ok(Op::PosixSpawn)
        } else {
            Err(Status::Missing("/bin/true does not exist".into()))
        },
    );
    add(
        "goroutine",
        "Go goroutine spawn+join",
        Model::Peer,
        match &ctx.go {
            Ok(g) => Ok(Op::Go(g.create.clone())),
            Err(s) => Err(s.clone()),
        },
    );
    add(
        "may",
        "may coroutine spawn+join",
        Model::Peer,
        match &ctx.self_exe {
            Some(exe) => Ok(Op::May(exe.clone())),
            None => Err(Status::Missing("not running inside the lab binary".into())),
        },
    );
    add(
        "tokio",
        "tokio task spawn+await",
        Model::Peer,
        Ok(Op::Tokio),
    );
    out
}

/// Runs the experiment.
pub fn run(ctx: &Ctx) -> Outcome {
    let mut p = Params::for_mode(ctx.mode);
    p.reps = ctx.reps(p.reps);
    let mut rows_ops = rows_and_ops(ctx);
    let measurable = rows_ops.iter().filter(|(_, o)| o.is_some()).count() as u64;
    let pb = ctx.bar("create", measurable * (p.reps as u64 + 1));
    let pin = sys::PinGuard::pin(&[ctx.cpu_a]);
    let pin_note = match &pin {
        Ok(_) => format!("pinned to CPU {}", ctx.cpu_a),
        Err(e) => format!("NOT pinned (sched_setaffinity failed: {e})"),
    };
    let clock_ns = clock_cost_ns();
    let rss_before = sys::rss_bytes();

    // Calibrate each row once (also its warm-up).
    let mut counts: Vec<(u64, u64)> = Vec::new();
    for (row, op) in rows_ops.iter_mut() {
        let Some(op) = op else {
            counts.push((0, 0));
            continue;
        };
        pb.set_message(format!("calibrating {}", row.label));
        let n = stats::calibrate(p.target, 16, 5_000_000, |n| {
            run_op(op, n, 0).map(|(ns, _)| Duration::from_nanos((ns * n as f64) as u64))
        });
        match n {
            Ok(n) => {
                row.iterations = n;
                counts.push((n, n.min(p.dist_ops)));
            }
            Err(e) => {
                row.fail(e);
                counts.push((0, 0));
            }
        }
        pb.inc(1);
    }
    let mut hists: Vec<Histogram<u64>> = rows_ops.iter().map(|_| stats::new_histogram()).collect();
    for rep in 0..p.reps {
        for (i, (row, op)) in rows_ops.iter_mut().enumerate() {
            let Some(op) = op else { continue };
            if row.status != Status::Measured {
                pb.inc(1);
                continue;
            }
            pb.set_message(format!("rep {}/{}: {}", rep + 1, p.reps, row.label));
            let (n, m) = counts[i];
            match run_op(op, n, m) {
                Ok((ns, h)) => {
                    row.values.push(ns);
                    let _ = hists[i].add(&h);
                }
                Err(e) => row.fail(e),
            }
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    drop(pin);
    let rows: Vec<Row> = rows_ops.into_iter().map(|(r, _)| r).collect();
    let distributions: Vec<(String, Option<Distribution>)> = rows
        .iter()
        .zip(&hists)
        .map(|(r, h)| (r.id.clone(), Distribution::of(h)))
        .collect();
    let section = section(&p, &rows, &distributions, clock_ns, rss_before, &pin_note);
    Outcome {
        rows,
        distributions,
        section,
    }
}

fn section(
    p: &Params,
    rows: &[Row],
    dists: &[(String, Option<Distribution>)],
    clock_ns: f64,
    rss: Option<u64>,
    pin_note: &str,
) -> Section {
    let ult = median_of(rows, "ult-pooled");
    let kt = median_of(rows, "kthread");
    let mut t = Table::new(&[
        "operation",
        "model",
        "median per op",
        "min",
        "max",
        "vs ULT (pooled)",
        "vs std::thread",
        "per-op p50",
        "per-op p99",
        "per-op max",
        "ops per rep x reps",
    ]);
    let mut bars = Vec::new();
    for (r, (_, d)) in rows.iter().zip(dists) {
        match r.summary() {
            Some(s) => {
                let [med, min, max] = fmt_summary(&s);
                let vs = |b: &Option<stats::Summary>| {
                    b.and_then(|b| ratio(&s, &b))
                        .map(fmt_ratio)
                        .unwrap_or_else(|| "n/a".into())
                };
                let (p50, p99, pmax) = match d {
                    Some(d) => (fmt_ns(d.p50), fmt_ns(d.p99), fmt_ns(d.max)),
                    None => ("n/a".into(), "n/a".into(), "n/a".into()),
                };
                t.row(vec![
                    r.label.clone(),
                    r.model.name().into(),
                    med.clone(),
                    min,
                    max,
                    vs(&ult),
                    vs(&kt),
                    p50,
                    p99,
                    pmax,
                    format!("{} x {}", r.iterations, s.n),
                ]);
                bars.push(Bar {
                    label: r.label.clone(),
                    value: s.median,
                    min: s.min,
                    max: s.max,
                    group: r.model.group(),
                    text: med,
                });
            }
            None => {
                let mut cells = vec![r.label.clone(), r.model.name().into(), r.status.text()];
                cells.extend(std::iter::repeat_n("-".to_string(), 8));
                t.row(cells);
                bars.push(Bar {
                    label: format!("{} ({})", r.label, r.status.short()),
                    value: f64::NAN,
                    min: f64::NAN,
                    max: f64::NAN,
                    group: r.model.group(),
                    text: String::new(),
                });
            }
        }
    }

    let mut findings = Vec::new();
    let mut flags = Vec::new();
    let fork = median_of(rows, "fork");
    let fresh = median_of(rows, "ult-fresh");
    let spawn = median_of(rows, "posix-spawn");
    if let (Some(k), Some(f)) = (kt, fork) {
        let r = f.median / k.median;
        findings.push(format!(
            "Thread vs process: creating and destroying a kernel thread took {}, a process \
             (fork + _exit + waitpid) {}: the process costs {} the thread. The lecture's claim {}.",
            fmt_ns(k.median),
            fmt_ns(f.median),
            fmt_ratio(r),
            if r > 1.5 {
                "holds here"
            } else if r > 1.0 {
                "holds only narrowly here"
            } else {
                "does NOT hold here"
            }
        ));
        if r <= 1.0 {
            flags.push(format!(
                "a process was created no slower than a kernel thread ({} vs {}): unexpected",
                fmt_ns(f.median),
                fmt_ns(k.median)
            ));
        }
    }
    if let (Some(u), Some(k)) = (ult, kt) {
        findings.push(format!(
            "User-level vs kernel thread: a ULT on a pooled stack took {}, {} cheaper than a \
             kernel thread; no system call is involved.",
            fmt_ns(u.median),
            fmt_ratio(k.median / u.median)
        ));
        if u.median >= k.median {
            flags.push(format!(
                "a ULT spawn+join ({}) was not cheaper than a kernel thread ({}): looks impossible",
                fmt_ns(u.median),
                fmt_ns(k.median)
            ));
        }
    }
    if let (Some(u), Some(fr), Some(k)) = (ult, fresh, kt) {
        findings.push(format!(
            "Stack pooling matters: on a fresh stack (mmap + first-touch page faults + munmap) a \
             ULT took {} ({} the pooled one; {}).",
            fmt_ns(fr.median),
            fmt_ratio(fr.median / u.median),
            if fr.median < k.median {
                format!(
                    "still {} cheaper than a kernel thread",
                    fmt_ratio(k.median / fr.median)
                )
            } else {
                format!(
                    "{} the cost of a kernel thread",
                    fmt_ratio(fr.median / k.median)
                )
            }
        ));
    }
    if let (Some(s), Some(f)) = (spawn, fork) {
        findings.push(format!(
            "Starting a new program (posix_spawn of /bin/true + wait) took {}, {} a bare fork: \
             exec and dynamic loading dominate process start-up.",
            fmt_ns(s.median),
            fmt_ratio(s.median / f.median)
        ));
    }
    if let Some(u) = ult {
        let peers: Vec<String> = ["goroutine", "may", "tokio"]
            .iter()
            .filter_map(|id| {
                let row = super::find(rows, id)?;
                let s = row.summary()?;
                Some(format!(
                    "{} {} ({} ours)",
                    row.label,
                    fmt_ns(s.median),
                    fmt_ratio(s.median / u.median)
                ))
            })
            .collect();
        if !peers.is_empty() {
            findings.push(format!("Peers, same CPU, same run: {}.", peers.join("; ")));
        }
    }
    for r in rows {
        if let Some(s) = r.summary() {
            if s.spread() > 2.0 {
                flags.push(format!(
                    "`{}` was unstable: its slowest repetition took {} its fastest",
                    r.label,
                    fmt_ratio(s.spread())
                ));
            }
        }
        if let Status::Failed(e) = &r.status {
            flags.push(format!("`{}` failed: {e}", r.label));
        }
    }

    let notes = vec![
        format!(
            "All rows ran {pin_note}; children inherit the pinning, so a created thread or process \
             runs on the same CPU as its creator."
        ),
        format!(
            "The per-op columns come from {} operations per repetition timed one by one and merged \
             into one HDR histogram per row; each includes reading the clock, which costs about {} \
             here (`Instant::now`). The median-per-op columns come from untimed batches.",
            p.dist_ops,
            fmt_ns(clock_ns)
        ),
        format!(
            "fork's cost grows with the parent's memory (page tables are copied); the lab process \
             had {} resident when this experiment started.",
            rss.map(crate::stats::fmt_bytes)
                .unwrap_or_else(|| "an unknown amount".into())
        ),
        "std::thread reuses stacks through glibc's stack cache, so the kernel-thread row is a \
         clone + exit + join with a warm stack, the kernel thread's equivalent of a pooled stack."
            .into(),
        "Go and may run in their own processes (Go compiled at run time; may in a child lab \
         process with one worker, so its scheduler threads never disturb the other rows); each \
         times its operations internally, process start-up excluded."
            .into(),
    ];

    let raw = serde_json::json!({
        "params": {"reps": p.reps, "target_ms": p.target.as_millis() as u64, "dist_ops": p.dist_ops},
        "clock_ns": clock_ns,
        "rss_bytes_at_start": rss,
        "rows": rows.iter().zip(dists).map(|(r, (_, d))| serde_json::json!({
            "row": r, "summary": r.summary(), "distribution": d,
        })).collect::<Vec<_>>(),
    });

    Section {
        id: "create".into(),
        title: "Creation cost: user-level thread vs kernel thread vs process".into(),
        command: "cargo run --release -p benches --bin lab -- create".into(),
        claim: "\"创建和销毁线程的代价要远远小于对进程的创建和销毁\": creating and destroying a \
                thread costs far less than creating and destroying a process; \"启动一个线程远比启动\
                一个进程代价要小很多\" (starting a thread is much cheaper than starting a process)."
            .into(),
        measured: vec![
            "One operation is a whole life: create, run an empty body, wait for the end, reclaim. \
             Rows: our ULT (`ult::spawn(..).join()`) on a pooled stack and on a fresh stack \
             (`ult::stack::clear_pool()` after each join, so each spawn maps a new stack and \
             each join unmaps it), `std::thread::spawn(..).join()`, `fork()` + child `_exit(0)` \
             + `waitpid`, `posix_spawn(\"/bin/true\")` + `waitpid`, and as peers a goroutine \
             (`go` + `WaitGroup`), a may coroutine and a tokio task (`spawn(..).await`)."
                .into(),
            format!(
                "Each row's batch size was calibrated to about {} ms; then {} repetitions ran every \
                 row once in turn (A B C ... A B C ...). The value of a repetition is the batch's \
                 mean; the table shows the median, min and max over repetitions.",
                p.target.as_millis(),
                p.reps
            ),
        ],
        tables: vec![t],
        plots: vec![Plot {
            file: "create.svg".into(),
            alt: "Creation + destruction cost per operation, log scale".into(),
            spec: PlotSpec::HBars(HBars {
                title: "Create + destroy, one operation (median, whiskers: min-max; log scale)".into(),
                axis: "time per operation (log scale)".into(),
                bars,
                groups: Model::legend(),
            }),
        }],
        findings,
        flags,
        notes,
        raw,
    }
}
