//! Runtime metrics: event counters and the per-LWP busy/idle timeline from which the exact
//! thread-level parallelism (TLP) histogram is computed.
//!
//! Counters are per LWP and written only by their LWP with a plain load+store (no locked
//! instruction on the switch path); readers sum them and may see a value a few events old,
//! never a torn or decreasing one. Rare events (sysmon interventions, LWPs started) use
//! shared atomics.
//!
//! The timeline, when enabled, records for each LWP the intervals during which it was
//! running ULTs (from leaving idle to going idle again; scheduler bookkeeping in between
//! counts as running). From those intervals [`Timeline::tlp`] computes the lecture's
//! `c_i` (the fraction of time exactly `i` LWPs run) and `TLP = sum(i * c_i) / (1 - c_0)`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counters of one LWP (owner-written).
#[derive(Default, Debug)]
pub(crate) struct LwpCounters {
    pub(crate) spawns: AtomicU64,
    pub(crate) switches: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) wakes: AtomicU64,
    pub(crate) lwp_parks: AtomicU64,
    /// Non-migratable ULTs that started here (and so live here until they finish).
    pub(crate) pinned_starts: AtomicU64,
    /// Non-migratable ULTs that finished here (always their home).
    pub(crate) pinned_finishes: AtomicU64,
    /// Never-started ULTs this LWP handed to a less loaded LWP instead of starting them.
    pub(crate) rehomed: AtomicU64,
}

impl LwpCounters {
    /// Started, unfinished, non-migratable ULTs homed on this LWP (a reader's view: may be a
    /// few events old).
    pub(crate) fn resident(&self) -> u64 {
        // Finishes first: each counted finish had its start counted before it.
        let finishes = self.pinned_finishes.load(Ordering::Relaxed);
        self.pinned_starts
            .load(Ordering::Relaxed)
            .saturating_sub(finishes)
    }
}

/// Adds one to a counter only its owner writes: a plain load and store, no lock prefix.
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Adds `n` to a counter only its owner writes (see [`bump`]).
#[inline]
pub(crate) fn bump_by(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// A point-in-time copy of a runtime's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// ULTs spawned.
    pub spawns: u64,
    /// ULT resumes (each is one switch into a ULT and one back out).
    pub switches: u64,
    /// Never-started ULTs taken from another LWP's queue or the global queue by an idle LWP.
    pub steals: u64,
    /// ULT parks (each ended by one wake).
    pub parks: u64,
    /// Wake-ups of parked ULTs.
    pub wakes: u64,
    /// Times an idle LWP put its kernel thread to sleep.
    pub lwp_parks: u64,
    /// Times sysmon found an LWP stuck inside one ULT run past its threshold.
    pub sysmon_stalls: u64,
    /// Times sysmon then woke or started another LWP so stealable work kept running.
    pub sysmon_interventions: u64,
    /// Kernel threads started to run ULTs (LWPs, including ones sysmon added; one per ULT
    /// under the one-to-one model).
    pub lwps_started: u64,
    /// Jobs run by the blocking pool.
    pub blocking_jobs: u64,
    /// Never-started ULTs that an LWP with many resident ULTs handed to a less loaded LWP
    /// before starting them (see `Runtime::resident_ults`).
    pub rehomed: u64,
}

#[derive(Default, Debug)]
pub(crate) struct SharedCounters {
    pub(crate) sysmon_stalls: AtomicU64,
    pub(crate) sysmon_interventions: AtomicU64,
    pub(crate) lwps_started: AtomicU64,
    pub(crate) extra_spawns: AtomicU64,
    pub(crate) extra_switches: AtomicU64,
    pub(crate) extra_parks: AtomicU64,
    pub(crate) extra_wakes: AtomicU64,
}

impl MetricsSnapshot {
    pub(crate) fn add_lwp(&mut self, c: &LwpCounters) {
        self.spawns += c.spawns.load(Ordering::Relaxed);
        self.switches += c.switches.load(Ordering::Relaxed);
        self.steals += c.steals.load(Ordering::Relaxed);
        self.parks += c.parks.load(Ordering::Relaxed);
        self.wakes += c.wakes.load(Ordering::Relaxed);
        self.lwp_parks += c.lwp_parks.load(Ordering::Relaxed);
        self.rehomed += c.rehomed.load(Ordering::Relaxed);
    }

