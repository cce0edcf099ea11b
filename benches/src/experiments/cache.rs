//! Experiment `cache`: the indirect cost of a context switch, i.e. the caches refilled after
//! it, against working-set size, for ULTs, kernel threads and processes on one CPU.
//!
//! Method (lmbench `lat_ctx` with a working set, walked with eight accumulators, see
//! [`crate::sys::walk`]): the two sides of a `pingpong` loop each own a private working set of
//! S bytes and walk all of it before every hand-over. A round is: A walks, switch, B walks,
//! switch. With both sets together larger than a cache level, each walk finds its lines
//! evicted by the other side and refills them: that refill is the indirect cost. The
//! baseline is one thread walking A n times, then B n times, with no switch (a set stays
//! cached as long as it fits; averaging both cancels differences of physical placement);
//! per repetition,
//!
//! `total(S) = time per switch (one walk included) - time of one baseline walk`
//! (minus the hand-over's own system calls for kernel threads and processes, as in the
//! `switch` experiment's net rows),
//!
//! `direct` = the same loop with empty sets (size 0; re-measured in every repetition of every
//! size, right before the sized run) and the indirect share `(total(S) - direct) / total(S)`.
//!
//! Sizes run from 0 to 4x the last-level cache with points around L1d, L2 and L3 (read from
//! sysfs by the probe; a missing level uses a labelled default). Since two sets share the
//! caches of one CPU, a level overflows once S passes about half its size. Per size, every
//! repetition runs a baseline, then per kind: its hand-over overhead, its loop with empty
//! sets, its loop with the sets, a baseline; each kind subtracts the mean of the baselines on
//! either side of it.

use super::{Ctx, Mode, Status};
use crate::counters::HwCounts;
use crate::pingpong::{self, Timed, Work};
use crate::plot::{Lines, PlotSpec, Series};
use crate::probe::CacheSizes;
use crate::report::{Plot, Section, Table};
use crate::stats::{self, fmt_bytes, fmt_ns, indirect_share, Summary};
use crate::sys::{self, WorkingSet};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Parameters of one run of the experiment.
#[derive(Debug, Clone)]
pub struct Params {
    /// Repetitions per size.
    pub reps: usize,
    /// Target duration of one timed loop.
    pub target: Duration,
    /// Fewest timed rounds of a loop (big sets make rounds long).
    pub min_rounds: u64,
    /// Untimed rounds before each timed loop.
    pub warm_rounds: u64,
}

impl Params {
    /// Defaults of a mode.
    pub fn for_mode(mode: Mode) -> Params {
        match mode {
            Mode::Smoke => Params {
                reps: 1,
                target: Duration::from_millis(2),
                min_rounds: 1,
                warm_rounds: 1,
            },
            Mode::Quick => Params {
                reps: 9,
                target: Duration::from_millis(20),
                min_rounds: 4,
                warm_rounds: 2,
            },
            Mode::Full => Params {
                reps: 15,
                target: Duration::from_millis(60),
                min_rounds: 8,
                warm_rounds: 2,
            },
        }
    }
}

/// A working-set size and its label ("L2/2", "4xL3"...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SizePoint {
    /// Bytes per side.
    pub bytes: u64,
    /// How it relates to the caches.
    pub label: String,
}

