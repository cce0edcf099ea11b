//! Memory mappings and live ULTs. With `PROT_NONE` guard pages (two mappings per stack), a
//! process runs into `vm.max_map_count`, and `Builder::spawn` then returns an `io::Error`
//! naming the limit while the executor keeps working. With guard markers (Linux 6.13 and
//! later, the default where available) stacks add next to no mappings, so many more ULTs
//! live at once; a process whose other mappings already fill the limit still gets the
//! error, not an abort. Each runs in a child process so the exhausted mappings do not
//! disturb other tests.

mod common;

use std::process::Command;

const CHILD_ENV: &str = "ULT_MAP_LIMIT_CHILD";

/// Runs `test_name`'s child branch ([`common::run_child`] with this file's marker) and
/// returns what it printed, after checking that it exited cleanly.
fn child_stdout(test_name: &str, guard: Option<&str>) -> String {
    let out = common::run_child(test_name, CHILD_ENV, guard);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{guard:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `vm.max_map_count`, or `None` (with a note) where it is raised too far for these tests.
fn testable_limit() -> Option<usize> {
    let limit = ult::stack::read_max_map_count().unwrap_or(65530);
    if limit > 1_000_000 {
        eprintln!("vm.max_map_count is {limit}: raised on this machine, limit test not run");
        return None;
    }
    Some(limit)
}

fn mappings() -> usize {
    let maps = std::fs::read("/proc/self/maps").unwrap();
    maps.iter().filter(|&&b| b == b'\n').count()
}

#[test]
fn exhausting_memory_mappings_returns_an_error_naming_the_limit() {
    if std::env::var_os(CHILD_ENV).is_some() {
        assert_eq!(ult::stack::guard_kind(), ult::stack::GuardKind::Protected);
        let limit = ult::stack::read_max_map_count().unwrap_or(65530);
        let msg = ult::run(move || {
            let mut parked = Vec::new();
            // Each live ULT needs two mappings; try a little past the limit.
            for _ in 0..limit / 2 + 100 {
                match ult::Builder::new().stack_size(16 * 1024).spawn(ult::park) {
                    Ok(h) => parked.push(h),
                    Err(e) => {
                        // The executor still works after the failure: finish one parked ULT
                        // (its stack returns to the pool) and spawn again.
                        let h: ult::JoinHandle<()> = parked.pop().unwrap();
                        h.ult().unpark();
                        h.join().unwrap();
                        let ok = ult::Builder::new()
                            .stack_size(16 * 1024)
                            .spawn(|| 1)
                            .unwrap()
                            .join()
                            .unwrap();
                        return format!("ERR after {}: {e} (still runs: {ok})", parked.len());
                    }
                }
            }
            format!("no error after {} ULTs", parked.len())
        });
        println!("RESULT {msg}");
        std::process::exit(0);
    }
    if testable_limit().is_none() {
        return;
    }
    let stdout = child_stdout(
        "exhausting_memory_mappings_returns_an_error_naming_the_limit",
        Some("mprotect"),
    );
    assert!(stdout.contains("RESULT ERR"), "{stdout}");
    assert!(stdout.contains("vm.max_map_count"), "{stdout}");
    assert!(stdout.contains("sysctl -w vm.max_map_count="), "{stdout}");
    assert!(stdout.contains("two mappings each"), "{stdout}");
    assert!(stdout.contains("still runs: 1"), "{stdout}");
}

#[test]
fn with_guard_markers_more_ults_live_than_protected_guards_allow() {
    if std::env::var_os(CHILD_ENV).is_some() {
        if ult::stack::guard_kind() != ult::stack::GuardKind::Marker {
            println!("RESULT SKIP: this kernel has no guard markers (Linux 6.13 and later)");
            std::process::exit(0);
        }
        let limit = ult::stack::read_max_map_count().unwrap_or(65530);
        let before = mappings();
        // More than two mappings each would allow.
        let n = limit / 2 + 1000;
        let msg = ult::run(move || {
            let mut parked = Vec::with_capacity(n);
            for i in 0..n {
                match ult::Builder::new().stack_size(16 * 1024).spawn(ult::park) {
                    Ok(h) => parked.push(h),
                    Err(e) => return format!("ERR at ULT {i}: {e}"),
                }
            }
            let grew = mappings() - before;
            for h in &parked {
                h.ult().unpark();
            }
            let joined = parked.into_iter().filter_map(|h| h.join().ok()).count();
            format!("OK live={n} joined={joined} mappings_added={grew}")
        });
        println!("RESULT {msg}");
        std::process::exit(0);
    }
    let Some(limit) = testable_limit() else {
        return;
    };
    let stdout = child_stdout(
        "with_guard_markers_more_ults_live_than_protected_guards_allow",
        None,
    );
    if stdout.contains("RESULT SKIP") {
        eprintln!("{stdout}");
        return;
    }
    let n = limit / 2 + 1000;
    assert!(
        stdout.contains(&format!("RESULT OK live={n} joined={n}")),
        "{stdout}"
    );
    // Stacks side by side share mappings: far fewer than one per ULT.
    let added: usize = stdout
        .split("mappings_added=")
        .nth(1)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(usize::MAX);
    assert!(added < n / 10, "{added} mappings for {n} stacks: {stdout}");
}

#[test]
fn a_process_whose_mappings_fill_the_limit_gets_an_error_not_an_abort() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let limit = ult::stack::read_max_map_count().unwrap_or(65530);
        // Fill the mappings to within the stacks' reserve with pages of alternating
        // protection (each its own mapping), before the first stack is made.
        let page = 4096;
        let want = limit - ult::stack::MAPPING_RESERVE + 16 - mappings();
        // The filler is one mapping; each page made `PROT_NONE` inside it adds two.
        let holes = want.div_ceil(2);
        let len = (2 * holes + 1) * page;
        // SAFETY: a fresh anonymous mapping, used only by this child and unmapped below.
        let filler = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(filler, libc::MAP_FAILED);
        for i in 0..holes {
            // SAFETY: a page inside the filler mapping above.
            let rc = unsafe {
                libc::mprotect(
                    (filler as usize + (2 * i + 1) * page) as *mut libc::c_void,
                    page,
                    libc::PROT_NONE,
                )
            };
            assert_eq!(rc, 0, "mprotect {i}");
        }
        let first = match ult::try_run(ult::Builder::new(), || 1) {
            Ok(r) => format!("no error ({:?})", r.is_ok()),
            Err(e) => format!("ERR {e}"),
        };
        // SAFETY: the filler mapping created above; nothing uses it.
        unsafe { libc::munmap(filler, len) };
        let after = ult::run(|| ult::spawn(|| 2).join().unwrap());
        println!("RESULT {first} | after freeing: {after}");
        std::process::exit(0);
    }
    if testable_limit().is_none() {
        return;
    }
    for guard in [None, Some("mprotect")] {
        let stdout = child_stdout(
            "a_process_whose_mappings_fill_the_limit_gets_an_error_not_an_abort",
            guard,
        );
        assert!(
            stdout.contains("RESULT ERR cannot map"),
            "{guard:?}: {stdout}"
        );
        assert!(
            stdout.contains("sysctl -w vm.max_map_count="),
            "{guard:?}: {stdout}"
        );
        assert!(stdout.contains("after freeing: 2"), "{guard:?}: {stdout}");
    }
}

#[test]
fn address_space_limit_is_an_error_too() {
    if std::env::var_os("ULT_RLIMIT_CHILD").is_some() {
        // Cap the address space at 1 GiB, then ask for 4 GiB stacks.
        let lim = libc::rlimit {
            rlim_cur: 1 << 30,
            rlim_max: 1 << 30,
        };
        // SAFETY: setrlimit with a valid struct; affects only this child process.
        unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) };
        let msg = ult::run(
            || match ult::Builder::new().stack_size(4 << 30).spawn(|| ()) {
                Ok(_) => "no error".to_string(),
                Err(e) => format!("ERR {e}"),
            },
        );
        println!("RESULT {msg}");
        std::process::exit(0);
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "address_space_limit_is_an_error_too",
            "--exact",
            "--nocapture",
        ])
        .env("ULT_RLIMIT_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("RESULT ERR cannot map a 4194304 KiB ULT stack"),
        "{stdout}"
    );
}
