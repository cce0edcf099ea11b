//! Experiment `switch`: the direct cost of one context switch, for user-level threads,
//! kernel threads and processes, beside peer runtimes and `stress-ng`.
//!
//! Rows (see `pingpong` for the loops; all one-way costs, i.e. per switch):
//!
//! | id | what |
//! |---|---|
//! | `ult-yield` | two ULTs calling `ult::yield_now` on one LWP (many-to-one executor), one CPU |
//! | `corosensei-raw` | the thread resuming a raw corosensei coroutine that suspends at once (no scheduler): the floor under `ult-yield`, for issue 2's target ([`super::ult_targets`]) |
//! | `ult-chan-1lwp`, `ult-chan-2lwp` | two ULTs ping-ponging over `lwp` `bounded(1)` channels on one LWP / on two LWPs pinned to two CPUs (each ULT on its own LWP): measured through the [`ChannelPingPong`] seam ([`channel_runtime`]) |
//! | `futex-1core`, `futex-overhead`, `futex-net` | two kernel threads handing a futex word back and forth on one CPU; the overhead is one thread doing the same `FUTEX_WAKE` (no waiter) + `FUTEX_WAIT` (word already changed, returns at once); net = raw - overhead, per repetition |
//! | `futex-2core` | the same hand-over with the threads on two CPUs |
//! | `pipe-raw`, `pipe-overhead`, `pipe-net` | two processes through two pipes on one CPU (lmbench `lat_ctx`, 2 processes, no working set); the overhead is one process writing and reading its own pipe; net = raw - overhead, per repetition |
//! | `go-gosched`, `go-chan` | Go, GOMAXPROCS=1: two goroutines calling `runtime.Gosched()`; unbuffered-channel ping-pong |
//! | `may-yield`, `tokio-yield` | two may coroutines (1 worker) / two tokio tasks (current_thread) yielding |
//! | `stress-ng` | `stress-ng --switch 1 --taskset CPU`, its own "nanosecs per context switch" figure |
//!
//! Software counters (context switches, migrations) are read around every in-process row to
//! confirm that a kernel "switch" really switched (about one kernel context switch per
//! switch) and that a ULT switch never entered the kernel (about zero).

use super::{fmt_summary, median_of, Ctx, Mode, Model, Row, Status};
use crate::counters::SoftCounts;
use crate::peers;
use crate::pingpong::{self, Timed};
use crate::plot::{Bar, HBars, PlotSpec};
use crate::report::{Plot, Section, Table};
use crate::stats::{self, fmt_ns, fmt_ratio, ratio, Summary};
use crate::sys;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The seam through which the many-to-many runtime (`lwp`) is measured: a ping-pong between
/// two ULTs over its channels (two ULTs, one sends on a `bounded(1)` channel and waits for
/// the reply on another, on `lwps` LWPs pinned to `cpus`). [`channel_runtime`] returns the
/// `lwp` implementation, [`LwpChannels`]; a runtime that cannot be measured returns `Err`
/// and the rows show it as pending.
pub trait ChannelPingPong {
    /// What is measured, e.g. `lwp 0.1, bounded(1) channels`.
    fn describe(&self) -> String;
    /// Runs `warm + rounds` round trips between two ULTs on `lwps` LWPs (pinned to `cpus`) and
    /// returns the time of the last `rounds` (each round trip is two switches).
    fn round_trips(
        &self,
        lwps: usize,
        cpus: &[usize],
        warm: u64,
        rounds: u64,
    ) -> Result<Duration, String>;
}

/// The many-to-many runtime's channel ping-pong, or why it is unavailable.
pub fn channel_runtime() -> Result<Box<dyn ChannelPingPong>, String> {
    Ok(Box::new(LwpChannels))
}

/// [`ChannelPingPong`] on the `lwp` runtime: `lwp::Runtime::builder().lwps(n).pin(true)`,
/// built while the calling thread is pinned to `cpus`, so LWP i is pinned to `cpus[i]`.
///
/// With one LWP both ULTs share it. With two, the partner ULT must start on the other LWP
/// (a started ULT then stays on its home LWP): the first ULT spawns it, plus a no-op ULT so
/// that the spawn queue holds surplus work and the idle LWP is woken to steal, and then spins
/// without yielding until the partner reports that it runs on another kernel thread. So every
/// hand-over of the two-LWP row crosses LWPs (and CPUs).
#[derive(Debug, Clone, Copy, Default)]
pub struct LwpChannels;

