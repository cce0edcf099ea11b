//! `lwp::process`: waiting for a child, and reading its pipes, park only the ULT (std's
//! `wait` would stop every ULT of a one-LWP runtime); `output` reads stdout and stderr at
//! once; stdin, exit codes, signals, `try_wait` and spawn errors behave as with std.

mod sync_support;

use std::io::{ErrorKind, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use lwp::process::Command;
use lwp::{Model, Runtime};
use sync_support::{one_lwp_beside_a_ticker, watchdog_slow};

#[test]
fn waiting_for_a_child_leaves_the_only_lwp_to_the_others() {
    watchdog_slow("process wait", || {
        let ((status, waited), ticks) = one_lwp_beside_a_ticker(|| {
            let start = Instant::now();
            let status = Command::new("sleep").arg("0.2").status().unwrap();
            (status, start.elapsed())
        });
        assert!(status.success());
        assert!(
            waited >= Duration::from_millis(150),
            "returned after {waited:?}"
        );
        assert!(
            ticks >= 20,
            "only {ticks} ticks while the wait lasted: the LWP was blocked"
        );
    });
}

#[test]
fn output_reads_both_pipes_at_once_under_every_model() {
    watchdog_slow("process output", || {
        for model in [
            Model::ManyToOne,
            Model::OneToOne,
            Model::ManyToMany { lwps: 2 },
        ] {
            let rt = Runtime::new(model).unwrap();
            let out = rt.run(|| {
                // Fills stderr's pipe (64 KiB) before writing a byte to stdout: reading
                // stdout to its end first would wait forever.
                Command::new("sh")
                    .args([
                        "-c",
                        "head -c 300000 /dev/zero >&2; head -c 200000 /dev/zero",
                    ])
                    .output()
                    .unwrap()
            });
            assert!(out.status.success(), "{model}");
            assert_eq!(out.stdout.len(), 200_000, "{model}");
            assert_eq!(out.stderr.len(), 300_000, "{model}");
        }
    });
}

#[test]
fn stdin_exit_codes_signals_and_try_wait_behave_like_std() {
    watchdog_slow("process semantics", || {
        let rt = Runtime::new(Model::ManyToMany { lwps: 2 }).unwrap();
        rt.run(|| {
            let mut cat = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            cat.stdin.as_mut().unwrap().write_all(b"hello").unwrap();
            // wait_with_output closes stdin first, so cat sees EOF and exits.
            let out = cat.wait_with_output().unwrap();
            assert_eq!(out.stdout, b"hello");

            let code = Command::new("sh").args(["-c", "exit 3"]).status().unwrap();
            assert_eq!(code.code(), Some(3));

            let mut sleeper = Command::new("sleep").arg("10").spawn().unwrap();
            assert!(sleeper.try_wait().unwrap().is_none());
            sleeper.kill().unwrap();
            let killed = sleeper.wait().unwrap();
            assert_eq!(killed.signal(), Some(libc::SIGKILL));
            assert_eq!(sleeper.try_wait().unwrap(), Some(killed));

            let missing = Command::new("/nonexistent/program").spawn().unwrap_err();
            assert_eq!(missing.kind(), ErrorKind::NotFound);
        });
    });
}

#[test]
fn output_defaults_last_for_one_call_and_configured_streams_are_kept() {
    watchdog_slow("process output defaults", || {
        let rt = Runtime::new(Model::ManyToOne).unwrap();
        rt.run(|| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "echo visible; echo hidden >&2"]);
            cmd.stderr(Stdio::null());
            let out = cmd.output().unwrap();
            assert_eq!(out.stdout, b"visible\n");
            assert!(out.stderr.is_empty(), "stderr was configured as null");
            // `status` afterwards inherits stdout again (not captured, not an error).
            assert!(cmd.stdout(Stdio::null()).status().unwrap().success());
        });
    });
}

#[test]
fn a_child_runs_from_a_plain_thread_too() {
    watchdog_slow("process outside a runtime", || {
        let out = Command::new("echo").arg("plain").output().unwrap();
        assert_eq!(out.stdout, b"plain\n");
    });
}