/// The sizes swept in a mode, sorted and without duplicates.
pub fn sizes(c: &CacheSizes, mode: Mode) -> Vec<SizePoint> {
    let mut v: Vec<(u64, String)> = vec![(0, "0".into())];
    let l1 = c.l1d;
    let l2 = c.l2;
    let l3 = c.llc;
    match mode {
        Mode::Smoke => {
            v.push((l1 / 4, "L1d/4".into()));
            v.push((l1 * 2, "2xL1d".into()));
        }
        Mode::Quick | Mode::Full => {
            v.extend([
                (l1 / 4, "L1d/4".into()),
                (l1 / 2, "L1d/2".into()),
                (l1, "L1d".into()),
                (l2 / 4, "L2/4".into()),
                (l2 / 2, "L2/2".into()),
                (l2, "L2".into()),
                (l3 / 4, "L3/4".into()),
                (l3 / 2, "L3/2".into()),
                (l3, "L3".into()),
                (l3 * 2, "2xL3".into()),
                (l3 * 4, "4xL3".into()),
            ]);
            if mode == Mode::Full {
                v.extend([
                    (l1 / 8, "L1d/8".into()),
                    (l1 * 2, "2xL1d".into()),
                    (l2 / 8, "L2/8".into()),
                    (l2 * 2, "2xL2".into()),
                    (l3 / 8, "L3/8".into()),
                    (l3 * 3 / 4, "3/4 L3".into()),
                    (l3 * 3 / 2, "1.5xL3".into()),
                    (l3 * 3, "3xL3".into()),
                ]);
            }
        }
    }
    // Round to whole cache lines; keep the first label of a duplicated size.
    let mut pts: Vec<SizePoint> = v
        .into_iter()
        .map(|(b, label)| SizePoint {
            bytes: b / 64 * 64,
            label,
        })
        .collect();
    pts.sort_by_key(|p| p.bytes);
    pts.dedup_by_key(|p| p.bytes);
    pts
}

/// The three switch models of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// Two ULTs, yield, one LWP.
    Ult,
    /// Two kernel threads, futex, one CPU (net of the futex calls' overhead).
    Thread,
    /// Two processes, pipes, one CPU (net of the pipe overhead).
    Process,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Ult, Kind::Thread, Kind::Process];

    fn name(self) -> &'static str {
        match self {
            Kind::Ult => "ULTs (yield)",
            Kind::Thread => "kernel threads (futex, net)",
            Kind::Process => "processes (pipes, net)",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Kind::Ult => "ult",
            Kind::Thread => "thread",
            Kind::Process => "process",
        }
    }
}

/// What was measured at one size for one kind.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// Per-repetition total cost per switch (direct + indirect), ns.
    pub totals: Vec<f64>,
    /// Per-repetition direct cost (the same loop with empty sets, run just before), ns; empty
    /// at size 0, whose totals are the direct cost.
    pub directs: Vec<f64>,
    /// Rounds per timed loop.
    pub rounds: u64,
    /// Kernel context switches per switch (median), from the software counters.
    pub kernel_switches_per_switch: Option<f64>,
    /// Hardware misses per switch, baseline subtracted (L1d, LLC, dTLB), if a PMU exists.
    pub misses_per_switch: Option<(f64, f64, f64)>,
    /// Why not measured.
    pub status: Status,
}

impl Cell {
    fn summary(&self) -> Option<Summary> {
        if self.status == Status::Measured {
            Summary::of(&self.totals)
        } else {
            None
        }
    }
}

/// One size's results.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// The size.
    pub size: SizePoint,
    /// Per-repetition time of one baseline walk, ns.
    pub walk_ns: Vec<f64>,
    /// Per-repetition pipe overhead per hand-over, ns.
    pub pipe_overhead_ns: Vec<f64>,
    /// Per-repetition futex overhead per hand-over, ns.
    pub futex_overhead_ns: Vec<f64>,
    /// ULT, thread, process cells.
    pub cells: Vec<(Kind, Cell)>,
}

/// What `cache` measured.
pub struct Outcome {
    /// One point per size.
    pub points: Vec<Point>,
    /// The report section.
    pub section: Section,
}

fn run_kind(
    kind: Kind,
    work: &Work,
    cpu: usize,
    warm: u64,
    rounds: u64,
    hw: bool,
) -> Result<Timed, String> {
    match kind {
        Kind::Ult => pingpong::ult_yield(Some(work), warm, rounds, hw),
        Kind::Thread => pingpong::futex(Some(work), cpu, warm, rounds, hw),
        Kind::Process => pingpong::pipes(Some(work), warm, rounds, hw),
    }
}

fn baseline_hw(ws: &WorkingSet, n: u64) -> Option<HwCounts> {
    let c = crate::counters::HwCounters::start().ok()?;
    pingpong::walks(ws, 0, n);
    c.stop().ok()
}