/// How long the first ULT waits for the partner to start on another LWP.
const PLACE_TIMEOUT: Duration = Duration::from_secs(2);

impl ChannelPingPong for LwpChannels {
    fn describe(&self) -> String {
        format!(
            "lwp {} many-to-many, bounded(1) channels",
            env!("CARGO_PKG_VERSION")
        )
    }

    fn round_trips(
        &self,
        lwps: usize,
        cpus: &[usize],
        warm: u64,
        rounds: u64,
    ) -> Result<Duration, String> {
        use std::sync::atomic::{AtomicU8, Ordering};
        use std::sync::Arc;
        let lwps = lwps.max(1);
        if cpus.len() < lwps {
            return Err(format!("{lwps} LWPs need {lwps} CPUs, got {cpus:?}"));
        }
        let _pin = sys::PinGuard::pin(&cpus[..lwps])
            .map_err(|e| format!("pinning to CPUs {:?}: {e}", &cpus[..lwps]))?;
        let rt = lwp::Runtime::builder()
            .lwps(lwps)
            .pin(true)
            .sysmon_warnings(false)
            .build()
            .map_err(|e| format!("building the lwp runtime: {e}"))?;
        rt.run(move || {
            let (to_b, from_a) = lwp::channel::bounded::<u64>(1);
            let (to_a, from_b) = lwp::channel::bounded::<u64>(1);
            // 0: not started; 1: started on A's kernel thread; 2: started on another one.
            let placed = Arc::new(AtomicU8::new(0));
            let me = std::thread::current().id();
            let flag = placed.clone();
            let echo = lwp::spawn(move || {
                // A started ULT stays on its LWP, so reading the kernel thread's id is stable.
                let here = if std::thread::current().id() == me {
                    1
                } else {
                    2
                };
                // Release: pairs with the Acquire load of the spinning first ULT.
                flag.store(here, Ordering::Release);
                for v in from_a.iter() {
                    if to_a.send(v).is_err() {
                        break;
                    }
                }
            });
            if lwps > 1 {
                let _ = lwp::spawn(|| ());
                let t0 = Instant::now();
                // Spin (no yield): this LWP cannot run the partner, so it starts elsewhere.
                while placed.load(Ordering::Acquire) == 0 {
                    if t0.elapsed() > PLACE_TIMEOUT {
                        drop(to_b);
                        return Err(
                            "the partner ULT did not start on another LWP within 2 s".into()
                        );
                    }
                    std::hint::spin_loop();
                }
                if placed.load(Ordering::Acquire) != 2 {
                    drop(to_b);
                    return Err("the partner ULT started on the same LWP".to_string());
                }
            }
            let mut ok = true;
            for i in 0..warm {
                ok &= to_b.send(i).is_ok() && from_b.recv().is_ok();
            }
            let t0 = Instant::now();
            for i in 0..rounds {
                ok &= to_b.send(i).is_ok() && from_b.recv().is_ok();
            }
            let elapsed = t0.elapsed();
            drop(to_b);
            let joined = echo.join().is_ok();
            if ok && joined {
                Ok(elapsed)
            } else {
                Err("a channel send or receive failed, or the echo ULT panicked".into())
            }
        })
    }
}

/// Parameters of one run of the experiment.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Repetitions of every row.
    pub reps: usize,
    /// Target duration of one timed loop.
    pub target: Duration,
    /// Seconds of one stress-ng run.
    pub stress_seconds: u32,
}

impl Params {
    /// Defaults of a mode.
    pub fn for_mode(mode: Mode) -> Params {
        match mode {
            Mode::Smoke => Params {
                reps: 2,
                target: Duration::from_millis(3),
                stress_seconds: 1,
            },
            Mode::Quick => Params {
                reps: 15,
                target: Duration::from_millis(50),
                stress_seconds: 1,
            },
            Mode::Full => Params {
                reps: 21,
                target: Duration::from_millis(200),
                stress_seconds: 3,
            },
        }
    }
}

/// What `switch` measured.
pub struct Outcome {
    /// Rows in table order (pipe rows: `pipe-raw`, `pipe-overhead`, `pipe-net`).
    pub rows: Vec<Row>,
    /// Kernel context switches per measured switch, per row id (median over repetitions).
    pub kernel_switches: Vec<(String, Option<f64>, Option<u64>)>,
    /// The report section.
    pub section: Section,
}

