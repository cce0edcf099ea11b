//! The statistics of the lab: summaries, ratios, shares, histograms, calibration and the
//! number formatting the report relies on.

use benches::stats::{
    calibrate, fmt_bytes, fmt_ns, fmt_ratio, indirect_share, median, new_histogram, ratio, record,
    sign_test, Distribution, Summary,
};
use std::time::Duration;

#[test]
fn summary_of_odd_count_takes_the_middle_value() {
    let s = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
    assert_eq!(s.median, 3.0);
    assert_eq!(s.min, 1.0);
    assert_eq!(s.max, 5.0);
    assert_eq!(s.n, 3);
}

#[test]
fn summary_of_even_count_averages_the_two_middle_values() {
    let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
    assert_eq!(s.median, 2.5);
    assert_eq!(median(&[10.0, 20.0]), Some(15.0));
}

#[test]
fn summary_rejects_empty_and_non_finite_input() {
    assert!(Summary::of(&[]).is_none());
    assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    assert!(Summary::of(&[1.0, f64::INFINITY]).is_none());
}

#[test]
fn spread_is_max_over_min_and_infinite_when_min_is_not_positive() {
    let s = Summary::of(&[2.0, 3.0, 4.0]).unwrap();
    assert_eq!(s.spread(), 2.0);
    let z = Summary::of(&[-1.0, 3.0]).unwrap();
    assert!(z.spread().is_infinite());
}

#[test]
fn ratio_divides_medians_and_refuses_a_zero_denominator() {
    let a = Summary::of(&[10.0, 30.0, 20.0]).unwrap();
    let b = Summary::of(&[2.0, 2.0, 2.0]).unwrap();
    assert_eq!(ratio(&a, &b), Some(10.0));
    let zero = Summary::of(&[0.0]).unwrap();
    assert_eq!(ratio(&a, &zero), None);
}

#[test]
fn indirect_share_is_the_part_of_the_total_beyond_the_direct_cost() {
    assert_eq!(indirect_share(10.0, 2.0), Some(0.8));
    assert_eq!(indirect_share(2.0, 2.0), Some(0.0));
    // Below the direct cost: negative, kept (the report flags it).
    assert_eq!(indirect_share(1.0, 2.0), Some(-1.0));
    // A share of a non-positive total means nothing.
    assert_eq!(indirect_share(0.0, 2.0), None);
    assert_eq!(indirect_share(-5.0, 2.0), None);
}

#[test]
fn histogram_keeps_out_of_range_observations_by_clamping() {
    let mut h = new_histogram();
    record(&mut h, 0, 3); // below 1 ns
    record(&mut h, 500, 1);
    record(&mut h, u64::MAX, 1); // above the top
    assert_eq!(h.len(), 5);
    let d = Distribution::of(&h).unwrap();
    assert_eq!(d.count, 5);
    assert_eq!(d.p50, 1.0);
    assert!(d.max >= 1e11 * 0.99);
}

#[test]
fn distribution_percentiles_follow_the_recorded_values() {
    let mut h = new_histogram();
    for v in 1..=1000u64 {
        record(&mut h, v * 10, 1);
    }
    let d = Distribution::of(&h).unwrap();
    assert!((d.p50 - 5000.0).abs() <= 10.0, "p50 {}", d.p50);
    assert!((d.p99 - 9900.0).abs() <= 20.0, "p99 {}", d.p99);
    assert!((d.max - 10000.0).abs() <= 10.0, "max {}", d.max);
    assert!(Distribution::of(&new_histogram()).is_none());
}

#[test]
fn calibrate_scales_to_the_target_with_a_simulated_clock() {
    // An operation that "takes" 1 µs: 10 ms needs 10_000 iterations.
    let mut calls = Vec::new();
    let n = calibrate(Duration::from_millis(10), 1, 1_000_000, |n| {
        calls.push(n);
        Ok::<_, ()>(Duration::from_micros(n))
    })
    .unwrap();
    assert_eq!(n, 10_000);
    // It doubled until a run took a tenth of the target, never beyond.
    assert!(calls.windows(2).all(|w| w[1] == 2 * w[0]));
    assert!(*calls.last().unwrap() >= 1_000);
}

#[test]
fn calibrate_respects_its_bounds_and_passes_errors_through() {
    let n = calibrate(Duration::from_secs(10), 4, 100, |n| {
        Ok::<_, ()>(Duration::from_micros(n))
    })
    .unwrap();
    assert_eq!(n, 100);
    let n = calibrate(Duration::from_micros(1), 4, 100, |n| {
        Ok::<_, ()>(Duration::from_millis(n))
    })
    .unwrap();
    assert_eq!(n, 4);
    let e = calibrate(Duration::from_millis(1), 1, 10, |_| {
        Err::<Duration, _>("boom")
    });
    assert_eq!(e, Err("boom"));
}

#[test]
fn numbers_are_formatted_with_three_significant_digits_and_units() {
    assert_eq!(fmt_ns(85.24), "85.2 ns");
    assert_eq!(fmt_ns(1234.0), "1.23 µs");
    assert_eq!(fmt_ns(12_345.0), "12.3 µs");
    assert_eq!(fmt_ns(123_456.0), "123 µs");
    assert_eq!(fmt_ns(2_500_000.0), "2.50 ms");
    assert_eq!(fmt_ns(-1500.0), "-1.50 µs");
    assert_eq!(fmt_ns(f64::NAN), "n/a");
    assert_eq!(fmt_ratio(208.3), "208x");
    assert_eq!(fmt_ratio(23.45), "23.4x");
    assert_eq!(fmt_ratio(1.8), "1.80x");
    assert_eq!(fmt_ratio(0.004807), "0.00481x");
    assert_eq!(fmt_bytes(0), "0 B");
    assert_eq!(fmt_bytes(32 * 1024), "32 KiB");
    assert_eq!(fmt_bytes(1536 * 1024), "1.50 MiB");
    assert_eq!(fmt_bytes(128 * 1024 * 1024), "128 MiB");
}

#[test]
fn sign_test_gives_the_binomial_two_sided_p_value() {
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    // Seven of seven one way: 2 / 128.
    let t = sign_test(&[1.1; 7]).unwrap();
    assert_eq!((t.above, t.pairs), (7, 7));
    assert!(close(t.p, 2.0 / 128.0), "{t:?}");
    assert!(close(sign_test(&[0.9; 7]).unwrap().p, 2.0 / 128.0));
    // Six of seven: 2 * (1 + 7) / 128.
    let six = [1.2, 1.1, 1.3, 1.05, 1.01, 1.4, 0.9];
    assert!(close(sign_test(&six).unwrap().p, 16.0 / 128.0));
    // Four to three is no evidence either way.
    let four = [1.2, 1.1, 1.3, 1.05, 0.9, 0.8, 0.95];
    let t = sign_test(&four).unwrap();
    assert_eq!(t.above, 4);
    assert!(close(t.p, 1.0));
    // Ties count for neither side; all ties, no test.
    assert_eq!(sign_test(&[1.0, 1.0, 1.2]).unwrap().pairs, 1);
    assert!(sign_test(&[1.0, 1.0]).is_none());
    assert!(sign_test(&[]).is_none());
}