    pub(crate) fn add_shared(&mut self, c: &SharedCounters) {
        self.sysmon_stalls += c.sysmon_stalls.load(Ordering::Relaxed);
        self.sysmon_interventions += c.sysmon_interventions.load(Ordering::Relaxed);
        self.lwps_started += c.lwps_started.load(Ordering::Relaxed);
        self.spawns += c.extra_spawns.load(Ordering::Relaxed);
        self.switches += c.extra_switches.load(Ordering::Relaxed);
        self.parks += c.extra_parks.load(Ordering::Relaxed);
        self.wakes += c.extra_wakes.load(Ordering::Relaxed);
        self.blocking_jobs = crate::blocking::jobs_run();
    }
}

/// Busy intervals of every LWP of a runtime, in nanoseconds since the timeline started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// One list of `(start_ns, end_ns)` busy intervals per LWP, in time order.
    pub lwps: Vec<Vec<(u64, u64)>>,
    /// Length of the observed window in nanoseconds (intervals lie inside `0..window_ns`).
    pub window_ns: u64,
}

/// The TLP histogram of a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Tlp {
    /// `c[i]`: fraction of the window during which exactly `i` LWPs were running.
    pub c: Vec<f64>,
    /// `sum(i * c_i) / (1 - c_0)`; `None` if nothing ever ran (`c_0 = 1`).
    pub tlp: Option<f64>,
}

impl Timeline {
    /// Computes the exact TLP histogram by sweeping over interval starts and ends.
    ///
    /// ```
    /// use lwp::metrics::Timeline;
    /// // LWP 0 busy for the whole 10 ns, LWP 1 for the second half.
    /// let t = Timeline { lwps: vec![vec![(0, 10)], vec![(5, 10)]], window_ns: 10 };
    /// let h = t.tlp();
    /// assert_eq!(h.c, vec![0.0, 0.5, 0.5]);
    /// assert_eq!(h.tlp, Some(1.5));
    /// ```
    pub fn tlp(&self) -> Tlp {
        let n = self.lwps.len();
        let mut events: Vec<(u64, i64)> = Vec::new();
        for lwp in &self.lwps {
            for &(s, e) in lwp {
                let (s, e) = (s.min(self.window_ns), e.min(self.window_ns));
                if e > s {
                    events.push((s, 1));
                    events.push((e, -1));
                }
            }
        }
        events.sort_unstable();
        let mut time_at = vec![0u64; n + 1];
        let mut running: i64 = 0;
        let mut last = 0u64;
        for (t, delta) in events {
            let level = running.clamp(0, n as i64) as usize;
            time_at[level] += t - last;
            last = t;
            running += delta;
        }
        time_at[0] += self.window_ns.saturating_sub(last);
        let total = self.window_ns.max(1) as f64;
        let c: Vec<f64> = time_at.iter().map(|&t| t as f64 / total).collect();
        let busy = 1.0 - c[0];
        let tlp = if busy <= 0.0 {
            None
        } else {
            Some(
                c.iter()
                    .enumerate()
                    .map(|(i, ci)| i as f64 * ci)
                    .sum::<f64>()
                    / busy,
            )
        };
        Tlp { c, tlp }
    }
}

/// Recorder of one LWP's busy intervals (owner-written; collected under the mutex).
#[derive(Debug)]
pub(crate) struct TimelineRecorder {
    origin: Instant,
    intervals: Mutex<Vec<(u64, u64)>>,
}

impl TimelineRecorder {
    pub(crate) fn new(origin: Instant) -> TimelineRecorder {
        TimelineRecorder {
            origin,
            intervals: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    pub(crate) fn record(&self, start_ns: u64, end_ns: u64) {
        self.intervals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((start_ns, end_ns));
    }

    pub(crate) fn snapshot(&self) -> Vec<(u64, u64)> {
        self.intervals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Converts a duration to whole nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_window_has_no_tlp() {
        let t = Timeline {
            lwps: vec![vec![], vec![]],
            window_ns: 100,
        };
        let h = t.tlp();
        assert_eq!(h.c, vec![1.0, 0.0, 0.0]);
        assert_eq!(h.tlp, None);
    }

    #[test]
    fn overlapping_intervals_give_exact_fractions() {
        // 0..40: one LWP; 40..60: two; 60..80: three; 80..100: idle.
        let t = Timeline {
            lwps: vec![vec![(0, 80)], vec![(40, 80)], vec![(60, 80)]],
            window_ns: 100,
        };
        let h = t.tlp();
        assert_eq!(h.c, vec![0.2, 0.4, 0.2, 0.2]);
        let expected = (0.4 + 2.0 * 0.2 + 3.0 * 0.2) / 0.8;
        assert!((h.tlp.unwrap() - expected).abs() < 1e-12);
        assert!(h.tlp.unwrap() >= 1.0, "TLP is at least 1 by construction");
    }
}
