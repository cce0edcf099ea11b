//! A ULT that overflows its stack is caught at the guard page and reported like std, then
//! the process aborts. Runs the overflow in a child process (this same test binary).

mod common;

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

/// Runs the overflow in a child with `ULT_GUARD_PAGES` set to `guard` (unset for the
/// default) and checks that it is reported like std's.
fn overflow_in_child_is_reported(test_name: &str, guard: Option<&str>) {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
    }
    let out = common::run_child(test_name, CHILD_ENV, guard);
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

/// With the process's default guard pages (page-table markers on Linux 6.13 and later).
#[test]
fn overflow_is_reported_with_name_id_and_size() {
    overflow_in_child_is_reported("overflow_is_reported_with_name_id_and_size", None);
}

/// With `PROT_NONE` guard pages, as on older kernels.
#[test]
fn overflow_into_an_mprotect_guard_page_is_reported_too() {
    overflow_in_child_is_reported(
        "overflow_into_an_mprotect_guard_page_is_reported_too",
        Some("mprotect"),
    );
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
