//! # benches: the lab
//!
//! Shared code of the `lab` binary (experiments, statistics, machine probe, report writer)
//! and the criterion micro-benchmarks in `benches/benches/`.
