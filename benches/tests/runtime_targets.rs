//! The `runtime` experiment's arithmetic, without timing anything: the verdicts against
//! issue 3's targets, the `vm.max_map_count` arithmetic (how many ULTs fit, what limit a
//! million need, which sysctl command is printed), may's skynet size, the parked-RSS JSON and
//! the limit guard's pieces that can run without changing the system.

use benches::experiments::runtime::{
    self, may_skynet_leaves, plan_parked, reps_meeting_limit, reps_meeting_ratio, verdict_at_most,
    verdict_ratio, Params, Verdict,
};
use benches::experiments::{Mode, Model, Row};
use benches::rtkernels::{self, live_ult_budget, required_map_count, ParkedOutput};
use benches::stats::Summary;
use benches::sys;

fn s(v: &[f64]) -> Summary {
    Summary::of(v).unwrap()
}

#[test]
fn a_ratio_target_passes_only_at_the_factor_or_beyond() {
    let ours = s(&[10.0, 11.0, 12.0]);
    let (r, v) = verdict_ratio(Some(&ours), Some(&s(&[1100.0])), 100.0);
    assert_eq!(v, Verdict::Pass);
    assert!((r.unwrap() - 100.0).abs() < 1e-9);
    let (_, v) = verdict_ratio(Some(&ours), Some(&s(&[1099.0])), 100.0);
    assert_eq!(v, Verdict::Fail);
    assert_eq!(verdict_ratio(None, Some(&ours), 100.0).1, Verdict::Unknown);
    assert_eq!(verdict_ratio(Some(&ours), None, 100.0).1, Verdict::Unknown);
    assert_eq!(
        verdict_ratio(Some(&s(&[0.0])), Some(&ours), 2.0).1,
        Verdict::Unknown,
        "a zero cost cannot be judged"
    );
}

#[test]
fn an_upper_bound_target_includes_its_limit() {
    assert_eq!(verdict_at_most(Some(&s(&[80.0])), 80.0), Verdict::Pass);
    assert_eq!(verdict_at_most(Some(&s(&[80.5])), 80.0), Verdict::Fail);
    assert_eq!(verdict_at_most(None, 80.0), Verdict::Unknown);
    assert_eq!(Verdict::Pass.word(), "PASS");
    assert_eq!(Verdict::Fail.word(), "FAIL");
}

#[test]
fn repetitions_are_paired_by_index() {
    // Rep 0: 1000/10 = 100x (meets), rep 1: 1000/20 = 50x (misses), rep 2 has no pair.
    assert_eq!(
        reps_meeting_ratio(&[10.0, 20.0, 5.0], &[1000.0, 1000.0], 100.0),
        (1, 2)
    );
    assert_eq!(reps_meeting_limit(&[70.0, 80.0, 90.0], 80.0), (2, 3));
    assert_eq!(reps_meeting_limit(&[], 80.0), (0, 0));
}

fn row(id: &str, values: &[f64], iterations: u64) -> Row {
    let mut r = Row::new(id, id, Model::Ult);
    r.values = values.to_vec();
    r.iterations = iterations;
    r
}

#[test]
fn the_five_targets_are_judged_from_the_rows() {
    let rows = vec![
        row("lwp-yield-rt", &[30.0, 40.0], 1000),
        row("futex-rt", &[5000.0, 3000.0], 1000),
        row("lwp-spawn", &[400.0], 200_000),
        row("std-spawn", &[30_000.0], 1000),
        row("lwp-skynet", &[200e6, 300e6, 240e6], runtime::MILLION),
        row("lwp-chan", &[200.0], 1000),
        row("lwp-parked", &[4300.0], 30_000),
    ];
    let t = runtime::targets(&rows);
    let get = |id: &str| t.iter().find(|x| x.id == id).unwrap();
    assert_eq!(get("yield").verdict, Verdict::Pass); // 4000 / 35 = 114x
    assert_eq!(get("yield").reps_meeting, "1/2"); // rep 1: 3000 / 40 = 75x
    assert_eq!(get("spawn").verdict, Verdict::Pass); // 30000 / 400 = 75x >= 50x
    assert_eq!(get("skynet").verdict, Verdict::Pass);
    assert_eq!(get("skynet").reps_meeting, "2/3");
    assert_eq!(get("chan").verdict, Verdict::Fail);
    assert_eq!(get("parked").verdict, Verdict::Pass);
    assert!(get("parked").target.contains("30k parked at once"));
    let table = runtime::targets_table(&t).to_markdown();
    assert!(
        table.contains("**PASS**") && table.contains("**FAIL**"),
        "{table}"
    );
}

