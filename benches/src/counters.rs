//! Kernel event counters around one measurement: software counters (context switches and
//! CPU migrations, always attempted) and hardware counters (L1d, LLC and dTLB read misses,
//! only where the machine has a PMU).
//!
//! Counters are opened on the calling thread with `inherit` set, *before* the measurement
//! creates its partner thread or process, so the partner's events are counted too (the kernel
//! folds an inherited counter into its parent when the child exits: read after joining or
//! waiting). They count the kernel side (`exclude_kernel = 0`): a context switch happens in
//! the kernel. Opening may fail (no PMU, `perf_event_paranoid`, seccomp in a container):
//! software counters then fall back to `getrusage` (voluntary + involuntary switches, no
//! migrations), and hardware counters report why they are missing. Nothing here panics.
//!
//! Called by the `switch` and `cache` experiments around each timed run.

use perf_event::events::{Cache, CacheOp, CacheResult, Event, Software, WhichCache};
use perf_event::{Builder, Counter};
use serde::Serialize;

/// Software counts over one measurement.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct SoftCounts {
    /// Context switches (perf software counter, or getrusage's voluntary + involuntary).
    pub context_switches: Option<u64>,
    /// CPU migrations (perf only).
    pub migrations: Option<u64>,
    /// True when the counts come from getrusage because perf_event_open failed.
    pub from_rusage: bool,
}

fn open(kind: impl Into<Event>) -> std::io::Result<Counter> {
    let mut b = Builder::new().kind(kind);
    b.inherit(true);
    b.include_kernel();
    b.enabled(false);
    b.build()
}

fn rusage_switches() -> u64 {
    let mut total = 0u64;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: all-zero is a valid rusage; getrusage writes into the struct we pass.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid writable rusage.
        if unsafe { libc::getrusage(who, &mut ru) } == 0 {
            total += (ru.ru_nvcsw + ru.ru_nivcsw) as u64;
        }
    }
    total
}

/// Software counters running over a measurement; see the module docs.
pub struct SoftCounters {
    cs: Option<Counter>,
    mig: Option<Counter>,
    rusage_start: u64,
}

impl SoftCounters {
    /// Opens and enables the counters on the calling thread (inherited by children created
    /// from now on).
    pub fn start() -> SoftCounters {
        let mut cs = open(Software::CONTEXT_SWITCHES).ok();
        let mut mig = open(Software::CPU_MIGRATIONS).ok();
        if let Some(c) = cs.as_mut() {
            if c.enable().is_err() {
                cs = None;
            }
        }
        if let Some(c) = mig.as_mut() {
            if c.enable().is_err() {
                mig = None;
            }
        }
        SoftCounters {
            cs,
            mig,
            rusage_start: rusage_switches(),
        }
    }

    /// Stops the counters and returns the counts (call after joining/waiting the partner).
    pub fn stop(mut self) -> SoftCounts {
        let read = |c: &mut Option<Counter>| -> Option<u64> {
            let c = c.as_mut()?;
            let _ = c.disable();
            c.read().ok()
        };
        let cs = read(&mut self.cs);
        let mig = read(&mut self.mig);
        match cs {
            Some(n) => SoftCounts {
                context_switches: Some(n),
                migrations: mig,
                from_rusage: false,
            },
            None => SoftCounts {
                context_switches: Some(rusage_switches().saturating_sub(self.rusage_start)),
                migrations: mig,
                from_rusage: true,
            },
        }
    }
}

/// Hardware cache-miss counts over one measurement.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct HwCounts {
    /// L1 data cache read misses.
    pub l1d_misses: u64,
    /// Last-level cache read misses.
    pub llc_misses: u64,
    /// Data TLB read misses.
    pub dtlb_misses: u64,
}

/// Hardware counters running over a measurement. Exists only where all three opened.
pub struct HwCounters {
    l1d: Counter,
    llc: Counter,
    dtlb: Counter,
}

fn miss(which: WhichCache) -> Cache {
    Cache {
        which,
        operation: CacheOp::READ,
        result: CacheResult::MISS,
    }
}

impl HwCounters {
    /// Opens and enables L1d, LLC and dTLB read-miss counters, or says why it cannot.
    pub fn start() -> Result<HwCounters, String> {
        let mut l1d = open(miss(WhichCache::L1D)).map_err(|e| format!("L1d misses: {e}"))?;
        let mut llc = open(miss(WhichCache::LL)).map_err(|e| format!("LLC misses: {e}"))?;
        let mut dtlb = open(miss(WhichCache::DTLB)).map_err(|e| format!("dTLB misses: {e}"))?;
        for c in [&mut l1d, &mut llc, &mut dtlb] {
            c.enable().map_err(|e| format!("enabling a counter: {e}"))?;
        }
        Ok(HwCounters { l1d, llc, dtlb })
    }

    /// Stops the counters and returns the counts.
    pub fn stop(mut self) -> Result<HwCounts, String> {
        let get = |c: &mut Counter| -> Result<u64, String> {
            let _ = c.disable();
            c.read().map_err(|e| format!("reading a counter: {e}"))
        };
        Ok(HwCounts {
            l1d_misses: get(&mut self.l1d)?,
            llc_misses: get(&mut self.llc)?,
            dtlb_misses: get(&mut self.dtlb)?,
        })
    }
}

/// Tries to open one hardware counter (instructions retired) for the calling thread: the
/// PMU probe used by `probe`. `Ok` names what opened; `Err` carries the OS error text.
pub fn try_hardware_counter() -> Result<String, String> {
    use perf_event::events::Hardware;
    match open(Hardware::INSTRUCTIONS) {
        Ok(_) => Ok("perf_event_open(PERF_COUNT_HW_INSTRUCTIONS) succeeded".to_string()),
        Err(e) => Err(format!(
            "perf_event_open(PERF_COUNT_HW_INSTRUCTIONS) failed: {e}"
        )),
    }
}