/// Runs the experiment.
pub fn run(ctx: &Ctx) -> Outcome {
    let mut p = Params::for_mode(ctx.mode);
    p.reps = ctx.reps(p.reps);
    let caches = ctx.machine.cache_sizes();
    let pts = sizes(&caches, ctx.mode);
    let hw = ctx.machine.pmu.available;
    let pb = ctx.bar("cache", (pts.len() * p.reps) as u64);
    let pin = sys::PinGuard::pin(&[ctx.cpu_a]);
    let pin_note = match &pin {
        Ok(_) => format!("CPU {}", ctx.cpu_a),
        Err(e) => format!("no CPU (sched_setaffinity failed: {e})"),
    };
    // Direct-cost estimate per kind, for sizing loops: refined at size 0.
    let mut direct_est: [f64; 3] = [100.0, 3_000.0, 5_000.0];
    // Empty sets: every size re-measures each kind's direct cost next to its own runs.
    let empty = Work {
        a: Arc::new(WorkingSet::new(0)),
        b: Arc::new(WorkingSet::new(0)),
    };
    let mut zero_rounds: [u64; 3] = [0; 3];
    let mut zero_walk = 0.0;
    let mut points = Vec::new();
    for sp in &pts {
        pb.set_message(format!(
            "{} ({}): allocating",
            fmt_bytes(sp.bytes),
            sp.label
        ));
        let work = Work {
            a: Arc::new(WorkingSet::new(sp.bytes as usize)),
            b: Arc::new(WorkingSet::new(sp.bytes as usize)),
        };
        // Estimate one walk (and warm both sets).
        let t0 = Instant::now();
        let probe_walks = 3u64;
        pingpong::walks(&work.b, 0, 1);
        pingpong::walks(&work.a, 0, probe_walks);
        let walk_est = (t0.elapsed().as_nanos() as f64 / (probe_walks + 1) as f64).max(1.0);
        let base_n = ((p.target.as_nanos() as f64 / (2.0 * walk_est)) as u64)
            .clamp(p.min_rounds, 20_000_000);
        let mut cells: Vec<(Kind, Cell, Vec<f64>)> = Vec::new();
        for (ki, kind) in Kind::ALL.iter().enumerate() {
            let mut cell = Cell {
                totals: Vec::new(),
                directs: Vec::new(),
                rounds: 0,
                kernel_switches_per_switch: None,
                misses_per_switch: None,
                status: Status::Measured,
            };
            let rounds = if sp.bytes == 0 {
                // Calibrate at size 0, which also gives the direct-cost estimate.
                match stats::calibrate(p.target, 64, 50_000_000, |n| {
                    run_kind(*kind, &work, ctx.cpu_a, p.warm_rounds, n, false).map(|t| t.elapsed)
                }) {
                    Ok(n) => {
                        if let Ok(t) =
                            run_kind(*kind, &work, ctx.cpu_a, p.warm_rounds, n.min(10_000), false)
                        {
                            direct_est[ki] = t.ns_per_switch().max(1.0);
                        }
                        n
                    }
                    Err(e) => {
                        cell.status = Status::Failed(e);
                        0
                    }
                }
            } else {
                let per_round = 2.0 * (walk_est + direct_est[ki]);
                ((p.target.as_nanos() as f64 / per_round) as u64).clamp(p.min_rounds, 50_000_000)
            };
            cell.rounds = rounds;
            cells.push((*kind, cell, Vec::new()));
        }
        let mut walk_ns = Vec::new();
        let mut ovh_ns = Vec::new();
        let mut futex_ovh_ns = Vec::new();
        let mut hw_base: Option<HwCounts> = None;
        // The baseline walks each set in turn (A n times, then B n times) and averages: the two
        // sets can differ in speed by their physical placement (measured: up to 20% past the
        // LLC), and the switching run walks both.
        let base = || {
            let t = pingpong::walks(&work.a, 1, base_n) + pingpong::walks(&work.b, 1, base_n);
            t.as_nanos() as f64 / (2 * base_n) as f64
        };
        for rep in 0..p.reps {
            pb.set_message(format!(
                "{} ({}), rep {}/{}",
                fmt_bytes(sp.bytes),
                sp.label,
                rep + 1,
                p.reps
            ));
            // Baselines sandwich every kind's run: its walk cost is the mean of the baseline
            // just before and just after it, so a change of machine state during the
            // repetition shifts both sides of the subtraction alike.
            let mut before = base();
            walk_ns.push(before);
            if hw && rep == 0 {
                hw_base = baseline_hw(&work.a, base_n);
            }
            for (kind, cell, kcounts) in cells.iter_mut() {
                if cell.status != Status::Measured {
                    continue;
                }
                // The hand-over's own system calls, measured without a switch right before
                // the run, are subtracted as in the `switch` experiment's net rows.
                let ovh_n = 2_000u64;
                let ovh = match kind {
                    Kind::Ult => 0.0,
                    Kind::Thread => {
                        let o =
                            pingpong::futex_overhead(100, ovh_n).as_nanos() as f64 / ovh_n as f64;
                        futex_ovh_ns.push(o);
                        o
                    }
                    Kind::Process => match pingpong::pipe_overhead(100, ovh_n) {
                        Ok(d) => {
                            let o = d.as_nanos() as f64 / ovh_n as f64;
                            ovh_ns.push(o);
                            o
                        }
                        Err(e) => {
                            cell.status = Status::Failed(format!("pipe overhead: {e}"));
                            continue;
                        }
                    },
                };
                let ki = Kind::ALL.iter().position(|k| k == kind).unwrap_or(0);
                if sp.bytes > 0 && zero_rounds[ki] > 0 {
                    let n0 = (zero_rounds[ki] / 2).max(p.min_rounds);
                    match run_kind(*kind, &empty, ctx.cpu_a, p.warm_rounds, n0, false) {
                        Ok(t) => cell.directs.push(t.ns_per_switch() - zero_walk - ovh),
                        Err(e) => {
                            cell.status = Status::Failed(format!("direct run: {e}"));
                            continue;
                        }
                    }
                }
                let want_hw = hw && rep == 0;
                let run = run_kind(*kind, &work, ctx.cpu_a, p.warm_rounds, cell.rounds, want_hw);
                let after = base();
                walk_ns.push(after);
                let w = (before + after) / 2.0;
                before = after;
                match run {
                    Ok(t) => {
                        cell.totals.push(t.ns_per_switch() - w - ovh);
                        if let Some(cs) = t.counts.context_switches {
                            kcounts.push(cs as f64 / t.all_switches.max(1) as f64);
                        }
                        if let (Some(Ok(h)), Some(b)) = (&t.hw, &hw_base) {
                            let per = |run: u64, base: u64| {
                                run as f64 / t.all_switches.max(1) as f64
                                    - base as f64 / base_n as f64
                            };
                            cell.misses_per_switch = Some((
                                per(h.l1d_misses, b.l1d_misses),
                                per(h.llc_misses, b.llc_misses),
                                per(h.dtlb_misses, b.dtlb_misses),
                            ));
                        }
                    }
                    Err(e) => cell.status = Status::Failed(e),
                }
            }
            pb.inc(1);
        }
        if sp.bytes == 0 {
            zero_walk = stats::median(&walk_ns).unwrap_or(0.0);
            for (ki, (_, c, _)) in cells.iter().enumerate() {
                if c.status == Status::Measured {
                    zero_rounds[ki] = c.rounds;
                }
            }
        }
        points.push(Point {
            size: sp.clone(),
            walk_ns,
            pipe_overhead_ns: ovh_ns,
            futex_overhead_ns: futex_ovh_ns,
            cells: cells
                .into_iter()
                .map(|(k, mut c, ks)| {
                    c.kernel_switches_per_switch = stats::median(&ks);
                    (k, c)
                })
                .collect(),
        });
    }
    pb.finish_and_clear();
    drop(pin);
    let section = section(ctx, &p, &caches, &points, &pin_note);
    Outcome { points, section }
}

