//! The lab: runs the experiments and writes `reports/`.
//!
//! `cargo run --release -p benches --bin lab` runs every experiment in quick mode;
//! `lab create|switch|cache|runtime` runs one; `--full` runs longer; `--help` explains each.
//! The binary only parses the command line, probes the machine, finds and builds the peers,
//! runs the experiments in order and hands their sections to `benches::report`. Bad flags
//! exit with code 2 (clap), a failure to write the report (or a `--raise-limits` that cannot
//! be honoured) with 1.
//!
//! `--raise-limits` (root only) raises `vm.max_map_count` for the `runtime` experiment through
//! `benches::sys::MaxMapCountGuard`, which restores the previous value when the experiment
//! ends, on error paths (the guard is dropped while unwinding) and, best effort, on Ctrl-C.
//! Without it, `runtime` runs as many parked ULTs as the limit allows and says so.
//!
//! The hidden `internal-peer` subcommand is how the lab runs a peer in a child process of its
//! own (`may` rows, see `benches::maypeer`; the parked-RSS rows of ours and tokio, see
//! `benches::rtkernels`); it prints one JSON line and exits.

use benches::experiments::{self, cache, create, echo, runtime, switch, Ctx, Mode, Status};
use benches::peers::{self, GoBins};
use benches::report::{self, Report, RunInfo};
use benches::{maypeer, probe, rtkernels};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

const ABOUT: &str = "Measures the cost of threads on this machine (creation, direct switch, \
cache effects, the two-level runtime's targets) beside real peers, and writes reports/REPORT.md \
with tables, SVG plots and raw JSON.";

const LONG_ABOUT: &str = "Measures the cost of threads on this machine, beside real peers, and \
writes a report a person would rather look at than read: REPORT.md with one section per \
experiment (the lecture's claim, what was measured, a table, a plot, what the numbers say), SVG \
plots and raw JSON.

With no subcommand every experiment runs, in quick mode (a few minutes on a 2-core machine, plus compiling the Go peers the first time). \
Peers are detected: may and tokio always; Go (the programs in benches/go, compiled at run time) and \
stress-ng when installed (scripts/install-peers.sh). A missing peer is named in the report.

Figures are medians of repetitions with min and max, rows measured interleaved in one run.";

#[derive(Parser, Debug)]
#[command(name = "lab", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,

    /// Longer runs: more repetitions, longer loops, more working-set sizes (about five minutes
    /// on a 2-core machine).
    #[arg(long, global = true)]
    full: bool,

    /// Tiny counts, for tests only (the numbers are meaningless).
    #[arg(long, global = true, hide = true, conflicts_with = "full")]
    smoke: bool,

    /// Directory to write the report into [default: reports/ at the workspace root, or
    /// ./reports when the lab runs outside the source tree].
    #[arg(long, global = true, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Repetitions of every row (overrides the mode's defaults, among them the echo experiment's extra repetitions of the two servers its targets compare).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    reps: Option<u32>,

    /// CPU that one-core rows are pinned to [default: the first CPU this process may use].
    #[arg(long, global = true, value_name = "CPU")]
    cpu: Option<usize>,

    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,

    /// Raise vm.max_map_count for the `runtime` experiment so that a million ULTs can be
    /// parked at once, and restore it afterwards (needs root; without it the experiment parks
    /// as many as the current limit allows and prints the sysctl command).
    #[arg(long, global = true)]
    raise_limits: bool,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
