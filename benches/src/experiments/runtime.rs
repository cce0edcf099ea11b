//! Experiment `runtime`: issue 3's targets for the two-level runtime (`lwp`), each measured
//! beside the thing it is compared with, in one run, rows interleaved.
//!
//! | group | rows | one operation | target (issue 3) |
//! |---|---|---|---|
//! | yield | `lwp-yield-rt`, `futex-rt` | a round trip A->B->A: two ULTs yielding on one LWP / two kernel threads handing a futex word over on one CPU | ULT >= 100x cheaper |
//! | spawn | `lwp-spawn`, `std-spawn`, `tokio-spawn`, `may-spawn`, `go-spawn` | spawn + join, in batches of 1000 spawned then joined, on all cores | ULT >= 50x cheaper than `std::thread` |
//! | skynet | `lwp-skynet`, `tokio-skynet`, `may-skynet`, `go-skynet` | one whole skynet run: 1M leaves, fan-out 10, sums sent up through channels | ours <= 250 ms |
//! | chan | `lwp-chan`, `tokio-chan`, `may-chan`, `go-chan` | a channel round trip between two ULTs / tasks on one CPU | ours <= 80 ns |
//! | parked | `lwp-parked`, `go-parked`, `tokio-parked`, `may-parked` | RSS growth per task with N tasks parked at once (child processes) | ours <= 5 KiB |
//!
//! Measurement discipline (module `experiments`): loop lengths of the one-CPU rows and of
//! `std::thread` are calibrated; the other rows use fixed counts ([`Params`]). A warm-up run
//! of every fixed-count row at a tenth (spawn) or a hundredth (skynet) of its count, which
//! also checks that it works, precedes the repetitions; each repetition runs every row once,
//! in table order; the heavy rows (the parked rows, each a child process holding up to a
//! million tasks, and may's skynet from [`HEAVY_SKYNET_LEAVES`] leaves up, which takes tens of
//! seconds) run in the first [`Params::heavy_reps`] repetitions only. Every in-process row
//! builds its runtime inside the measurement and drops it after, so no idle scheduler threads
//! of one row disturb another; `may` and Go run in child processes. One-CPU rows pin the measuring thread to `Ctx::cpu_a` (the one-LWP runtime is
//! built while pinned, and pins its LWP there); many-core rows run unpinned on every CPU the
//! lab may use, with one LWP / worker / GOMAXPROCS per CPU.
//!
//! The verdicts are computed from this run's medians by [`verdict_ratio`] and
//! [`verdict_at_most`] against the targets (the constants below); the report also
//! counts how many paired repetitions met each target.
//!
//! `vm.max_map_count`: a live may coroutine stack takes two mappings (guard page + stack),
//! and so does a ULT stack where the kernel has no guard markers (before Linux 6.13, see
//! `ult::stack`), so a million parked ones need a limit of about 2.2 million, far above the
//! usual default of 65530. The plan assumes two for every stackful runtime. [`plan_parked`] runs the largest count that fits, and the report and stderr say
//! so, with the `sysctl` command that raises it; `lab --raise-limits` raises it for the run
//! (`bin/lab.rs`, through [`crate::sys::MaxMapCountGuard`], which restores it).
//!
//! Called by `bin/lab.rs` (`lab runtime`, and `lab` / `lab all`).

use super::{fmt_summary, median_of, Ctx, Mode, Model, Row, Status};
use crate::peers::{self, PeerOutput};
use crate::plot::{Bar, HBars, PlotSpec};
use crate::report::{Plot, Section, Table};
use crate::rtkernels::{self, ParkedOutput};
use crate::stats::{self, fmt_bytes, fmt_ns, fmt_ratio, ratio, Summary};
use crate::{pingpong, sys};
use serde::Serialize;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Target: a ULT yield round trip at least this many times cheaper than a futex round trip.
pub const YIELD_TARGET_FACTOR: f64 = 100.0;
/// Target: ULT spawn + join at least this many times cheaper than `std::thread`'s.
pub const SPAWN_TARGET_FACTOR: f64 = 50.0;
/// Target: skynet with 1M leaves in at most this many nanoseconds (250 ms).
pub const SKYNET_TARGET_NS: f64 = 250e6;
/// Target: a channel round trip in at most this many nanoseconds.
pub const CHAN_TARGET_NS: f64 = 80.0;
/// Target: at most this many bytes of RSS per parked ULT (5 KiB).
pub const PARKED_TARGET_BYTES: f64 = 5.0 * 1024.0;
/// The count for spawn, skynet and parked: one million.
pub const MILLION: u64 = 1_000_000;
/// Spawned, then joined, per batch.
pub const BATCH: u64 = 1000;
/// may's skynet with at least this many leaves is a heavy row (see [`Params::heavy_reps`]).
pub const HEAVY_SKYNET_LEAVES: u64 = 100_000;
/// Upper bound on skynet's nodes per leaf (1 + 1/10 + 1/100 ... < 1.12). In the worst case
/// every node of may's skynet is a live coroutine at once, each with a stack of two mappings.
pub const SKYNET_NODES_PER_LEAF: f64 = 1.12;

/// Parameters of one run of the experiment.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Params {
    /// Repetitions of the yield, spawn, skynet and channel rows.
    pub reps: usize,
    /// Repetitions of the heavy rows (the first `heavy_reps` repetitions run them): the
    /// parked rows, and may's skynet from [`HEAVY_SKYNET_LEAVES`] leaves up.
    pub heavy_reps: usize,
    /// Target duration of a calibrated loop (one-CPU rows; `std::thread` spawn uses twice it).
    pub target: Duration,
    /// Spawn + join operations per repetition of the ULT, tokio, may and Go rows.
    pub spawn_n: u64,
    /// skynet leaves.
    pub skynet_leaves: u64,
    /// At most this many leaves for may's skynet (its stacks make big trees slow; see the
    /// report).
    pub may_skynet_max_leaves: u64,
    /// Tasks parked at once, before the mapping limit is applied.
    pub parked_n: u64,
}

impl Params {
    /// Defaults of a mode.
    pub fn for_mode(mode: Mode) -> Params {
        match mode {
            Mode::Smoke => Params {
                reps: 2,
                heavy_reps: 1,
                target: Duration::from_millis(2),
                spawn_n: 2 * BATCH,
                skynet_leaves: 1_000,
                may_skynet_max_leaves: 1_000,
                parked_n: 1_000,
            },
            Mode::Quick => Params {
                reps: 7,
                heavy_reps: 3,
                target: Duration::from_millis(50),
                spawn_n: 200 * BATCH,
                skynet_leaves: MILLION,
                may_skynet_max_leaves: 10_000,
                parked_n: 100_000,
            },
            Mode::Full => Params {
                reps: 7,
                heavy_reps: 3,
                target: Duration::from_millis(200),
                spawn_n: MILLION,
                skynet_leaves: MILLION,
                may_skynet_max_leaves: MILLION,
                parked_n: MILLION,
            },
        }
    }
}

/// The `vm.max_map_count` a run of `params` needs for every row to use its full count: the
/// parked rows (ours and may, stackful) and may's skynet.
pub fn required_map_count(params: &Params) -> u64 {
    let skynet_live = (params.may_skynet_max_leaves.min(params.skynet_leaves) as f64
        * SKYNET_NODES_PER_LEAF)
        .ceil() as u64;
    rtkernels::required_map_count(params.parked_n.max(skynet_live))
}

