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
    for word in ["create", "switch", "cache", "--full", "--out"] {
        assert!(text.contains(word), "help lacks {word}: {text}");
    }
    let out = lab().args(["cache", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("80%"), "{text}");
    assert!(!text.contains("internal-peer"));
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
        "**smoke",
        "**pending**: lwp runtime not built yet",
    ] {
        assert!(md.contains(s), "REPORT.md lacks {s:?}");
    }
    for f in [
        "create.svg",
        "switch.svg",
        "cache-cost.svg",
        "cache-share.svg",
        "create.json",
        "switch.json",
        "cache.json",
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
    let _ = std::fs::remove_dir_all(&dir);
}
