//! Issue 2's targets for the green thread, judged from rows that `create` and `switch`
//! already measure in the same run, so that the lab says on the user's machine what
//! `cargo bench -p benches --bench switch --bench spawn` says on the developer's:
//!
//! - a yield round trip between two ULTs (switch row `ult-yield`) costs at most
//!   [`YIELD_FACTOR`] times a raw corosensei resume+suspend round trip (`corosensei-raw`,
//!   the floor under every ULT switch: no scheduler at all). Both rows are per switch, two
//!   per round trip, so their ratio is the ratio of the round trips. Pairs come from the
//!   same repetition of the switch experiment, which runs the rows one after the other;
//! - a pooled spawn+join (create row `ult-pooled`) costs at most [`SPAWN_LIMIT_NS`].
//!
//! Pure functions over the rows; `bin/lab.rs` calls [`judge`] after the experiments ran and
//! puts [`table`] under the report's headline. A target whose rows did not run is `Unknown`.

use super::runtime::{
    reps_fraction, reps_meeting_limit, targets_table_titled, verdict_at_most, TargetResult,
};
use super::{find, median_of, Row, Verdict};
use crate::report::Table;
use crate::stats::{fmt_ns, fmt_ratio};

/// A yield round trip may cost at most this many raw corosensei round trips.
pub const YIELD_FACTOR: f64 = 3.0;
/// A pooled spawn+join may cost at most this many nanoseconds.
pub const SPAWN_LIMIT_NS: f64 = 60.0;

/// The measured values of a row, or none when it did not run.
fn values<'a>(rows: Option<&'a [Row]>, id: &str) -> &'a [f64] {
    rows.and_then(|r| find(r, id))
        .filter(|r| r.summary().is_some())
        .map_or(&[], |r| r.values.as_slice())
}

/// The two targets, from the `create` and `switch` rows of this run (either may be missing).
pub fn judge(create: Option<&[Row]>, switch: Option<&[Row]>) -> Vec<TargetResult> {
    let yield_rt = switch.and_then(|s| median_of(s, "ult-yield"));
    let raw_rt = switch.and_then(|s| median_of(s, "corosensei-raw"));
    let multiple = match (yield_rt, raw_rt) {
        (Some(y), Some(r)) if r.median > 0.0 => Some(y.median / r.median),
        _ => None,
    };
    let pairs: Vec<f64> = values(switch, "ult-yield")
        .iter()
        .zip(values(switch, "corosensei-raw"))
        .filter(|(_, r)| **r > 0.0)
        .map(|(y, r)| y / r)
        .collect();
    let yield_target = TargetResult {
        id: "yield".into(),
        target: format!(
            "yield round trip between two ULTs (many-to-one) at most {YIELD_FACTOR}x a raw \
             corosensei resume+suspend round trip"
        ),
        ours: yield_rt.map_or("n/a".into(), |s| fmt_ns(2.0 * s.median)),
        compared_with: raw_rt.map_or("n/a".into(), |s| fmt_ns(2.0 * s.median)),
        measured: multiple.map_or("n/a".into(), |m| {
            format!("{} the raw round trip", fmt_ratio(m))
        }),
        verdict: match multiple {
            Some(m) if m <= YIELD_FACTOR => Verdict::Pass,
            Some(_) => Verdict::Fail,
            None => Verdict::Unknown,
        },
        reps_meeting: reps_fraction(reps_meeting_limit(&pairs, YIELD_FACTOR)),
    };
    let spawn = create.and_then(|c| median_of(c, "ult-pooled"));
    let spawn_target = TargetResult {
        id: "spawn".into(),
        target: format!("pooled ULT spawn + join at most {SPAWN_LIMIT_NS} ns"),
        ours: spawn.map_or("n/a".into(), |s| fmt_ns(s.median)),
        compared_with: "-".into(),
        measured: spawn.map_or("n/a".into(), |s| fmt_ns(s.median)),
        verdict: verdict_at_most(spawn.as_ref(), SPAWN_LIMIT_NS),
        reps_meeting: reps_fraction(reps_meeting_limit(
            values(create, "ult-pooled"),
            SPAWN_LIMIT_NS,
        )),
    };
    vec![yield_target, spawn_target]
}

/// The targets as a table; `None` when neither could be judged (neither experiment ran).
pub fn table(targets: &[TargetResult]) -> Option<Table> {
    if targets.iter().all(|t| t.verdict == Verdict::Unknown) {
        return None;
    }
    Some(targets_table_titled("issue 2 target", targets))
}