#[test]
fn skynet_on_a_smaller_tree_is_not_judged() {
    let rows = vec![row("lwp-skynet", &[1e6], 1000)];
    let t = runtime::targets(&rows);
    let sk = t.iter().find(|x| x.id == "skynet").unwrap();
    assert_eq!(sk.verdict, Verdict::Unknown);
    assert!(sk.measured.contains("1k leaves"), "{}", sk.measured);
    // Missing rows give n/a, never a verdict.
    assert!(t
        .iter()
        .filter(|x| x.id != "skynet")
        .all(|x| x.verdict == Verdict::Unknown));
}

#[test]
fn a_million_ults_need_two_point_two_million_mappings() {
    assert_eq!(required_map_count(runtime::MILLION), 2_200_000);
    assert_eq!(required_map_count(100_000), 220_000);
    // Small counts never ask for less than the usual default.
    assert_eq!(required_map_count(10), 65_530);
    for n in [
        1,
        1_000,
        32_000,
        100_000,
        333_333,
        runtime::MILLION,
        5 * runtime::MILLION,
    ] {
        assert!(
            live_ult_budget(required_map_count(n), 1_000) >= n,
            "required_map_count({n}) does not fit {n}"
        );
    }
}

#[test]
fn the_live_ult_budget_keeps_a_margin_and_never_underflows() {
    // 65530 with 500 mappings in use: (65530 - 500 - 4000 - 1310) / 2.
    assert_eq!(live_ult_budget(65_530, 500), 29_860);
    assert_eq!(live_ult_budget(1_000, 5_000), 0);
    assert!(rtkernels::map_margin(65_530) >= 4_000);
}

#[test]
fn the_parked_plan_caps_at_the_limit_and_prints_the_sysctl_command() {
    let p = plan_parked(runtime::MILLION, Some(65_530), 500);
    assert!(p.capped());
    assert_eq!(p.n, 29_860);
    assert_eq!(p.sysctl_command(), "sysctl -w vm.max_map_count=2200000");
    let w = p.warning().unwrap();
    assert!(w.contains("sysctl -w vm.max_map_count=2200000"), "{w}");
    assert!(w.contains("29860") && w.contains("65530"), "{w}");
    assert!(w.contains("--raise-limits"), "{w}");

    let fits = plan_parked(100_000, Some(2_200_000), 500);
    assert!(!fits.capped());
    assert_eq!(fits.n, 100_000);
    assert!(fits.warning().is_none());

    // An unreadable limit runs what was asked.
    assert_eq!(plan_parked(1_000, None, 500).n, 1_000);
}

#[test]
fn may_skynet_shrinks_to_a_power_of_ten_that_fits() {
    assert_eq!(may_skynet_leaves(1_000_000, 1_000_000, u64::MAX), 1_000_000);
    assert_eq!(may_skynet_leaves(1_000_000, 10_000, u64::MAX), 10_000);
    // 30k live stacks fit 10k leaves (11.2k nodes), not 100k.
    assert_eq!(may_skynet_leaves(1_000_000, 1_000_000, 30_000), 10_000);
    assert_eq!(may_skynet_leaves(1_000_000, 1_000_000, 0), 10);
}