#[derive(Clone)]
enum Kind {
    UltYield,
    CoroutineRaw,
    Channel { lwps: usize },
    Futex { cpu_b: usize },
    FutexOverhead,
    Pipes,
    PipeOverhead,
    Go { bin: PathBuf, mode: &'static str },
    MayYield(PathBuf),
    TokioYield,
    StressNg(PathBuf),
}

/// One measurement: ns per switch, and counters when in-process.
struct Sample {
    ns: f64,
    counts: Option<SoftCounts>,
    all_switches: u64,
}

fn warm_for(n: u64) -> u64 {
    (n / 20).clamp(10, 10_000)
}

fn tokio_yield(warm: u64, rounds: u64) -> Result<Duration, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async move {
        let other = tokio::spawn(async move {
            for _ in 0..warm + rounds {
                tokio::task::yield_now().await;
            }
        });
        for _ in 0..warm {
            tokio::task::yield_now().await;
        }
        let t0 = Instant::now();
        for _ in 0..rounds {
            tokio::task::yield_now().await;
        }
        let e = t0.elapsed();
        other.await.map_err(|e| format!("tokio task: {e}"))?;
        Ok(e)
    })
}

fn from_timed(t: Timed) -> Sample {
    Sample {
        ns: t.ns_per_switch(),
        counts: Some(t.counts),
        all_switches: t.all_switches,
    }
}

/// Runs one row for `n` rounds (or round trips; stress-ng ignores n).
fn measure(kind: &Kind, n: u64, ctx: &Ctx, p: &Params) -> Result<Sample, String> {
    let warm = warm_for(n);
    match kind {
        Kind::UltYield => pingpong::ult_yield(None, warm, n, false).map(from_timed),
        Kind::CoroutineRaw => pingpong::coroutine_raw(warm, n).map(from_timed),
        Kind::Futex { cpu_b } => pingpong::futex(None, *cpu_b, warm, n, false).map(from_timed),
        Kind::Pipes => pingpong::pipes(None, warm, n, false).map(from_timed),
        Kind::FutexOverhead | Kind::PipeOverhead => {
            let soft = crate::counters::SoftCounters::start();
            let d = if matches!(kind, Kind::FutexOverhead) {
                pingpong::futex_overhead(warm, n)
            } else {
                pingpong::pipe_overhead(warm, n)?
            };
            Ok(Sample {
                ns: d.as_nanos() as f64 / n as f64,
                counts: Some(soft.stop()),
                all_switches: warm + n,
            })
        }
        Kind::Channel { lwps } => {
            let rt = channel_runtime()?;
            let cpus: Vec<usize> = std::iter::once(ctx.cpu_a)
                .chain(ctx.cpu_b)
                .take(*lwps)
                .collect();
            let d = rt.round_trips(*lwps, &cpus, warm, n)?;
            Ok(Sample {
                ns: d.as_nanos() as f64 / (2 * n) as f64,
                counts: None,
                all_switches: 2 * (warm + n),
            })
        }
        Kind::TokioYield => {
            let soft = crate::counters::SoftCounters::start();
            let d = tokio_yield(warm, n)?;
            Ok(Sample {
                ns: d.as_nanos() as f64 / (2 * n) as f64,
                counts: Some(soft.stop()),
                all_switches: 2 * (warm + n),
            })
        }
        Kind::Go { bin, mode } => {
            let mut cmd = Command::new(bin);
            cmd.args(["-mode", mode, "-n", &n.to_string(), "-w", &warm.to_string()]);
            let out = peers::run_peer(&mut cmd, Duration::from_secs(120))?;
            if out.switches == 0 {
                return Err("the Go peer reported zero switches".into());
            }
            Ok(Sample {
                ns: out.total_ns as f64 / out.switches as f64,
                counts: None,
                all_switches: out.switches,
            })
        }
        Kind::MayYield(exe) => {
            let mut cmd = Command::new(exe);
            cmd.args([
                "internal-peer",
                "may-yield",
                "--n",
                &n.to_string(),
                "--w",
                &warm.to_string(),
            ]);
            let out = peers::run_peer(&mut cmd, Duration::from_secs(120))?;
            if out.switches == 0 {
                return Err("the may peer reported zero switches".into());
            }
            Ok(Sample {
                ns: out.total_ns as f64 / out.switches as f64,
                counts: None,
                all_switches: out.switches,
            })
        }
        Kind::StressNg(bin) => {
            let out = Command::new(bin)
                .args([
                    "--switch",
                    "1",
                    "--taskset",
                    &ctx.cpu_a.to_string(),
                    "--timeout",
                    &p.stress_seconds.to_string(),
                    "--metrics",
                ])
                .current_dir(std::env::temp_dir())
                .output()
                .map_err(|e| format!("running stress-ng: {e}"))?;
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let ns = peers::parse_stress_ng_switch(&text).ok_or_else(|| {
                format!(
                    "stress-ng printed no \"nanosecs per context switch\" metric (exit {})",
                    out.status
                )
            })?;
            Ok(Sample {
                ns,
                counts: None,
                all_switches: 0,
            })
        }
    }
}

