//! Peers: the other runtimes and tools the lab measures beside our ULTs, and how they are
//! found, built and run.
//!
//! - `may` and `tokio` are crate dependencies of `benches`, so always present. `may` runs in
//!   a child process (the lab re-executes itself with the hidden `internal-peer` subcommand,
//!   see [`crate::maypeer`]) because its scheduler threads, once started, never exit and
//!   would disturb every later measurement of the lab process.
//! - Go: the programs in `benches/go/` are embedded in the binary and compiled with
//!   `go build` into a temporary directory when `go` is on PATH.
//! - `stress-ng` (switch cross-check), `nginx` and `wrk` (server experiments) are found on
//!   PATH.
//!
//! A missing peer is recorded with the reason and how to install it; the report lists it as
//! missing, it is never dropped silently. External peers print one JSON object on stdout
//! ([`PeerOutput`]); this module parses it.
//!
//! Called by `bin/lab.rs` (detection, once) and the experiments (running peers).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Version of a crate dependency, read from Cargo.lock at build time (see build.rs).
pub const MAY_VERSION: &str = env!("LAB_MAY_VERSION");
/// Version of tokio, read from Cargo.lock at build time.
pub const TOKIO_VERSION: &str = env!("LAB_TOKIO_VERSION");

/// One peer and whether it can be used.
#[derive(Debug, Clone, Serialize)]
pub struct Peer {
    /// Its name: "may", "tokio", "go", "stress-ng", "nginx", "wrk".
    pub name: String,
    /// Present and usable.
    pub present: bool,
    /// Version string, when present.
    pub version: Option<String>,
    /// Where it was found, or why it is missing and how to install it.
    pub note: String,
    /// Which experiments use it.
    pub used_by: String,
}

/// Finds an executable named `name` on PATH.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        let p = dir.join(name);
        let meta = std::fs::metadata(&p).ok()?;
        use std::os::unix::fs::PermissionsExt;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(p)
    })
}

fn first_line(cmd: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let text = if out.stdout.is_empty() {
        String::from_utf8_lossy(&out.stderr).into_owned()
    } else {
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

const INSTALL_HINT: &str = "install with `sudo scripts/install-peers.sh` (Debian)";

fn external(name: &str, version_args: &[&str], used_by: &str) -> Peer {
    match find_in_path(name) {
        Some(p) => Peer {
            name: name.to_string(),
            present: true,
            version: first_line(&p, version_args),
            note: format!("found at {}", p.display()),
            used_by: used_by.to_string(),
        },
        None => Peer {
            name: name.to_string(),
            present: false,
            version: None,
            note: format!("missing: `{name}` is not on PATH; {INSTALL_HINT}"),
            used_by: used_by.to_string(),
        },
    }
}

/// Detects every peer.
pub fn detect() -> Vec<Peer> {
    vec![
        Peer {
            name: "may".into(),
            present: true,
            version: Some(format!("may {MAY_VERSION}")),
            note: "crate dependency; run in a child process (1 worker; `runtime`'s many-core rows: one worker per core)".into(),
            used_by: "create, switch, runtime".into(),
        },
        Peer {
            name: "tokio".into(),
            present: true,
            version: Some(format!("tokio {TOKIO_VERSION}")),
            note: "crate dependency; current_thread runtime, no I/O or timer driver (`runtime`'s many-core rows: multi-thread runtime, one worker per core)".into(),
            used_by: "create, switch, runtime".into(),
        },
        external("go", &["version"], "create, switch, runtime (goroutines)"),
        external("stress-ng", &["--version"], "switch (cross-check)"),
        external("nginx", &["-v"], "server experiments (later issue)"),
        external("wrk", &["--version"], "server experiments (later issue)"),
    ]
}

/// Looks a peer up by name.
pub fn get<'a>(peers: &'a [Peer], name: &str) -> Option<&'a Peer> {
    peers.iter().find(|p| p.name == name)
}

/// The Go sources, embedded so the lab works wherever its binary is.
pub const GO_CREATE_SRC: &str = include_str!("../go/create/main.go");
/// The Go switch program.
pub const GO_SWITCH_SRC: &str = include_str!("../go/switch/main.go");
/// The Go runtime program (skynet, spawn, chan, parked).
pub const GO_RUNTIME_SRC: &str = include_str!("../go/runtime/main.go");

/// The compiled Go peer programs.
#[derive(Debug, Clone)]
pub struct GoBins {
    /// The create program.
    pub create: PathBuf,
    /// The switch program.
    pub switch: PathBuf,
    /// The runtime program (`skynet`, `spawn`, `chan`, `parked` subcommands).
    pub runtime: PathBuf,
    /// `go version`.
    pub version: String,
    dir: PathBuf,
}

