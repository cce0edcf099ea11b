//! The statistics of the lab: summaries of repeated runs (median, min, max), paired overhead
//! subtraction (lmbench's "net" cost), ratios, the indirect share of a switch, per-operation
//! distributions on an HDR histogram, and run-length calibration.
//!
//! Rules this module encodes (DESIGN.md, "Measurement rules"):
//! - a figure is a median over repeated runs, shown with its min and max;
//! - an overhead is subtracted *per repetition* from the run it was interleaved with, never
//!   as one global constant, so slow and fast phases of the vCPU do not mix;
//! - ratios are taken between medians measured in the same invocation.
//!
//! Everything here is pure (no clocks except [`calibrate`], which takes the clock as a
//! closure) so it can be unit-tested. Called by every experiment and by `report`.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Median, min and max of a set of repeated measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// The median (mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

impl Summary {
    /// Summarises `values`; `None` if empty or if any value is not finite.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// max / min: how far apart the repetitions were (1.0 = identical). Infinite when the
    /// min is not positive.
    pub fn spread(&self) -> f64 {
        if self.min > 0.0 {
            self.max / self.min
        } else {
            f64::INFINITY
        }
    }
}

/// The median of `values` (see [`Summary::of`]).
pub fn median(values: &[f64]) -> Option<f64> {
    Summary::of(values).map(|s| s.median)
}

/// Why two series could not be combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsError {
    /// The series have different lengths, so repetitions cannot be paired.
    LengthMismatch {
        /// Length of the first series.
        raw: usize,
        /// Length of the second series.
        overhead: usize,
    },
    /// A series is empty or holds a non-finite value.
    NoData,
}

impl std::fmt::Display for StatsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatsError::LengthMismatch { raw, overhead } => write!(
                f,
                "cannot pair {raw} raw repetitions with {overhead} overhead repetitions"
            ),
            StatsError::NoData => write!(f, "no finite measurements"),
        }
    }
}

impl std::error::Error for StatsError {}

/// A cost with an interleaved overhead subtracted repetition by repetition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetCost {
    /// The raw measurement.
    pub raw: Summary,
    /// The overhead measured alongside it.
    pub overhead: Summary,
    /// `raw[i] - overhead[i]`, summarised.
    pub net: Summary,
    /// The per-repetition net values.
    pub net_values: Vec<f64>,
    /// How many repetitions came out negative (impossible: flagged by the report).
    pub negative_reps: usize,
}

/// Subtracts `overhead[i]` from `raw[i]` for every repetition i (lmbench's net cost).
///
/// Pairing matters: each overhead was measured right next to its raw value, in the same
/// phase of the machine. Negative results are kept (and counted), never clamped: a negative
/// net cost means the overhead was not really part of the raw cost, which the report flags.
pub fn subtract_overhead(raw: &[f64], overhead: &[f64]) -> Result<NetCost, StatsError> {
    if raw.len() != overhead.len() {
        return Err(StatsError::LengthMismatch {
            raw: raw.len(),
            overhead: overhead.len(),
        });
    }
    let net_values: Vec<f64> = raw.iter().zip(overhead).map(|(r, o)| r - o).collect();
    let negative_reps = net_values.iter().filter(|v| **v < 0.0).count();
    Ok(NetCost {
        raw: Summary::of(raw).ok_or(StatsError::NoData)?,
        overhead: Summary::of(overhead).ok_or(StatsError::NoData)?,
        net: Summary::of(&net_values).ok_or(StatsError::NoData)?,
        net_values,
        negative_reps,
    })
}

/// median(a) / median(b); `None` if b's median is not positive.
pub fn ratio(a: &Summary, b: &Summary) -> Option<f64> {
    if b.median > 0.0 && a.median.is_finite() {
        Some(a.median / b.median)
    } else {
        None
    }
}

/// A paired comparison's sign test: how many of the pairs' ratios (A over B) exceed 1, out
/// of the pairs that are not ties, and the two-sided probability of a split at least that
/// uneven if A and B were alike (each pair a fair coin). `None` without a non-tied pair.
///
/// For verdicts between two close peers: a median ratio of 0.98x from seven pairs that split
/// four to three says nothing about which is faster, and the report should say so.
pub fn sign_test(ratios: &[f64]) -> Option<SignTest> {
    let above = ratios.iter().filter(|r| **r > 1.0).count();
    let below = ratios.iter().filter(|r| **r < 1.0).count();
    let n = above + below;
    if n == 0 {
        return None;
    }
    // P(X <= k) for X ~ Binomial(n, 1/2), k the smaller side; doubled for two sides.
    let k = above.min(below);
    let mut choose = 1.0f64;
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            choose = choose * (n - i + 1) as f64 / i as f64;
        }
        tail += choose;
    }
    let p = (2.0 * tail / 2f64.powi(n as i32)).min(1.0);
    Some(SignTest { above, pairs: n, p })
}

