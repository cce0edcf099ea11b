//! How cheap can a yield between two coroutines be on corosensei once *anything* decides who
//! runs next? A stripped hand-off, not the runtime: A resumes B directly (B's suspend comes
//! straight back to A, two switches per round trip), with no run queue at all (B is kept in
//! one slot), one thread-local read per yield and one thread-local toggle per hand-off (the
//! minimum that tells a nested coroutine to switch back). Interleaved with the raw
//! resume+suspend round trip like `switchratio`; compare the ratios of the two examples.
//!
//! `taskset -c 1 cargo run --release -p ult --example yieldfloor`
mod common;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use std::cell::Cell;
use std::time::Instant;

type Co = Coroutine<(), (), ()>;

thread_local! {
    static YIELDER: Cell<*const Yielder<(), ()>> = const { Cell::new(std::ptr::null()) };
    static NESTED_PARTNER: Cell<*mut Co> = const { Cell::new(std::ptr::null_mut()) };
}

#[inline(never)]
fn context() -> (*const Yielder<(), ()>, *mut Co) {
    (YIELDER.get(), NESTED_PARTNER.get())
}

#[inline(always)]
fn yield_now() {
    let (yielder, partner) = context();
    if partner.is_null() {
        // SAFETY: only B yields this way, and B set YIELDER to its own live yielder.
        unsafe { (*yielder).suspend(()) };
    } else {
        hand_off(partner);
    }
}

#[inline(never)]
fn hand_off(partner: *mut Co) {
    NESTED_PARTNER.set(std::ptr::null_mut());
    // SAFETY: `partner` is B's coroutine, owned by `main` for the whole run.
    let _ = unsafe { (*partner).resume(()) };
    NESTED_PARTNER.set(partner);
}

fn main() {
    let n = common::iterations(1_000_000);
    let b: &'static mut Co = Box::leak(Box::new(Co::new(|y, ()| {
        YIELDER.set(y);
        loop {
            yield_now();
        }
    })));
    let mut a: Co = Coroutine::new(move |_, ()| {
        let mut raw: Co = Coroutine::new(|y, ()| loop {
            y.suspend(());
        });
        let (mut raws, mut yields, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..21 {
            let t = Instant::now();
            for _ in 0..n {
                if let CoroutineResult::Return(()) = raw.resume(()) {
                    unreachable!()
                }
            }
            let r = t.elapsed().as_nanos() as f64 / n as f64;
            let t = Instant::now();
            for _ in 0..n {
                yield_now();
            }
            let u = t.elapsed().as_nanos() as f64 / n as f64;
            raws.push(r);
            yields.push(u);
            ratios.push(u / r);
        }
        println!(
            "raw corosensei round trip {:.2} ns, stripped hand-off round trip {:.2} ns, ratio {:.2}x (median of 21 pairs)",
            common::median(&mut raws),
            common::median(&mut yields),
            common::median(&mut ratios)
        );
    });
    NESTED_PARTNER.set(b as *mut Co);
    let _ = a.resume(());
}
