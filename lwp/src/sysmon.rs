//! sysmon: the monitor thread that keeps work flowing when an LWP blocks.
//!
//! A ULT that makes a blocking system call (or loops without yielding) holds its LWP: the
//! kernel sees one busy thread and the ULTs queued behind it wait. This is the lecture's
//! problem with pure user-level threads, and Solaris' answer (SIGWAITING: the kernel tells
//! the thread library its last LWP blocked, and the library adds one) and Go's (sysmon
//! retakes the P from an M stuck in a syscall and hands it to another M) is the model here.
//!
//! Every `threshold / 4` sysmon samples each LWP's "inside a ULT" flag and switch counter.
//! An LWP that stayed inside the same ULT run (flag set, counter unchanged) for longer than
//! the threshold (default [`DEFAULT_THRESHOLD`]) is marked stuck, once per episode, and:
//! - under many-to-many, sysmon wakes an idle LWP or, if none is idle, starts an extra one
//!   (up to the runtime's maximum), so never-started ULTs, which any LWP may run, keep
//!   running. ULTs that already ran on the stuck LWP must wait for it: moving them would
//!   break thread-local soundness (see `ult::raw`). No extra LWP is started for an LWP that
//!   spent the episode mostly runnable but off the CPU (its schedstat, read halfway and at
//!   the threshold): the kernel preempted it because the CPUs are busy, and another LWP would
//!   only compete for them. (On the 2-vCPU machine, a 10,000-connection echo burst had made
//!   sysmon start a third LWP, which then kept a fifth of the connections.) That verdict
//!   rests on one look at the thread's state, and a thread that sleeps in a system call is
//!   runnable for a moment after each wake-up, so sysmon keeps looking while the episode
//!   lasts and starts the LWP at the first look that does not find it preempted (a single
//!   unlucky look used to leave a blocked LWP without help until its ULT came back: that
//!   test binary, `blocking_call_stalls_many_to_one_only`, failed 8 of 30 runs beside
//!   `stress-ng --cpu 2` before, 0 of 30 after).
//! - under many-to-one nothing can be done by design; the stall is counted and reported.
//!
//! When the ULT finally gives its LWP back, the LWP prints one warning naming it and how long
//! it held the LWP, suggesting [`crate::blocking()`] or the runtime's I/O. Warnings are rate
//! limited (one per second, with a count of the suppressed ones) and can be silenced with
//! `LWP_SYSMON_QUIET=1` or [`crate::RuntimeBuilder::sysmon_warnings`].
//!
//! sysmon also polls, without blocking, the reactor of an LWP that has stayed in one ULT
//! since its last look (each LWP has its own reactor, which it polls itself whenever it
//! schedules), as Go's sysmon polls the network, so readiness of a socket registered there
//! never waits for that LWP to come back.
//!
//! Who may call what: only the sysmon thread marks LWPs stuck; only the LWP itself clears
//! its mark (in `report_unstuck`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::scheduler::Shared;

/// Default time an LWP may stay inside one ULT run before sysmon acts.
pub const DEFAULT_THRESHOLD: Duration = Duration::from_millis(10);

static LAST_WARNING_MS: AtomicU64 = AtomicU64::new(0);
static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
pub(crate) static WARNINGS_ENABLED: AtomicBool = AtomicBool::new(true);

#[derive(Clone, Copy)]
struct Seen {
    switches: u64,
    since: Instant,
    /// The LWP's time on a CPU (ns, from its schedstat) and when it was read, once halfway
    /// to the threshold: tells a ULT that holds the CPU (or a system call that blocks) from
    /// an LWP that the kernel merely keeps waiting for a CPU.
    ran: Option<(u64, Instant)>,
    /// This episode's intervention could not add an LWP because the stuck one looked
    /// preempted: look again at every period, and add one once it no longer does.
    deferred: bool,
}

/// The LWP's CPU time now, with the instant it was read (the start of a [`preempted`] window).
fn cpu_time_sample(tid: i32, now: Instant) -> Option<(u64, Instant)> {
    ran_ns(tid).map(|ns| (ns, now))
}

