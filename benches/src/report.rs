//! The report writer: turns what the experiments measured into `REPORT.md`, SVG plots and raw
//! JSON in the output directory.
//!
//! Layout of `REPORT.md` (a person should be able to look rather than read):
//! 1. how it was produced (command, mode, repetitions, date, wall time) and that every figure
//!    comes from this run;
//! 2. the machine ([`crate::probe::Machine`]) and the pinning used;
//! 3. the peers, present or missing (never dropped silently);
//! 4. the headline table, when the experiments it needs ran, and issue 2's targets judged from
//!    the same rows;
//! 5. every flag raised (impossible-looking or suspicious measurements), collected;
//! 6. one section per experiment: the lecture's claim, what was measured, tables, plots,
//!    what the numbers say, flags and notes;
//! 7. experiments not run in this invocation, and the list of files written.
//!
//! The writer only formats: it computes no figure. JSON files hold the machine, the run info
//! and each section's raw data, so the markdown can be checked against them. `render` is pure
//! (tested); `write` does the file I/O and draws the plots.

use crate::peers::Peer;
use crate::plot::PlotSpec;
use crate::probe::Machine;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A markdown table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    /// Line printed above the table (bold), if any.
    pub caption: Option<String>,
    /// Column headers.
    pub header: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers.
    pub fn new(header: &[&str]) -> Table {
        Table {
            caption: None,
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Sets the caption.
    pub fn caption(mut self, c: impl Into<String>) -> Table {
        self.caption = Some(c.into());
        self
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders the table as GitHub-flavoured markdown; `|` in cells is escaped and short
    /// rows are padded.
    pub fn to_markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let cols = self
            .header
            .len()
            .max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        let mut out = String::new();
        if let Some(c) = &self.caption {
            let _ = writeln!(out, "**{c}**\n");
        }
        let cell = |row: &[String], i: usize| row.get(i).map(|s| esc(s)).unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} |",
            (0..cols)
                .map(|i| cell(&self.header, i))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(out, "|{}", "---|".repeat(cols));
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} |",
                (0..cols)
                    .map(|i| cell(r, i))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        out
    }
}

/// A plot of a section: the file it is written to and what it shows.
#[derive(Debug, Clone, Serialize)]
pub struct Plot {
    /// File name inside the output directory, e.g. `create.svg`.
    pub file: String,
    /// Alt text / caption.
    pub alt: String,
    /// What to draw.
    pub spec: PlotSpec,
}

/// One experiment's part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// Short id (`create`), also the JSON file name.
    pub id: String,
    /// Heading.
    pub title: String,
    /// The command that runs only this experiment.
    pub command: String,
    /// The lecture's claim (markdown).
    pub claim: String,
    /// What was measured, as bullets.
    pub measured: Vec<String>,
    /// Tables.
    pub tables: Vec<Table>,
    /// Plots.
    pub plots: Vec<Plot>,
    /// What the numbers say, as bullets (each computed from this run's figures).
    pub findings: Vec<String>,
    /// Impossible-looking or suspicious measurements.
    pub flags: Vec<String>,
    /// Caveats and details.
    pub notes: Vec<String>,
    /// Raw data for the JSON file.
    pub raw: serde_json::Value,
}

/// How the run was made.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// The command line.
    pub command: String,
    /// "quick", "full" or "smoke".
    pub mode: String,
    /// Repetition counts, in words.
    pub repetitions: String,
    /// Start time, UTC.
    pub started_utc: String,
    /// Wall time of all experiments, seconds.
    pub wall_seconds: f64,
    /// Pinning used, in words.
    pub pinning: String,
    /// Lab version (crate version).
    pub lab_version: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// Peers found or missing.
    pub peers: Vec<Peer>,
    /// Run information.
    pub run: RunInfo,
    /// The headline table and the sentence under it, if the experiments it needs ran.
    pub headline: Option<(Table, String)>,
    /// Issue 2's targets for the green thread, judged from the headline's experiments
    /// ([`crate::experiments::ult_targets`]), if any of them ran.
    pub green_thread_targets: Option<Table>,
    /// Flags about the whole run (e.g. machine was busy).
    pub run_flags: Vec<String>,
    /// Experiment sections, in order.
    pub sections: Vec<Section>,
    /// Experiments that exist but were not run in this invocation: (id, title).
    pub not_run: Vec<(String, String)>,
}