/// How many tasks the parked rows hold at once, given the mapping limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParkedPlan {
    /// What the mode asks for.
    pub requested: u64,
    /// What will run.
    pub n: u64,
    /// `vm.max_map_count`, if readable.
    pub limit: Option<u64>,
    /// The limit `requested` needs.
    pub required: u64,
}

impl ParkedPlan {
    /// Whether the mapping limit lowered the count.
    pub fn capped(&self) -> bool {
        self.n < self.requested
    }

    /// The command that raises the limit enough.
    pub fn sysctl_command(&self) -> String {
        format!("sysctl -w vm.max_map_count={}", self.required)
    }

    /// The sentence stderr and the report print when the count was capped, `None` otherwise.
    pub fn warning(&self) -> Option<String> {
        self.capped().then(|| {
            format!(
                "vm.max_map_count is {} but {} parked ULTs need about {} mappings (two per \
                 stack), so the parked rows run {} at once instead. Raise the limit with `sudo {}` \
                 (and restore it afterwards), or run the lab as root with --raise-limits, which \
                 raises it for the run and restores it.",
                self.limit
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                self.requested,
                self.required,
                self.n,
                self.sysctl_command()
            )
        })
    }
}

/// Plans the parked rows: the requested count, or the largest that fits the mapping limit
/// `limit` when `used` mappings exist already (see [`rtkernels::live_ult_budget`]). An
/// unreadable limit runs the requested count.
pub fn plan_parked(requested: u64, limit: Option<u64>, used: u64) -> ParkedPlan {
    let n = match limit {
        Some(l) => requested.min(rtkernels::live_ult_budget(l, used)).max(1),
        None => requested,
    };
    ParkedPlan {
        requested,
        n,
        limit,
        required: rtkernels::required_map_count(requested),
    }
}

/// Mappings a parked-row child process has beyond what this (parent) process has when it
/// plans: its runtime's threads and pools. The child caps itself again with its own count
/// ([`rtkernels::parked_rss`]); this keeps the parent's plan under the child's cap.
pub const CHILD_EXTRA_MAPPINGS: u64 = 1_000;

/// The plan for this process now (reads `/proc`).
pub fn plan_parked_now(requested: u64) -> ParkedPlan {
    plan_parked(
        requested,
        ult::stack::read_max_map_count().map(|l| l as u64),
        rtkernels::mappings().unwrap_or(1_000) as u64 + CHILD_EXTRA_MAPPINGS,
    )
}

/// skynet leaves for may: the largest power of ten at most `min(leaves, max_leaves)` whose
/// tree fits `live_budget` live stacks (at least 10).
pub fn may_skynet_leaves(leaves: u64, max_leaves: u64, live_budget: u64) -> u64 {
    let cap = leaves.min(max_leaves);
    let mut l = 10u64;
    while l * 10 <= cap && ((l * 10) as f64 * SKYNET_NODES_PER_LEAF) as u64 <= live_budget {
        l *= 10;
    }
    l
}

pub use super::Verdict;

/// "ours at least `factor` times cheaper than `other`": (other / ours, verdict) from the
/// medians; `Unknown` when either is missing or not positive.
pub fn verdict_ratio(
    ours: Option<&Summary>,
    other: Option<&Summary>,
    factor: f64,
) -> (Option<f64>, Verdict) {
    match (ours, other) {
        (Some(o), Some(k)) => match ratio(k, o) {
            Some(r) if o.median > 0.0 => (
                Some(r),
                if r >= factor {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                },
            ),
            _ => (None, Verdict::Unknown),
        },
        _ => (None, Verdict::Unknown),
    }
}

/// "ours at most `limit`" from the median.
pub fn verdict_at_most(ours: Option<&Summary>, limit: f64) -> Verdict {
    match ours {
        Some(o) if o.median.is_finite() && o.median >= 0.0 => {
            if o.median <= limit {
                Verdict::Pass
            } else {
                Verdict::Fail
            }
        }
        _ => Verdict::Unknown,
    }
}

/// How many repetitions met a ratio target, pairing `ours[i]` with `other[i]` (they ran in
/// the same repetition): (met, paired).
pub fn reps_meeting_ratio(ours: &[f64], other: &[f64], factor: f64) -> (usize, usize) {
    let pairs: Vec<(f64, f64)> = ours
        .iter()
        .zip(other)
        .filter(|(o, k)| o.is_finite() && k.is_finite() && **o > 0.0)
        .map(|(o, k)| (*o, *k))
        .collect();
    (
        pairs.iter().filter(|(o, k)| k / o >= factor).count(),
        pairs.len(),
    )
}

/// A `(met, total)` count as a table cell: `5/7`, or `-` when nothing was paired.
pub fn reps_fraction((met, of): (usize, usize)) -> String {
    if of == 0 {
        "-".to_string()
    } else {
        format!("{met}/{of}")
    }
}

/// How many repetitions stayed at or under `limit`: (met, total).
pub fn reps_meeting_limit(values: &[f64], limit: f64) -> (usize, usize) {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    (v.iter().filter(|x| **x <= limit).count(), v.len())
}

/// One of the targets, evaluated on this run.
#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    /// Group id (`yield`, `spawn`, `skynet`, `chan`, `parked`).
    pub id: String,
    /// The target in words.
    pub target: String,
    /// Our row's median, formatted.
    pub ours: String,
    /// What ours is compared with, formatted (or `-`).
    pub compared_with: String,
    /// The figure the target is about (a ratio or ours again), formatted.
    pub measured: String,
    /// The verdict at the medians.
    pub verdict: Verdict,
    /// Repetitions that met the target, e.g. `5/5`.
    pub reps_meeting: String,
}

/// What a row's values mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Group {
    /// Nanoseconds per round trip, one CPU.
    Yield,
    /// Nanoseconds per spawn + join, all cores.
    Spawn,
    /// Nanoseconds per whole skynet run, all cores.
    Skynet,
    /// Nanoseconds per channel round trip, one CPU.
    Chan,
    /// Bytes of RSS per parked task, all cores.
    Parked,
}

impl Group {
    fn id(self) -> &'static str {
        match self {
            Group::Yield => "yield",
            Group::Spawn => "spawn",
            Group::Skynet => "skynet",
            Group::Chan => "chan",
            Group::Parked => "parked",
        }
    }

    fn fmt(self, v: f64) -> String {
        match self {
            Group::Parked if v.is_finite() => {
                if v < 0.0 {
                    format!("-{}", fmt_bytes((-v).round() as u64))
                } else {
                    fmt_bytes(v.round() as u64)
                }
            }
            Group::Parked => "n/a".into(),
            _ => fmt_ns(v),
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    LwpYield,
    FutexRt,
    LwpSpawn,
    StdSpawn,
    TokioSpawn,
    MaySpawn(PathBuf),
    GoSpawn(PathBuf),
    LwpSkynet,
    TokioSkynet,
    MaySkynet(PathBuf),
    GoSkynet(PathBuf),
    LwpChan,
    TokioChan,
    MayChan(PathBuf),
    GoChan(PathBuf),
    LwpParked(PathBuf),
    GoParked(PathBuf),
    TokioParked(PathBuf),
    MayParked(PathBuf),
}

impl Kind {
    fn pinned(&self) -> bool {
        matches!(
            self,
            Kind::LwpYield
                | Kind::FutexRt
                | Kind::LwpChan
                | Kind::TokioChan
                | Kind::MayChan(_)
                | Kind::GoChan(_)
        )
    }

    fn calibrated(&self) -> bool {
        self.pinned() || matches!(self, Kind::StdSpawn)
    }
}

/// One measurement.
#[derive(Debug, Clone, Default)]
struct Sample {
    value: f64,
    page_tables: Option<f64>,
    runtime: Option<String>,
    note: Option<String>,
    lwp: Option<lwp::MetricsSnapshot>,
}

/// Per-row details beside the values.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RowInfo {
    /// The group.
    pub group: Option<Group>,
    /// Page-table bytes per parked task, per repetition (parked rows).
    pub page_tables: Vec<f64>,
    /// The runtime as the peer described itself.
    pub runtime: Option<String>,
    /// Notes from the measurement (e.g. fewer tasks parked than asked).
    pub notes: Vec<String>,
    /// lwp metrics of the last repetition (our many-core rows): spawns, steals, LWP parks.
    pub lwp_metrics: Option<(u64, u64, u64, u64)>,
}