impl GoBins {
    /// Compiles the embedded Go programs with `go build` into a fresh temporary directory.
    /// `Err` says what failed (the report shows it).
    pub fn build() -> Result<GoBins, String> {
        let go = find_in_path("go")
            .ok_or_else(|| format!("missing: `go` is not on PATH; {INSTALL_HINT}"))?;
        let dir = std::env::temp_dir().join(format!("twolevel-lab-go-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut bins = Vec::new();
        for (name, src) in [
            ("create", GO_CREATE_SRC),
            ("switch", GO_SWITCH_SRC),
            ("runtime", GO_RUNTIME_SRC),
        ] {
            let sub = dir.join(name);
            std::fs::create_dir_all(&sub)
                .map_err(|e| format!("creating {}: {e}", sub.display()))?;
            std::fs::write(sub.join("main.go"), src)
                .map_err(|e| format!("writing main.go: {e}"))?;
            let bin = dir.join(format!("{name}-bin"));
            let mut cmd = Command::new(&go);
            cmd.args(["build", "-o"])
                .arg(&bin)
                .arg("main.go")
                .current_dir(&sub)
                .env("GO111MODULE", "off")
                .env("GOTOOLCHAIN", "local")
                .env("GOPROXY", "off")
                .env("GOFLAGS", "");
            if std::env::var_os("HOME").is_none() && std::env::var_os("GOCACHE").is_none() {
                cmd.env("GOCACHE", dir.join("gocache"));
            }
            let out = cmd.output().map_err(|e| format!("running go build: {e}"))?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                let tail: Vec<&str> = err.lines().rev().take(5).collect();
                return Err(format!(
                    "`go build` of benches/go/{name} failed: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                ));
            }
            bins.push(bin);
        }
        let version =
            first_line(&go, &["version"]).unwrap_or_else(|| "go (version unknown)".into());
        let [create, switch, runtime]: [PathBuf; 3] = bins
            .try_into()
            .map_err(|_| "the Go build loop did not produce three programs".to_string())?;
        Ok(GoBins {
            create,
            switch,
            runtime,
            version,
            dir,
        })
    }
}

impl Drop for GoBins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What an external peer program prints: one JSON object.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PeerOutput {
    /// Operations timed in the batch loop (create programs).
    #[serde(default)]
    pub ops: u64,
    /// Switches timed (switch programs).
    #[serde(default)]
    pub switches: u64,
    /// Nanoseconds the timed loop took.
    pub total_ns: u64,
    /// Per-operation latencies of the sampled loop, as (nanoseconds, count) pairs.
    #[serde(default)]
    pub hist: Vec<(u64, u64)>,
    /// Runtime description (e.g. `go1.19.8 GOMAXPROCS=1`).
    #[serde(default)]
    pub runtime: String,
    /// A second figure some peers report (`runtime` programs: the skynet sum, or the RSS
    /// growth in bytes of the parked rows); 0 when absent.
    #[serde(default)]
    pub extra: i64,
}

/// The message of a panic payload (`panic!` with a literal or a formatted string), or
/// "a panic" for any other payload: for error reports of peers and of the lab's own rows.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "a panic"
    }
}

/// Runs a peer program and parses its JSON output, with a time limit.
pub fn run_peer(cmd: &mut Command, limit: Duration) -> Result<PeerOutput, String> {
    parse_peer_output(&run_for_stdout(cmd, limit)?)
}

/// Runs a peer program with a time limit and returns its stdout; `Err` (with the tail of its
/// stderr) if it could not start, ran too long (it is killed), or exited unsuccessfully.
pub fn run_for_stdout(cmd: &mut Command, limit: Duration) -> Result<String, String> {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {cmd:?}: {e}"))?;
    // Drain both pipes while waiting, so a chatty child cannot block on a full pipe.
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out_reader = child.stdout.take().map(|o| drain(Box::new(o)));
    let err_reader = child.stderr.take().map(|e| drain(Box::new(e)));
    let start = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("{cmd:?} ran longer than {limit:?} and was killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => break Err(format!("waiting for {cmd:?}: {e}")),
        }
    };
    let stdout = out_reader.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err_reader.and_then(|h| h.join().ok()).unwrap_or_default();
    let status = status?;
    if !status.success() {
        let err = String::from_utf8_lossy(&stderr);
        let tail: Vec<&str> = err.trim().lines().rev().take(4).collect();
        return Err(format!(
            "{cmd:?} exited with {status}: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// Parses the last JSON line of a peer's stdout.
pub fn parse_peer_output(stdout: &str) -> Result<PeerOutput, String> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("no JSON line in peer output: {:?}", truncate(stdout, 200)))?;
    serde_json::from_str(line).map_err(|e| format!("bad peer JSON ({e}): {}", truncate(line, 200)))
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}

/// Parses stress-ng's "nanosecs per context switch" metric from its output.
pub fn parse_stress_ng_switch(output: &str) -> Option<f64> {
    output
        .lines()
        .find(|l| l.contains("nanosecs per context switch"))
        .and_then(|l| {
            let before = l.split("nanosecs per context switch").next()?;
            before.split_whitespace().last()?.parse::<f64>().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::panic_text;

    #[test]
    fn a_panic_payload_gives_its_message() {
        let literal = std::panic::catch_unwind(|| panic!("literal")).unwrap_err();
        assert_eq!(panic_text(&*literal), "literal");
        let formatted = std::panic::catch_unwind(|| panic!("{} {}", "formatted", 2)).unwrap_err();
        assert_eq!(panic_text(&*formatted), "formatted 2");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_text(&*other), "a panic");
    }
}
