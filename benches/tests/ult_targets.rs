//! Issue 2's targets as the lab judges them from the `create` and `switch` rows (no timing:
//! the rows are made up).

use benches::experiments::ult_targets::{judge, table, SPAWN_LIMIT_NS, YIELD_FACTOR};
use benches::experiments::{Model, Row, Status, Verdict};

fn row(id: &str, values: &[f64]) -> Row {
    let mut r = Row::new(id, id, Model::Ult);
    r.values = values.to_vec();
    r
}

#[test]
fn the_yield_target_is_a_multiple_of_the_raw_round_trip_paired_by_repetition() {
    // Per switch: yield 6, 9, 12 ns against raw 3, 3, 3 ns: multiples 2, 3, 4 (median 3).
    let switch = [
        row("ult-yield", &[6.0, 9.0, 12.0]),
        row("corosensei-raw", &[3.0, 3.0, 3.0]),
    ];
    let t = &judge(None, Some(&switch))[0];
    assert_eq!(t.id, "yield");
    assert_eq!(t.verdict, Verdict::Pass, "{t:?}");
    assert_eq!(t.reps_meeting, "2/3");
    // Round trips are two switches.
    assert_eq!(t.ours, "18.0 ns");
    assert_eq!(t.compared_with, "6.00 ns");
    let slower = [
        row("ult-yield", &[10.0, 10.0, 10.0]),
        row("corosensei-raw", &[3.0, 3.0, 3.0]),
    ];
    let t = &judge(None, Some(&slower))[0];
    const { assert!(10.0 / 3.0 > YIELD_FACTOR) };
    assert_eq!((t.verdict, t.reps_meeting.as_str()), (Verdict::Fail, "0/3"));
}

#[test]
fn the_spawn_target_is_an_absolute_limit_on_the_pooled_row() {
    let create = [row("ult-pooled", &[50.0, 59.0, 61.0, 98.0])];
    let t = &judge(Some(&create), None)[1];
    assert_eq!(t.id, "spawn");
    // Median 60 ns: at the limit passes.
    assert_eq!(t.verdict, Verdict::Pass, "{t:?}");
    assert_eq!(t.reps_meeting, "2/4");
    let slow = [row("ult-pooled", &[SPAWN_LIMIT_NS + 1.0])];
    assert_eq!(judge(Some(&slow), None)[1].verdict, Verdict::Fail);
}

#[test]
fn rows_that_did_not_run_give_no_verdict_and_no_table() {
    let mut raw = row("corosensei-raw", &[3.0]);
    raw.status = Status::Failed("no stack".into());
    let switch = [row("ult-yield", &[6.0]), raw];
    let targets = judge(None, Some(&switch));
    assert!(targets.iter().all(|t| t.verdict == Verdict::Unknown));
    assert_eq!(targets[0].reps_meeting, "-");
    assert!(table(&targets).is_none());
    let create = [row("ult-pooled", &[40.0])];
    let t = table(&judge(Some(&create), None)).expect("one target judged");
    let md = t.to_markdown();
    assert!(md.contains("\n| issue 2 target |"), "{md}");
    assert!(md.contains("**PASS**") && md.contains("**n/a**"), "{md}");
}