/// What `runtime` measured.
pub struct Outcome {
    /// Rows in table order.
    pub rows: Vec<Row>,
    /// Per-row details, same order.
    pub info: Vec<RowInfo>,
    /// The targets and verdicts.
    pub targets: Vec<TargetResult>,
    /// How the parked rows were sized.
    pub parked_plan: ParkedPlan,
    /// The report section.
    pub section: Section,
}

const CHILD_LIMIT: Duration = Duration::from_secs(300);

fn child(exe: &PathBuf) -> Command {
    let mut c = Command::new(exe);
    // A failing peer (may's stack allocator) can panic thousands of times: no backtraces.
    c.env("RUST_BACKTRACE", "0").env("LWP_SYSMON_QUIET", "1");
    c
}

fn peer_time(out: &PeerOutput, per_op: bool) -> Result<f64, String> {
    if out.ops == 0 {
        return Err("the peer reported zero operations".into());
    }
    Ok(if per_op {
        out.total_ns as f64 / out.ops as f64
    } else {
        out.total_ns as f64
    })
}

fn from_parked(o: ParkedOutput) -> Result<Sample, String> {
    let per = o.rss_per_task().ok_or_else(|| {
        format!(
            "nothing was parked ({})",
            o.shortfall.clone().unwrap_or_default()
        )
    })?;
    Ok(Sample {
        value: per,
        page_tables: o.page_tables_per_task(),
        runtime: Some(o.runtime.clone()),
        note: o
            .shortfall
            .clone()
            .map(|s| format!("{} of {} parked: {s}", o.parked, o.requested)),
        lwp: None,
    })
}

fn parse_parked(stdout: &str) -> Result<ParkedOutput, String> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .ok_or("no JSON line in the parked peer's output")?;
    serde_json::from_str(line).map_err(|e| format!("bad parked JSON ({e})"))
}

fn lwp_many(cores: usize) -> Result<lwp::Runtime, String> {
    lwp::Runtime::builder()
        .lwps(cores.max(1))
        .sysmon_warnings(false)
        .build()
        .map_err(|e| format!("building the lwp runtime: {e}"))
}

fn lwp_one_pinned() -> Result<lwp::Runtime, String> {
    // The caller is pinned to one CPU: the LWP (and sysmon) inherit it, and pin(true) pins
    // LWP 0 to the first (only) CPU of that mask.
    lwp::Runtime::builder()
        .lwps(1)
        .pin(true)
        .sysmon_warnings(false)
        .build()
        .map_err(|e| format!("building the lwp runtime: {e}"))
}

fn warm_for(n: u64) -> u64 {
    (n / 20).clamp(100, 10_000)
}

/// Runs one row once with count `n` (rounds, operations, leaves or tasks).
fn measure(kind: &Kind, n: u64, ctx: &Ctx, cores: usize) -> Result<Sample, String> {
    let _pin = if kind.pinned() {
        Some(
            sys::PinGuard::pin(&[ctx.cpu_a])
                .map_err(|e| format!("pinning to CPU {}: {e}", ctx.cpu_a))?,
        )
    } else {
        None
    };
    let warm = warm_for(n);
    let time = |v: f64| Sample {
        value: v,
        ..Sample::default()
    };
    // A peer that reports a total time and an operation count: time per operation.
    let per_op_peer = |c: &mut Command| -> Result<Sample, String> {
        let out = peers::run_peer(c, CHILD_LIMIT)?;
        Ok(Sample {
            runtime: Some(out.runtime.clone()),
            ..time(peer_time(&out, true)?)
        })
    };
    match kind {
        Kind::LwpYield => {
            let rt = lwp_one_pinned()?;
            Ok(time(rtkernels::lwp_yield_pingpong(&rt, warm, n)))
        }
        Kind::FutexRt => {
            let t = pingpong::futex(None, ctx.cpu_a, warm, n, false)?;
            Ok(time(t.elapsed.as_nanos() as f64 / n.max(1) as f64))
        }
        Kind::LwpChan => {
            let rt = lwp_one_pinned()?;
            rtkernels::lwp_channel_pingpong(&rt, warm, n).map(time)
        }
        Kind::TokioChan => rtkernels::tokio_channel_pingpong(warm, n).map(time),
        Kind::MayChan(exe) => {
            let mut c = child(exe);
            c.args([
                "internal-peer",
                "may-chan",
                "--n",
                &n.to_string(),
                "--w",
                &warm.to_string(),
            ]);
            per_op_peer(&mut c)
        }
        Kind::GoChan(bin) => {
            let mut c = Command::new(bin);
            c.args(["chan", "-n", &n.to_string()]);
            per_op_peer(&mut c)
        }
        Kind::LwpSpawn => {
            let rt = lwp_many(cores)?;
            let v = rtkernels::lwp_spawn_join(&rt, n, BATCH)?;
            Ok(Sample {
                lwp: Some(rt.metrics()),
                ..time(v)
            })
        }
        Kind::StdSpawn => rtkernels::std_spawn_join(n, BATCH).map(time),
        Kind::TokioSpawn => {
            let rt = rtkernels::tokio_runtime(cores).map_err(|e| format!("tokio runtime: {e}"))?;
            rtkernels::tokio_spawn_join(&rt, n, BATCH).map(time)
        }
        Kind::MaySpawn(exe) => {
            let mut c = child(exe);
            c.args([
                "internal-peer",
                "may-spawn",
                "--n",
                &n.to_string(),
                "--batch",
                &BATCH.to_string(),
                "--workers",
                &cores.to_string(),
            ]);
            per_op_peer(&mut c)
        }
        Kind::GoSpawn(bin) => {
            let mut c = Command::new(bin);
            c.args(["spawn", "-n", &n.to_string(), "-batch", &BATCH.to_string()]);
            per_op_peer(&mut c)
        }
        Kind::LwpSkynet => {
            let rt = lwp_many(cores)?;
            let (d, sum) = rtkernels::lwp_skynet(&rt, n);
            check_sum(sum, n)?;
            Ok(Sample {
                lwp: Some(rt.metrics()),
                ..time(d.as_nanos() as f64)
            })
        }
        Kind::TokioSkynet => {
            let rt = rtkernels::tokio_runtime(cores).map_err(|e| format!("tokio runtime: {e}"))?;
            let (d, sum) = rtkernels::tokio_skynet(&rt, n);
            check_sum(sum, n)?;
            Ok(time(d.as_nanos() as f64))
        }
        Kind::MaySkynet(exe) => {
            let mut c = child(exe);
            c.args([
                "internal-peer",
                "may-skynet",
                "--leaves",
                &n.to_string(),
                "--workers",
                &cores.to_string(),
            ]);
            let out = peers::run_peer(&mut c, CHILD_LIMIT)?;
            check_sum(out.extra.max(0) as u64, n)?;
            Ok(Sample {
                runtime: Some(out.runtime.clone()),
                ..time(out.total_ns as f64)
            })
        }
        Kind::GoSkynet(bin) => {
            let mut c = Command::new(bin);
            c.args(["skynet", "-leaves", &n.to_string()]);
            let out = peers::run_peer(&mut c, CHILD_LIMIT)?;
            check_sum(out.extra.max(0) as u64, n)?;
            Ok(Sample {
                runtime: Some(out.runtime.clone()),
                ..time(out.total_ns as f64)
            })
        }
        Kind::LwpParked(exe) | Kind::TokioParked(exe) | Kind::MayParked(exe) => {
            let (sub, flag) = match kind {
                Kind::LwpParked(_) => ("parked-rss", "--lwps"),
                Kind::TokioParked(_) => ("tokio-parked", "--workers"),
                _ => ("may-parked", "--workers"),
            };
            let mut c = child(exe);
            c.args([
                "internal-peer",
                sub,
                "--n",
                &n.to_string(),
                flag,
                &cores.to_string(),
            ]);
            from_parked(parse_parked(&peers::run_for_stdout(&mut c, CHILD_LIMIT)?)?)
        }
        Kind::GoParked(bin) => {
            let mut c = Command::new(bin);
            c.args(["parked", "-n", &n.to_string()]);
            let out = peers::run_peer(&mut c, CHILD_LIMIT)?;
            from_parked(ParkedOutput {
                requested: n,
                parked: out.ops,
                rss_growth_bytes: out.extra,
                page_table_growth_bytes: None,
                runtime: out.runtime,
                shortfall: None,
            })
        }
    }
}

