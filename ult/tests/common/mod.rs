//! Helpers shared by the integration tests that run part of themselves in a child process.

use std::process::{Command, Output};

/// Runs the test `test_name` of the calling test binary again, in a child process with
/// `child_env` set (the test's child branch) and `ULT_GUARD_PAGES` set to `guard` (removed
/// for `None`: the process's default guard pages, see `ult::stack::GuardKind`).
pub fn run_child(test_name: &str, child_env: &str, guard: Option<&str>) -> Output {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
    cmd.args([test_name, "--exact", "--nocapture"])
        .env(child_env, "1")
        .env_remove("ULT_GUARD_PAGES");
    if let Some(guard) = guard {
        cmd.env("ULT_GUARD_PAGES", guard);
    }
    cmd.output().expect("the test binary runs again as a child")
}
