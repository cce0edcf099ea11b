//! A bare loop for counting instructions, not timing: `yield` runs N round trips of two ULTs
//! yielding to each other under `ult::run`; `raw` runs N resume+suspend round trips of a bare
//! corosensei coroutine (the floor). `scripts/count-instructions.sh` runs it twice under
//! callgrind and prints the difference per iteration, so start-up costs cancel out.
//!
//! `N=100000 valgrind --tool=callgrind target/release/examples/countloop yield`
mod common;
use corosensei::{Coroutine, CoroutineResult};

fn main() {
    let n = common::iterations(1_000_000);
    match std::env::args().nth(1).as_deref() {
        Some("yield") => ult::run(move || {
            let partner = ult::spawn(move || {
                for _ in 0..n {
                    ult::yield_now()
                }
            });
            for _ in 0..n {
                ult::yield_now()
            }
            partner.join().expect("the partner ULT finishes");
        }),
        Some("raw") => {
            let mut co: Coroutine<(), (), ()> = Coroutine::new(|y, ()| loop {
                y.suspend(());
            });
            for _ in 0..n {
                match co.resume(()) {
                    CoroutineResult::Yield(()) => {}
                    CoroutineResult::Return(()) => unreachable!("the coroutine loops forever"),
                }
            }
        }
        _ => {
            eprintln!("usage: countloop yield|raw   (N: iterations, default 1000000)");
            std::process::exit(2);
        }
    }
}