fn rows_and_kinds(ctx: &Ctx) -> Vec<(Row, Option<Kind>)> {
    let mut out: Vec<(Row, Option<Kind>)> = Vec::new();
    let mut add = |id: &str, label: &str, model: Model, k: Result<Kind, Status>| {
        let mut r = Row::new(id, label, model);
        let k = match k {
            Ok(k) => Some(k),
            Err(s) => {
                r.status = s;
                None
            }
        };
        out.push((r, k));
    };
    add(
        "ult-yield",
        "2 ULTs, yield, 1 LWP, 1 CPU",
        Model::Ult,
        Ok(Kind::UltYield),
    );
    add(
        "corosensei-raw",
        "raw corosensei resume + suspend, no scheduler, 1 CPU",
        Model::Ult,
        Ok(Kind::CoroutineRaw),
    );
    let chan = channel_runtime().map_err(Status::Pending);
    add(
        "ult-chan-1lwp",
        "2 ULTs, channel, 1 LWP",
        Model::Ult,
        chan.as_ref()
            .map(|_| Kind::Channel { lwps: 1 })
            .map_err(Clone::clone),
    );
    add(
        "ult-chan-2lwp",
        "2 ULTs, channel, 2 LWPs",
        Model::Ult,
        match (&chan, ctx.cpu_b) {
            (Err(s), _) => Err(s.clone()),
            (Ok(_), None) => Err(Status::NotApplicable("only one CPU is available".into())),
            (Ok(_), Some(_)) => Ok(Kind::Channel { lwps: 2 }),
        },
    );
    add(
        "futex-1core",
        "2 kernel threads, futex, 1 CPU",
        Model::KernelThread,
        Ok(Kind::Futex { cpu_b: ctx.cpu_a }),
    );
    add(
        "futex-overhead",
        "1 thread, futex wake + wait, no switch (overhead)",
        Model::KernelThread,
        Ok(Kind::FutexOverhead),
    );
    add(
        "futex-2core",
        "2 kernel threads, futex, 2 CPUs",
        Model::KernelThread,
        match ctx.cpu_b {
            Some(b) => Ok(Kind::Futex { cpu_b: b }),
            None => Err(Status::NotApplicable("only one CPU is available".into())),
        },
    );
    add(
        "pipe-raw",
        "2 processes, pipes, 1 CPU (raw)",
        Model::Process,
        Ok(Kind::Pipes),
    );
    add(
        "pipe-overhead",
        "1 process, pipe write+read (overhead)",
        Model::Process,
        Ok(Kind::PipeOverhead),
    );
    let go = |mode: &'static str| match &ctx.go {
        Ok(g) => Ok(Kind::Go {
            bin: g.switch.clone(),
            mode,
        }),
        Err(s) => Err(s.clone()),
    };
    add(
        "go-gosched",
        "Go, 2 goroutines, Gosched",
        Model::Peer,
        go("gosched"),
    );
    add(
        "go-chan",
        "Go, unbuffered channel ping-pong",
        Model::Peer,
        go("chan"),
    );
    add(
        "may-yield",
        "may, 2 coroutines, yield",
        Model::Peer,
        match &ctx.self_exe {
            Some(e) => Ok(Kind::MayYield(e.clone())),
            None => Err(Status::Missing("not running inside the lab binary".into())),
        },
    );
    add(
        "tokio-yield",
        "tokio, 2 tasks, yield_now",
        Model::Peer,
        Ok(Kind::TokioYield),
    );
    add(
        "stress-ng",
        "stress-ng --switch (its own figure)",
        Model::Peer,
        match peers::find_in_path("stress-ng") {
            Some(p) => Ok(Kind::StressNg(p)),
            None => Err(Status::Missing(
                "`stress-ng` is not on PATH; install with `sudo scripts/install-peers.sh`".into(),
            )),
        },
    );
    out
}

