//! The switch loops and the working-set walk: they run, hand over the right number of times
//! and the kernel rows really switch (no timing is asserted).

use benches::pingpong::{self, Work};
use benches::sys::{self, WorkingSet};
use std::sync::Arc;

#[test]
fn walk_sums_one_word_per_cache_line() {
    let data: Vec<u64> = (0..1000u64).collect();
    let expected: u64 = data.iter().step_by(8).sum();
    assert_eq!(sys::walk(&data), expected);
    assert_eq!(sys::walk(&[]), 0);
    assert_eq!(sys::walk(&[7]), 7);
    let ws = WorkingSet::new(4096);
    assert_eq!(ws.bytes(), 4096);
}

fn work(bytes: usize) -> Work {
    Work {
        a: Arc::new(WorkingSet::new(bytes)),
        b: Arc::new(WorkingSet::new(bytes)),
    }
}

#[test]
fn ult_yield_loop_counts_two_switches_per_round_and_stays_out_of_the_kernel() {
    let t = pingpong::ult_yield(Some(&work(8192)), 10, 1000, false).unwrap();
    assert_eq!(t.switches, 2000);
    assert_eq!(t.all_switches, 2020);
    assert!(t.elapsed.as_nanos() > 0);
    if let Some(cs) = t.counts.context_switches {
        // A few preemptions at most, never one per switch.
        assert!(cs < 200, "{cs} kernel switches for 2020 ULT switches");
    }
}

#[test]
fn raw_coroutine_loop_counts_two_switches_per_round_and_stays_out_of_the_kernel() {
    let t = pingpong::coroutine_raw(10, 1000).unwrap();
    assert_eq!((t.switches, t.all_switches), (2000, 2020));
    assert!(t.elapsed.as_nanos() > 0);
    if let Some(cs) = t.counts.context_switches {
        assert!(cs < 200, "{cs} kernel switches for 2020 coroutine switches");
    }
}

#[test]
fn futex_loop_switches_in_the_kernel_on_one_cpu() {
    let cpu = sys::allowed_cpus().unwrap()[0];
    let _pin = sys::PinGuard::pin(&[cpu]).unwrap();
    let t = pingpong::futex(None, cpu, 10, 500, false).unwrap();
    assert_eq!(t.switches, 1000);
    if let (Some(cs), false) = (t.counts.context_switches, t.counts.from_rusage) {
        assert!(
            cs >= 900,
            "only {cs} context switches for 1020 hand-overs on one CPU"
        );
    }
}

#[test]
fn pipe_loop_runs_two_processes_and_the_overhead_loop_one() {
    let cpu = sys::allowed_cpus().unwrap()[0];
    let _pin = sys::PinGuard::pin(&[cpu]).unwrap();
    let t = pingpong::pipes(Some(&work(4096)), 5, 200, false).unwrap();
    assert_eq!(t.switches, 400);
    if let (Some(cs), false) = (t.counts.context_switches, t.counts.from_rusage) {
        assert!(
            cs >= 350,
            "only {cs} context switches for 410 pipe hand-overs"
        );
    }
    let d = pingpong::pipe_overhead(10, 100).unwrap();
    assert!(d.as_nanos() > 0);
}

#[test]
fn fork_and_posix_spawn_children_are_reaped_with_their_status() {
    let pid = sys::fork_exit().unwrap();
    assert_eq!(sys::wait_child(pid).unwrap(), 0);
    if std::path::Path::new("/bin/true").exists() {
        let pid = sys::posix_spawn(c"/bin/true").unwrap();
        assert_eq!(sys::wait_child(pid).unwrap(), 0);
    }
    // SAFETY: the child only returns a constant, which fork_run passes to _exit.
    let pid = unsafe { sys::fork_run(|| 7) }.unwrap();
    assert_eq!(sys::wait_child(pid).unwrap(), 7);
}

#[test]
fn pin_guard_restores_the_previous_mask() {
    let before = sys::allowed_cpus().unwrap();
    {
        let _g = sys::PinGuard::pin(&[before[0]]).unwrap();
        assert_eq!(sys::allowed_cpus().unwrap(), vec![before[0]]);
    }
    assert_eq!(sys::allowed_cpus().unwrap(), before);
}
