//! lmbench-style overhead subtraction: paired per repetition, negatives kept and counted;
//! and the indirect share of the cache experiment computed from a summary.

use benches::experiments::cache::share_of;
use benches::stats::{subtract_overhead, StatsError, Summary};

#[test]
fn overhead_is_subtracted_from_the_repetition_it_was_measured_with() {
    // Slow phase in repetition 2: raw and overhead both doubled. Pairing cancels it.
    let raw = [3.0, 6.0, 3.2];
    let ovh = [1.0, 2.0, 1.1];
    let n = subtract_overhead(&raw, &ovh).unwrap();
    assert_eq!(n.net_values, vec![2.0, 4.0, 2.1]);
    assert_eq!(n.net.median, 2.1);
    assert_eq!(n.raw.median, 3.2);
    assert_eq!(n.overhead.median, 1.1);
    assert_eq!(n.negative_reps, 0);
}

#[test]
fn pairing_differs_from_subtracting_medians() {
    let raw = [10.0, 2.0, 2.0];
    let ovh = [9.0, 1.0, 1.5];
    let n = subtract_overhead(&raw, &ovh).unwrap();
    // median(raw) - median(ovh) would be 2.0 - 1.5 = 0.5; the paired median is 1.0.
    assert_eq!(n.net.median, 1.0);
}

#[test]
fn negative_net_costs_are_kept_and_counted_not_clamped() {
    let n = subtract_overhead(&[1.0, 1.0, 1.0], &[0.5, 1.5, 2.0]).unwrap();
    assert_eq!(n.negative_reps, 2);
    assert_eq!(n.net.min, -1.0);
    assert_eq!(n.net.median, -0.5);
}

#[test]
fn unpaired_or_empty_series_are_errors() {
    assert_eq!(
        subtract_overhead(&[1.0, 2.0], &[1.0]),
        Err(StatsError::LengthMismatch {
            raw: 2,
            overhead: 1
        })
    );
    assert_eq!(subtract_overhead(&[], &[]), Err(StatsError::NoData));
    assert_eq!(
        subtract_overhead(&[f64::NAN], &[1.0]),
        Err(StatsError::NoData)
    );
}

#[test]
fn share_of_a_size_comes_from_its_median_total() {
    let total = Summary::of(&[8.0, 10.0, 20.0]).unwrap();
    let s = share_of(&total, 2.0).unwrap();
    assert!((s.median - 0.8).abs() < 1e-12);
    assert!((s.min - 0.75).abs() < 1e-12);
    assert!((s.max - 0.9).abs() < 1e-12);
}

#[test]
fn share_of_a_non_positive_total_is_refused() {
    let straddles = Summary::of(&[-3.0, -1.0, 2.0]).unwrap();
    assert!(share_of(&straddles, 2.0).is_none());
    // A positive median with a non-positive minimum has no lower whisker.
    let low = Summary::of(&[-1.0, 4.0, 5.0]).unwrap();
    let s = share_of(&low, 2.0).unwrap();
    assert!(s.min.is_nan());
    assert!((s.median - 0.5).abs() < 1e-12);
}
