//! Child processes whose waits park only the calling ULT: [`Command`] and [`Child`], with
//! the method names of `std::process`. `std::process::Child::wait` blocks the kernel thread
//! (under many-to-one, every ULT) until the child exits, and `output` blocks it on the
//! child's pipes as well; here the pipes are [`Pollable`]s and the exit is an event on the
//! reactor: a pidfd (`pidfd_open(2)`, Linux 5.3 and later) becomes readable when the child
//! exits, so a wait is a readiness wait like a socket read.
//!
//! Where `pidfd_open` is unavailable (an older kernel, a seccomp filter), or a wait on the
//! pidfd fails, a wait polls `try_wait` with sleeps that grow from 1 ms to 50 ms: still only
//! the ULT waits, at the cost of up to 50 ms of latency.
//!
//! Invariants: a [`Child`] holds its pidfd from `spawn` until it is dropped; the child is
//! reaped only by `std::process::Child`'s own `wait`/`try_wait`, after the pidfd said it
//! exited, so its pid cannot be reused while the pidfd refers to it. As with std, dropping
//! a `Child` neither kills nor reaps it.
//!
//! Who may call what: anyone; outside a runtime the waits block the calling thread, as with
//! std.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use crate::io::Pollable;

/// The parent's end of a child's standard input: writes park only the ULT.
pub type ChildStdin = Pollable<std::process::ChildStdin>;
/// The parent's end of a child's standard output: reads park only the ULT.
pub type ChildStdout = Pollable<std::process::ChildStdout>;
/// The parent's end of a child's standard error: reads park only the ULT.
pub type ChildStderr = Pollable<std::process::ChildStderr>;

/// A process builder, like `std::process::Command`, whose `spawn` gives a [`Child`] that
/// waits by parking only the ULT.
///
/// ```
/// let rt = lwp::Runtime::new(lwp::Model::ManyToOne)?;
/// let out = rt.run(|| {
///     lwp::process::Command::new("sh")
///         .args(["-c", "echo out; echo err >&2; exit 3"])
///         .output()
/// })?;
/// assert_eq!(out.stdout, b"out\n");
/// assert_eq!(out.stderr, b"err\n");
/// assert_eq!(out.status.code(), Some(3));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Command {
    inner: std::process::Command,
    /// Which of stdin, stdout and stderr the caller configured: `output` captures the
    /// others, as std's does.
    configured: [bool; 3],
}

impl Command {
    /// A command that runs `program` (looked up in `PATH` as std does).
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds an argument.
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&mut self, key: K, val: V) -> &mut Command {
        self.inner.env(key, val);
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what `env` adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// The child's standard input (`spawn` and `status` inherit it by default, `output`
    /// gives the child none).
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdin(cfg);
        self.configured[0] = true;
        self
    }

    /// The child's standard output (`spawn` and `status` inherit it by default, `output`
    /// captures it).
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdout(cfg);
        self.configured[1] = true;
        self
    }

    /// The child's standard error (as [`Command::stdout`]).
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stderr(cfg);
        self.configured[2] = true;
        self
    }

    /// The std builder, for what this one does not forward (`std::os::unix::process::
    /// CommandExt` and the getters). Standard streams configured through it are unknown to
    /// [`Command::output`], which then captures stdout and stderr anyway.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }

    /// Starts the child. Its piped streams come back as [`Pollable`]s in the [`Child`]'s
    /// fields. Fails as std's `spawn` does (`NotFound` for a missing program, and so on).
    pub fn spawn(&mut self) -> io::Result<Child> {
        Child::from_std(self.inner.spawn()?)
    }

    /// Runs the child to its end and returns its exit status; its streams are inherited
    /// unless configured.
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait()
    }

    /// Runs the child to its end and collects its output: stdout and stderr are captured
    /// (both at once, so a child that fills one pipe while the other is read cannot
    /// deadlock) and stdin is empty, unless configured otherwise.
    pub fn output(&mut self) -> io::Result<Output> {
        let [stdin, stdout, stderr] = self.configured;
        if !stdin {
            self.inner.stdin(Stdio::null());
        }
        if !stdout {
            self.inner.stdout(Stdio::piped());
        }
        if !stderr {
            self.inner.stderr(Stdio::piped());
        }
        let spawned = self.inner.spawn();
        // The defaults of `output` last for this call only (std's own default is inherit).
        if !stdin {
            self.inner.stdin(Stdio::inherit());
        }
        if !stdout {
            self.inner.stdout(Stdio::inherit());
        }
        if !stderr {
            self.inner.stderr(Stdio::inherit());
        }
        Child::from_std(spawned?)?.wait_with_output()
    }
}

