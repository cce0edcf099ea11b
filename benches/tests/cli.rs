//! The lab's command line: bad input exits with code 2 and a message, help explains the
//! experiments, and a smoke run writes a complete report.

use std::process::Command;

fn lab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lab"))
}

#[test]
fn an_unknown_flag_exits_with_code_2_and_a_message() {
    let out = lab().arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--no-such-flag"), "{err}");
}

#[test]
fn bad_values_exit_with_code_2() {
    for args in [
        &["--reps", "0"][..],
        &["--reps", "many"][..],
        &["--cpu", "99999"][..],
        &["no-such-experiment"][..],
        &["--full", "--smoke"][..],
    ] {
        let out = lab().args(args).arg("--quiet").output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{args:?} printed no message");
    }
}

#[test]
fn help_explains_each_experiment() {
    let out = lab().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "create",
        "switch",
        "cache",
        "runtime",
        "--full",
        "--out",
        "--raise-limits",
    ] {
        assert!(text.contains(word), "help lacks {word}: {text}");
    }
    let out = lab().args(["cache", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("80%"), "{text}");
    assert!(!text.contains("internal-peer"));
    let out = lab().args(["runtime", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("max_map_count") && text.contains("250 ms"),
        "{text}"
    );
}

#[test]
fn a_smoke_run_writes_a_complete_report() {
    let dir = std::env::temp_dir().join(format!("lab-cli-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = lab()
        .args(["--smoke", "--quiet", "--reps", "1", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
    for s in [
        "## The machine",
        "## Peers",
        "## Headline",
        "## 1. Creation cost",
        "## 2. Direct cost of a context switch",
        "## 3. Indirect cost of a switch",
        "## 4. The two-level runtime",
        "**Targets, judged on this run's medians**",
        "**smoke",
    ] {
        assert!(md.contains(s), "REPORT.md lacks {s:?}");
    }
    // The lwp channel rows of `switch` are measured now, not pending.
    assert!(!md.contains("**pending**"), "a row is still pending");
    for f in [
        "create.svg",
        "switch.svg",
        "cache-cost.svg",
        "cache-share.svg",
        "create.json",
        "switch.json",
        "cache.json",
        "runtime.json",
        "runtime.svg",
        "runtime-skynet.svg",
        "runtime-parked.svg",
        "machine.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // Peers that are absent are named as missing; those present are measured.
    let machine: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("machine.json")).unwrap()).unwrap();
    for p in machine["peers"].as_array().unwrap() {
        if p["present"] == false {
            assert!(md.contains(&format!(
                "| {} | **missing** |",
                p["name"].as_str().unwrap()
            )));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_experiment_alone_lists_the_others_as_not_run() {
    let dir = std::env::temp_dir().join(format!("lab-cli-one-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = lab()
        .args(["create", "--smoke", "--quiet", "--reps", "1", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
    assert!(md.contains("## 1. Creation cost"));
    assert!(!md.contains("## 2."));
    assert!(md.contains("## Not run in this invocation"));
    assert!(md.contains("(`lab switch`)") && md.contains("(`lab cache`)"));
    assert!(md.contains("(`lab runtime`)"));
    // The two ULT rows (their own written-out loops) are measured even in smoke mode.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("create.json")).unwrap()).unwrap();
    for id in ["ult-pooled", "ult-fresh"] {
        let row = report_row(&json, id);
        assert_eq!(row["row"]["status"], "Measured", "{row}");
        let values = row["row"]["values"].as_array().unwrap();
        assert!(
            !values.is_empty() && values.iter().all(|v| v.as_f64().unwrap() > 0.0),
            "{row}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_runtime_smoke_run_judges_the_five_targets() {
    let dir = std::env::temp_dir().join(format!("lab-cli-runtime-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = lab()
        .args(["runtime", "--smoke", "--quiet", "--reps", "1", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
    assert!(md.contains("## 1. The two-level runtime"), "{md}");
    assert!(!md.contains("## 2."));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("runtime.json")).unwrap()).unwrap();
    let targets = json["raw"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 5);
    // Rows that ran have a number; every verdict is one of the three words.
    for t in targets {
        let v = t["verdict"].as_str().unwrap();
        assert!(["Pass", "Fail", "Unknown"].contains(&v), "{t}");
    }
    // Our own rows never need a peer, so they are measured even in smoke mode.
    for id in [
        "lwp-yield-rt",
        "futex-rt",
        "lwp-spawn",
        "std-spawn",
        "lwp-skynet",
        "lwp-chan",
        "lwp-parked",
    ] {
        let row = report_row(&json, id);
        assert_eq!(row["row"]["status"], "Measured", "{id}: {row}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn raise_limits_without_root_fails_clearly_before_measuring() {
    // Run as `nobody` when we are root (setpriv), or as ourselves when we are not. Quick mode
    // wants a raised vm.max_map_count; if the machine's limit is already high enough there
    // is nothing to refuse, and the test has nothing to check.
    let Ok(limit) = benches::sys::read_max_map_count() else {
        return;
    };
    let wanted = benches::experiments::runtime::required_map_count(
        &benches::experiments::runtime::Params::for_mode(benches::experiments::Mode::Quick),
    );
    if limit >= wanted {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let Some(setpriv) = benches::peers::find_in_path("setpriv") else {
            return;
        };
        let mut c = Command::new(setpriv);
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_lab"));
        c
    } else {
        lab()
    };
    let dir = std::env::temp_dir().join("lab-cli-raise-limits-never-written");
    let out = cmd
        .args(["runtime", "--raise-limits", "--quiet", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if root && err.contains("setpriv") {
        return; // setpriv itself is not allowed here (e.g. no CAP_SETUID in a container)
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("needs root") && err.contains("sysctl -w vm.max_map_count="),
        "{err}"
    );
    assert!(!dir.join("REPORT.md").exists());
    assert_eq!(benches::sys::read_max_map_count().unwrap(), limit);
}

/// The row `id` of an experiment's JSON (`raw.rows[].row.id`); panics if there is none.
fn report_row<'a>(json: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    json["raw"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["row"]["id"] == id)
        .unwrap_or_else(|| panic!("no row {id}"))
}