enum Cmd {
    /// Run every experiment (the default).
    All,
    /// Creation cost: ULT vs kernel thread vs process, beside goroutines, may and tokio.
    #[command(
        long_about = "Creation cost. One operation is a whole life: create, run an empty \
body, wait, reclaim. Rows: ULT spawn+join on a pooled stack and on a fresh stack, std::thread \
spawn+join, fork + _exit + waitpid, posix_spawn(/bin/true) + waitpid, and goroutines, may \
coroutines and tokio tasks as peers. All pinned to one CPU. Per-row batch means over repetitions \
(median, min, max), per-operation distributions (HDR histogram), a log-scale bar chart."
    )]
    Create,
    /// Direct cost of one switch: ULT yield, raw corosensei, futex, pipes (lat_ctx), Go/may/tokio, stress-ng.
    #[command(
        long_about = "Direct cost of one context switch. Two ULTs yielding on one LWP, beside \
a raw corosensei resume+suspend with no scheduler (the floor; with `create`'s pooled spawn+join \
it gives issue 2's targets, shown under the report's headline); two ULTs over lwp channels on \
one LWP and on two LWPs (one ULT on each, two CPUs); two kernel threads through a futex on one \
CPU and on two; two processes through pipes on one CPU, lmbench lat_ctx style, with the single-process pipe write+read overhead subtracted (raw and net shown); Go \
Gosched and channel ping-pong, may and tokio yields; stress-ng --switch as a cross-check. \
Software counters confirm that kernel rows really switched and ULT rows never entered the kernel."
    )]
    Switch,
    /// Indirect cost: per-switch cost against working-set size, from 0 to 4x the LLC.
    #[command(
        long_about = "Indirect cost of a switch (cache effects). Each side of a switch loop \
walks a private working set between switches; sizes run from 0 to 4x the last-level cache with \
points around L1d, L2 and L3 (from sysfs). One thread doing the same walks without switching is \
the baseline, subtracted. Shown for ULTs, kernel threads and processes on one CPU: cost per \
switch against size (log-x, caches marked) and the indirect share (total - direct) / total, \
set against the lecture's 'up to 80%'. Hardware miss counters where the machine has a PMU."
    )]
    Cache,
    /// The two-level runtime (lwp) against issue 3's targets: yield, spawn, skynet, channels,
    /// parked memory.
    #[command(
        long_about = "The two-level runtime (lwp: ULTs on LWPs) against issue 3's targets, each \
row beside what it is compared with, interleaved in one run, with PASS/FAIL verdicts computed from \
this run's medians. Yield round trip of two ULTs on one LWP vs two kernel threads through a futex \
on one CPU (target: 100x cheaper); spawn + join of ULTs in batches of 1000 on all cores vs \
std::thread, tokio, may and goroutines (target: 50x cheaper than std::thread); skynet with 1M \
leaves vs tokio, may and Go (target: 250 ms); a channel round trip on one CPU vs tokio, may and Go \
(target: 80 ns); RSS per parked ULT with many parked at once vs goroutines, tokio tasks and may \
coroutines (target: 5 KiB; 1M with --full). Each live ULT stack takes two memory mappings: when \
vm.max_map_count is too low the parked rows run the largest count that fits and say so; \
--raise-limits (root) raises it for the run and restores it."
    )]
    Runtime,
    /// TCP echo server under the three models beside tokio, may and a bare event loop (issue 4).
    Echo,
    /// Pools the echo target pairs of several runs' reports into one table (measures nothing).
    #[command(
        long_about = "Reads the echo.json of several runs (each DIR is a directory the lab \
wrote, or an echo.json itself) and pools the interleaved repetition pairs of many-to-many and \
tokio per connection count: how many pairs meet each half of issue 4's target, the medians of \
the pooled ratios, and a sign test on each half. One quick run has eleven pairs per count, too \
few for a sign test to resolve anything short of ten of eleven; several runs together can. Prints \
a Markdown table; measures nothing.

Example: lab echo --out /tmp/e1; lab echo --out /tmp/e2; lab pool-echo /tmp/e1 /tmp/e2"
    )]
    PoolEcho {
        /// Report directories (or echo.json files) of earlier `lab echo` or `lab` runs.
        #[arg(required = true, value_name = "DIR")]
        runs: Vec<PathBuf>,
    },
    /// Runs a peer inside a child process (used by the lab itself).
    #[command(hide = true)]
    InternalPeer {
        #[command(subcommand)]
        peer: PeerCmd,
    },
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
enum PeerCmd {
    /// may coroutine spawn+join.
    MayCreate {
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        n: u64,
        #[arg(long, default_value_t = 0)]
        m: u64,
    },
    /// Two may coroutines yielding.
    MayYield {
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        n: u64,
        #[arg(long, default_value_t = 1000)]
        w: u64,
    },
    /// may coroutine spawn+join in batches, on several workers.
    MaySpawn {
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        n: u64,
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
        batch: u64,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
        workers: u64,
    },
    /// may skynet.
    MaySkynet {
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        leaves: u64,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
        workers: u64,
    },
    /// may channel ping-pong, one worker.
    MayChan {
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        n: u64,
        #[arg(long, default_value_t = 1000)]
        w: u64,
    },
    /// may coroutines parked at once: RSS growth.
    MayParked {
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        n: u64,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
        workers: u64,
    },
    /// tokio tasks parked at once on oneshot channels: RSS growth.
    TokioParked {
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        n: u64,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
        workers: u64,
    },
    /// Our ULTs parked at once (many-to-many runtime): RSS growth.
    ParkedRss {
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        n: u64,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
        lwps: u64,
    },
}

fn default_out() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match manifest.parent() {
        Some(root) if root.join("Cargo.toml").is_file() => root.join("reports"),
        _ => PathBuf::from("reports"),
    }
}

