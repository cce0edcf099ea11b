//! ULT-local storage: one value per ULT, dropped when the ULT finishes.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

static DROPS: AtomicUsize = AtomicUsize::new(0);

struct Counted(u32);
impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

ult::local! {
    static VALUE: Cell<u32> = Cell::new(0);
    static TRACKED: Counted = Counted(1);
}

#[test]
fn each_ult_has_its_own_value_and_it_is_dropped_at_exit() {
    let before = DROPS.load(Ordering::SeqCst);
    ult::run(|| {
        VALUE.with(|v| v.set(10));
        let hs: Vec<_> = (0..4u32)
            .map(|i| {
                ult::spawn(move || {
                    TRACKED.with(|t| assert_eq!(t.0, 1));
                    VALUE.with(|v| {
                        assert_eq!(v.get(), 0, "fresh value per ULT");
                        v.set(i);
                    });
                    ult::yield_now(); // the others run and set theirs
                    VALUE.with(|v| v.get())
                })
            })
            .collect();
        let got: Vec<u32> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(got, vec![0, 1, 2, 3]);
        assert_eq!(VALUE.with(|v| v.get()), 10);
    });
    // Four children touched TRACKED; each dropped its own inside the ULT.
    assert_eq!(DROPS.load(Ordering::SeqCst) - before, 4);
}

#[test]
fn outside_a_ult_it_is_thread_local() {
    VALUE.with(|v| v.set(5));
    let other = std::thread::spawn(|| VALUE.with(|v| v.get()))
        .join()
        .unwrap();
    assert_eq!(other, 0);
    assert_eq!(VALUE.with(|v| v.get()), 5);
}
