//! The experiments of the lab and what they share: the run context ([`Ctx`]: mode, machine,
//! peers, pinning, progress), the row model ([`Row`], [`Status`]) and the headline table.
//!
//! Each experiment module (`create`, `switch`, `cache`, `runtime`) exposes
//! `run(&Ctx) -> Outcome`, where the outcome holds typed rows (for the headline and tests) and
//! a finished [`crate::report::Section`]; `runtime`'s outcome also holds issue 3's targets
//! with their verdicts, which the lab prints after the headline. An experiment
//! never fails as a whole: a row that cannot be measured carries a [`Status`] saying why
//! (missing peer, pending runtime, not applicable, failed with an error) and the report shows
//! that status in place of a number.
//!
//! Measurement discipline shared by all experiments (DESIGN.md, "Measurement rules"):
//! iteration counts are calibrated once per row, then every repetition runs every row once,
//! in the same order (A B C A B C ...), so that rows are compared within one phase of the
//! machine; single-core rows pin the measuring thread (and, by inheritance, its partner
//! threads and processes) with [`crate::sys::PinGuard`].
//!
//! Called by `bin/lab.rs`.

pub mod cache;
pub mod create;
pub mod echo;
pub mod runtime;
pub mod switch;
pub mod ult_targets;

use crate::peers::{GoBins, Peer};
use crate::probe::Machine;
use crate::report::Table;
use crate::stats::{fmt_ns, fmt_ratio, ratio, Summary};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;

/// Whether an issue target is met (the `runtime` and `echo` experiments judge theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Met by this run's medians.
    Pass,
    /// Missed by this run's medians.
    Fail,
    /// A row it needs was not measured.
    Unknown,
}

impl Verdict {
    /// `PASS`, `FAIL` or `n/a`.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "n/a",
        }
    }
}

/// How long the lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Mode {
    /// Tiny counts for tests: the numbers mean nothing.
    Smoke,
    /// The default: every experiment in a few minutes on two cores (`runtime` with smaller
    /// spawn and parked counts than the million; the report says which).
    Quick,
    /// More repetitions, longer runs, more working-set sizes.
    Full,
}

impl Mode {
    /// The mode's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke (test only: counts too small for the numbers to mean anything)",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// Everything an experiment needs to run.
pub struct Ctx {
    /// Run length.
    pub mode: Mode,
    /// Overrides the repetition count of every experiment.
    pub reps_override: Option<usize>,
    /// The machine.
    pub machine: Machine,
    /// Detected peers.
    pub peers: Vec<Peer>,
    /// The compiled Go peers, or why there are none (`Missing` without `go`, `Failed` when
    /// the build failed).
    pub go: Result<GoBins, Status>,
    /// The lab binary, re-executed to run the `may` peer in its own process; `None` when
    /// running outside the lab binary (tests), which makes the may rows "missing".
    pub self_exe: Option<PathBuf>,
    /// The CPU one-core rows are pinned to.
    pub cpu_a: usize,
    /// The second CPU of cross-core rows, if the machine lets us use two.
    pub cpu_b: Option<usize>,
    /// Show progress bars.
    pub progress: bool,
}

impl Ctx {
    /// A progress bar for `len` steps (hidden when progress is off).
    pub fn bar(&self, name: &str, len: u64) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new(len);
        let style = ProgressStyle::with_template(
            "{prefix:>8} [{elapsed_precise}] {bar:32.cyan/blue} {pos:>3}/{len:3} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        pb.set_style(style);
        pb.set_prefix(name.to_string());
        pb
    }

    /// Repetitions for an experiment whose mode default is `default`.
    pub fn reps(&self, default: usize) -> usize {
        self.reps_override.unwrap_or(default).max(1)
    }

    /// Pinning in words, for the report.
    pub fn pinning(&self) -> String {
        match self.cpu_b {
            Some(b) => format!(
                "one-core rows: the measuring thread and its partner pinned to CPU {a} \
                 (sched_setaffinity, inherited by threads and forked processes); cross-core rows: CPUs {a} and {b}",
                a = self.cpu_a
            ),
            None => format!(
                "one-core rows pinned to CPU {}; no second CPU available, so cross-core rows are not applicable",
                self.cpu_a
            ),
        }
    }
}

/// Whether a row has a number, and if not, why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Status {
    /// Measured.
    Measured,
    /// A peer that is not installed.
    Missing(String),
    /// Code that does not exist yet.
    Pending(String),
    /// Does not apply to this machine.
    NotApplicable(String),
    /// Tried and failed.
    Failed(String),
}

impl Status {
    /// One word for plot labels: `pending`, `missing`, `not applicable`, `failed`.
    pub fn short(&self) -> &'static str {
        match self {
            Status::Measured => "measured",
            Status::Missing(_) => "missing",
            Status::Pending(_) => "pending",
            Status::NotApplicable(_) => "not applicable",
            Status::Failed(_) => "failed",
        }
    }

    /// Text shown in place of a number.
    pub fn text(&self) -> String {
        match self {
            Status::Measured => "measured".into(),
            Status::Missing(w) => format!("**missing**: {w}"),
            Status::Pending(w) => format!("**pending**: {w}"),
            Status::NotApplicable(w) => format!("not applicable: {w}"),
            Status::Failed(w) => format!("**failed**: {w}"),
        }
    }
}