fn bullets(out: &mut String, items: &[String]) {
    for i in items {
        let _ = writeln!(out, "- {i}");
    }
    if !items.is_empty() {
        out.push('\n');
    }
}

/// The machine as a two-column markdown table.
pub fn machine_table(m: &Machine, pinning: &str) -> Table {
    let mut t = Table::new(&["", ""]);
    let na = |o: &Option<String>, what: &str| {
        o.clone().unwrap_or_else(|| format!("not exposed ({what})"))
    };
    t.row(vec!["CPU model".into(), m.cpu_model.clone()]);
    t.row(vec![
        "cores".into(),
        format!(
            "{} logical CPUs online ({}); this run may use CPUs {}",
            m.online_cpus.len(),
            cpu_list(&m.online_cpus),
            cpu_list(&m.allowed_cpus)
        ),
    ]);
    t.row(vec!["caches (cpu0, sysfs)".into(), m.caches_line()]);
    t.row(vec!["kernel".into(), m.kernel.clone()]);
    t.row(vec!["virtualised".into(), m.virtualization.describe()]);
    t.row(vec![
        "PMU (hardware counters)".into(),
        if m.pmu.available {
            format!("available: {}", m.pmu.detail)
        } else {
            format!(
                "**not available**: {}. Hardware counters are not reported; the timings stand alone.",
                m.pmu.detail
            )
        },
    ]);
    t.row(vec![
        "perf_event_paranoid".into(),
        m.perf_event_paranoid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "not exposed".into()),
    ]);
    t.row(vec![
        "frequency governor".into(),
        na(&m.governor, "no cpufreq in sysfs"),
    ]);
    t.row(vec![
        "clocksource".into(),
        na(&m.clocksource, "no clocksource in sysfs"),
    ]);
    t.row(vec![
        "transparent huge pages".into(),
        na(&m.thp, "no THP setting in sysfs"),
    ]);
    t.row(vec![
        "memory".into(),
        m.memory_bytes
            .map(crate::stats::fmt_bytes)
            .unwrap_or_else(|| "not exposed".into()),
    ]);
    t.row(vec![
        "load average at start".into(),
        m.load_average
            .map(|l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]))
            .unwrap_or_else(|| "not exposed".into()),
    ]);
    t.row(vec!["pinning used".into(), pinning.to_string()]);
    t
}

/// Formats a CPU list compactly: `0-3,8`.
pub fn cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        out.push(if end > start {
            format!("{start}-{end}")
        } else {
            start.to_string()
        });
        i += 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(",")
    }
}

