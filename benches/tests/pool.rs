//! `lab pool-echo`: the echo target pairs of several runs, pooled. Counts and verdicts from
//! synthetic reports, and bad input answered with a message and exit code 2.

use benches::pool::{self, Pair};
use serde_json::{json, Value};
use std::process::Command;

/// An echo report shaped like the lab's, with `lwp-mn` and `tokio` rows at `conns`
/// (requests/s and p99 in ns per repetition) and a one-connection row that has no target.
fn report(conns: u64, ours: &[(f64, f64)], tokio: &[(f64, f64)], verdict: &str) -> Value {
    let row = |server: &str, c: u64, reps: &[(f64, f64)]| {
        json!({ "row": {
            "server": server,
            "conns": c,
            "rps": reps.iter().map(|r| r.0).collect::<Vec<_>>(),
            "p99_ns": reps.iter().map(|r| r.1).collect::<Vec<_>>(),
        }})
    };
    json!({
        "experiment": "echo",
        "raw": {
            "rows": [
                row("lwp-mn", 1, &[(1.0, 1.0)]),
                row("lwp-mn", conns, ours),
                row("may", conns, ours),
                row("tokio", conns, tokio),
            ],
            "targets": [{ "conns": conns, "verdict": verdict }],
        }
    })
}

#[test]
fn pairs_of_every_run_are_pooled_by_connection_count() {
    let a = report(
        100,
        &[(110.0, 9.0), (90.0, 9.0)],
        &[(100.0, 10.0), (100.0, 10.0)],
        "Pass",
    );
    let b = report(100, &[(120.0, 20.0)], &[(100.0, 10.0)], "Fail");
    let c = report(10_000, &[(50.0, 5.0)], &[(100.0, 10.0)], "Fail");
    let pooled = pool::pool(&[("a".into(), a), ("b".into(), b), ("c".into(), c)]).unwrap();
    assert_eq!(pooled.len(), 2);
    let p = &pooled[0];
    assert_eq!((p.conns, p.runs), (100, 2));
    assert_eq!(p.run_verdicts, ["Pass", "Fail"]);
    assert_eq!(
        p.pairs,
        [
            Pair {
                run: 0,
                rps_ratio: 1.1,
                p99_ratio: 0.9
            },
            Pair {
                run: 0,
                rps_ratio: 0.9,
                p99_ratio: 0.9
            },
            Pair {
                run: 1,
                rps_ratio: 1.2,
                p99_ratio: 2.0
            },
        ]
    );
    assert_eq!(p.pairs.iter().filter(|x| x.meets_both()).count(), 1);
    assert_eq!(p.median_rps_ratio(), Some(1.1));
    assert_eq!(p.median_p99_ratio(), Some(0.9));
    assert_eq!(p.passes(), Some(true));
    assert_eq!(pooled[1].conns, 10_000);
    assert_eq!(pooled[1].passes(), Some(false));
}

#[test]
fn the_sign_tests_resolve_only_a_lopsided_split() {
    // Nine of nine pairs better on both halves: p = 2/512 for each test.
    let ours = vec![(110.0, 5.0); 9];
    let tokio = vec![(100.0, 10.0); 9];
    let pooled = pool::pool(&[("a".into(), report(100, &ours, &tokio, "Pass"))]).unwrap();
    let p = &pooled[0];
    assert!(p.rps_sign_test().unwrap().p < 0.01);
    assert!(p.p99_sign_test().unwrap().p < 0.01);
    assert!(pool::render(&pooled).contains("both halves resolved"));
    // Five of nine: a coin toss, even though the medians pass.
    let mixed: Vec<(f64, f64)> = (0..9)
        .map(|i| if i < 5 { (110.0, 5.0) } else { (90.0, 15.0) })
        .collect();
    let pooled = pool::pool(&[("a".into(), report(100, &mixed, &tokio, "Pass"))]).unwrap();
    assert_eq!(pooled[0].passes(), Some(true));
    assert!(pooled[0].rps_sign_test().unwrap().p > 0.5);
    let table = pool::render(&pooled);
    assert!(table.contains("not resolved"), "{table}");
    assert!(
        table.contains("| 100 | 1 (Pass) | 9 | 5/9 | 5/9 | 5/9 |"),
        "{table}"
    );
}

#[test]
fn a_report_of_another_experiment_is_an_error_that_names_it() {
    let err =
        pool::pool(&[("x/create.json".into(), json!({ "experiment": "create" }))]).unwrap_err();
    assert!(err.contains("x/create.json"), "{err}");
}

fn lab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lab"))
}

#[test]
fn the_subcommand_pools_report_directories_and_refuses_bad_paths() {
    let dir = std::env::temp_dir().join(format!("pool-echo-test-{}", std::process::id()));
    let (one, two) = (dir.join("one"), dir.join("two"));
    for (d, r) in [
        (&one, report(100, &[(110.0, 9.0)], &[(100.0, 10.0)], "Pass")),
        (&two, report(100, &[(130.0, 8.0)], &[(100.0, 10.0)], "Pass")),
    ] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("echo.json"), r.to_string()).unwrap();
    }
    let out = lab()
        .arg("pool-echo")
        .arg(&one)
        .arg(two.join("echo.json"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("| 100 | 2 (Pass, Pass) | 2 | 2/2 |"),
        "{text}"
    );

    let missing = dir.join("missing");
    let out = lab().arg("pool-echo").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
    std::fs::write(dir.join("garbage.json"), "not json").unwrap();
    let out = lab()
        .arg("pool-echo")
        .arg(dir.join("garbage.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not JSON"));
    let out = lab().arg("pool-echo").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "no directory at all is a usage error"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