/// The first field of `/proc/self/task/<tid>/schedstat`: nanoseconds on a CPU.
fn ran_ns(tid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Whether the LWP spent the time since `before` (its CPU time then, and when) mostly
/// runnable but off the CPU: its thread is runnable ('R') yet ran for less than half of it. Then the CPUs are busy,
/// and a further LWP would only compete for them. (A thread blocked in a system call is
/// 'S' or 'D'; the kernel adds wait time only when a thread gets a CPU again, so the run
/// time, not the wait time, is what tells.)
fn preempted(tid: i32, before: Option<(u64, Instant)>) -> bool {
    let (Some((run0, at)), Some(run1)) = (before, ran_ns(tid)) else {
        return false;
    };
    let window = at.elapsed();
    let runnable = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.trim().chars().next())
        })
        == Some('R');
    runnable && u128::from(run1.saturating_sub(run0)) * 2 < window.as_nanos()
}

/// Starts the monitor thread for a runtime. It holds only a weak reference and exits when
/// the runtime shuts down.
pub(crate) fn start(shared: &Arc<Shared>, threshold: Duration) -> std::io::Result<()> {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let name = format!("{}-sysmon", shared.config.name);
    let handle = std::thread::Builder::new()
        .name(name)
        .stack_size(128 * 1024)
        .spawn(move || monitor(weak, threshold))?;
    shared
        .threads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(handle);
    Ok(())
}

fn monitor(weak: Weak<Shared>, threshold: Duration) {
    // Like Go's sysmon, the period backs off while no LWP looks stuck (from a quarter of
    // the threshold up to the threshold): each wake-up of an idle monitor costs a timer
    // interrupt and a switch (on the 10,000-connection echo, sysmon's schedstat run time fell
    // from 23 to 6 ms a second with the back-off).
    let fastest = (threshold / 4).max(Duration::from_micros(500));
    let slowest = threshold.max(fastest);
    let mut period = fastest;
    let mut seen: Vec<Option<Seen>> = Vec::new();
    loop {
        std::thread::park_timeout(period);
        period = (period * 2).min(slowest);
        let Some(shared) = weak.upgrade() else { return };
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let active = shared
            .active
            .load(Ordering::Acquire)
            .min(shared.slots.len());
        seen.resize(active, None);
        for (i, last) in seen.iter_mut().enumerate() {
            let slot = &shared.slots[i];
            if !slot.started.load(Ordering::Acquire) {
                continue;
            }
            let switches = slot.counters.switches.load(Ordering::Relaxed);
            let inside = slot.in_ult.load(Ordering::Relaxed);
            match last {
                Some(s) if inside && s.switches == switches => {
                    period = fastest;
                    // Like Go's sysmon: an LWP that has stayed in one ULT past the threshold
                    // is not polling its reactor, so poll it for it: readiness of sockets
                    // registered there may be awaited by ULTs elsewhere (shared sockets,
                    // migratable ULTs), and must not wait for this LWP to come back. Not
                    // sooner: an LWP that the kernel preempted for a few milliseconds comes
                    // back by itself, and its own ULTs could not run meanwhile anyway (on
                    // the 10,000-connection echo, sysmon's run time was 37 ms a second when it
                    // polled at every look, 23 ms with this rule).
                    if now - s.since >= threshold {
                        if let Some(reactor) = shared.lwp_reactor(i) {
                            if reactor.waiting_ults() > 0 && !reactor.is_blocked() {
                                reactor.poll(Some(Duration::ZERO));
                            }
                        }
                    }
                    let tid = slot.tid.load(Ordering::Relaxed);
                    if s.ran.is_none() && now - s.since >= threshold / 2 {
                        s.ran = cpu_time_sample(tid, now);
                    }
                    if now - s.since >= threshold && !slot.stuck.load(Ordering::Relaxed) {
                        slot.stuck.store(true, Ordering::Relaxed);
                        shared.slots[i].stuck_since_ns.store(
                            crate::metrics::nanos(s.since - shared.origin),
                            Ordering::Relaxed,
                        );
                        let may_add = !preempted(tid, s.ran);
                        intervene(&shared, may_add);
                        s.deferred = !may_add;
                        if s.deferred {
                            s.ran = cpu_time_sample(tid, now);
                        }
                    } else if s.deferred {
                        // "Preempted" rests on one look at the thread's state; a thread
                        // that sleeps in a system call is runnable for a moment after each
                        // wake-up, so one unlucky look must not leave it without help for
                        // the rest of the episode.
                        if preempted(tid, s.ran) {
                            s.ran = cpu_time_sample(tid, now);
                        } else {
                            s.deferred = false;
                            hand_off(&shared, true);
                        }
                    }
                }
                _ => {
                    *last = Some(Seen {
                        switches,
                        since: now,
                        ran: None,
                        deferred: false,
                    })
                }
            }
        }
    }
}