impl From<std::process::Command> for Command {
    /// Wraps a std builder (streams it configured count as unconfigured: see
    /// [`Command::as_std_mut`]).
    fn from(inner: std::process::Command) -> Command {
        Command {
            inner,
            configured: [false; 3],
        }
    }
}

/// A running or exited child process, like `std::process::Child`, whose waits park only
/// the ULT.
#[derive(Debug)]
pub struct Child {
    /// The child's standard input, if it was piped.
    pub stdin: Option<ChildStdin>,
    /// The child's standard output, if it was piped.
    pub stdout: Option<ChildStdout>,
    /// The child's standard error, if it was piped.
    pub stderr: Option<ChildStderr>,
    /// Readable once the child has exited; `None` where `pidfd_open` failed.
    exited: Option<Pollable<OwnedFd>>,
    inner: std::process::Child,
}

impl Child {
    /// Wraps a child that std spawned: its piped streams become [`Pollable`]s and its exit
    /// is watched through a pidfd (see the module header).
    pub fn from_std(mut inner: std::process::Child) -> io::Result<Child> {
        let stdin = inner.stdin.take().map(Pollable::new).transpose()?;
        let stdout = inner.stdout.take().map(Pollable::new).transpose()?;
        let stderr = inner.stderr.take().map(Pollable::new).transpose()?;
        let exited = open_pidfd(inner.id()).and_then(|fd| Pollable::new(fd).ok());
        Ok(Child {
            stdin,
            stdout,
            stderr,
            exited,
            inner,
        })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// Sends `SIGKILL` (nothing if it has already been reaped, as with std).
    pub fn kill(&mut self) -> io::Result<()> {
        self.inner.kill()
    }

    /// The exit status if the child has exited (reaping it), else `None`; never waits.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.inner.try_wait()
    }

    /// Waits for the child to exit, parking only the ULT, and reaps it. Closes the child's
    /// stdin first, as std does, so a child that reads to EOF can finish.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        let mut backoff = Duration::from_millis(1);
        loop {
            if let Some(status) = self.inner.try_wait()? {
                return Ok(status);
            }
            // Readable once the child has exited (the first wait may return at once: a new
            // registration starts out "maybe ready"). A pidfd the reactor cannot take (an
            // error from the wait) falls back to polling from then on.
            let waited = self.exited.as_ref().map(|pidfd| pidfd.readable());
            match waited {
                Some(Ok(())) => {}
                Some(Err(_)) | None => {
                    self.exited = None;
                    crate::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
            }
        }
    }

    /// Waits for the child to exit and collects whatever its piped stdout and stderr
    /// produce, reading both at once (stderr in a scoped ULT of its own), as std's
    /// `wait_with_output` does.
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let stdout = self.stdout.take();
        let (stdout, stderr) = match self.stderr.take() {
            // Only one pipe: no second ULT needed.
            None => (read_all(stdout), Ok(Vec::new())),
            Some(stderr) => crate::scope(|s| {
                let stderr = s.spawn(move || read_all(Some(stderr)));
                let stdout = read_all(stdout);
                match stderr.join() {
                    Ok(stderr) => (stdout, stderr),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }),
        };
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout: stdout?,
            stderr: stderr?,
        })
    }
}

/// Everything `stream` yields until EOF (nothing for no stream).
fn read_all<R: Read>(stream: Option<R>) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    if let Some(mut stream) = stream {
        stream.read_to_end(&mut all)?;
    }
    Ok(all)
}

/// A pidfd for the unreaped child `pid`, or `None` where the kernel offers none.
fn open_pidfd(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1; no memory is
    // passed. The pid is our unreaped child's, so it cannot name another process.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = std::os::fd::RawFd::try_from(fd)
        .ok()
        .filter(|&fd| fd >= 0)?;
    // SAFETY: a new fd (close-on-exec by default) that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
