//! # benches: the lab
//!
//! Shared code of the `lab` binary (`cargo run --release -p benches --bin lab`) and of the
//! criterion micro-benchmarks in `benches/benches/`. The lab reproduces the lecture's claims
//! about the cost of threads on the user's machine, beside real peers, and writes
//! `reports/REPORT.md` with tables, SVG plots and raw JSON.
//!
//! Module map, from the bottom up:
//! - [`sys`]: the system calls (affinity, futex, pipes, fork, posix_spawn), the
//!   `vm.max_map_count` guard and the working-set walk; all the kernel-facing `unsafe` of the
//!   lab.
//! - [`counters`]: perf software counters (context switches, migrations) and hardware
//!   cache-miss counters where a PMU exists.
//! - [`pingpong`]: the switch loops (ULT yield, futex, pipes) shared by `switch` and `cache`.
//! - [`stats`]: medians, overhead subtraction, ratios, HDR histograms, calibration, formatting.
//! - [`probe`]: the machine description every report opens with.
//! - [`peers`], [`maypeer`]: detecting, building and running the peers (Go, may, tokio,
//!   stress-ng, nginx, wrk).
//! - [`rtkernels`]: the loops of the `runtime` experiment on `lwp` and tokio (yield and
//!   channel ping-pong, batched spawn + join, skynet, parked RSS) and its map-limit arithmetic.
//! - [`experiments`]: `create`, `switch`, `cache`, `runtime`, each producing rows and a
//!   report section.
//! - [`report`], [`plot`]: REPORT.md, JSON and SVG output.
//! - [`pool`]: the echo target pairs of several runs' reports, pooled (`lab pool-echo`).
//!
//! Nothing in this crate is a dependency of `ult` or `lwp`; it is `publish = false`.

pub mod counters;
pub mod echo;
pub mod experiments;
pub mod maypeer;
pub mod peers;
pub mod pingpong;
pub mod plot;
pub mod pool;
pub mod probe;
pub mod report;
pub mod rtkernels;
pub mod stats;
pub mod sys;
