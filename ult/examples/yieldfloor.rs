//! How cheap can a yield between two coroutines be on corosensei once *anything* decides who
//! runs next? A stripped hand-off, not the runtime: A resumes B directly (B's suspend comes
//! straight back to A, two switches per round trip), with no run queue at all (B is kept in
//! one slot), one thread-local read per yield and one thread-local toggle per hand-off (the
//! minimum that tells a nested coroutine to switch back). Interleaved with the raw
//! resume+suspend round trip like `switchratio`; compare the ratios of the two examples.
//!
//! `taskset -c 1 cargo run --release -p ult --example yieldfloor`
//!
//! `HOPS=k` makes the hand-off find B through a chain of `k` pointers (each a load that
//! depends on the one before, as a scheduler's frame -> queue -> slot -> header -> worker ->
//! stack pointer chain does), to show what one more dependent load per yield costs.
mod common;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use std::cell::Cell;
use std::time::Instant;

type Co = Coroutine<(), (), ()>;

thread_local! {
    static YIELDER: Cell<*const Yielder<(), ()>> = const { Cell::new(std::ptr::null()) };
    static NESTED_PARTNER: Cell<*mut Co> = const { Cell::new(std::ptr::null_mut()) };
    /// The head of the `HOPS` chain (null: none), and its length.
    static CHAIN: Cell<(*const Hop, usize)> = const { Cell::new((std::ptr::null(), 0)) };
}

/// One link of the `HOPS` chain: the next link, or, in the last one, B's coroutine.
struct Hop {
    next: *const Hop,
}

/// Follows the chain from `head` (`hops` links); returns what the last link holds.
#[inline(always)]
fn follow(head: *const Hop, hops: usize) -> *const Hop {
    let mut p = head;
    for _ in 0..hops {
        // SAFETY: the chain is leaked in `main`, so every link lives for the whole run.
        p = unsafe { std::ptr::read_volatile(&(*p).next) };
    }
    p
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
    let (head, hops) = CHAIN.get();
    // With a chain, B is found at its end (the same pointer, reached by `hops` loads).
    let partner = if hops == 0 {
        partner
    } else {
        follow(head, hops) as *mut Co
    };
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
            "raw corosensei round trip {:.2} ns, stripped hand-off round trip ({} hops) {:.2} ns, ratio {:.2}x (median of 21 pairs)",
            common::median(&mut raws),
            CHAIN.get().1,
            common::median(&mut yields),
            common::median(&mut ratios)
        );
    });
    let b = b as *mut Co;
    let hops: usize = std::env::var("HOPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if hops > 0 {
        // Links in separate allocations, each pointing to the next; the last holds B.
        let mut next = b as *const Hop;
        for _ in 0..hops {
            next = Box::leak(Box::new(Hop { next })) as *const Hop;
        }
        CHAIN.set((next, hops));
    }
    NESTED_PARTNER.set(b);
    let _ = a.resume(());
}
