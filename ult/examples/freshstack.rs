//! Cost of a fresh ULT stack: map it (with its guard page), touch its top page as a first
//! spawn does, unmap it. Run it once per guard kind to compare them:
//! `cargo run --release -p ult --example freshstack` and the same with
//! `ULT_GUARD_PAGES=mprotect` (`N` sets the stacks per pass, default 20000).
mod common;
use std::time::Instant;

fn main() {
    let n = common::iterations(20_000) as usize;
    let kind = ult::stack::guard_kind();
    let mut per = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            let s = ult::stack::UltStack::new(64 * 1024).expect("a stack");
            let (_, limit) = s.guard_range();
            let top = limit + s.usable_size();
            // SAFETY: the last word below the top lies in the stack's read-write part.
            unsafe { ((top - 8) as *mut usize).write_volatile(1) };
        }
        per.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    println!(
        "{kind:?} guard: fresh 64 KiB stack, map + first touch + unmap, {:.0} ns (median of 5 passes of {n})",
        common::median(&mut per)
    );
}
