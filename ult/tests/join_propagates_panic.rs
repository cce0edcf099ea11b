//! `join` returns the panic payload, exactly like std, and the executor survives.

#[test]
fn join_returns_err_with_payload_and_executor_keeps_running() {
    let (payload, after) = ult::run(|| {
        let bad = ult::Builder::new()
            .name("doomed".into())
            .spawn(|| -> u32 {
                let n = std::hint::black_box(7);
                panic!("boom {n}")
            })
            .unwrap();
        let err = bad.join().expect_err("the ULT panicked");
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .expect("payload is the formatted String");
        // Other ULTs still run after a panic.
        let good = ult::spawn(|| 5u32);
        (msg, good.join().unwrap())
    });
    assert_eq!(payload, "boom 7");
    assert_eq!(after, 5);
}

#[test]
fn str_payload_and_is_finished() {
    ult::run(|| {
        let h = ult::spawn(|| panic!("static str"));
        assert!(
            !h.is_finished(),
            "a spawned ULT has not run before we yield"
        );
        ult::yield_now();
        assert!(h.is_finished());
        let err = h.join().unwrap_err();
        assert_eq!(err.downcast_ref::<&str>(), Some(&"static str"));
    });
}

#[test]
fn root_panic_resumes_on_the_caller() {
    let r = std::panic::catch_unwind(|| ult::run(|| panic!("root")));
    let err = r.expect_err("root panic propagates out of ult::run");
    assert_eq!(err.downcast_ref::<&str>(), Some(&"root"));
}

#[test]
fn join_from_a_kernel_thread_blocks_that_thread() {
    // A ULT joined from a plain kernel thread: the handle crosses threads.
    let (tx, rx) = std::sync::mpsc::channel();
    let executor = std::thread::spawn(move || {
        ult::run(move || {
            let h = ult::spawn(|| {
                ult::sleep(std::time::Duration::from_millis(20));
                99u8
            });
            tx.send(h).unwrap();
            // Keep the executor alive until the child is done.
            ult::sleep(std::time::Duration::from_millis(50));
        })
    });
    let h = rx.recv().unwrap();
    assert_eq!(h.join().unwrap(), 99);
    executor.join().unwrap();
}

#[test]
fn a_closure_larger_than_a_kilobyte_can_be_spawned() {
    let big = [7u8; 4096];
    let sum = ult::run(move || {
        ult::spawn(move || big.iter().map(|&b| b as u32).sum::<u32>())
            .join()
            .unwrap()
    });
    assert_eq!(sum, 7 * 4096);
}