fn check_sum(sum: u64, leaves: u64) -> Result<(), String> {
    let want = rtkernels::skynet_expected(leaves);
    if sum == want {
        Ok(())
    } else {
        Err(format!(
            "skynet with {leaves} leaves summed to {sum}, not {want}: part of the tree was lost"
        ))
    }
}

struct Planned {
    row: Row,
    group: Group,
    kind: Option<Kind>,
    info: RowInfo,
}

impl Planned {
    /// Runs only in the first `heavy_reps` repetitions.
    fn heavy(&self) -> bool {
        self.group == Group::Parked
            || (matches!(self.kind, Some(Kind::MaySkynet(_)))
                && self.row.iterations >= HEAVY_SKYNET_LEAVES)
    }
}

/// The count of a fixed-count row's warm-up (and check) run: a tenth of a spawn row's
/// operations (whole batches), a hundredth of a skynet tree's leaves (a power of ten stays
/// one), the full count otherwise.
pub fn warm_up_count(group: Group, n: u64) -> u64 {
    match group {
        Group::Spawn => (n / 10 / BATCH * BATCH).max(BATCH),
        Group::Skynet => (n / 100).max(10),
        _ => n,
    }
}

fn plan_rows(ctx: &Ctx, p: &Params, cores: usize, parked: &ParkedPlan) -> Vec<Planned> {
    let mut out = Vec::new();
    let go = |f: fn(PathBuf) -> Kind| match &ctx.go {
        Ok(g) => Ok(f(g.runtime.clone())),
        Err(s) => Err(s.clone()),
    };
    let exe = |f: fn(PathBuf) -> Kind| match &ctx.self_exe {
        Some(e) => Ok(f(e.clone())),
        None => Err(Status::Missing("not running inside the lab binary".into())),
    };
    let mut add =
        |id: &str, label: String, model: Model, group: Group, n: u64, k: Result<Kind, Status>| {
            let mut row = Row::new(id, &label, model);
            row.iterations = n;
            let kind = match k {
                Ok(k) => Some(k),
                Err(s) => {
                    row.status = s;
                    None
                }
            };
            out.push(Planned {
                row,
                group,
                kind,
                info: RowInfo {
                    group: Some(group),
                    ..RowInfo::default()
                },
            });
        };
    use Group::*;
    add(
        "lwp-yield-rt",
        "2 ULTs, yield, 1 LWP, 1 CPU".into(),
        Model::Ult,
        Yield,
        0,
        Ok(Kind::LwpYield),
    );
    add(
        "futex-rt",
        "2 kernel threads, futex, 1 CPU".into(),
        Model::KernelThread,
        Yield,
        0,
        Ok(Kind::FutexRt),
    );
    let s = p.spawn_n;
    add(
        "lwp-spawn",
        format!("ULT spawn+join, M:N, {cores} LWPs"),
        Model::Ult,
        Spawn,
        s,
        Ok(Kind::LwpSpawn),
    );
    add(
        "std-spawn",
        "std::thread spawn+join".into(),
        Model::KernelThread,
        Spawn,
        0,
        Ok(Kind::StdSpawn),
    );
    add(
        "tokio-spawn",
        format!("tokio task spawn+await, {cores} workers"),
        Model::Peer,
        Spawn,
        s,
        Ok(Kind::TokioSpawn),
    );
    add(
        "may-spawn",
        format!("may coroutine spawn+join, {cores} workers"),
        Model::Peer,
        Spawn,
        s,
        exe(Kind::MaySpawn),
    );
    add(
        "go-spawn",
        format!("goroutine spawn+wait, GOMAXPROCS={cores}"),
        Model::Peer,
        Spawn,
        s,
        go(Kind::GoSpawn),
    );
    let l = p.skynet_leaves;
    let leaves_word = count_word;
    add(
        "lwp-skynet",
        format!("skynet {} leaves, ULTs, {cores} LWPs", leaves_word(l)),
        Model::Ult,
        Skynet,
        l,
        Ok(Kind::LwpSkynet),
    );
    add(
        "tokio-skynet",
        format!("skynet {} leaves, tokio, {cores} workers", leaves_word(l)),
        Model::Peer,
        Skynet,
        l,
        Ok(Kind::TokioSkynet),
    );
    let may_leaves = may_skynet_leaves(
        l,
        p.may_skynet_max_leaves,
        parked
            .limit
            .map(|lim| {
                rtkernels::live_ult_budget(lim, rtkernels::mappings().unwrap_or(1_000) as u64)
            })
            .unwrap_or(u64::MAX),
    );
    add(
        "may-skynet",
        format!(
            "skynet {} leaves, may, {cores} workers",
            leaves_word(may_leaves)
        ),
        Model::Peer,
        Skynet,
        may_leaves,
        exe(Kind::MaySkynet),
    );
    add(
        "go-skynet",
        format!("skynet {} leaves, Go, GOMAXPROCS={cores}", leaves_word(l)),
        Model::Peer,
        Skynet,
        l,
        go(Kind::GoSkynet),
    );
    add(
        "lwp-chan",
        "2 ULTs, bounded(1) channels, 1 LWP".into(),
        Model::Ult,
        Chan,
        0,
        Ok(Kind::LwpChan),
    );
    add(
        "tokio-chan",
        "tokio, 2 tasks, mpsc(1), current_thread".into(),
        Model::Peer,
        Chan,
        0,
        Ok(Kind::TokioChan),
    );
    add(
        "may-chan",
        "may, 2 coroutines, mpsc, 1 worker".into(),
        Model::Peer,
        Chan,
        0,
        exe(Kind::MayChan),
    );
    add(
        "go-chan",
        "Go, 2 goroutines, unbuffered, GOMAXPROCS=1".into(),
        Model::Peer,
        Chan,
        0,
        go(Kind::GoChan),
    );
    let n = parked.n;
    add(
        "lwp-parked",
        format!("ULTs parked, M:N, {cores} LWPs"),
        Model::Ult,
        Parked,
        n,
        exe(Kind::LwpParked),
    );
    add(
        "go-parked",
        "goroutines parked on a channel".into(),
        Model::Peer,
        Parked,
        n,
        go(Kind::GoParked),
    );
    add(
        "tokio-parked",
        format!("tokio tasks parked on a oneshot, {cores} workers"),
        Model::Peer,
        Parked,
        n,
        exe(Kind::TokioParked),
    );
    add(
        "may-parked",
        format!("may coroutines parked, {cores} workers"),
        Model::Peer,
        Parked,
        n,
        exe(Kind::MayParked),
    );
    out
}

