//! `lwp::io::stdin`: a read of standard input that waits parks only its ULT. The test runs
//! itself as a child process whose stdin is a pipe the parent writes slowly; in the child a
//! ULT reads every line while a neighbour ULT on the only LWP keeps ticking.

mod sync_support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use sync_support::{one_lwp_beside_a_ticker, watchdog_slow};

/// Set in the child's environment: run the child's half.
const CHILD: &str = "LWP_STDIN_TEST_CHILD";

/// The child's half: read all of stdin in a ULT beside the ticker, by lines or through
/// `Read`, and print what came and how many ticks the neighbour made meanwhile.
fn child(mode: &str) {
    let by_lines = mode == "lines";
    let (text, ticks) = one_lwp_beside_a_ticker(move || {
        if by_lines {
            let lines = lwp::io::stdin().lines().collect::<Result<Vec<_>, _>>();
            lines.expect("stdin lines").join(",")
        } else {
            let mut all = String::new();
            lwp::io::stdin().read_to_string(&mut all).expect("stdin");
            all.replace("\r\n", ",").replace('\n', ",")
        }
    });
    println!("RESULT {ticks} {text}");
}

/// Runs this test binary as a child in `mode`, feeds its stdin slowly, returns the child's
/// ticks and text.
fn run_child(test: &str, mode: &str) -> (usize, String) {
    let out = watchdog_slow("stdin child", {
        let (test, mode) = (test.to_string(), mode.to_string());
        move || {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", &test, "--nocapture"])
                .env(CHILD, mode)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut input = child.stdin.take().unwrap();
            std::thread::sleep(Duration::from_millis(200));
            input.write_all(b"first\n").unwrap();
            std::thread::sleep(Duration::from_millis(100));
            input.write_all(b"second\r\nthird").unwrap();
            drop(input); // EOF ends the child's reading
            child.wait_with_output().unwrap()
        }
    });
    assert!(out.status.success(), "child failed: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in the child's output: {stdout}"));
    let (ticks, text) = result.split_once(' ').unwrap();
    (ticks.parse().unwrap(), text.to_string())
}

fn check(test: &str, mode: &str) {
    if let Some(mode) = std::env::var_os(CHILD) {
        return child(&mode.to_string_lossy());
    }
    let (ticks, text) = run_child(test, mode);
    assert_eq!(text, "first,second,third", "{mode}");
    // 300 ms of waiting for input against 1 ms sleeps: far more than 20 unless the read
    // blocked the LWP.
    assert!(
        ticks >= 20,
        "{mode}: only {ticks} ticks while stdin was read: the LWP was blocked"
    );
}

#[test]
fn stdin_lines_park_only_the_ult() {
    check("stdin_lines_park_only_the_ult", "lines");
}

#[test]
fn stdin_reads_park_only_the_ult() {
    check("stdin_reads_park_only_the_ult", "read");
}