#[test]
fn warm_up_runs_are_smaller_but_well_formed() {
    use runtime::{warm_up_count, Group};
    assert_eq!(warm_up_count(Group::Spawn, 200_000), 20_000);
    assert_eq!(warm_up_count(Group::Spawn, 2_000), runtime::BATCH);
    assert_eq!(warm_up_count(Group::Skynet, runtime::MILLION), 10_000);
    assert_eq!(warm_up_count(Group::Skynet, 1_000), 10);
    assert_eq!(warm_up_count(Group::Chan, 1234), 1234);
}

#[test]
fn the_modes_ask_for_the_issue_counts() {
    let full = Params::for_mode(Mode::Full);
    assert_eq!(full.spawn_n, runtime::MILLION);
    assert_eq!(full.skynet_leaves, runtime::MILLION);
    assert_eq!(full.parked_n, runtime::MILLION);
    assert!(runtime::required_map_count(&full) >= 2_200_000);
    let quick = Params::for_mode(Mode::Quick);
    assert_eq!(quick.skynet_leaves, runtime::MILLION);
    assert_eq!(quick.spawn_n % runtime::BATCH, 0);
    // Smoke mode never needs a raised limit, so tests never change the system.
    assert!(runtime::required_map_count(&Params::for_mode(Mode::Smoke)) <= 65_530);
}

#[test]
fn parked_output_divides_by_what_was_parked() {
    let o = ParkedOutput {
        requested: 100,
        parked: 50,
        rss_growth_bytes: 50 * 4096,
        page_table_growth_bytes: Some(50 * 512),
        runtime: "x".into(),
        shortfall: Some("spawn failed".into()),
    };
    assert_eq!(o.rss_per_task(), Some(4096.0));
    assert_eq!(o.page_tables_per_task(), Some(512.0));
    let back: ParkedOutput = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
    assert_eq!(back, o);
    let none = ParkedOutput::default();
    assert_eq!(none.rss_per_task(), None);
}

#[test]
fn the_go_runtime_peer_output_parses_with_its_extra_field() {
    let line = r#"{"extra":499999500000,"hist":[],"ops":1000000,"runtime":"go1.19.8 GOMAXPROCS=2","total_ns":669714028}"#;
    let o = benches::peers::parse_peer_output(line).unwrap();
    assert_eq!(o.extra, 499_999_500_000);
    assert_eq!(o.ops, 1_000_000);
    assert_eq!(rtkernels::skynet_expected(1_000_000), 499_999_500_000);
    // Older peers without the field still parse.
    let o = benches::peers::parse_peer_output(r#"{"ops":1,"total_ns":2}"#).unwrap();
    assert_eq!(o.extra, 0);
}

#[test]
fn the_limit_guard_formats_without_allocating_and_refuses_non_root() {
    let mut buf = [0u8; 24];
    let n = sys::format_decimal(2_200_000, &mut buf);
    assert_eq!(&buf[..n], b"2200000\n");
    let n = sys::format_decimal(0, &mut buf);
    assert_eq!(&buf[..n], b"0\n");
    let n = sys::format_decimal(u64::MAX, &mut buf);
    assert_eq!(&buf[..n], format!("{}\n", u64::MAX).as_bytes());

    assert!(sys::check_can_raise(0, 65_530, 2_200_000).is_ok());
    let e = sys::check_can_raise(1000, 65_530, 2_200_000).unwrap_err();
    assert!(
        e.contains("root") && e.contains("sysctl -w vm.max_map_count=2200000"),
        "{e}"
    );
}

#[test]
fn raising_to_a_limit_already_met_changes_nothing() {
    let Ok(before) = sys::read_max_map_count() else {
        return; // no /proc/sys here
    };
    let g = sys::MaxMapCountGuard::raise(1).expect("reading the limit works");
    assert!(g.is_none());
    assert_eq!(sys::read_max_map_count().unwrap(), before);
}