/// Renders `REPORT.md`.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# twolevel lab report\n");
    let _ = writeln!(
        out,
        "Produced by `{}` in **{}** mode, started {} UTC, {:.0} s of experiments. \
         Every figure below was measured by this run; nothing is copied from elsewhere. {}\n",
        r.run.command, r.run.mode, r.run.started_utc, r.run.wall_seconds, r.run.repetitions
    );
    let _ = writeln!(
        out,
        "Figures are medians over repetitions, with min and max; rows of a table were measured \
         interleaved (A B C A B C ...) in this run, so their ratios are fair even though this \
         machine's speed drifts. Raw data: the JSON files beside this report.\n"
    );

    let _ = writeln!(out, "## The machine\n");
    out.push_str(&machine_table(&r.machine, &r.run.pinning).to_markdown());
    out.push('\n');

    let _ = writeln!(out, "## Peers\n");
    let mut pt = Table::new(&["peer", "status", "version", "used by", "detail"]);
    for p in &r.peers {
        pt.row(vec![
            p.name.clone(),
            if p.present {
                "present".into()
            } else {
                "**missing**".into()
            },
            p.version.clone().unwrap_or_else(|| "-".into()),
            p.used_by.clone(),
            p.note.clone(),
        ]);
    }
    out.push_str(&pt.to_markdown());
    out.push('\n');

    if let Some((t, sentence)) = &r.headline {
        let _ = writeln!(
            out,
            "## Headline: user-level thread vs kernel thread vs process\n"
        );
        out.push_str(&t.to_markdown());
        out.push('\n');
        if !sentence.is_empty() {
            let _ = writeln!(out, "{sentence}\n");
        }
    }
    if let Some(t) = &r.green_thread_targets {
        let _ = writeln!(
            out,
            "Issue 2's targets for the green thread, from the `create` and `switch` rows of this \
             run:\n"
        );
        out.push_str(&t.to_markdown());
        out.push('\n');
    }

    let all_flags: Vec<String> = r
        .run_flags
        .iter()
        .cloned()
        .chain(
            r.sections
                .iter()
                .flat_map(|s| s.flags.iter().map(move |f| format!("`{}`: {f}", s.id))),
        )
        .collect();
    let _ = writeln!(out, "## Flags raised by this run\n");
    if all_flags.is_empty() {
        let _ = writeln!(
            out,
            "None: no measurement looked impossible or suspicious.\n"
        );
    } else {
        let _ = writeln!(
            out,
            "Measurements that look impossible or suspicious are listed here and not hidden:\n"
        );
        bullets(&mut out, &all_flags);
    }

    for (i, s) in r.sections.iter().enumerate() {
        let _ = writeln!(out, "## {}. {}\n", i + 1, s.title);
        let _ = writeln!(out, "Run alone with `{}`.\n", s.command);
        let _ = writeln!(out, "**The lecture's claim.** {}\n", s.claim);
        let _ = writeln!(out, "**What was measured.**\n");
        bullets(&mut out, &s.measured);
        for t in &s.tables {
            out.push_str(&t.to_markdown());
            out.push('\n');
        }
        for p in &s.plots {
            let _ = writeln!(out, "![{}]({})\n", p.alt, p.file);
        }
        let _ = writeln!(out, "**What the numbers say.**\n");
        if s.findings.is_empty() {
            let _ = writeln!(
                out,
                "- Nothing could be concluded: no complete measurement.\n"
            );
        } else {
            bullets(&mut out, &s.findings);
        }
        if !s.flags.is_empty() {
            let _ = writeln!(out, "**Flags.**\n");
            bullets(&mut out, &s.flags);
        }
        if !s.notes.is_empty() {
            let _ = writeln!(out, "**Notes.**\n");
            bullets(&mut out, &s.notes);
        }
    }

    if !r.not_run.is_empty() {
        let _ = writeln!(out, "## Not run in this invocation\n");
        for (id, title) in &r.not_run {
            let _ = writeln!(
                out,
                "- {title} (`lab {id}`): not part of this report. Any `{id}.json` or `{id}*.svg` \
                 in this directory is from an earlier run."
            );
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Files\n");
    let mut files = vec![
        "`REPORT.md` (this file)".to_string(),
        "`machine.json`".to_string(),
    ];
    for s in &r.sections {
        files.push(format!("`{}.json`", s.id));
        files.extend(s.plots.iter().map(|p| format!("`{}`", p.file)));
    }
    let _ = writeln!(out, "{}", files.join(", "));
    out
}

/// Writes `REPORT.md`, `machine.json`, one JSON file per section and the SVG plots into
/// `dir` (created if needed). Returns the paths written. A plot that fails to draw is
/// reported as an error after everything else is written.
pub fn write(dir: &Path, r: &Report) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let put = |name: &str, text: &str, written: &mut Vec<PathBuf>| -> Result<(), String> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("writing {}: {e}", p.display()))?;
        written.push(p);
        Ok(())
    };
    let machine = serde_json::json!({
        "machine": r.machine,
        "peers": r.peers,
        "run": r.run,
        "run_flags": r.run_flags,
        "headline": r.headline.as_ref().map(|(t, s)| serde_json::json!({"table": t, "sentence": s})),
        "green_thread_targets": r.green_thread_targets,
    });
    put(
        "machine.json",
        &serde_json::to_string_pretty(&machine).map_err(|e| e.to_string())?,
        &mut written,
    )?;
    let mut plot_errors = Vec::new();
    for s in &r.sections {
        let json = serde_json::json!({
            "experiment": s.id,
            "run": r.run,
            "machine": r.machine,
            "tables": s.tables,
            "findings": s.findings,
            "flags": s.flags,
            "raw": s.raw,
        });
        put(
            &format!("{}.json", s.id),
            &serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
            &mut written,
        )?;
        for p in &s.plots {
            let path = dir.join(&p.file);
            match p.spec.render(&path) {
                Ok(()) => written.push(path),
                Err(e) => plot_errors.push(format!("{}: {e}", p.file)),
            }
        }
    }
    put("REPORT.md", &render(r), &mut written)?;
    if plot_errors.is_empty() {
        Ok(written)
    } else {
        Err(format!("some plots failed: {}", plot_errors.join("; ")))
    }
}

/// Formats a time as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn utc_timestamp(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}