fn record(planned: &mut Planned, s: Sample) {
    planned.row.values.push(s.value);
    if let Some(pt) = s.page_tables {
        planned.info.page_tables.push(pt);
    }
    if s.runtime.is_some() {
        planned.info.runtime = s.runtime;
    }
    if let Some(n) = s.note {
        if !planned.info.notes.contains(&n) {
            planned.info.notes.push(n);
        }
    }
    if let Some(m) = s.lwp {
        planned.info.lwp_metrics = Some((m.spawns, m.steals, m.lwp_parks, m.sysmon_interventions));
    }
}

/// Runs the experiment.
pub fn run(ctx: &Ctx) -> Outcome {
    let mut p = Params::for_mode(ctx.mode);
    p.reps = ctx.reps(p.reps);
    p.heavy_reps = p.heavy_reps.min(p.reps).max(1);
    let cores = ctx.machine.allowed_cpus.len().max(1);
    let parked = plan_parked_now(p.parked_n);
    if let Some(w) = parked.warning() {
        eprintln!("lab: runtime: {w}");
    }
    let mut planned = plan_rows(ctx, &p, cores, &parked);
    let measurable = planned.iter().filter(|r| r.kind.is_some()).count() as u64;
    let heavy_rows = planned
        .iter()
        .filter(|r| r.kind.is_some() && r.heavy())
        .count() as u64;
    let pb = ctx.bar(
        "runtime",
        (measurable - heavy_rows) * (p.reps as u64 + 1) + heavy_rows * (p.heavy_reps as u64 + 1),
    );

    // Calibrate the loops, warm up (and check) the fixed-count rows.
    for pl in planned.iter_mut() {
        let Some(kind) = pl.kind.clone() else {
            continue;
        };
        if pl.group == Group::Parked {
            pb.inc(1);
            continue;
        }
        pb.set_message(format!("calibrating {}", pl.row.label));
        if kind.calibrated() {
            let (target, min, max) = if matches!(kind, Kind::StdSpawn) {
                (2 * p.target, 100, 1_000_000)
            } else {
                (p.target, 1_000, 100_000_000)
            };
            let r = stats::calibrate(target, min, max, |n| {
                measure(&kind, n, ctx, cores)
                    .map(|s| Duration::from_nanos((s.value * n as f64) as u64))
            });
            match r {
                Ok(n) => pl.row.iterations = n,
                Err(e) => pl.row.fail(e),
            }
        } else if let Err(e) = measure(
            &kind,
            warm_up_count(pl.group, pl.row.iterations),
            ctx,
            cores,
        ) {
            pl.row.fail(e);
        }
        pb.inc(1);
    }
    for rep in 0..p.reps {
        for pl in planned.iter_mut() {
            let Some(kind) = pl.kind.clone() else {
                continue;
            };
            if pl.heavy() && rep >= p.heavy_reps {
                continue;
            }
            if pl.row.status != Status::Measured {
                pb.inc(1);
                continue;
            }
            pb.set_message(format!("rep {}/{}: {}", rep + 1, p.reps, pl.row.label));
            match measure(&kind, pl.row.iterations, ctx, cores) {
                Ok(s) => record(pl, s),
                Err(e) => pl.row.fail(e),
            }
            pb.inc(1);
        }
    }
    pb.finish_and_clear();

    let (rows, info): (Vec<Row>, Vec<RowInfo>) =
        planned.into_iter().map(|pl| (pl.row, pl.info)).unzip();
    let targets = targets(&rows);
    let section = section(ctx, &p, cores, &rows, &info, &targets, &parked);
    Outcome {
        rows,
        info,
        targets,
        parked_plan: parked,
        section,
    }
}

/// Evaluates the five targets on measured rows.
pub fn targets(rows: &[Row]) -> Vec<TargetResult> {
    let mut out = Vec::new();
    let s = |id: &str| median_of(rows, id);
    let vals = |id: &str| {
        super::find(rows, id)
            .filter(|r| r.summary().is_some())
            .map(|r| r.values.clone())
            .unwrap_or_default()
    };
    let fmt_opt =
        |g: Group, v: Option<Summary>| v.map(|v| g.fmt(v.median)).unwrap_or_else(|| "n/a".into());
    for (id, ours_id, other_id, factor, words, group) in [
        (
            "yield",
            "lwp-yield-rt",
            "futex-rt",
            YIELD_TARGET_FACTOR,
            "yield round trip between two ULTs on one LWP at least 100x cheaper than a futex round trip between two kernel threads on one CPU",
            Group::Yield,
        ),
        (
            "spawn",
            "lwp-spawn",
            "std-spawn",
            SPAWN_TARGET_FACTOR,
            "ULT spawn + join (M:N, all cores) at least 50x cheaper than std::thread spawn + join",
            Group::Spawn,
        ),
    ] {
        let (o, k) = (s(ours_id), s(other_id));
        let (r, v) = verdict_ratio(o.as_ref(), k.as_ref(), factor);
        out.push(TargetResult {
            id: id.into(),
            target: words.into(),
            ours: fmt_opt(group, o),
            compared_with: fmt_opt(group, k),
            measured: r.map(|r| format!("{} cheaper", fmt_ratio(r))).unwrap_or_else(|| "n/a".into()),
            verdict: v,
            reps_meeting: reps_fraction(reps_meeting_ratio(&vals(ours_id), &vals(other_id), factor)),
        });
    }
    for (id, ours_id, limit, words, group) in [
        (
            "skynet",
            "lwp-skynet",
            SKYNET_TARGET_NS,
            "skynet, 1M leaves, M:N on all cores, in at most 250 ms",
            Group::Skynet,
        ),
        (
            "chan",
            "lwp-chan",
            CHAN_TARGET_NS,
            "channel round trip between two ULTs on one LWP in at most 80 ns",
            Group::Chan,
        ),
        (
            "parked",
            "lwp-parked",
            PARKED_TARGET_BYTES,
            "at most 5 KiB of RSS per parked ULT, 1M parked at once",
            Group::Parked,
        ),
    ] {
        let o = s(ours_id);
        let count = super::find(rows, ours_id)
            .map(|r| r.iterations)
            .unwrap_or(0);
        let mut t = TargetResult {
            id: id.into(),
            target: words.into(),
            ours: fmt_opt(group, o),
            compared_with: "-".into(),
            measured: fmt_opt(group, o),
            verdict: verdict_at_most(o.as_ref(), limit),
            reps_meeting: reps_fraction(reps_meeting_limit(&vals(ours_id), limit)),
        };
        if o.is_some() && count != MILLION {
            match group {
                // A total time is only comparable with the target at the target's size.
                Group::Skynet => {
                    t.verdict = Verdict::Unknown;
                    t.reps_meeting = "-".into();
                    t.measured = format!("n/a: this run used {} leaves", count_word(count));
                }
                // A per-task figure is judged, but the count it was measured at is stated.
                Group::Parked => {
                    t.target = format!("{words} (this run: {} parked at once)", count_word(count))
                }
                _ => {}
            }
        }
        out.push(t);
    }
    out
}

