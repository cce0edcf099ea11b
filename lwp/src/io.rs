//! Pipes and other pollable file descriptors that look blocking but park only the calling
//! ULT, and the process's standard input ([`stdin`]): [`pipe`], whose [`PipeReader`] and [`PipeWriter`] are `std::io::pipe`'s ends made
//! non-blocking underneath, and [`Pollable`], which does the same for any file descriptor
//! that epoll can watch: a FIFO, a child process's stdout, a terminal, an eventfd, a socket
//! of a kind [`crate::net`] has no type for.
//!
//! They wait as `lwp::net`'s sockets do (see that module): an operation tries the system
//! call and, on `EWOULDBLOCK`, waits for readiness, on the runtime's reactor inside a ULT of
//! an `lwp` runtime (only the ULT parks; its LWP runs others) and in `poll(2)` anywhere else
//! (the kernel thread blocks, as with std). Timeouts are deadlines on those waits and fail
//! with [`io::ErrorKind::TimedOut`]. A pipe read that returns fewer bytes than asked proves
//! the pipe empty, so the next read waits for a new edge without a failing `read` first, as
//! for stream sockets (a packet-mode pipe, `O_DIRECT`, returns one packet per read: wrap
//! such an fd in a [`Pollable`]); [`Pollable`] makes no such assumption (a terminal in
//! canonical mode returns one line per read however many are buffered).
//!
//! Invariants and caveats:
//! - Every type here declares its `io` field (the reactor registration) before the fd it
//!   watches, so the fd is deregistered while still open, as in `lwp::net`; `into_std` and
//!   `into_inner` drop the registration before they hand the fd on and switch it back to
//!   blocking mode.
//! - `O_NONBLOCK` belongs to the open file description, not to the fd: duplicates of it (a
//!   `try_clone`, the copy a child process inherited, the terminal another process shares)
//!   become non-blocking too, as with tokio's and async-io's wrappers. Hand a pipe end to a
//!   child process through `into_std`, which switches it back. A [`Pollable`] switches its
//!   fd back when dropped if it found it in blocking mode, so wrapping a shared terminal
//!   leaves it as it was.
//! - [`Pollable::new`] refuses regular files and directories: they are always ready, so a
//!   read of a slow disk would block the LWP however it waited. [`crate::fs`] runs file I/O
//!   on the blocking pool instead.
//! - [`Pollable`] hands out only shared references to what it wraps: through a `&mut` a
//!   caller could replace the fd under its registration.
//! - [`stdin`] reads on the blocking pool instead: the terminal a process reads is shared
//!   with its shell, which a non-blocking flag left behind (by a crash) would break, and a
//!   redirected stdin may be a regular file, which epoll refuses.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::time::Duration;

use crate::net::{set_nonblocking, Io};
use crate::reactor::Dir;

/// A new anonymous pipe, like `std::io::pipe`: bytes written to the [`PipeWriter`] come out
/// of the [`PipeReader`]. A read of an empty pipe, or a write to a full one, parks only the
/// calling ULT; a read returns 0 (EOF) once every writer is gone.
///
/// ```
/// use std::io::{Read, Write};
/// let rt = lwp::Runtime::new(lwp::Model::ManyToOne)?;
/// let text = rt.run(|| -> std::io::Result<String> {
///     let (mut reader, mut writer) = lwp::io::pipe()?;
///     // The writer sleeps first: the reader parks meanwhile, and the one LWP runs on.
///     let producer = lwp::spawn(move || {
///         lwp::sleep(std::time::Duration::from_millis(20));
///         writer.write_all(b"through the pipe")
///     });
///     let mut text = String::new();
///     reader.read_to_string(&mut text)?; // EOF when the writer is dropped
///     producer.join().expect("the producer does not panic")?;
///     Ok(text)
/// })?;
/// assert_eq!(text, "through the pipe");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A child process gets its end back in blocking mode, through `into_std`:
///
/// ```
/// use std::io::Read;
/// use std::process::{Command, Stdio};
/// let rt = lwp::Runtime::new(lwp::Model::ManyToMany { lwps: 2 })?;
/// let out = rt.run(|| -> std::io::Result<String> {
///     let (mut reader, writer) = lwp::io::pipe()?;
///     let mut child = Command::new("echo")
///         .arg("hello")
///         .stdout(Stdio::from(writer.into_std()?))
///         .spawn()?;
///     let mut out = String::new();
///     reader.read_to_string(&mut out)?; // parks this ULT until the child exits
///     lwp::blocking(move || child.wait())?;
///     Ok(out)
/// })?;
/// assert_eq!(out, "hello\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn pipe() -> io::Result<(PipeReader, PipeWriter)> {
    let (reader, writer) = io::pipe()?;
    Ok((PipeReader::from_std(reader)?, PipeWriter::from_std(writer)?))
}

