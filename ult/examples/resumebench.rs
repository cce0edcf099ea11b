use std::sync::Arc;
use std::time::Instant;
use ult::raw::{RawUlt, Resumed, Schedule};
struct Nop;
impl Schedule for Nop {
    fn spawn(&self, _: RawUlt) -> std::io::Result<()> {
        Ok(())
    }
    fn wake(&self, _: RawUlt) {}
    fn add_timer(&self, _: Instant, _: ult::Unparker) -> u64 {
        0
    }
    fn cancel_timer(&self, _: u64) {}
}
fn main() {
    let n = 10_000_000u64;
    ult::raw::prepare_thread();
    for _ in 0..3 {
        let (mut raw, _h) = ult::Builder::new()
            .spawn_with(Arc::new(Nop), move || loop {
                ult::yield_now()
            })
            .unwrap();
        let t = Instant::now();
        for _ in 0..n {
            raw = match raw.resume() {
                Resumed::Runnable(r) => r,
                _ => unreachable!(),
            };
        }
        println!(
            "resume+yield {:.1} ns",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
}
