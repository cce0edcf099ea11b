//! At the memory-mapping limit, spawning fails cleanly and the process keeps working:
//! ULT stacks leave a reserve of mappings for the heap and threads. Runs in a child process,
//! with `PROT_NONE` guard pages (`ULT_GUARD_PAGES=mprotect`) so that stacks alone reach the
//! limit.

use std::process::Command;

#[test]
fn spawning_past_the_map_limit_fails_cleanly_and_nothing_aborts() {
    if std::env::var_os("LWP_MAP_LIMIT_CHILD").is_some() {
        let limit = ult::stack::read_max_map_count().unwrap_or(65530);
        let n = limit / 2 + 1000;
        let rt = lwp::Runtime::builder()
            .lwps(2)
            .sysmon_warnings(false)
            .build()
            .unwrap();
        let (hs, err) = rt.run(move || {
            let mut hs = Vec::with_capacity(n);
            let mut err = None;
            for _ in 0..n {
                match lwp::Builder::new().spawn(lwp::park) {
                    Ok(h) => hs.push(h),
                    Err(e) => {
                        err = Some(e.to_string());
                        break;
                    }
                }
            }
            (hs, err)
        });
        // Wake them all from this plain thread (inbox pushes allocate) and join them.
        for h in &hs {
            h.ult().unpark();
        }
        let joined = hs.into_iter().filter_map(|h| h.join().ok()).count();
        println!("RESULT joined={joined} err={}", err.unwrap_or_default());
        std::process::exit(0);
    }
    let limit = ult::stack::read_max_map_count().unwrap_or(65530);
    if limit > 1_000_000 {
        eprintln!("vm.max_map_count is {limit}: raised here, limit test not run");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "spawning_past_the_map_limit_fails_cleanly_and_nothing_aborts",
            "--exact",
            "--nocapture",
        ])
        .env("LWP_MAP_LIMIT_CHILD", "1")
        // Guard pages of their own, two mappings per stack, so that stacks reach the limit
        // (with the default guard markers they share mappings: see ult's
        // `map_limit_is_an_error` tests).
        .env("ULT_GUARD_PAGES", "mprotect")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child died: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("RESULT joined="), "{stdout}");
    assert!(stdout.contains("vm.max_map_count"), "{stdout}");
}