/// The read end of a [`pipe`]: `Read` parks only the calling ULT while the pipe is empty.
#[derive(Debug)]
pub struct PipeReader {
    // Field order matters: `io` drops (deregisters) before the fd closes.
    io: Io,
    inner: io::PipeReader,
}

/// The write end of a [`pipe`]: `Write` parks only the calling ULT while the pipe is full.
#[derive(Debug)]
pub struct PipeWriter {
    // Field order matters: `io` drops (deregisters) before the fd closes.
    io: Io,
    inner: io::PipeWriter,
}

impl PipeReader {
    /// Another handle to the same read end (it shares the non-blocking mode).
    pub fn try_clone(&self) -> io::Result<PipeReader> {
        PipeReader::from_std(self.inner.try_clone()?)
    }
}

impl PipeWriter {
    /// Another handle to the same write end; the reader sees EOF only when every handle is
    /// gone.
    pub fn try_clone(&self) -> io::Result<PipeWriter> {
        PipeWriter::from_std(self.inner.try_clone()?)
    }
}

read_impls!(PipeReader);
write_impls!(PipeWriter);
fd_impls!(PipeReader, io::PipeReader);
fd_impls!(PipeWriter, io::PipeWriter);

/// Any file descriptor that epoll can watch, made to look blocking while parking only the
/// calling ULT: a FIFO, a terminal, an eventfd, a child process's pipe, a socket type that
/// [`crate::net`] lacks. `Read` and `Write` are implemented when the wrapped type has them;
/// [`Pollable::read_with`] and [`Pollable::write_with`] run any other non-blocking operation
/// (a `recvmsg`, an eventfd read) the same way.
///
/// `new` switches the fd to non-blocking mode (for every duplicate of it too: see the
/// module header); `into_inner`, or dropping the `Pollable`, switches it back if it was in
/// blocking mode before. (A process that exits without dropping it, or aborts, leaves a
/// shared terminal non-blocking for the shell after it.)
///
/// ```
/// use std::io::Read;
/// use std::process::{Command, Stdio};
/// let rt = lwp::Runtime::new(lwp::Model::ManyToOne)?;
/// let out = rt.run(|| -> std::io::Result<String> {
///     let mut child = Command::new("sh")
///         .args(["-c", "sleep 0.05; echo done"])
///         .stdout(Stdio::piped())
///         .spawn()?;
///     let stdout = child.stdout.take().expect("piped");
///     let mut stdout = lwp::io::Pollable::new(stdout)?;
///     // Another ULT keeps running on the only LWP while the read waits for the child.
///     let ticker = lwp::spawn(|| (0..5).for_each(|_| lwp::sleep(std::time::Duration::from_millis(1))));
///     let mut out = String::new();
///     stdout.read_to_string(&mut out)?;
///     ticker.join().expect("the ticker does not panic");
///     lwp::blocking(move || child.wait())?;
///     Ok(out)
/// })?;
/// assert_eq!(out, "done\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Pollable<T> {
    // Field order matters: `io` drops (deregisters) and `restore` runs before `inner` closes
    // the fd.
    io: Io,
    restore: RestoreBlocking,
    inner: T,
}

/// Switches an fd that [`Pollable::new`] found in blocking mode back to it when the
/// `Pollable` goes away, so that a shared open file description (a terminal, a pipe a child
/// process holds) is left as it was found. It holds only the fd's number: its `Pollable`
/// declares it before `inner`, which keeps the fd open until this has run.
struct RestoreBlocking(Option<RawFd>);

impl RestoreBlocking {
    /// Restores now, reporting a failure (the drop ignores it).
    fn restore(mut self) -> io::Result<()> {
        match self.0.take() {
            // SAFETY: as in `drop`: the owning `Pollable`'s `inner` still holds the fd open.
            Some(fd) => set_nonblocking(unsafe { BorrowedFd::borrow_raw(fd) }, false),
            None => Ok(()),
        }
    }
}

impl Drop for RestoreBlocking {
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            // SAFETY: this guard's `Pollable` declares it before `inner`, which owns the fd
            // and closes it only after this runs (or, in `into_inner`, hands it on after).
            let _ = set_nonblocking(unsafe { BorrowedFd::borrow_raw(fd) }, false);
        }
    }
}