/// Colour groups of bars and rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Model {
    /// Our user-level threads.
    Ult,
    /// Kernel threads.
    KernelThread,
    /// Processes.
    Process,
    /// A peer runtime or tool.
    Peer,
}

impl Model {
    /// Index into the plot palette.
    pub fn group(self) -> usize {
        match self {
            Model::Ult => 0,
            Model::KernelThread => 1,
            Model::Process => 2,
            Model::Peer => 3,
        }
    }

    /// Name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Model::Ult => "user-level thread (ours)",
            Model::KernelThread => "kernel thread",
            Model::Process => "process",
            Model::Peer => "peer",
        }
    }

    /// Legend of the plot groups.
    pub fn legend() -> Vec<String> {
        vec![
            "user-level threads (ours)".into(),
            "kernel threads".into(),
            "processes".into(),
            "peer runtimes / tools".into(),
        ]
    }
}

/// One measured (or unmeasurable) row of an experiment.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Stable id (`ult-pooled`, `futex-1core`...).
    pub id: String,
    /// Label in tables and plots.
    pub label: String,
    /// Which model it belongs to.
    pub model: Model,
    /// Whether it was measured.
    pub status: Status,
    /// Per-repetition values (ns per operation).
    pub values: Vec<f64>,
    /// Iterations per repetition.
    pub iterations: u64,
}

impl Row {
    /// A row to be measured.
    pub fn new(id: &str, label: &str, model: Model) -> Row {
        Row {
            id: id.into(),
            label: label.into(),
            model,
            status: Status::Measured,
            values: Vec::new(),
            iterations: 0,
        }
    }

    /// The summary of the values, when measured.
    pub fn summary(&self) -> Option<Summary> {
        if self.status == Status::Measured {
            Summary::of(&self.values)
        } else {
            None
        }
    }

    /// Marks the row failed (keeps the first error).
    pub fn fail(&mut self, why: String) {
        if self.status == Status::Measured {
            self.status = Status::Failed(why);
        }
    }
}

/// Finds a row by id.
pub fn find<'a>(rows: &'a [Row], id: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.id == id)
}

/// Median of a row, if measured.
pub fn median_of(rows: &[Row], id: &str) -> Option<Summary> {
    find(rows, id).and_then(Row::summary)
}

/// `median (min - max)` of a summary.
pub fn fmt_summary(s: &Summary) -> [String; 3] {
    [fmt_ns(s.median), fmt_ns(s.min), fmt_ns(s.max)]
}

/// The headline table: ULT vs kernel thread vs process, creation and switch, with ratios, and
/// a one-line description of where it came from. `None` if neither experiment ran.
pub fn headline(
    machine: &Machine,
    mode: Mode,
    create: Option<&[Row]>,
    switch: Option<&[Row]>,
) -> Option<(Table, String)> {
    if create.is_none() && switch.is_none() {
        return None;
    }
    let mut t = Table::new(&[
        "operation",
        "user-level thread",
        "kernel thread",
        "process",
        "kernel thread / ULT",
        "process / ULT",
        "process / kernel thread",
    ]);
    let mut line = |what: &str, u: Option<Summary>, k: Option<Summary>, p: Option<Summary>| {
        let cell =
            |s: &Option<Summary>| s.map(|s| fmt_ns(s.median)).unwrap_or_else(|| "n/a".into());
        let rat = |a: &Option<Summary>, b: &Option<Summary>| match (a, b) {
            (Some(a), Some(b)) => ratio(a, b).map(fmt_ratio).unwrap_or_else(|| "n/a".into()),
            _ => "n/a".into(),
        };
        t.row(vec![
            what.to_string(),
            cell(&u),
            cell(&k),
            cell(&p),
            rat(&k, &u),
            rat(&p, &u),
            rat(&p, &k),
        ]);
    };
    if let Some(c) = create {
        let k = median_of(c, "kthread");
        let p = median_of(c, "fork");
        line(
            "create + destroy (ULT on a pooled stack; std::thread; fork+_exit+waitpid)",
            median_of(c, "ult-pooled"),
            k,
            p,
        );
        line(
            "create + destroy (ULT on a fresh mmap'd stack)",
            median_of(c, "ult-fresh"),
            k,
            p,
        );
    }
    if let Some(s) = switch {
        line(
            "switch, one CPU, raw (ULT yield; futex hand-over; pipe hand-over)",
            median_of(s, "ult-yield"),
            median_of(s, "futex-1core"),
            median_of(s, "pipe-raw"),
        );
        line(
            "switch, one CPU, net of the hand-over's own system calls (ULT: nothing to subtract)",
            median_of(s, "ult-yield"),
            median_of(s, "futex-net"),
            median_of(s, "pipe-net"),
        );
    }
    let sentence = format!(
        "Medians of this run ({} mode) on: {}.",
        match mode {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        },
        machine.one_line()
    );
    Some((t, sentence))
}