/// The direct cost a size's share is measured against: the median of the direct runs made in
/// the same repetitions (empty sets, right before each sized run), or the size-0 point.
fn local_direct(cell: Option<&Cell>, size0: Option<Summary>) -> Option<f64> {
    cell.and_then(|c| stats::median(&c.directs))
        .or(size0.map(|d| d.median))
}

fn names_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Ult => "ULTs",
        Kind::Thread => "kernel threads",
        Kind::Process => "processes",
    }
}

fn cell_of(pt: &Point, kind: Kind) -> Option<&Cell> {
    pt.cells.iter().find(|(k, _)| *k == kind).map(|(_, c)| c)
}

/// The direct cost of each kind: the total at size 0.
fn direct(points: &[Point], kind: Kind) -> Option<Summary> {
    points
        .iter()
        .find(|p| p.size.bytes == 0)
        .and_then(|p| cell_of(p, kind))
        .and_then(Cell::summary)
}

/// The indirect share of a size, from the summary of its total cost per switch and the
/// direct cost: the median share is that of the median total; min and max are the shares of
/// the min and max totals (the share grows with the total), NaN where that total is not
/// positive. `None` when the median total is not positive: a share of a negative total means
/// nothing (the report flags such totals instead).
pub fn share_of(total: &Summary, direct: f64) -> Option<Summary> {
    let median = indirect_share(total.median, direct)?;
    let at = |t: f64| indirect_share(t, direct).unwrap_or(f64::NAN);
    Some(Summary {
        median,
        min: at(total.min),
        max: at(total.max),
        n: total.n,
    })
}