/// Whether `O_NONBLOCK` is set on `fd`.
fn is_nonblocking(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: F_GETFL on an open (borrowed) fd only reads its status flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & libc::O_NONBLOCK != 0)
}

impl<T: AsFd> Pollable<T> {
    /// Wraps `inner`, switching its fd to non-blocking mode. Regular files and directories
    /// are refused with [`io::ErrorKind::InvalidInput`] (see the module header).
    pub fn new(inner: T) -> io::Result<Pollable<T>> {
        let kind = std::fs::File::from(inner.as_fd().try_clone_to_owned()?)
            .metadata()?
            .file_type();
        if kind.is_file() || kind.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "lwp::io::Pollable cannot wait for a regular file or a directory: it is always \
                 ready, so its reads would block the LWP; use lwp::fs, which runs them on the \
                 blocking pool",
            ));
        }
        let restore = if is_nonblocking(inner.as_fd())? {
            RestoreBlocking(None) // already non-blocking: leave it so
        } else {
            set_nonblocking(inner.as_fd(), true)?;
            RestoreBlocking(Some(inner.as_fd().as_raw_fd()))
        };
        Ok(Pollable {
            io: Io::default(),
            restore,
            inner,
        })
    }

    /// The wrapped value (its fd is in non-blocking mode: a direct read may return
    /// `WouldBlock`).
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped value, its fd back in the mode `new` found it in (timeouts set here are
    /// not carried over). Dropping the `Pollable` restores the mode too.
    pub fn into_inner(self) -> io::Result<T> {
        let Pollable { io, restore, inner } = self;
        drop(io); // deregister before handing the fd on
        restore.restore()?;
        Ok(inner)
    }

    /// Waits (parking only the ULT) until the fd may be readable. Honours the read timeout.
    pub fn readable(&self) -> io::Result<()> {
        self.io.ready(self.raw_fd(), Dir::Read)
    }

    /// Waits (parking only the ULT) until the fd may be writable. Honours the write timeout.
    pub fn writable(&self) -> io::Result<()> {
        self.io.ready(self.raw_fd(), Dir::Write)
    }

    /// Runs the non-blocking read-side operation `op` until it returns something other than
    /// `WouldBlock`, waiting for readability in between (within the read timeout).
    ///
    /// ```
    /// use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    /// // An eventfd: a counter that a read takes and resets, and is readable while nonzero.
    /// // SAFETY: eventfd returns a new fd that nothing else owns (checked below).
    /// let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    /// assert!(fd >= 0);
    /// let event = lwp::io::Pollable::new(unsafe { OwnedFd::from_raw_fd(fd) })?;
    /// let rt = lwp::Runtime::new(lwp::Model::ManyToOne)?;
    /// let count = rt.run(move || {
    ///     let event = &event;
    ///     lwp::scope(|s| {
    ///         s.spawn(|| {
    ///             lwp::sleep(std::time::Duration::from_millis(10));
    ///             let add = 3u64.to_ne_bytes();
    ///             // SAFETY: writes 8 bytes from a live buffer to an open fd.
    ///             unsafe { libc::write(event.get_ref().as_raw_fd(), add.as_ptr().cast(), 8) };
    ///         });
    ///         event.read_with(|fd| {
    ///             let mut buf = [0u8; 8];
    ///             // SAFETY: reads at most 8 bytes into a live buffer from an open fd.
    ///             match unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) } {
    ///                 8 => Ok(u64::from_ne_bytes(buf)),
    ///                 _ => Err(std::io::Error::last_os_error()),
    ///             }
    ///         })
    ///     })
    /// })?;
    /// assert_eq!(count, 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io.timed(self.raw_fd(), Dir::Read, || op(&self.inner))
    }

    /// The write side of [`Pollable::read_with`].
    pub fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io.timed(self.raw_fd(), Dir::Write, || op(&self.inner))
    }

    /// Read deadline per operation; `None` waits forever. `Some(0)` is an error, like std's
    /// sockets.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.io.set_timeout(Dir::Read, t)
    }

    /// Write deadline per operation, as [`Pollable::set_read_timeout`].
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.io.set_timeout(Dir::Write, t)
    }

    /// The read timeout (a `Result` like the socket types' getters).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.timeout(Dir::Read))
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.timeout(Dir::Write))
    }

    fn raw_fd(&self) -> RawFd {
        self.inner.as_fd().as_raw_fd()
    }

    /// [`Pollable::read_with`] through a `&mut` of the wrapped value, for `Read` on types
    /// that read only through one; private, so no caller can swap the fd (module header).
    fn read_with_mut<R>(&mut self, mut op: impl FnMut(&mut T) -> io::Result<R>) -> io::Result<R> {
        let fd = self.raw_fd();
        let Pollable { io, inner, .. } = self;
        io.timed(fd, Dir::Read, || op(inner))
    }

    /// The write side of `read_with_mut`.
    fn write_with_mut<R>(&mut self, mut op: impl FnMut(&mut T) -> io::Result<R>) -> io::Result<R> {
        let fd = self.raw_fd();
        let Pollable { io, inner, .. } = self;
        io.timed(fd, Dir::Write, || op(inner))
    }
}