/// What [`sign_test`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignTest {
    /// Pairs whose ratio exceeds 1.
    pub above: usize,
    /// Pairs that are not ties.
    pub pairs: usize,
    /// Two-sided p-value of the split.
    pub p: f64,
}

/// The indirect share of a switch: (total - direct) / total. `None` unless total > 0.
/// Negative when the measured total is below the direct cost (noise; the report says so).
pub fn indirect_share(total: f64, direct: f64) -> Option<f64> {
    if total > 0.0 && total.is_finite() && direct.is_finite() {
        Some((total - direct) / total)
    } else {
        None
    }
}

/// A new histogram for per-operation latencies in nanoseconds: 1 ns to 100 s, three
/// significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid static histogram bounds")
}

/// Records `count` observations of `ns` nanoseconds, clamping into the histogram's range
/// (0 becomes 1 ns; values above the top become the top) so no observation is dropped.
pub fn record(h: &mut Histogram<u64>, ns: u64, count: u64) {
    let v = ns.clamp(h.low(), h.high());
    // Cannot fail: the value is within bounds after clamping.
    let _ = h.record_n(v, count);
}

/// Percentiles of a per-operation distribution, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Distribution {
    /// Observations.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest observation.
    pub max: f64,
}

impl Distribution {
    /// Reads the percentiles of `h`; `None` if it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Distribution> {
        if h.is_empty() {
            return None;
        }
        Some(Distribution {
            count: h.len(),
            p50: h.value_at_quantile(0.50) as f64,
            p90: h.value_at_quantile(0.90) as f64,
            p99: h.value_at_quantile(0.99) as f64,
            max: h.max() as f64,
        })
    }
}

/// Chooses an iteration count so that `run(n)` takes about `target`: doubles n from 1
/// until a run takes at least a tenth of the target, then scales linearly. The result is
/// clamped to `[min, max]`. `run` returns the elapsed time of n iterations (or an error,
/// passed through).
pub fn calibrate<E>(
    target: Duration,
    min: u64,
    max: u64,
    mut run: impl FnMut(u64) -> Result<Duration, E>,
) -> Result<u64, E> {
    let min = min.max(1);
    let max = max.max(min);
    let mut n = min;
    loop {
        let t = run(n)?;
        if t * 10 >= target || n >= max {
            let per = t.as_secs_f64() / n as f64;
            let want = if per > 0.0 {
                (target.as_secs_f64() / per).round() as u64
            } else {
                max
            };
            return Ok(want.clamp(min, max));
        }
        n = n.saturating_mul(2).min(max);
    }
}

/// Formats nanoseconds with three significant digits and a unit: `85.2 ns`, `1.23 µs`,
/// `12.3 µs`, `123 µs`, `1.23 ms`, `2.00 s`.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        return "n/a".to_string();
    }
    let neg = ns < 0.0;
    let a = ns.abs();
    let (v, unit) = if a < 1e3 {
        (a, "ns")
    } else if a < 1e6 {
        (a / 1e3, "µs")
    } else if a < 1e9 {
        (a / 1e6, "ms")
    } else {
        (a / 1e9, "s")
    };
    let s = sig3(v);
    format!("{}{} {}", if neg { "-" } else { "" }, s, unit)
}

/// Three significant digits, without scientific notation (for values 0.001..1e6).
pub fn sig3(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let a = v.abs();
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        (2 - a.log10().floor() as i32).clamp(0, 9) as usize
    };
    format!("{v:.decimals$}")
}

/// Formats a ratio with three significant digits: `0.00481x`, `1.80x`, `23.4x`, `1500x`.
pub fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        return "n/a".to_string();
    }
    if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 10.0 {
        format!("{r:.1}x").replace(".0x", "x")
    } else {
        format!("{}x", sig3(r))
    }
}

/// Formats a byte count: `0 B`, `16 KiB`, `1.5 MiB`, `128 MiB`.
pub fn fmt_bytes(b: u64) -> String {
    const K: f64 = 1024.0;
    let f = b as f64;
    let (v, unit) = if f < K {
        return format!("{b} B");
    } else if f < K * K {
        (f / K, "KiB")
    } else if f < K * K * K {
        (f / (K * K), "MiB")
    } else {
        (f / (K * K * K), "GiB")
    };
    if (v - v.round()).abs() < 1e-9 {
        format!("{} {unit}", v.round() as u64)
    } else {
        format!("{} {unit}", sig3(v))
    }
}