fn section(
    ctx: &Ctx,
    p: &Params,
    caches: &CacheSizes,
    points: &[Point],
    pin_note: &str,
) -> Section {
    let mut t = Table::new(&[
        "working set per side",
        "vs caches",
        "baseline walk",
        "ULT: cost per switch",
        "kernel thread (net)",
        "process (net)",
        "indirect share: ULT",
        "kernel thread",
        "process",
    ]);
    let directs: Vec<Option<Summary>> = Kind::ALL.iter().map(|k| direct(points, *k)).collect();
    let mut flags = Vec::new();
    let mut cost_series: Vec<Series> = Kind::ALL
        .iter()
        .map(|k| Series {
            name: k.name().into(),
            points: Vec::new(),
        })
        .collect();
    let mut share_series = cost_series.clone();
    // (kind, share, size label) of the largest median share.
    let mut max_share: Vec<Option<(f64, String)>> = vec![None; 3];
    for pt in points {
        let walk = stats::median(&pt.walk_ns);
        let mut row = vec![
            fmt_bytes(pt.size.bytes),
            pt.size.label.clone(),
            walk.map(fmt_ns).unwrap_or_else(|| "n/a".into()),
        ];
        let mut share_cells = Vec::new();
        let mut negatives: Vec<(&str, Summary)> = Vec::new();
        for (ki, kind) in Kind::ALL.iter().enumerate() {
            let cell = cell_of(pt, *kind);
            match cell.and_then(Cell::summary) {
                Some(s) => {
                    row.push(format!(
                        "{} ({}-{})",
                        fmt_ns(s.median),
                        fmt_ns(s.min),
                        fmt_ns(s.max)
                    ));
                    cost_series[ki]
                        .points
                        .push((pt.size.bytes as f64, s.median, s.min, s.max));
                    if s.median < 0.0 {
                        negatives.push((kind.name(), s));
                    }
                    match (local_direct(cell, directs[ki]), pt.size.bytes) {
                        (Some(d), b) if b > 0 => match share_of(&s, d) {
                            Some(ss) => {
                                share_cells.push(format!("{:.0}%", ss.median * 100.0));
                                share_series[ki].points.push((
                                    pt.size.bytes as f64,
                                    ss.median,
                                    ss.min,
                                    ss.max,
                                ));
                                if max_share[ki].as_ref().is_none_or(|(m, _)| ss.median > *m) {
                                    max_share[ki] = Some((
                                        ss.median,
                                        format!(
                                            "{} per side, {}",
                                            fmt_bytes(pt.size.bytes),
                                            pt.size.label
                                        ),
                                    ));
                                }
                            }
                            None => share_cells.push("n/a (total not positive)".into()),
                        },
                        (_, 0) => share_cells.push("0 (direct)".into()),
                        _ => share_cells.push("n/a".into()),
                    }
                }
                None => {
                    row.push(
                        cell.map(|c| c.status.text())
                            .unwrap_or_else(|| "n/a".into()),
                    );
                    share_cells.push("n/a".into());
                }
            }
        }
        row.extend(share_cells);
        t.row(row);
        if !negatives.is_empty() {
            let all_straddle = negatives.iter().all(|(_, s)| s.max > 0.0);
            flags.push(format!(
                "at {} per side ({}) the median cost per switch came out negative for {}: \
                 impossible for a cost (the baseline walks were slower than the walks of the \
                 switching run). {}",
                fmt_bytes(pt.size.bytes),
                pt.size.label,
                negatives
                    .iter()
                    .map(|(k, s)| format!(
                        "{k} ({}; repetitions {} to {})",
                        fmt_ns(s.median),
                        fmt_ns(s.min),
                        fmt_ns(s.max)
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                if all_straddle {
                    "The repetitions straddle zero: at this size no indirect cost is measurable \
                     above the noise of walking the sets."
                } else {
                    "Some rows were negative in every repetition: the machine changed state \
                     between the runs."
                }
            ));
        }
    }

    let mut findings = Vec::new();
    let names = ["ULTs", "kernel threads", "processes"];
    for (ki, kind) in Kind::ALL.iter().enumerate() {
        if let (Some(d), Some((m, at))) = (directs[ki], &max_share[ki]) {
            let peak = points
                .iter()
                .filter_map(|pt| {
                    cell_of(pt, *kind)
                        .and_then(Cell::summary)
                        .map(|s| (s.median, pt))
                })
                .fold(None::<(f64, &Point)>, |acc, x| match acc {
                    Some(a) if a.0 >= x.0 => Some(a),
                    _ => Some(x),
                });
            findings.push(format!(
                "{}: the direct cost (empty working set) is {}; the total cost per switch peaks at \
                 {}{}; the indirect share reaches {:.0}% (at {}), {} the lecture's \"up to 80%\".",
                names[ki],
                fmt_ns(d.median),
                peak.map(|(v, _)| fmt_ns(v)).unwrap_or_else(|| "n/a".into()),
                peak.map(|(_, pt)| format!(" at {} per side ({})", fmt_bytes(pt.size.bytes), pt.size.label))
                    .unwrap_or_default(),
                m * 100.0,
                at,
                if *m >= 0.8 { "reaching or passing" } else { "below" }
            ));
        }
    }
    // Medians per kind: the peak total and the total at the largest size.
    let medians = |kind: Kind| -> Vec<(u64, f64)> {
        points
            .iter()
            .filter_map(|pt| Some((pt.size.bytes, cell_of(pt, kind)?.summary()?.median)))
            .collect()
    };
    let peaks: Vec<Option<(u64, f64)>> = Kind::ALL
        .iter()
        .map(|k| medians(*k).into_iter().max_by(|a, b| a.1.total_cmp(&b.1)))
        .collect();
    if let (Some(u), Some(k), Some((_, pu)), Some((_, pk))) =
        (directs[0], directs[1], peaks[0], peaks[1])
    {
        findings.push(format!(
            "At the peak, a ULT switch costs {} and a kernel-thread switch {}: the kernel thread \
             costs {} the ULT, against {} with nothing to refill ({} vs {}). Once the working sets \
             no longer fit, the refill dwarfs the direct cost and the cheap user-level switch no \
             longer buys much; a ULT's indirect share rises first because its direct cost is so \
             small.",
            fmt_ns(pu),
            fmt_ns(pk),
            crate::stats::fmt_ratio(pk / pu),
            crate::stats::fmt_ratio(k.median / u.median),
            fmt_ns(u.median),
            fmt_ns(k.median)
        ));
    }
    let largest = points.iter().map(|p| p.size.bytes).max().unwrap_or(0);
    let falls_back: Vec<String> = Kind::ALL
        .iter()
        .zip(&peaks)
        .filter_map(|(k, peak)| {
            let (at, pv) = (*peak)?;
            let last = medians(*k).into_iter().find(|(b, _)| *b == largest)?.1;
            (at < largest && last < pv / 4.0).then(|| {
                if last <= 0.0 {
                    format!(
                        "{} from {} to {}, zero within noise",
                        names_of(*k),
                        fmt_ns(pv),
                        fmt_ns(last)
                    )
                } else {
                    format!("{} from {} to {}", names_of(*k), fmt_ns(pv), fmt_ns(last))
                }
            })
        })
        .collect();
    if !falls_back.is_empty() {
        findings.push(format!(
            "Past the last-level cache ({} per side) the cost falls back ({} at {} per side): there \
             the baseline walk itself misses every line, so the other side evicts nothing that \
             would have stayed. The indirect cost is what the other side evicts that this side \
             would otherwise have kept.",
            fmt_bytes(caches.llc),
            falls_back.join("; "),
            fmt_bytes(largest)
        ));
    }
    for (ki, kind) in Kind::ALL.iter().enumerate() {
        let neg: Vec<String> = points
            .iter()
            .filter(|pt| pt.size.bytes > 0)
            .filter_map(|pt| {
                let c = cell_of(pt, *kind)?;
                let s = c.summary()?;
                let d = local_direct(Some(c), directs[ki])?;
                let sh = indirect_share(s.median, d)?;
                (sh < -0.1).then(|| format!("{} ({:.0}%)", pt.size.label, sh * 100.0))
            })
            .collect();
        if !neg.is_empty() {
            flags.push(format!(
                "{}: total cost below the direct cost by more than 10% at {}: a negative indirect \
                 share is impossible; the difference is noise between interleaved runs",
                kind.name(),
                neg.join(", ")
            ));
        }
        for pt in points {
            if let Some(c) = cell_of(pt, *kind) {
                if let Status::Failed(e) = &c.status {
                    flags.push(format!(
                        "{} at {}: failed: {e}",
                        kind.name(),
                        fmt_bytes(pt.size.bytes)
                    ));
                }
                if let (Some(k), Kind::Thread | Kind::Process) =
                    (c.kernel_switches_per_switch, kind)
                {
                    if k < 0.8 {
                        flags.push(format!(
                            "{} at {}: only {k:.2} kernel context switches per switch",
                            kind.name(),
                            fmt_bytes(pt.size.bytes)
                        ));
                    }
                }
            }
        }
    }

    let mut tables = vec![t];
    if ctx.machine.pmu.available {
        let mut h = Table::new(&[
            "working set per side",
            "model",
            "L1d misses per switch",
            "LLC misses per switch",
            "dTLB misses per switch",
        ])
        .caption("Hardware counters (first repetition; baseline walk's misses subtracted)");
        for pt in points {
            for (k, c) in &pt.cells {
                if let Some((l1, llc, tlb)) = c.misses_per_switch {
                    h.row(vec![
                        fmt_bytes(pt.size.bytes),
                        k.name().into(),
                        format!("{l1:.0}"),
                        format!("{llc:.0}"),
                        format!("{tlb:.0}"),
                    ]);
                }
            }
        }
        tables.push(h);
    }

    let mut markers = vec![
        (caches.l1d as f64, "L1d".to_string()),
        (caches.l2 as f64, "L2".to_string()),
        (caches.llc as f64, "L3".to_string()),
    ];
    markers.dedup_by(|a, b| a.0 == b.0);
    let mut notes = vec![
        format!(
            "All three kinds ran on {pin_note}, both sides on the same CPU, so they share its caches \
             and the second side's walk evicts the first side's set."
        ),
        format!(
            "Cache sizes from sysfs: L1d {}, L2 {}, last level {}.{}",
            fmt_bytes(caches.l1d),
            fmt_bytes(caches.l2),
            fmt_bytes(caches.llc),
            if caches.defaulted.is_empty() {
                String::new()
            } else {
                format!(" Not exposed, defaults used: {}.", caches.defaulted.join(", "))
            }
        ),
        "The walk loads one 8-byte word per 64-byte line with eight independent accumulators, \
         so many misses are in flight at once and its time tracks the lines refilled; a \
         single-chain sum (lmbench's) is bound by add latency and hides the cache effect."
            .into(),
        "The kernel-thread and process costs are net of their hand-over's own system calls (futex \
         wake + wait; pipe write + read) made without a switch just before the run, as in the \
         `switch` experiment's net rows; the ULT cost includes its yield, which makes no system \
         call. Size 0 gives each kind's direct cost; for the share, every size re-measures it in \
         the same repetitions (the same loop with empty sets, right before each sized run), so a \
         slow phase of the machine does not masquerade as an indirect cost or hide one."
            .into(),
        "Each size allocates two fresh sets, so physical placement differs between sizes; points \
         past the LLC are dominated by memory bandwidth and are the noisiest."
            .into(),
    ];
    if ctx.machine.pmu.available {
        notes.push("Hardware counters were read in the first repetition of each size.".into());
    } else {
        notes.push(format!(
            "No PMU on this machine ({}): cache misses cannot be counted, so the indirect cost is \
             shown by timing alone.",
            ctx.machine.pmu.detail
        ));
    }

    let raw = serde_json::json!({
        "params": {"reps": p.reps, "target_ms": p.target.as_millis() as u64, "min_rounds": p.min_rounds, "warm_rounds": p.warm_rounds},
        "caches": caches,
        "points": points,
        "direct": Kind::ALL.iter().zip(&directs).map(|(k, d)| (k.id(), *d)).collect::<Vec<_>>(),
        "max_share": Kind::ALL.iter().zip(&max_share).map(|(k, m)| (k.id(), m.clone())).collect::<Vec<_>>(),
    });

    Section {
        id: "cache".into(),
        title: "Indirect cost of a switch: cache effects".into(),
        command: "cargo run --release -p benches --bin lab -- cache".into(),
        claim: "\"直接代价: 用于实际切换和执行中断处理代码的时间; 间接代价: 其他代价, 比较常见的是cache刷新的时间\" \
                (direct cost: the time of the switch itself; indirect cost: everything else, most \
                commonly refilling the caches), and the indirect cost can reach \"代价高达 80%\" \
                (up to 80% of the total)."
            .into(),
        measured: vec![
            "Each side of a switch loop (ULTs yielding, kernel threads on a futex, processes on \
             pipes; all on one CPU) walks its own working set of S bytes before every hand-over. \
             The same walks done by one thread with no switch (each set walked repeatedly on its \
             own, so it stays cached if it fits) are the baseline, subtracted per repetition; what \
             is left is the cost of a switch, direct plus indirect."
                .into(),
            format!(
                "S runs from 0 to 4x the last-level cache with points around L1d, L2 and L3 ({} \
                 sizes); {} repetitions per size. A repetition runs a baseline, then for each kind \
                 in turn (ULTs, kernel threads, processes): its hand-over overhead (futex, pipe), \
                 its loop with empty sets (the direct cost, for the share), its loop with the sets, \
                 and a baseline; each kind subtracts the mean of the baselines around it. Loops \
                 are sized to about {} ms with at least {} rounds. The indirect share of a size \
                 comes from its median total and the median of its direct runs.",
                points.len(),
                p.reps,
                p.target.as_millis(),
                p.min_rounds
            ),
        ],
        tables,
        plots: vec![
            Plot {
                file: "cache-cost.svg".into(),
                alt: "Cost per switch against working-set size, log-log, cache sizes marked".into(),
                spec: PlotSpec::Lines(Lines {
                    title: "Cost of one switch (direct + indirect) vs working set per side; dashed: cost at S = 0".into(),
                    x_axis: "working set per side (log scale)".into(),
                    y_axis: "time per switch (log scale)".into(),
                    log_y: true,
                    percent_y: false,
                    series: cost_series,
                    markers: markers.clone(),
                    reference: None,
                    levels: directs
                        .iter()
                        .enumerate()
                        .filter_map(|(i, d)| d.map(|d| (d.median, i)))
                        .collect(),
                }),
            },
            Plot {
                file: "cache-share.svg".into(),
                alt: "Indirect share of the switch cost against working-set size".into(),
                spec: PlotSpec::Lines(Lines {
                    title: "Indirect share (total - direct) / total".into(),
                    x_axis: "working set per side (log scale)".into(),
                    y_axis: "indirect share".into(),
                    log_y: false,
                    percent_y: true,
                    series: share_series,
                    markers,
                    reference: Some((0.8, "lecture: up to 80%".into())),
                    levels: Vec::new(),
                }),
            },
        ],
        findings,
        flags,
        notes,
        raw,
    }
}