impl<T: AsFd + Read> Read for Pollable<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with_mut(|inner| inner.read(buf))
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_with_mut(|inner| inner.read_vectored(bufs))
    }
}

impl<T: AsFd> Read for &Pollable<T>
where
    for<'a> &'a T: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(|mut inner| inner.read(buf))
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_with(|mut inner| inner.read_vectored(bufs))
    }
}

impl<T: AsFd + Write> Write for Pollable<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with_mut(|inner| inner.write(buf))
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_with_mut(|inner| inner.write_vectored(bufs))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.write_with_mut(|inner| inner.flush())
    }
}

impl<T: AsFd> Write for &Pollable<T>
where
    for<'a> &'a T: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(|mut inner| inner.write(buf))
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_with(|mut inner| inner.write_vectored(bufs))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.write_with(|mut inner| inner.flush())
    }
}

impl<T: AsFd> AsFd for Pollable<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl<T: AsFd> AsRawFd for Pollable<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.raw_fd()
    }
}

impl<T: fmt::Debug> fmt::Debug for Pollable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pollable")
            .field("inner", &self.inner)
            .field("io", &self.io)
            .finish()
    }
}

/// Bytes one [`Stdin`] read hands to the pool at most (a larger buffer gets a short read).
const STDIN_CHUNK: usize = 64 * 1024;

/// The process's standard input, read on the blocking pool ([`crate::blocking()`]): a read
/// that waits for the user, or for the other end of a pipe, parks only the calling ULT, and
/// the fd keeps its blocking mode (see the module header). Reads go through std's
/// `std::io::stdin()`, so they share its buffer with any other reader in the process.
///
/// ```no_run
/// let rt = lwp::Runtime::new(lwp::Model::ManyToOne)?;
/// rt.run(|| -> std::io::Result<()> {
///     let mut line = String::new();
///     lwp::io::stdin().read_line(&mut line)?; // other ULTs run while the user types
///     println!("you said {}", line.trim_end());
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn stdin() -> Stdin {
    Stdin { _private: () }
}

/// A handle to the standard input, from [`stdin`].
#[derive(Debug, Clone, Copy)]
pub struct Stdin {
    _private: (),
}

impl Stdin {
    /// Appends the next line (with its `\n`, if any) to `buf` and returns its length in
    /// bytes; 0 at EOF. Like `std::io::Stdin::read_line`.
    pub fn read_line(&self, buf: &mut String) -> io::Result<usize> {
        let line = crate::blocking(|| {
            let mut line = String::new();
            io::stdin().read_line(&mut line).map(|_| line)
        })?;
        buf.push_str(&line);
        Ok(line.len())
    }

    /// The remaining lines, without their line endings, like `std::io::Stdin::lines`.
    pub fn lines(self) -> impl Iterator<Item = io::Result<String>> {
        std::iter::from_fn(move || {
            let mut line = String::new();
            match self.read_line(&mut line) {
                Ok(0) => None,
                Ok(_) => {
                    if line.ends_with('\n') {
                        line.pop();
                        if line.ends_with('\r') {
                            line.pop();
                        }
                    }
                    Some(Ok(line))
                }
                Err(e) => Some(Err(e)),
            }
        })
    }
}

impl Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(STDIN_CHUNK);
        // The pool job reads into its own buffer: a ULT's stack must never be written by
        // a job that may outlive it (the rule of `lwp::fs`).
        let data = crate::blocking(move || {
            let mut data = vec![0u8; want];
            let n = io::stdin().read(&mut data)?;
            data.truncate(n);
            Ok::<_, io::Error>(data)
        })?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }
}
