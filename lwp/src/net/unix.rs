//! Unix domain sockets that park only the calling ULT: [`UnixListener`], [`UnixStream`] and
//! [`UnixDatagram`], with the method names of `std::os::unix::net`, on the same readiness
//! machinery as the TCP types (see the parent module's header).
//!
//! `connect` is non-blocking underneath; only when the listener's backlog is full (the kernel
//! answers `EAGAIN` and offers no readiness event for "room in the backlog") does it make a
//! blocking connect on the blocking pool, so even then only the ULT waits.
//!
//! A datagram send to a receiver whose queue is full (`net.unix.max_dgram_qlen`, 10 by
//! default) fails with `EAGAIN`. Each queued datagram's memory is charged to its sender, so
//! the receiver taking one frees the sender's write space, and the kernel's write-space
//! callback wakes the sender's epoll entry: `send` and `send_to` (no connected peer) alike
//! wait for readiness, as the stream types do (the test sends five queues' worth both
//! ways).
//!
//! Who may call what: anyone, as with the TCP types.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{Dir, Io};

/// A Unix domain socket server, like `std::os::unix::net::UnixListener`, whose `accept`
/// parks only the ULT.
///
/// ```
/// use std::io::{Read, Write};
/// use lwp::net::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("lwp-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("echo.sock");
/// let _ = std::fs::remove_file(&path);
/// let rt = lwp::Runtime::builder().lwps(1).build()?;
/// let reply = rt.run(move || -> std::io::Result<[u8; 4]> {
///     let listener = UnixListener::bind(&path)?;
///     let server = lwp::spawn(move || -> std::io::Result<()> {
///         let (mut conn, _) = listener.accept()?;
///         let mut buf = [0u8; 4];
///         conn.read_exact(&mut buf)?;
///         conn.write_all(&buf)
///     });
///     let mut client = UnixStream::connect(&path)?;
///     client.write_all(b"ping")?;
///     let mut buf = [0u8; 4];
///     client.read_exact(&mut buf)?;
///     server.join().unwrap()?;
///     Ok(buf)
/// })?;
/// assert_eq!(&reply, b"ping");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UnixListener {
    // `io` first: it must drop (deregistering the fd) before `inner` closes the fd.
    io: Io,
    inner: std::os::unix::net::UnixListener,
}

impl UnixListener {
    /// Binds a new socket at `path` (which must not exist yet, as with std).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::from_std(std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Accepts a connection, parking the ULT until one arrives.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, addr) = self.io.retry(self.inner.as_raw_fd(), Dir::Read, None, || {
            self.inner.accept()
        })?;
        Ok((UnixStream::from_std(s)?, addr))
    }

    /// An iterator over incoming connections (never `None`), like std's.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        UnixListener::from_std(self.inner.try_clone()?)
    }

    /// Pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }
}

/// Iterator returned by [`UnixListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<UnixStream>;
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A Unix domain stream connection, like `std::os::unix::net::UnixStream`, whose reads and
/// writes park only the ULT.
#[derive(Debug)]
pub struct UnixStream {
    // `io` first: it must drop (deregistering the fd) before `inner` closes the fd.
    io: Io,
    inner: std::os::unix::net::UnixStream,
}

impl UnixStream {
    /// Connects to the socket bound at `path`.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        match socket.connect(&socket2::SockAddr::unix(path)?) {
            Ok(()) => UnixStream::from_std(OwnedFd::from(socket).into()),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                // The backlog is full and epoll reports nothing when it drains: wait for
                // room in a blocking connect, on the blocking pool.
                let path = path.to_path_buf();
                let std = crate::blocking(move || std::os::unix::net::UnixStream::connect(path))?;
                UnixStream::from_std(std)
            }
            Err(e) => Err(e),
        }
    }

    /// A connected pair of streams, like std's `UnixStream::pair`.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }
}

/// A Unix domain datagram socket, like `std::os::unix::net::UnixDatagram`, whose receives
/// and sends park only the ULT (a send waits while the receiver's queue is full).
///
/// ```
/// use lwp::net::UnixDatagram;
/// let rt = lwp::Runtime::new(lwp::Model::ManyToOne)?;
/// let got = rt.run(|| -> std::io::Result<Vec<u8>> {
///     let (a, b) = UnixDatagram::pair()?;
///     let sender = lwp::spawn(move || {
///         lwp::sleep(std::time::Duration::from_millis(10));
///         a.send(b"one datagram")
///     });
///     let mut buf = [0u8; 64];
///     let n = b.recv(&mut buf)?; // parks this ULT until the datagram arrives
///     sender.join().expect("the sender does not panic")?;
///     Ok(buf[..n].to_vec())
/// })?;
/// assert_eq!(got, b"one datagram");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UnixDatagram {
    // `io` first: it must drop (deregistering the fd) before `inner` closes the fd.
    io: Io,
    inner: std::os::unix::net::UnixDatagram,
}

impl UnixDatagram {
    /// A socket bound at `path` (which must not exist yet, as with std).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::bind(path)?)
    }

    /// A socket bound to no address (it can send, and receive replies only once connected
    /// or if the peer knows it some other way).
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::unbound()?)
    }

    /// A connected pair of sockets, like std's `UnixDatagram::pair`.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Sets the default peer for `send` and `recv` (a local operation: it does not wait).
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.inner.connect(path)
    }

    /// Receives one datagram and its sender's address.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.timed(self.inner.as_raw_fd(), Dir::Read, || {
            self.inner.recv_from(buf)
        })
    }

    /// Receives one datagram from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .timed(self.inner.as_raw_fd(), Dir::Read, || self.inner.recv(buf))
    }

    /// Sends one datagram to the connected peer, waiting while its queue is full.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .timed(self.inner.as_raw_fd(), Dir::Write, || self.inner.send(buf))
    }

    /// Sends one datagram to the socket bound at `path`, waiting while its queue is full
    /// (see the module header).
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.io.timed(self.inner.as_raw_fd(), Dir::Write, || {
            self.inner.send_to(buf, path)
        })
    }
}

/// What [`UnixStream`] and [`UnixDatagram`] share beyond their I/O: addresses, shutdown,
/// `try_clone` (its own timeouts) and `SO_ERROR`.
macro_rules! unix_socket_common {
    ($t:ident) => {
        impl $t {
            /// The local (bound) address.
            pub fn local_addr(&self) -> io::Result<SocketAddr> {
                self.inner.local_addr()
            }

            /// The connected peer's address.
            pub fn peer_addr(&self) -> io::Result<SocketAddr> {
                self.inner.peer_addr()
            }

            /// Shuts down the read, write or both halves.
            pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
                self.inner.shutdown(how)
            }

            /// Another handle to the same socket (with its own timeouts).
            pub fn try_clone(&self) -> io::Result<$t> {
                $t::from_std(self.inner.try_clone()?)
            }

            /// Pending socket error (`SO_ERROR`).
            pub fn take_error(&self) -> io::Result<Option<io::Error>> {
                self.inner.take_error()
            }
        }
    };
}

unix_socket_common!(UnixStream);
unix_socket_common!(UnixDatagram);
stream_impls!(UnixStream);
timeout_impls!(UnixDatagram);
fd_impls!(UnixDatagram, std::os::unix::net::UnixDatagram);
fd_impls!(UnixListener, std::os::unix::net::UnixListener);
fd_impls!(UnixStream, std::os::unix::net::UnixStream);
