//! Pools the echo experiment's target pairs over several runs (`lab pool-echo DIR...`).
//!
//! One quick run compares many-to-many and tokio in eleven interleaved repetition pairs per
//! connection count: its verdict is a verdict on medians of eleven, and its sign test
//! resolves nothing short of ten of eleven. On a machine whose speed drifts, what the
//! issue 4 target asks ("at least tokio's requests/s, no worse p99") is better judged over
//! many pairs from several runs. This module reads the `echo.json` of each run, takes every
//! repetition pair of the two servers (the lab runs them interleaved, so pair `i` is rep `i`
//! of each), and pools them per connection count: the share of pairs meeting each half of
//! the target, a sign test on each half, and the medians of the pooled ratios.
//!
//! It only reads what the lab wrote; a run without the pair at some count contributes
//! nothing there, and a file that is not an echo report is an error naming the file.
//! Callers: the `lab` binary's `pool-echo` subcommand and the tests.

use crate::experiments::echo::TARGET_PAIR;
use crate::stats::{median, sign_test, SignTest};
use serde_json::Value;

/// The server whose figures the target judges (the echo experiment's own pair).
pub const OURS: &str = TARGET_PAIR[0];
/// The server it is compared with.
pub const PEER: &str = TARGET_PAIR[1];

/// One repetition pair of one run at one connection count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    /// Index of the run (in the order given) the pair came from.
    pub run: usize,
    /// Many-to-many's requests/s over tokio's.
    pub rps_ratio: f64,
    /// Many-to-many's p99 latency over tokio's.
    pub p99_ratio: f64,
}

impl Pair {
    /// Whether the pair meets both halves of the target.
    pub fn meets_both(&self) -> bool {
        self.rps_ratio >= 1.0 && self.p99_ratio <= 1.0
    }
}

/// Every pair at one connection count, with what they say together.
#[derive(Debug, Clone, PartialEq)]
pub struct PooledCount {
    /// Connections.
    pub conns: usize,
    /// Runs that had the pair at this count.
    pub runs: usize,
    /// The pairs, run by run.
    pub pairs: Vec<Pair>,
    /// Each contributing run's own verdict on its medians (`Pass`, `Fail`...), as it wrote it.
    pub run_verdicts: Vec<String>,
}

impl PooledCount {
    /// Median of the pooled requests/s ratios.
    pub fn median_rps_ratio(&self) -> Option<f64> {
        median(&self.pairs.iter().map(|p| p.rps_ratio).collect::<Vec<_>>())
    }

    /// Median of the pooled p99 ratios.
    pub fn median_p99_ratio(&self) -> Option<f64> {
        median(&self.pairs.iter().map(|p| p.p99_ratio).collect::<Vec<_>>())
    }

    /// Whether the pooled medians meet both halves of the target.
    pub fn passes(&self) -> Option<bool> {
        Some(self.median_rps_ratio()? >= 1.0 && self.median_p99_ratio()? <= 1.0)
    }

    /// Sign test on the requests/s half: pairs above 1 against pairs below.
    pub fn rps_sign_test(&self) -> Option<SignTest> {
        sign_test(&self.pairs.iter().map(|p| p.rps_ratio).collect::<Vec<_>>())
    }

    /// Sign test on the latency half, oriented like the other: a ratio counts as "above"
    /// when many-to-many's p99 was lower (tokio's over ours above 1).
    pub fn p99_sign_test(&self) -> Option<SignTest> {
        let inverted: Vec<f64> = self
            .pairs
            .iter()
            .filter(|p| p.p99_ratio > 0.0)
            .map(|p| 1.0 / p.p99_ratio)
            .collect();
        sign_test(&inverted)
    }
}