/// Acts on a stuck LWP: wakes an idle LWP, or, if `may_add` (the stuck LWP is not merely
/// waiting for a CPU), starts an extra one.
fn intervene(shared: &Arc<Shared>, may_add: bool) {
    shared
        .counters
        .sysmon_stalls
        .fetch_add(1, Ordering::Relaxed);
    hand_off(shared, may_add);
}

/// Wakes an idle LWP or, if `may_add`, starts one, when some ULT could run elsewhere (also
/// a deferred intervention's second try, whose stall was counted already).
fn hand_off(shared: &Arc<Shared>, may_add: bool) {
    if !shared.config.handoff {
        return;
    }
    // Only worth it if some ULT could run elsewhere.
    if !shared.has_stealable_work() {
        return;
    }
    // Counted before acting: the LWP we wake or start may finish the work (and a reader may
    // look at the metrics) before this thread runs again.
    shared
        .counters
        .sysmon_interventions
        .fetch_add(1, Ordering::Relaxed);
    let acted = shared.wake_one_idle() || {
        let unstuck = shared
            .slots
            .iter()
            .take(shared.active.load(Ordering::Acquire))
            .filter(|s| !s.stuck.load(Ordering::Relaxed))
            .count();
        may_add && unstuck < shared.config.lwps && shared.start_lwp().is_ok()
    };
    if !acted {
        shared
            .counters
            .sysmon_interventions
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Called by a stuck LWP when its ULT gave control back: clears the mark and warns.
pub(crate) fn report_unstuck(shared: &Shared, lwp: usize, ult: &ult::raw::Header) {
    shared.slots[lwp].stuck.store(false, Ordering::Relaxed);
    if !WARNINGS_ENABLED.load(Ordering::Relaxed) || std::env::var_os("LWP_SYSMON_QUIET").is_some() {
        return;
    }
    let now_ms = shared.origin.elapsed().as_millis() as u64 + 1;
    let since_ns = shared.slots[lwp].stuck_since_ns.load(Ordering::Relaxed);
    let held = shared
        .origin
        .elapsed()
        .saturating_sub(Duration::from_nanos(since_ns));
    let last = LAST_WARNING_MS.load(Ordering::Relaxed);
    if last != 0 && now_ms.saturating_sub(last) < 1000 {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    LAST_WARNING_MS.store(now_ms, Ordering::Relaxed);
    let suppressed = SUPPRESSED.swap(0, Ordering::Relaxed);
    let what = if shared.config.handoff {
        "sysmon let other LWPs take the stealable work meanwhile"
    } else {
        "every other ULT of this many-to-one runtime waited"
    };
    eprintln!(
        "lwp: ULT '{}' (#{}) held LWP {lwp} for {} ms without yielding (a blocking system call \
         or a long computation); {what}. Use lwp::blocking(...) for blocking calls, or the \
         runtime's I/O (lwp::net, lwp::fs), so that only the ULT waits.{}",
        ult.name().unwrap_or("<unnamed>"),
        ult.id(),
        held.as_millis(),
        if suppressed > 0 {
            format!(" ({suppressed} similar warnings suppressed)")
        } else {
            String::new()
        }
    );
}