/// `1M`, `200k`, `30092`: a count in the report's words.
pub fn count_word(n: u64) -> String {
    if n >= MILLION && n.is_multiple_of(MILLION) {
        format!("{}M", n / MILLION)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// The targets as a table (the report's first table, also printed by the lab at the end).
pub fn targets_table(targets: &[TargetResult]) -> Table {
    targets_table_titled("issue 3 target", targets)
}

/// Targets as a table whose first column is headed `title` (e.g. `issue 2 target`).
pub fn targets_table_titled(title: &str, targets: &[TargetResult]) -> Table {
    let mut t = Table::new(&[
        title,
        "ours (median)",
        "compared with (median)",
        "measured",
        "verdict",
        "repetitions meeting it",
    ])
    .caption("Targets, judged on this run's medians");
    for r in targets {
        t.row(vec![
            r.target.clone(),
            r.ours.clone(),
            r.compared_with.clone(),
            r.measured.clone(),
            format!("**{}**", r.verdict.word()),
            r.reps_meeting.clone(),
        ]);
    }
    t
}

#[allow(clippy::too_many_arguments)]
fn section(
    ctx: &Ctx,
    p: &Params,
    cores: usize,
    rows: &[Row],
    info: &[RowInfo],
    targets: &[TargetResult],
    parked: &ParkedPlan,
) -> Section {
    let mut tables = vec![targets_table(targets)];
    let mut time_bars = Vec::new();
    let mut skynet_bars = Vec::new();
    let mut parked_bars = Vec::new();
    let groups = [
        (
            Group::Yield,
            "lwp-yield-rt",
            "Yield round trip, one CPU",
            "median per round trip",
        ),
        (
            Group::Spawn,
            "lwp-spawn",
            "Spawn + join, all cores, batches of 1000",
            "median per spawn+join",
        ),
        (
            Group::Skynet,
            "lwp-skynet",
            "skynet, all cores",
            "median per run",
        ),
        (
            Group::Chan,
            "lwp-chan",
            "Channel round trip, one CPU",
            "median per round trip",
        ),
        (
            Group::Parked,
            "lwp-parked",
            "Memory per parked task, all cores",
            "median RSS per task",
        ),
    ];
    for (g, ours_id, caption, median_head) in groups {
        let ours = median_of(rows, ours_id);
        let mut head = vec!["row", "model", median_head, "min", "max", "vs ours"];
        match g {
            Group::Skynet => head.push("per leaf (median)"),
            Group::Parked => head.push("page tables per task (median)"),
            _ => {}
        }
        head.extend(["count per rep x reps", "runtime"]);
        let mut t = Table::new(&head).caption(caption);
        for (r, inf) in rows.iter().zip(info) {
            if inf.group != Some(g) {
                continue;
            }
            let runtime = inf.runtime.clone().unwrap_or_else(|| "-".into());
            match r.summary() {
                Some(sm) => {
                    let [med, min, max] = match g {
                        Group::Parked => [g.fmt(sm.median), g.fmt(sm.min), g.fmt(sm.max)],
                        _ => fmt_summary(&sm),
                    };
                    let vs = ours
                        .and_then(|o| ratio(&sm, &o))
                        .map(fmt_ratio)
                        .unwrap_or_else(|| "n/a".into());
                    let mut cells = vec![
                        r.label.clone(),
                        r.model.name().into(),
                        med.clone(),
                        min,
                        max,
                        vs,
                    ];
                    match g {
                        Group::Skynet => cells.push(fmt_ns(sm.median / r.iterations.max(1) as f64)),
                        Group::Parked => cells.push(
                            stats::median(&inf.page_tables)
                                .map(|v| g.fmt(v))
                                .unwrap_or_else(|| "n/a".into()),
                        ),
                        _ => {}
                    }
                    let unit = match g {
                        Group::Yield | Group::Chan => "round trips",
                        Group::Spawn => "ops",
                        Group::Skynet => "leaves",
                        Group::Parked => "tasks",
                    };
                    cells.push(format!("{} {unit} x {}", r.iterations, sm.n));
                    cells.push(runtime);
                    t.row(cells);
                    let bar = Bar {
                        label: r.label.clone(),
                        value: sm.median,
                        min: sm.min,
                        max: sm.max,
                        group: r.model.group(),
                        text: med,
                    };
                    match g {
                        Group::Skynet => skynet_bars.push(bar),
                        Group::Parked => parked_bars.push(bar),
                        _ => time_bars.push(Bar {
                            label: format!("{}: {}", g.id(), r.label),
                            ..bar
                        }),
                    }
                }
                None => {
                    let mut cells = vec![r.label.clone(), r.model.name().into(), r.status.text()];
                    cells.extend(std::iter::repeat_n("-".to_string(), head.len() - 4));
                    cells.push(runtime);
                    t.row(cells);
                    let bar = Bar {
                        label: format!("{} ({})", r.label, r.status.short()),
                        value: f64::NAN,
                        min: f64::NAN,
                        max: f64::NAN,
                        group: r.model.group(),
                        text: String::new(),
                    };
                    match g {
                        Group::Skynet => skynet_bars.push(bar),
                        Group::Parked => parked_bars.push(bar),
                        _ => time_bars.push(Bar {
                            label: format!("{}: {}", g.id(), bar.label),
                            ..bar
                        }),
                    }
                }
            }
        }
        tables.push(t);
    }

    let (findings, flags) = findings_and_flags(p, cores, rows, info, targets, parked);
    let mut notes = vec![
        format!(
            "One-CPU rows (yield, channel) ran with the measuring thread pinned to CPU {}: the \
             one-LWP runtime is built while pinned and pins its LWP there; the futex partner, the \
             tokio current_thread runtime, may's single worker and Go (GOMAXPROCS=1, from the \
             affinity mask) run there too. All-core rows (spawn, skynet, parked) ran unpinned on \
             CPUs {} with {cores} LWPs / workers / GOMAXPROCS; our LWPs are not pinned there \
             either, like the peers' workers.",
            ctx.cpu_a,
            crate::report::cpu_list(&ctx.machine.allowed_cpus)
        ),
        "Every in-process row builds its runtime (lwp, tokio) inside the measurement and drops it \
         afterwards, so each repetition starts from a fresh runtime, as each Go and may \
         repetition starts from a fresh process; the spawn rows run one batch before the timed \
         ones, the skynet rows time their first run (process or runtime start-up is never \
         timed)."
            .into(),
        "Round trips: the yield row times A yield -> B yield -> A (two ULT switches each way \
         through the scheduler); the futex row times the same hand-over between kernel threads \
         (half of it is the `switch` experiment's per-switch figure). Channel rows: ours and \
         tokio use capacity-1 channels, may's are unbounded (it has no bounded mpsc), Go's \
         unbuffered (benches/go/runtime); all send a u64 and wait for the echo."
            .into(),
        "Spawn rows: spawn 1000, then join those 1000, repeated; the join of a task that already \
         finished is cheap, so this measures throughput on all cores, not the latency of one \
         isolated spawn (see `create` for that). std::thread runs far fewer operations \
         (calibrated), in the same batches."
            .into(),
        format!(
            "Parked rows run in child processes (`lab internal-peer ...`) that start the runtime, \
             read their RSS, park N tasks (each ULT has touched its default {} KiB stack, of which \
             only the touched pages are resident), wait until all reached their park, read the \
             RSS again, then release them: the figure is the growth divided by N, and it \
             includes each runtime's bookkeeping (our JoinHandles, Go's g structs, tokio's task \
             cells). Page tables are not part of the RSS; the table shows them separately where \
             the child could read VmPTE.",
            ult::stack::DEFAULT_STACK_SIZE / 1024
        ),
        "may builds a pool of coroutines, stacks included, when its scheduler starts (before \
         the parked row's baseline is read); its first parked coroutines reuse them, so may's \
         figure understates its cost by up to the pool's size (in its runtime column) over N \
         stacks."
            .into(),
    ];
    notes.push(format!(
        "Counts in this mode: spawn {} per repetition x {} repetitions (the issue's 1M is `--full`'s \
         count{}); skynet {} leaves; parked {} at once{}.",
        count_word(p.spawn_n),
        p.reps,
        if p.spawn_n == MILLION { ", used here" } else { "" },
        count_word(p.skynet_leaves),
        count_word(parked.n),
        if parked.n < MILLION {
            format!(
                " (the issue's target is stated for 1M; {})",
                if parked.capped() {
                    "this run was capped by vm.max_map_count, see the flags"
                } else {
                    "`--full` parks 1M"
                }
            )
        } else {
            String::new()
        }
    ));
    let raw = serde_json::json!({
        "params": p,
        "cores": cores,
        "targets_constants": {
            "yield_factor": YIELD_TARGET_FACTOR, "spawn_factor": SPAWN_TARGET_FACTOR,
            "skynet_ns": SKYNET_TARGET_NS, "chan_ns": CHAN_TARGET_NS, "parked_bytes": PARKED_TARGET_BYTES,
        },
        "targets": targets,
        "parked_plan": parked,
        "rows": rows.iter().zip(info).map(|(r, i)| serde_json::json!({
            "row": r, "summary": r.summary(), "info": i,
        })).collect::<Vec<_>>(),
    });
    let legend = Model::legend();
    Section {
        id: "runtime".into(),
        title: "The two-level runtime: issue 3's targets against kernel threads, tokio, may and Go".into(),
        command: "cargo run --release -p benches --bin lab -- runtime".into(),
        claim: "\"引入一种两层线程方法: 轻量级的进程 (LWP) 能够执行用户空间的线程\" (a two-level \
                approach: light-weight processes run user-level threads), so that \"尽可能融合用户级别\
                和内核级别的线程,发挥各自的优势\" (user-level and kernel threads are combined, each \
                contributing its strength: cheap user-level operations, and kernel threads that use \
                every core); the lecture adds that \"事实上这种做法带来的性能提升也难以弥补其复杂性带来\
                的困难\" (in practice the gain hardly pays for the complexity). Issue 3 turns the claim \
                into five targets for our M:N runtime."
            .into(),
        measured: vec![
            "Five operations, each beside what it is compared with: a yield round trip (two ULTs on \
             one LWP vs two kernel threads through a futex, one CPU); spawn + join on all cores \
             (ULTs on M:N vs std::thread, tokio, may, goroutines); skynet (a tree of 1M leaves, \
             fan-out 10, each node a task that sums its children's numbers received through a \
             channel); a channel round trip between two tasks on one CPU; and the memory of tasks \
             parked at once."
                .into(),
            format!(
                "Loop lengths of the one-CPU rows were calibrated to about {} ms ({} ms for \
                 std::thread spawn); the other rows use fixed counts, and ran once first at a tenth \
                 (spawn) or a hundredth (skynet) of their count as a warm-up and check. Then {} \
                 repetitions ran every row once in turn; the heavy rows (parked, and may's skynet \
                 from 100k leaves) ran in the first {} only. Tables show median, min and max over \
                 repetitions; verdicts use the medians.",
                p.target.as_millis(),
                2 * p.target.as_millis(),
                p.reps,
                p.heavy_reps
            ),
        ],
        tables,
        plots: vec![
            Plot {
                file: "runtime.svg".into(),
                alt: "Yield and channel round trips and spawn + join, ours against peers, log scale".into(),
                spec: PlotSpec::HBars(HBars {
                    title: "Round trips (1 CPU) and spawn+join (all cores): median, min-max, log scale".into(),
                    axis: "time per operation (log scale)".into(),
                    bars: time_bars,
                    groups: legend.clone(),
                }),
            },
            Plot {
                file: "runtime-skynet.svg".into(),
                alt: "skynet, one whole run, ours against peers".into(),
                spec: PlotSpec::HBars(HBars {
                    title: "skynet, one run (median, min-max; log scale)".into(),
                    axis: "time per run (log scale)".into(),
                    bars: skynet_bars,
                    groups: legend.clone(),
                }),
            },
            Plot {
                file: "runtime-parked.svg".into(),
                alt: "RSS per parked task, ours against peers".into(),
                spec: PlotSpec::HBarsBytes(HBars {
                    title: format!("RSS per parked task, {} parked at once (median, min-max; log scale)", parked.n),
                    axis: "resident memory per task (log scale)".into(),
                    bars: parked_bars,
                    groups: legend,
                }),
            },
        ],
        findings,
        flags,
        notes,
        raw,
    }
}

fn findings_and_flags(
    p: &Params,
    cores: usize,
    rows: &[Row],
    info: &[RowInfo],
    targets: &[TargetResult],
    parked: &ParkedPlan,
) -> (Vec<String>, Vec<String>) {
    let mut findings = Vec::new();
    let mut flags = Vec::new();
    let m = |id: &str| median_of(rows, id);
    let verdict = |id: &str| targets.iter().find(|t| t.id == id);
    let peers_line = |ours: &str, ids: &[&str], g: Group| -> Option<String> {
        let o = m(ours)?;
        let parts: Vec<String> = ids
            .iter()
            .filter_map(|id| {
                let r = super::find(rows, id)?;
                let s = r.summary()?;
                Some(format!(
                    "{} {} ({} ours)",
                    r.label,
                    g.fmt(s.median),
                    fmt_ratio(s.median / o.median)
                ))
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    };
    if let (Some(u), Some(k), Some(t)) = (m("lwp-yield-rt"), m("futex-rt"), verdict("yield")) {
        findings.push(format!(
            "Yield: a round trip between two ULTs on one LWP took {}, between two kernel threads \
             through a futex on the same CPU {}: {} cheaper, so the 100x target is **{}** \
             ({} repetitions met it). The user-level switch never enters the kernel; \
             each kernel hand-over makes futex system calls and goes through the kernel's \
             scheduler.",
            fmt_ns(u.median),
            fmt_ns(k.median),
            fmt_ratio(k.median / u.median),
            t.verdict.word(),
            t.reps_meeting
        ));
        if u.median >= k.median {
            flags.push(format!(
                "a ULT yield round trip ({}) was not cheaper than a futex round trip ({}): looks impossible",
                fmt_ns(u.median),
                fmt_ns(k.median)
            ));
        }
    }
    if let (Some(u), Some(k), Some(t)) = (m("lwp-spawn"), m("std-spawn"), verdict("spawn")) {
        let mut line = format!(
            "Spawn + join on {cores} cores: {} per ULT against {} per std::thread, {} cheaper: \
             the 50x target is **{}** ({} repetitions).",
            fmt_ns(u.median),
            fmt_ns(k.median),
            fmt_ratio(k.median / u.median),
            t.verdict.word(),
            t.reps_meeting
        );
        if let Some(pl) = peers_line(
            "lwp-spawn",
            &["tokio-spawn", "may-spawn", "go-spawn"],
            Group::Spawn,
        ) {
            line.push_str(&format!(" Peers, same batches: {pl}."));
        }
        findings.push(line);
        if u.median >= k.median {
            flags.push(format!(
                "a ULT spawn+join ({}) was not cheaper than a kernel thread's ({}): looks impossible",
                fmt_ns(u.median),
                fmt_ns(k.median)
            ));
        }
    }
    if let (Some(u), Some(t)) = (m("lwp-skynet"), verdict("skynet")) {
        let mut line = format!(
            "skynet with {} leaves took {} per run on {cores} LWPs (min {}, max {}): the 250 ms \
             target (for 1M leaves) is **{}** ({} repetitions).",
            count_word(p.skynet_leaves),
            fmt_ns(u.median),
            fmt_ns(u.min),
            fmt_ns(u.max),
            t.verdict.word(),
            t.reps_meeting
        );
        let may_same_tree =
            super::find(rows, "may-skynet").is_some_and(|r| r.iterations == p.skynet_leaves);
        let ids: &[&str] = if may_same_tree {
            &["tokio-skynet", "may-skynet", "go-skynet"]
        } else {
            &["tokio-skynet", "go-skynet"]
        };
        if let Some(pl) = peers_line("lwp-skynet", ids, Group::Skynet) {
            line.push_str(&format!(" Peers on the same tree: {pl}."));
        }
        findings.push(line);
    }
    if let Some(r) = super::find(rows, "may-skynet") {
        if r.iterations < p.skynet_leaves {
            let why = if r.iterations < p.may_skynet_max_leaves.min(p.skynet_leaves) {
                format!(
                    "its tree of {} leaves needs up to about {} live coroutine stacks (two mappings \
                     each) and vm.max_map_count is {}",
                    p.skynet_leaves,
                    (p.skynet_leaves as f64 * SKYNET_NODES_PER_LEAF) as u64,
                    parked.limit.map(|l| l.to_string()).unwrap_or_else(|| "unknown".into())
                )
            } else {
                format!(
                    "this mode caps may's tree at {} leaves to keep the run short (every node is \
                     a coroutine with its own mapped stack; `--full` runs the whole tree when the \
                     mapping limit allows)",
                    count_word(p.may_skynet_max_leaves)
                )
            };
            let per = r
                .summary()
                .zip(m("lwp-skynet"))
                .map(|(s, u)| {
                    format!(
                        " Per leaf it took {} against our {}.",
                        fmt_ns(s.median / r.iterations.max(1) as f64),
                        fmt_ns(u.median / p.skynet_leaves as f64)
                    )
                })
                .unwrap_or_default();
            findings.push(format!(
                "may ran skynet with {} leaves, not {}: {why}; its total is therefore not comparable \
                 with the others'.{per}",
                count_word(r.iterations),
                count_word(p.skynet_leaves)
            ));
        }
    }
    if let (Some(u), Some(t)) = (m("lwp-chan"), verdict("chan")) {
        let mut line =
            format!(
            "Channel round trip between two ULTs on one LWP: {} (the yield round trip was {}): \
             the 80 ns target is **{}** ({} repetitions).",
            fmt_ns(u.median),
            m("lwp-yield-rt").map(|y| fmt_ns(y.median)).unwrap_or_else(|| "n/a".into()),
            t.verdict.word(),
            t.reps_meeting
        );
        if let Some(pl) = peers_line(
            "lwp-chan",
            &["tokio-chan", "may-chan", "go-chan"],
            Group::Chan,
        ) {
            line.push_str(&format!(" Peers on the same CPU: {pl}."));
        }
        findings.push(line);
    }
    if let (Some(u), Some(t)) = (m("lwp-parked"), verdict("parked")) {
        let pt = rows
            .iter()
            .zip(info)
            .find(|(r, _)| r.id == "lwp-parked")
            .and_then(|(_, i)| stats::median(&i.page_tables));
        let mut line = format!(
            "{} ULTs parked at once cost {} of RSS each{}: the 5 KiB target is **{}** ({} \
             repetitions){}.",
            parked.n,
            Group::Parked.fmt(u.median),
            pt.map(|v| format!(", plus {} of page tables", Group::Parked.fmt(v)))
                .unwrap_or_default(),
            t.verdict.word(),
            t.reps_meeting,
            if parked.n < MILLION {
                format!(", measured with {} instead of the target's 1M", parked.n)
            } else {
                String::new()
            }
        );
        if let Some(pl) = peers_line(
            "lwp-parked",
            &["go-parked", "tokio-parked", "may-parked"],
            Group::Parked,
        ) {
            line.push_str(&format!(" Peers, same count: {pl}."));
        }
        line.push_str(
            " Stackful tasks keep their stack: ours and may's are mmap'd, so each holds at least \
             one touched page; goroutines start on small stacks from Go's heap; tokio's stackless \
             tasks keep only their future's state.",
        );
        findings.push(line);
        let page = sys::page_size() as f64;
        for id in ["lwp-parked", "may-parked"] {
            if let Some(s) = m(id) {
                if s.median < 0.9 * page {
                    flags.push(format!(
                        "`{id}`: {} of RSS per parked task is less than the one stack page each \
                         stackful task has touched: looks impossible unless the stacks were \
                         mapped and touched before the baseline was read ({})",
                        Group::Parked.fmt(s.median),
                        if id == "may-parked" {
                            "may's pool of pre-built coroutines is, see the notes; with few \
                             tasks it hides most of their cost"
                        } else {
                            "ours are not: the RSS may have been read before the ULTs ran"
                        }
                    ));
                }
            }
        }
    }
    if let Some(w) = parked.warning() {
        flags.push(w);
    }
    for (r, i) in rows.iter().zip(info) {
        for n in &i.notes {
            flags.push(format!("`{}`: {n}", r.label));
        }
        if let Some(s) = r.summary() {
            if s.min < 0.0 {
                flags.push(format!(
                    "`{}`: a negative value ({}) in some repetition: impossible for a cost",
                    r.label,
                    i.group.map(|g| g.fmt(s.min)).unwrap_or_default()
                ));
            }
            if s.spread() > 2.0 && s.min > 0.0 {
                flags.push(format!(
                    "`{}` was unstable: its largest repetition was {} its smallest",
                    r.label,
                    fmt_ratio(s.spread())
                ));
            }
        }
        if let Status::Failed(e) = &r.status {
            flags.push(format!("`{}` failed: {e}", r.label));
        }
    }
    for (r, i) in rows.iter().zip(info) {
        if let Some((spawns, steals, parks, sysmon)) = i.lwp_metrics {
            findings.push(format!(
                "Runtime counters of `{}`, last repetition: {spawns} ULTs spawned, {steals} of them \
                 stolen by another LWP (how the work reached the other cores), {parks} times an \
                 idle LWP went to sleep, {sysmon} sysmon interventions.",
                r.label
            ));
        }
    }
    (findings, flags)
}