/// Reads the target pairs of one run's `echo.json` (`run` is its index, `name` its path for
/// error messages) into `pooled`, merging by connection count.
fn add_run(
    pooled: &mut Vec<PooledCount>,
    run: usize,
    name: &str,
    report: &Value,
) -> Result<(), String> {
    let not_echo = || format!("{name}: not an echo report of the lab (no raw.rows)");
    if report.get("experiment").and_then(Value::as_str) != Some("echo") {
        return Err(format!(
            "{name}: not an echo report of the lab (experiment is not \"echo\")"
        ));
    }
    let rows = report
        .pointer("/raw/rows")
        .and_then(Value::as_array)
        .ok_or_else(not_echo)?;
    let find = |server: &str, conns: u64| {
        rows.iter().filter_map(|r| r.get("row")).find(|r| {
            r.get("server").and_then(Value::as_str) == Some(server)
                && r.get("conns").and_then(Value::as_u64) == Some(conns)
        })
    };
    let numbers = |row: &Value, key: &str| -> Vec<f64> {
        row.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let targets = report
        .pointer("/raw/targets")
        .and_then(Value::as_array)
        .ok_or_else(not_echo)?;
    for target in targets {
        let Some(conns) = target.get("conns").and_then(Value::as_u64) else {
            continue;
        };
        let (Some(ours), Some(peer)) = (find(OURS, conns), find(PEER, conns)) else {
            continue;
        };
        let (o_rps, o_p99) = (numbers(ours, "rps"), numbers(ours, "p99_ns"));
        let (t_rps, t_p99) = (numbers(peer, "rps"), numbers(peer, "p99_ns"));
        let n = o_rps
            .len()
            .min(o_p99.len())
            .min(t_rps.len())
            .min(t_p99.len());
        let pairs: Vec<Pair> = (0..n)
            .filter(|&i| t_rps[i] > 0.0 && t_p99[i] > 0.0)
            .map(|i| Pair {
                run,
                rps_ratio: o_rps[i] / t_rps[i],
                p99_ratio: o_p99[i] / t_p99[i],
            })
            .collect();
        if pairs.is_empty() {
            continue;
        }
        let conns = conns as usize;
        let verdict = target
            .get("verdict")
            .and_then(Value::as_str)
            .unwrap_or("Unknown")
            .to_string();
        match pooled.iter_mut().find(|p| p.conns == conns) {
            Some(p) => {
                p.runs += 1;
                p.pairs.extend(pairs);
                p.run_verdicts.push(verdict);
            }
            None => pooled.push(PooledCount {
                conns,
                runs: 1,
                pairs,
                run_verdicts: vec![verdict],
            }),
        }
    }
    Ok(())
}

/// Pools the target pairs of `runs` (a name for messages and the parsed `echo.json` of each),
/// by connection count in increasing order. Errors name the first run that is not an echo
/// report; a run without the pair at some count is skipped there.
pub fn pool(runs: &[(String, Value)]) -> Result<Vec<PooledCount>, String> {
    let mut pooled = Vec::new();
    for (i, (name, report)) in runs.iter().enumerate() {
        add_run(&mut pooled, i, name, report)?;
    }
    pooled.sort_by_key(|p| p.conns);
    Ok(pooled)
}

/// A Markdown table of `pooled` with a line under it that says how to read it.
pub fn render(pooled: &[PooledCount]) -> String {
    let mut out = String::from(
        "| connections | runs (their own verdicts) | pairs | req/s at least tokio's | p99 no worse | both | median req/s ratio (min - max) | median p99 ratio | sign test p: req/s, p99 | pooled verdict |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for p in pooled {
        let n = p.pairs.len();
        let count = |f: &dyn Fn(&Pair) -> bool| p.pairs.iter().filter(|x| f(x)).count();
        let rps_met = count(&|x| x.rps_ratio >= 1.0);
        let p99_met = count(&|x| x.p99_ratio <= 1.0);
        let both = count(&|x| x.meets_both());
        let (lo, hi) = p.pairs.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
            (lo.min(x.rps_ratio), hi.max(x.rps_ratio))
        });
        let fmt_p = |s: Option<SignTest>| s.map_or("-".to_string(), |s| format!("{:.3}", s.p));
        let verdict = match (p.passes(), p.rps_sign_test(), p.p99_sign_test()) {
            (None, _, _) => "-".to_string(),
            (Some(false), _, _) => "**FAIL**".to_string(),
            (Some(true), Some(r), Some(l)) if r.p < 0.05 && l.p < 0.05 => {
                "**PASS**, both halves resolved (p < 0.05)".to_string()
            }
            (Some(true), _, _) => "**PASS** on medians, not resolved by the sign tests".to_string(),
        };
        out.push_str(&format!(
            "| {} | {} ({}) | {n} | {rps_met}/{n} | {p99_met}/{n} | {both}/{n} | {} ({lo:.3}x - {hi:.3}x) | {} | {}, {} | {verdict} |\n",
            p.conns,
            p.runs,
            p.run_verdicts.join(", "),
            p.median_rps_ratio().map_or("-".into(), |r| format!("{r:.3}x")),
            p.median_p99_ratio().map_or("-".into(), |r| format!("{r:.3}x")),
            fmt_p(p.rps_sign_test()),
            fmt_p(p.p99_sign_test()),
        ));
    }
    out.push_str(&format!(
        "\nPairs are interleaved repetitions of {OURS} and {PEER} in one run; the ratios are {OURS}'s \
         over {PEER}'s. A sign test counts the pairs on each side of 1 (for p99, lower is better) and \
         gives the two-sided chance that fair coin tosses split at least as unevenly.\n"
    ));
    out
}