fn json<T: serde::Serialize>(r: Result<T, String>) -> Result<String, String> {
    r.and_then(|o| serde_json::to_string(&o).map_err(|e| e.to_string()))
}

fn run_peer(peer: PeerCmd) -> ExitCode {
    let out = match peer {
        PeerCmd::MayCreate { n, m } => json(maypeer::create(n, m, 1000)),
        PeerCmd::MayYield { n, w } => json(maypeer::yield_pingpong(n, w)),
        PeerCmd::MaySpawn { n, batch, workers } => {
            json(maypeer::spawn_join(n, batch, workers as usize))
        }
        PeerCmd::MaySkynet { leaves, workers } => json(maypeer::skynet(leaves, workers as usize)),
        PeerCmd::MayChan { n, w } => json(maypeer::chan_pingpong(n, w)),
        PeerCmd::MayParked { n, workers } => json(maypeer::parked(n, workers as usize)),
        PeerCmd::TokioParked { n, workers } => json(rtkernels::tokio_parked(n, workers as usize)),
        PeerCmd::ParkedRss { n, lwps } => json(rtkernels::parked_rss(n, lwps as usize)),
    };
    match out {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lab internal-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

/// CPU time (seconds) used by the whole machine and by this process (children included), to
/// tell whether something else ran during the experiments.
#[derive(Debug, Clone, Copy)]
struct CpuTimes {
    machine_busy: f64,
    steal: f64,
    ours: f64,
}

fn cpu_times() -> Option<CpuTimes> {
    let hz = benches::sys::clock_ticks_per_second() as f64;
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    if cpu.len() < 8 {
        return None;
    }
    let busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6];
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Our own time and that of the children we reaped (the peers).
    let ours: u64 = benches::sys::stat_cpu_ticks(&own)?.iter().sum();
    Some(CpuTimes {
        machine_busy: busy / hz,
        steal: cpu[7] / hz,
        ours: ours as f64 / hz,
    })
}

/// `lab pool-echo`: reads each run's echo.json and prints the pooled target table. An
/// unreadable or foreign file is a usage error (exit code 2), naming the file.
fn pool_echo(runs: &[PathBuf]) -> ExitCode {
    let mut reports = Vec::new();
    for run in runs {
        let path = if run.is_dir() {
            run.join("echo.json")
        } else {
            run.clone()
        };
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|text| {
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| format!("{} is not JSON: {e}", path.display()))
            });
        match parsed {
            Ok(v) => reports.push((path.display().to_string(), v)),
            Err(e) => {
                eprintln!("lab pool-echo: {e}");
                return ExitCode::from(2);
            }
        }
    }
    match benches::pool::pool(&reports) {
        Ok(pooled) if pooled.is_empty() => {
            eprintln!(
                "lab pool-echo: none of these runs measured both {} and {} at a target's connection count",
                benches::pool::OURS,
                benches::pool::PEER
            );
            ExitCode::FAILURE
        }
        Ok(pooled) => {
            print!("{}", benches::pool::render(&pooled));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lab pool-echo: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("internal-peer")
        && argv.get(2).is_some_and(|a| a.starts_with("echo-"))
    {
        return ExitCode::from(benches::echo::internal_peer(&argv[2..]).clamp(0, 255) as u8);
    }
    let cli = Cli::parse();
    if let Some(Cmd::InternalPeer { peer }) = cli.command {
        return run_peer(peer);
    }
    if let Some(Cmd::PoolEcho { runs }) = &cli.command {
        return pool_echo(runs);
    }
    let mode = if cli.smoke {
        Mode::Smoke
    } else if cli.full {
        Mode::Full
    } else {
        Mode::Quick
    };
    let which = cli.command.unwrap_or(Cmd::All);
    let out_dir = cli.out.clone().unwrap_or_else(default_out);
    let started = SystemTime::now();
    let t0 = Instant::now();
    let say = |msg: &str| {
        if !cli.quiet {
            eprintln!("lab: {msg}");
        }
    };

    let machine = probe::probe();
    let allowed = machine.allowed_cpus.clone();
    let cpu_a = match cli.cpu {
        Some(c) if allowed.contains(&c) => c,
        Some(c) => {
            eprintln!(
                "lab: --cpu {c} is not a CPU this process may use (allowed: {})",
                report::cpu_list(&allowed)
            );
            return ExitCode::from(2);
        }
        None => match allowed.first() {
            Some(c) => *c,
            None => {
                eprintln!("lab: cannot read this process's CPU affinity");
                return ExitCode::FAILURE;
            }
        },
    };
    let cpu_b = allowed.iter().copied().find(|&c| c != cpu_a);
    say(&format!(
        "{} mode; machine: {}; writing to {}",
        mode.name(),
        machine.one_line(),
        out_dir.display()
    ));

    let peers_found = peers::detect();
    let needs_go = matches!(which, Cmd::All | Cmd::Create | Cmd::Switch | Cmd::Runtime);
    let runs_runtime = matches!(which, Cmd::All | Cmd::Runtime);
    // `--raise-limits`: check now, before minutes of other experiments, that it can work.
    let map_count_wanted = runtime::required_map_count(&runtime::Params::for_mode(mode));
    if cli.raise_limits && runs_runtime {
        match benches::sys::read_max_map_count() {
            Ok(current) if current < map_count_wanted => {
                // SAFETY: geteuid has no preconditions and cannot fail.
                let euid = unsafe { libc::geteuid() };
                if let Err(e) = benches::sys::check_can_raise(euid, current, map_count_wanted) {
                    eprintln!("lab: {e}");
                    return ExitCode::FAILURE;
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("lab: --raise-limits: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else if cli.raise_limits {
        say("--raise-limits has no effect: only the `runtime` experiment needs it");
    }
    let go = if !needs_go {
        Err(Status::NotApplicable(
            "not needed by this experiment".into(),
        ))
    } else if peers::get(&peers_found, "go").is_some_and(|p| p.present) {
        say("building the Go peers (go build)");
        GoBins::build().map_err(Status::Failed)
    } else {
        Err(Status::Missing(
            "`go` is not on PATH; install with `sudo scripts/install-peers.sh`".into(),
        ))
    };
    if let Err(Status::Failed(e)) = &go {
        say(&format!("Go peers unavailable: {e}"));
    }
    let ctx = Ctx {
        mode,
        reps_override: cli.reps.map(|r| r as usize),
        machine: machine.clone(),
        peers: peers_found.clone(),
        go,
        self_exe: std::env::current_exe().ok(),
        cpu_a,
        cpu_b,
        progress: !cli.quiet,
    };

    // How busy the machine is with other work, sampled while the lab sleeps.
    let busy_before = {
        let a = cpu_times();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let b = cpu_times();
        match (a, b) {
            (Some(a), Some(b)) => {
                Some(((b.machine_busy - a.machine_busy) - (b.ours - a.ours)) / 0.5)
            }
            _ => None,
        }
    };
    let cpu_start = cpu_times();
    let mut sections = Vec::new();
    let mut not_run = Vec::new();
    let all = [
        (Cmd::Create, "create", "Creation cost"),
        (Cmd::Switch, "switch", "Direct cost of a context switch"),
        (
            Cmd::Cache,
            "cache",
            "Indirect cost of a switch: cache effects",
        ),
        (
            Cmd::Runtime,
            "runtime",
            "The two-level runtime: issue 3's targets",
        ),
        (Cmd::Echo, "echo", "TCP echo server"),
    ];
    let mut runtime_targets = None;
    let mut create_rows = None;
    let mut switch_rows = None;
    for (cmd, id, title) in all {
        if which != Cmd::All && which != cmd {
            not_run.push((id.to_string(), title.to_string()));
            continue;
        }
        let t = Instant::now();
        say(&format!("running `{id}`"));
        match cmd {
            Cmd::Create => {
                let o = create::run(&ctx);
                create_rows = Some(o.rows);
                sections.push(o.section);
            }
            Cmd::Switch => {
                let o = switch::run(&ctx);
                switch_rows = Some(o.rows);
                sections.push(o.section);
            }
            Cmd::Cache => {
                let o = cache::run(&ctx);
                sections.push(o.section);
            }
            Cmd::Runtime => {
                let guard = if cli.raise_limits {
                    match benches::sys::MaxMapCountGuard::raise(map_count_wanted) {
                        Ok(g) => {
                            match &g {
                                Some(g) => say(&format!(
                                    "raised vm.max_map_count from {} to {} for this experiment",
                                    g.previous(),
                                    g.raised_to()
                                )),
                                None => say(&format!(
                                    "vm.max_map_count is already at least {map_count_wanted}; \
                                     nothing to raise"
                                )),
                            }
                            g
                        }
                        Err(e) => {
                            eprintln!("lab: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                } else {
                    None
                };
                let mut o = runtime::run(&ctx);
                if let Some(g) = guard {
                    let (previous, raised) = (g.previous(), g.raised_to());
                    drop(g);
                    let now = benches::sys::read_max_map_count().ok();
                    o.section.notes.push(format!(
                        "vm.max_map_count was raised from {previous} to {raised} for this \
                         experiment (--raise-limits) and restored afterwards (it reads {} now).",
                        now.map(|n| n.to_string())
                            .unwrap_or_else(|| "unknown".into())
                    ));
                    if now != Some(previous) {
                        o.section.flags.push(format!(
                            "vm.max_map_count could not be restored to {previous}: restore it \
                             with `sudo sysctl -w vm.max_map_count={previous}`"
                        ));
                    }
                }
                runtime_targets = Some(runtime::targets_table(&o.targets));
                sections.push(o.section);
            }
            Cmd::Echo => {
                let o = echo::run(&ctx);
                if !cli.quiet {
                    println!("{}", echo::targets_table(&o.targets).to_markdown());
                }
                sections.push(o.section);
            }
            _ => {}
        }
        say(&format!(
            "`{id}` done in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu_end = cpu_times();

    let mut run_flags = Vec::new();
    if let Some(busy) = busy_before {
        if busy > 0.25 {
            run_flags.push(format!(
                "the machine was busy just before the run: other processes used {:.0}% of one CPU \
                 during a 0.5 s sample (load average {}): other work may have disturbed the \
                 measurements",
                100.0 * busy,
                machine
                    .load_average
                    .map(|l| format!("{:.2}", l[0]))
                    .unwrap_or_else(|| "unknown".into())
            ));
        }
    }
    if let (Some(a), Some(b)) = (cpu_start, cpu_end) {
        let elapsed = t0.elapsed().as_secs_f64().max(1e-9);
        let other = (b.machine_busy - a.machine_busy) - (b.ours - a.ours);
        let steal = b.steal - a.steal;
        if other > 0.1 * elapsed {
            run_flags.push(format!(
                "other processes used {:.1} CPU-seconds during the {:.0} s of this run ({:.0}% of one \
                 CPU): the measurements shared the machine",
                other,
                elapsed,
                100.0 * other / elapsed
            ));
        }
        if steal > 0.05 * elapsed {
            run_flags.push(format!(
                "the hypervisor reported {steal:.1} s of steal time during the run"
            ));
        }
    }

    let reps_line = {
        let r = |d: usize| cli.reps.map(|x| x as usize).unwrap_or(d);
        format!(
            "Repetitions: create {} per row, switch {} per row, cache {} per size, runtime {} per \
             row (its heavy rows {}), echo {} per row (its target pair {}){}.",
            r(create::Params::for_mode(mode).reps),
            r(switch::Params::for_mode(mode).reps),
            r(cache::Params::for_mode(mode).reps),
            r(runtime::Params::for_mode(mode).reps),
            runtime::Params::for_mode(mode)
                .heavy_reps
                .min(r(runtime::Params::for_mode(mode).reps)),
            r(echo::Params::for_mode(mode).reps),
            r(echo::Params::for_mode(mode).target_reps),
            if cli.reps.is_some() {
                " (set with --reps)"
            } else {
                ""
            }
        )
    };
    let mut command = String::from("cargo run --release -p benches --bin lab");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        command.push_str(" -- ");
        command.push_str(&args.join(" "));
    }
    let headline = experiments::headline(
        &machine,
        mode,
        create_rows.as_deref(),
        switch_rows.as_deref(),
    );
    let green_thread_targets = experiments::ult_targets::table(&experiments::ult_targets::judge(
        create_rows.as_deref(),
        switch_rows.as_deref(),
    ));
    let rep = Report {
        machine,
        peers: peers_found,
        run: RunInfo {
            command,
            mode: mode.name().to_string(),
            repetitions: reps_line,
            started_utc: report::utc_timestamp(started),
            wall_seconds: wall,
            pinning: ctx.pinning(),
            lab_version: env!("CARGO_PKG_VERSION").to_string(),
        },
        headline,
        green_thread_targets,
        run_flags,
        sections,
        not_run,
    };
    let result = report::write(&out_dir, &rep);
    if let Some((t, sentence)) = &rep.headline {
        if !cli.quiet {
            println!("{}\n{sentence}\n", t.to_markdown());
        }
    }
    for t in [&rep.green_thread_targets, &runtime_targets]
        .into_iter()
        .flatten()
    {
        if !cli.quiet {
            println!("{}", t.to_markdown());
        }
    }
    match result {
        Ok(files) => {
            say(&format!(
                "wrote {} files to {} ({:.0} s of experiments)",
                files.len(),
                out_dir.display(),
                wall
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lab: {e}");
            ExitCode::FAILURE
        }
    }
}