/// Runs the experiment.
pub fn run(ctx: &Ctx) -> Outcome {
    let mut p = Params::for_mode(ctx.mode);
    p.reps = ctx.reps(p.reps);
    let mut rk = rows_and_kinds(ctx);
    let measurable = rk.iter().filter(|(_, k)| k.is_some()).count() as u64;
    let pb = ctx.bar("switch", measurable * (p.reps as u64 + 1));
    let pin = sys::PinGuard::pin(&[ctx.cpu_a]);
    let pin_note = match &pin {
        Ok(_) => format!("CPU {}", ctx.cpu_a),
        Err(e) => format!("no CPU (sched_setaffinity failed: {e})"),
    };
    let mut counts: Vec<Vec<SoftCounts>> = vec![Vec::new(); rk.len()];
    let mut all_sw: Vec<u64> = vec![0; rk.len()];
    // Calibrate.
    for (row, kind) in rk.iter_mut() {
        let Some(kind) = kind else { continue };
        pb.set_message(format!("calibrating {}", row.label));
        if matches!(kind, Kind::StressNg(_)) {
            row.iterations = 0;
        } else {
            let r = stats::calibrate(p.target, 64, 50_000_000, |n| {
                measure(kind, n, ctx, &p)
                    .map(|s| Duration::from_nanos((s.ns * 2.0 * n as f64) as u64))
            });
            match r {
                Ok(n) => row.iterations = n,
                Err(e) => row.fail(e),
            }
        }
        pb.inc(1);
    }
    for rep in 0..p.reps {
        for (i, (row, kind)) in rk.iter_mut().enumerate() {
            let Some(kind) = kind else { continue };
            if row.status != Status::Measured {
                pb.inc(1);
                continue;
            }
            pb.set_message(format!("rep {}/{}: {}", rep + 1, p.reps, row.label));
            match measure(kind, row.iterations, ctx, &p) {
                Ok(s) => {
                    row.values.push(s.ns);
                    if let Some(c) = s.counts {
                        counts[i].push(c);
                    }
                    all_sw[i] = s.all_switches;
                }
                Err(e) => row.fail(e),
            }
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    drop(pin);

    let mut rows: Vec<Row> = rk.into_iter().map(|(r, _)| r).collect();
    // Net costs, paired per repetition: raw hand-over minus the same system calls without a
    // switch.
    let mut nets: Vec<(String, stats::NetCost)> = Vec::new();
    for (raw_id, ovh_id, net_id, label, model) in [
        (
            "futex-1core",
            "futex-overhead",
            "futex-net",
            "2 kernel threads, futex, 1 CPU (net of overhead)",
            Model::KernelThread,
        ),
        (
            "pipe-raw",
            "pipe-overhead",
            "pipe-net",
            "2 processes, pipes, 1 CPU (net of overhead)",
            Model::Process,
        ),
    ] {
        let raw = super::find(&rows, raw_id);
        let ovh = super::find(&rows, ovh_id);
        let net = match (raw, ovh) {
            (Some(r), Some(o)) if r.summary().is_some() && o.summary().is_some() => {
                stats::subtract_overhead(&r.values, &o.values).ok()
            }
            _ => None,
        };
        let mut net_row = Row::new(net_id, label, model);
        match &net {
            Some(n) => {
                net_row.values = n.net_values.clone();
                net_row.iterations = raw.map(|r| r.iterations).unwrap_or(0);
            }
            None => {
                net_row.status =
                    Status::Failed(format!("`{raw_id}` or `{ovh_id}` was not measured"))
            }
        }
        if let Some(n) = net {
            nets.push((net_id.to_string(), n));
        }
        let pos = rows
            .iter()
            .position(|r| r.id == ovh_id)
            .map(|i| i + 1)
            .unwrap_or(rows.len());
        rows.insert(pos, net_row);
        counts.insert(pos, Vec::new());
        all_sw.insert(pos, 0);
    }

    let kernel_switches: Vec<(String, Option<f64>, Option<u64>)> = rows
        .iter()
        .zip(&counts)
        .zip(&all_sw)
        .map(|((r, c), &sw)| {
            let per: Vec<f64> = c
                .iter()
                .filter_map(|c| c.context_switches)
                .map(|n| n as f64 / sw.max(1) as f64)
                .collect();
            let mig: Option<u64> = c.iter().filter_map(|c| c.migrations).max();
            (r.id.clone(), stats::median(&per), mig)
        })
        .collect();
    let from_rusage = counts.iter().flatten().any(|c| c.from_rusage);
    let section = section(
        ctx,
        &p,
        &rows,
        &kernel_switches,
        &nets,
        from_rusage,
        &pin_note,
    );
    Outcome {
        rows,
        kernel_switches,
        section,
    }
}

fn section(
    ctx: &Ctx,
    p: &Params,
    rows: &[Row],
    ks: &[(String, Option<f64>, Option<u64>)],
    nets: &[(String, stats::NetCost)],
    from_rusage: bool,
    pin_note: &str,
) -> Section {
    let ult = median_of(rows, "ult-yield");
    let fx1 = median_of(rows, "futex-1core");
    let mut t = Table::new(&[
        "switch",
        "model",
        "median per switch",
        "min",
        "max",
        "vs ULT yield",
        "kernel context switches per switch",
        "CPU migrations",
        "rounds per rep x reps",
    ]);
    let mut bars = Vec::new();
    for (r, (_, kper, mig)) in rows.iter().zip(ks) {
        let kcell = kper
            .map(|k| format!("{k:.3}"))
            .unwrap_or_else(|| "n/a".into());
        let mcell = mig.map(|m| m.to_string()).unwrap_or_else(|| "n/a".into());
        match r.summary() {
            Some(s) => {
                let [med, min, max] = fmt_summary(&s);
                let iters = if r.id == "stress-ng" {
                    format!("{} s x {}", p.stress_seconds, s.n)
                } else {
                    format!("{} x {}", r.iterations, s.n)
                };
                t.row(vec![
                    r.label.clone(),
                    r.model.name().into(),
                    med.clone(),
                    min,
                    max,
                    ult.and_then(|u| ratio(&s, &u))
                        .map(fmt_ratio)
                        .unwrap_or_else(|| "n/a".into()),
                    kcell,
                    mcell,
                    iters,
                ]);
                if !r.id.ends_with("-overhead") {
                    bars.push(Bar {
                        label: r.label.clone(),
                        value: s.median,
                        min: s.min,
                        max: s.max,
                        group: r.model.group(),
                        text: med,
                    });
                }
            }
            None => {
                let mut cells = vec![r.label.clone(), r.model.name().into(), r.status.text()];
                cells.extend(std::iter::repeat_n("-".to_string(), 6));
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
    let pnet = median_of(rows, "pipe-net");
    let praw = median_of(rows, "pipe-raw");
    let fnet = median_of(rows, "futex-net");
    let fx2 = median_of(rows, "futex-2core");
    if let (Some(u), Some(k)) = (ult, fx1) {
        findings.push(format!(
            "User-level vs kernel: a ULT yield switched in {}, a kernel-thread futex hand-over on \
             the same CPU in {} ({} net of the futex calls' own cost): the user-level switch is \
             {} cheaper ({} against the net figure). The lecture's claim {}.",
            fmt_ns(u.median),
            fmt_ns(k.median),
            fnet.map(|s| fmt_ns(s.median))
                .unwrap_or_else(|| "n/a".into()),
            fmt_ratio(k.median / u.median),
            fnet.map(|s| fmt_ratio(s.median / u.median))
                .unwrap_or_else(|| "n/a".into()),
            if k.median > 2.0 * u.median {
                "holds here"
            } else {
                "does NOT clearly hold here"
            }
        ));
        if k.median <= u.median || fnet.is_some_and(|f| f.median <= u.median) {
            flags.push(format!(
                "a kernel-thread switch (raw {}, net {}) was not slower than a ULT switch ({}): \
                 looks impossible",
                fmt_ns(k.median),
                fnet.map(|s| fmt_ns(s.median))
                    .unwrap_or_else(|| "n/a".into()),
                fmt_ns(u.median)
            ));
        }
    }
    if let (Some(k), Some(pr)) = (fx1, praw) {
        let r_raw = pr.median / k.median;
        let r_net = match (pnet, fnet) {
            (Some(p), Some(f)) if f.median > 0.0 => Some(p.median / f.median),
            _ => None,
        };
        let r = r_net.unwrap_or(r_raw);
        findings.push(format!(
            "Thread vs process: a process switch through pipes cost {} raw and {} net, a \
             kernel-thread switch through a futex {} raw and {} net: the process switch is {} the \
             thread switch raw, {} net. {}",
            fmt_ns(pr.median),
            pnet.map(|s| fmt_ns(s.median))
                .unwrap_or_else(|| "n/a".into()),
            fmt_ns(k.median),
            fnet.map(|s| fmt_ns(s.median))
                .unwrap_or_else(|| "n/a".into()),
            fmt_ratio(r_raw),
            r_net.map(fmt_ratio).unwrap_or_else(|| "n/a".into()),
            if r > 1.2 {
                "The lecture's claim that a thread switch is cheaper holds here; both go through \
                 the same scheduler, the difference is the change of address space."
            } else {
                "On this kernel the two are close: both are a trip through the same scheduler, and \
                 changing the address space (with PCID, no TLB flush) adds little. The lecture's \
                 large gap is between user-level and kernel switches, not between kernel threads \
                 and processes."
            }
        ));
    }
    if let (Some(k1), Some(k2)) = (fx1, fx2) {
        findings.push(format!(
            "Across CPUs the same futex hand-over took {} ({} the same-CPU cost): waking a thread \
             on another, idle CPU is far dearer than switching on one.",
            fmt_ns(k2.median),
            fmt_ratio(k2.median / k1.median)
        ));
    }
    if let Some(u) = ult {
        let peers: Vec<String> = ["go-gosched", "go-chan", "may-yield", "tokio-yield"]
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
            findings.push(format!("Peers on the same CPU: {}.", peers.join("; ")));
        }
    }
    if let (Some(sn), Some(pr)) = (median_of(rows, "stress-ng"), praw) {
        findings.push(format!(
            "Cross-check: stress-ng's switch stressor reports {} per context switch (its own \
             definition, pipe method) against our raw pipe round trip's {} per switch.",
            fmt_ns(sn.median),
            fmt_ns(pr.median)
        ));
    }
    let ks_of = |id: &str| ks.iter().find(|(i, _, _)| i == id).and_then(|(_, k, _)| *k);
    let kernel_rows = ["futex-1core", "pipe-raw"];
    let kernel_ok: Vec<String> = kernel_rows
        .iter()
        .filter_map(|id| ks_of(id).map(|k| format!("`{id}` {k:.2}")))
        .collect();
    if let Some(uk) = ks_of("ult-yield") {
        findings.push(format!(
            "The counters confirm what switched: kernel context switches per measured switch were \
             {} for the kernel rows and {:.4} for the ULT yield, which never enters the kernel.",
            if kernel_ok.is_empty() {
                "not available".to_string()
            } else {
                kernel_ok.join(", ")
            },
            uk
        ));
        if uk > 0.01 {
            flags.push(format!(
                "the ULT yield loop saw {uk:.3} kernel context switches per switch (expected about 0): \
                 the executor may have blocked"
            ));
        }
    }
    for id in kernel_rows {
        if let Some(k) = ks_of(id) {
            if k < 0.8 {
                flags.push(format!(
                    "`{id}` saw only {k:.2} kernel context switches per measured switch: some \
                     hand-overs did not switch, so its cost per switch is understated"
                ));
            }
        }
    }
    if let Some(k) = ks_of("futex-2core") {
        findings.push(format!(
            "On two CPUs the futex rows saw {k:.2} kernel context switches per hand-over: each side \
             sleeps while the other runs, so every hand-over is a wake-up of a sleeping CPU."
        ));
    }
    for (id, _, mig) in ks {
        if let Some(m) = mig {
            let one_cpu = [
                "ult-yield",
                "futex-overhead",
                "futex-1core",
                "pipe-raw",
                "pipe-overhead",
                "tokio-yield",
            ];
            if *m > 0 && one_cpu.contains(&id.as_str()) {
                flags.push(format!(
                    "`{id}` recorded {m} CPU migrations although it was pinned to one CPU"
                ));
            }
        }
    }
    for (id, n) in nets {
        if n.negative_reps > 0 {
            flags.push(format!(
                "`{id}`: the net switch cost was negative in {} of {} repetitions (overhead larger \
                 than the raw hand-over): impossible for a cost; the two were measured in different \
                 machine states",
                n.negative_reps,
                n.net_values.len()
            ));
        }
    }
    for r in rows {
        if let Some(s) = r.summary() {
            if s.spread() > 2.0 && !r.id.ends_with("-net") {
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

    let mut notes = vec![
        format!(
            "One-CPU rows ran on {pin_note}; the cross-CPU futex row pins its second thread to CPU {}.",
            ctx.cpu_b.map(|b| b.to_string()).unwrap_or_else(|| "-".into())
        ),
        "Each row's loop has the same shape: side A hands over to side B and waits to get control \
         back; a round trip holds two switches, and the figure is the time per switch (half a \
         round trip). The ULT, futex and pipe loops are the ones the cache experiment reuses with \
         a working set."
            .into(),
        "The pipe rows follow lmbench's lat_ctx with two processes and no working set: raw is \
         half a round trip; overhead is one process writing one byte to its own pipe and reading \
         it back (the system-call work of a hand-over without the switch), measured in the same \
         repetition; net = raw - overhead per repetition. The futex rows get the same treatment: \
         their overhead is one thread calling FUTEX_WAKE with no waiter and FUTEX_WAIT on a word \
         that already changed (both return at once), so raw and net are comparable across the two \
         kernel mechanisms."
            .into(),
        "Kernel context switches per switch are counted with perf software counters inherited by \
         the partner thread or process, warm-up included; `n/a` for rows that run in another \
         process (Go, may, stress-ng) or are not measured."
            .into(),
        "stress-ng's figure is its own: it divides run time by the messages its switch stressor \
         passed, with its own pipe sizes and process layout. It is a cross-check of magnitude, not \
         of method."
            .into(),
    ];
    if from_rusage {
        notes.push(
            "perf software counters could not be opened; context switches come from getrusage \
             (voluntary + involuntary) and migrations are unknown."
                .into(),
        );
    }
    match channel_runtime() {
        Err(e) => notes.push(format!("The two channel rows are pending: {e}.")),
        Ok(rt) => notes.push(format!(
            "Channel rows: {}; a round trip is a send to the partner and a receive of its echo \
             (two switches). The one-LWP row runs both ULTs on one LWP pinned to the one-CPU \
             rows' CPU; the two-LWP row pins the LWPs to the two cross-core CPUs and starts the \
             partner ULT on the second LWP, so every hand-over wakes the other LWP.",
            rt.describe()
        )),
    }

    let raw = serde_json::json!({
        "params": {"reps": p.reps, "target_ms": p.target.as_millis() as u64, "stress_seconds": p.stress_seconds},
        "rows": rows.iter().zip(ks).map(|(r, (_, k, m))| serde_json::json!({
            "row": r, "summary": r.summary(), "kernel_switches_per_switch": k, "migrations_max": m,
        })).collect::<Vec<_>>(),
        "net": nets,
    });

    Section {
        id: "switch".into(),
        title: "Direct cost of a context switch".into(),
        command: "cargo run --release -p benches --bin lab -- switch".into(),
        claim: "\"线程的上下文切换比进程的上下文切换要快得多\": a thread switch is much faster than a \
                process switch, because a process switch must trap into the kernel and change the \
                address space; and for user-level threads, \"好处: 上下文切换代价小\" (their advantage: \
                cheap context switches), while with kernel threads \"每个线程操作都需要陷入到内核\" \
                (every thread operation traps into the kernel)."
            .into(),
        measured: vec![
            "Two execution contexts hand control back and forth, and nothing else: two ULTs \
             yielding on one kernel thread; two kernel threads handing a futex word to each other \
             on one CPU and on two; two processes passing a byte through pipes on one CPU \
             (lmbench lat_ctx); for the one-CPU kernel rows also the net cost, with the same \
             system calls made without a switch subtracted; and peers: Go's Gosched and \
             channel ping-pong, may and tokio yields, stress-ng's switch stressor."
                .into(),
            format!(
                "Each row's round count was calibrated to about {} ms per loop; then {} repetitions \
                 ran every row once in turn. Figures are per switch (one way); median, min and max \
                 over repetitions.",
                p.target.as_millis(),
                p.reps
            ),
        ],
        tables: vec![t],
        plots: vec![Plot {
            file: "switch.svg".into(),
            alt: "Direct cost of one switch, log scale".into(),
            spec: PlotSpec::HBars(HBars {
                title: "One context switch (median, whiskers: min-max; log scale)".into(),
                axis: "time per switch (log scale)".into(),
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

/// The summary of the net pipe cost, for callers that want it without the rows.
pub fn pipe_net(rows: &[Row]) -> Option<Summary> {
    median_of(rows, "pipe-net")
}
