//! When no more stacks can be mapped, `Builder::spawn` returns an `io::Error` naming the
//! limit, and the executor keeps working. Runs in a child process so the exhausted address
//! space does not disturb other tests.

use std::process::Command;

const CHILD_ENV: &str = "ULT_MAP_LIMIT_CHILD";

#[test]
fn exhausting_memory_mappings_returns_an_error_naming_the_limit() {
    if std::env::var_os(CHILD_ENV).is_some() {
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
    let limit = ult::stack::read_max_map_count().unwrap_or(65530);
    if limit > 1_000_000 {
        eprintln!("vm.max_map_count is {limit}: raised on this machine, limit test not run");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "exhausting_memory_mappings_returns_an_error_naming_the_limit",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("RESULT ERR"), "{stdout}");
    assert!(stdout.contains("vm.max_map_count"), "{stdout}");
    assert!(stdout.contains("sysctl -w vm.max_map_count="), "{stdout}");
    assert!(stdout.contains("still runs: 1"), "{stdout}");
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
