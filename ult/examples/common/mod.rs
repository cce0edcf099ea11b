//! Helpers shared by the timing examples (not an example itself: cargo only builds
//! `examples/*.rs` and `examples/*/main.rs`).

/// The iteration count: the `N` environment variable (smaller for callgrind runs), else
/// `default`.
pub fn iterations(default: u64) -> u64 {
    std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The median of `v` (sorted in place).
#[allow(dead_code)] // not every example takes medians
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
