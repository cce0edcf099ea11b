//! A ULT that overflows its stack is caught at the guard page and reported like std, then
//! the process aborts. Runs the overflow in a child process (this same test binary).

use std::process::Command;

const CHILD_ENV: &str = "ULT_OVERFLOW_CHILD";

#[inline(never)]
fn recurse(depth: u64, buf: &mut [u8; 512]) -> u64 {
    let mut local = [0u8; 512];
    local[0] = depth as u8;
    buf[1] = local[0];
    std::hint::black_box(&mut local);
    if depth == u64::MAX {
        return 0; // never: the stack runs out long before
    }
    recurse(depth + 1, &mut local) + local[3] as u64
}

fn child() {
    ult::run(|| {
        let h = ult::Builder::new()
            .name("deep-diver".into())
            .stack_size(64 * 1024)
            .spawn(|| recurse(0, &mut [0u8; 512]))
            .unwrap();
        let _ = h.join();
    });
    unreachable!("the overflow aborts the process");
}

#[test]
fn overflow_is_reported_with_name_id_and_size() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "overflow_is_reported_with_name_id_and_size",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child must die");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "aborts like std: {stderr}"
    );
    let re_ok = stderr.contains("thread 'deep-diver' (ULT #")
        && stderr.contains(") has overflowed its stack (64 KiB)");
    assert!(re_ok, "unexpected stderr: {stderr}");
}

#[test]
fn a_segfault_that_is_not_an_overflow_is_not_reported_as_one() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // Install the handler by spawning a ULT, then fault on a wild address.
        ult::run(|| {
            ult::spawn(|| {
                // SAFETY: deliberately invalid, to test signal chaining; the process dies.
                unsafe { std::ptr::write_volatile(16 as *mut u8, 1) };
            })
            .join()
            .ok();
        });
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_segfault_that_is_not_an_overflow_is_not_reported_as_one",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{stderr}");
    assert!(!stderr.contains("overflowed"), "{stderr}");
}
