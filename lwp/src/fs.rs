//! Files whose calls park only the calling ULT: [`File`], [`OpenOptions`] and free functions
//! ([`read()`], [`write()`], [`metadata()`], ...) with std's names and semantics.
//!
//! Disks have no readiness to wait for (epoll says a regular file is always ready, and then
//! `read` blocks in the kernel anyway), so every call here runs the std operation on the
//! blocking pool ([`crate::blocking()`]): inside a ULT only that ULT waits and its LWP runs
//! others, which is what keeps a many-to-one runtime alive while a `sync_all` takes 50 ms. On
//! a plain kernel thread (no ULT) the std call runs inline, with no copy and no hand-off.
//!
//! Invariants:
//! - A [`File`] is an `Arc` of one `std::fs::File`, so it is one open file description with
//!   one kernel file offset. Whichever pool thread runs an operation, it reads, writes or
//!   seeks that shared offset, exactly as std does from any thread. Operations of one ULT
//!   are sequential (the ULT waits for each), so its reads and writes see its own seeks in
//!   program order. Two ULTs using one `&File` (or handles made by [`File::try_clone`],
//!   which share the offset, as std's do) race on the offset exactly as two kernel threads
//!   would with std; open the file twice for independent offsets.
//! - A pool job never borrows the caller's memory: buffers are copied in and out (at most
//!   [`MAX_CHUNK`] bytes per `read`/`write` call; `write_all` goes chunk by chunk), because a
//!   ULT can be destroyed while parked and its stack must not be written afterwards. A job
//!   that is still running when its ULT goes away finishes on the pool and its result is
//!   dropped; the `Arc` keeps the file open until then.
//! - A job that panics resumes its panic in the calling ULT ([`crate::blocking()`]'s rule).
//!
//! Who may call what: everything here may be called from any ULT of any runtime and from
//! plain kernel threads. `Read`, `Write` and `Seek` are implemented for `File` and for
//! `&File`, like std. [`read_dir`] reads the whole directory in one pool job and iterates
//! over what it read; a `DirEntry`'s own `metadata()` then runs on the calling thread
//! (use [`metadata()`] on its path to keep that off the LWP).

use std::fs::{Metadata, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::blocking::blocking;

/// Largest byte count one `read` or `write` call hands to the pool (larger buffers get a
/// short read or write, which `Read`/`Write` allow; `write_all` and `read_to_end` loop).
pub const MAX_CHUNK: usize = 8 << 20;

/// Runs `f(path)` on the blocking pool inside a ULT, inline outside.
fn with_path<T, F>(path: &Path, f: F) -> io::Result<T>
where
    F: FnOnce(&Path) -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    if !ult::in_ult() {
        return f(path);
    }
    let path = path.to_path_buf();
    blocking(move || f(&path))
}

/// An open file, like `std::fs::File`, whose operations park only the calling ULT.
///
/// ```
/// use std::io::{Read, Seek, SeekFrom, Write};
/// let rt = lwp::Runtime::new(lwp::Model::ManyToOne).unwrap();
/// let path = std::env::temp_dir().join(format!("lwp-fs-doc-{}", std::process::id()));
/// let got = rt.run(move || {
///     let mut f = lwp::fs::File::options()
///         .read(true)
///         .write(true)
///         .create(true)
///         .truncate(true)
///         .open(&path)
///         .unwrap();
///     f.write_all(b"hello, world").unwrap();
///     f.seek(SeekFrom::Start(7)).unwrap();
///     let mut s = String::new();
///     f.read_to_string(&mut s).unwrap();
///     lwp::fs::remove_file(&path).unwrap();
///     s
/// });
/// assert_eq!(got, "world");
/// ```
#[derive(Debug)]
pub struct File {
    inner: Arc<std::fs::File>,
}

impl File {
    /// Opens `path` read-only (`std::fs::File::open`).
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    /// Opens `path` write-only, creating it or truncating it (`std::fs::File::create`).
    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// Creates `path` read-write, failing if it exists (`std::fs::File::create_new`).
    pub fn create_new<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    /// A blank [`OpenOptions`] (`std::fs::File::options`).
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps an open std file (no system call).
    pub fn from_std(file: std::fs::File) -> File {
        File {
            inner: Arc::new(file),
        }
    }

    /// The std file back. If a pool job of a destroyed ULT still holds the file, returns a
    /// duplicate descriptor sharing the same offset instead (`try_clone`'s error if none can
    /// be made).
    pub fn into_std(self) -> io::Result<std::fs::File> {
        match Arc::try_unwrap(self.inner) {
            Ok(f) => Ok(f),
            Err(shared) => shared.try_clone(),
        }
    }

    /// Runs `f` on the file, on the pool inside a ULT, inline outside.
    fn call<T, F>(&self, f: F) -> io::Result<T>
    where
        F: FnOnce(&std::fs::File) -> io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        if !ult::in_ult() {
            return f(&self.inner);
        }
        let file = self.inner.clone();
        blocking(move || f(&file))
    }

    /// The file's metadata (`fstat`).
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.call(|f| f.metadata())
    }

    /// Truncates or extends the file to `size` bytes; the offset is unchanged.
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        self.call(move |f| f.set_len(size))
    }

    /// Flushes data and metadata to the device (`fsync`).
    pub fn sync_all(&self) -> io::Result<()> {
        self.call(|f| f.sync_all())
    }

    /// Flushes data, and only the metadata needed to read it back, to the device
    /// (`fdatasync`).
    pub fn sync_data(&self) -> io::Result<()> {
        self.call(|f| f.sync_data())
    }

    /// Changes the file's permissions (`fchmod`).
    pub fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        self.call(move |f| f.set_permissions(perm))
    }

    /// A new handle to the same open file description (so the same offset), like std.
    pub fn try_clone(&self) -> io::Result<File> {
        self.call(|f| f.try_clone()).map(File::from_std)
    }
}

impl Read for &File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !ult::in_ult() {
            return (&*self.inner).read(buf);
        }
        let len = buf.len().min(MAX_CHUNK);
        let data = self.call(move |mut f| {
            let mut v = vec![0u8; len];
            let n = f.read(&mut v)?;
            v.truncate(n);
            Ok(v)
        })?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    /// Reads to EOF in one pool job (not one hand-off per buffer-full). As with std, bytes
    /// read before an error are appended all the same.
    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        if !ult::in_ult() {
            return (&*self.inner).read_to_end(buf);
        }
        let (data, result) = self.call(|mut f| {
            let mut v = Vec::new();
            let r = f.read_to_end(&mut v);
            Ok((v, r))
        })?;
        buf.extend_from_slice(&data);
        result
    }

    /// Like std: appends only if the new bytes are valid UTF-8 (else `InvalidData`, unless
    /// the read itself failed), in one pool job.
    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        let mut bytes = Vec::new();
        let result = self.read_to_end(&mut bytes);
        match String::from_utf8(bytes) {
            Ok(s) => {
                buf.push_str(&s);
                result
            }
            Err(_) => result.and(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            ))),
        }
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        (&*self).read_to_end(buf)
    }
    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        (&*self).read_to_string(buf)
    }
}

impl Write for &File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !ult::in_ult() {
            return (&*self.inner).write(buf);
        }
        let data = buf[..buf.len().min(MAX_CHUNK)].to_vec();
        self.call(move |mut f| f.write(&data))
    }

    /// Writes `buf` in pool jobs of at most [`MAX_CHUNK`] bytes each (`write_all` of each).
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if !ult::in_ult() {
            return (&*self.inner).write_all(buf);
        }
        for chunk in buf.chunks(MAX_CHUNK) {
            let data = chunk.to_vec();
            self.call(move |mut f| f.write_all(&data))?;
        }
        Ok(())
    }

    /// Nothing is buffered here (std's `File::flush` is a no-op too); see
    /// [`File::sync_all`] for durability.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        (&*self).write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for &File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.call(move |mut f| f.seek(pos))
    }
}

impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        (&*self).seek(pos)
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl From<std::fs::File> for File {
    fn from(file: std::fs::File) -> File {
        File::from_std(file)
    }
}

/// How to open a file, like `std::fs::OpenOptions`; [`OpenOptions::open`] parks only the
/// calling ULT (opening a FIFO, or a file on a slow network mount, can block for long).
#[derive(Debug, Clone)]
pub struct OpenOptions {
    inner: std::fs::OpenOptions,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// All options off (`std::fs::OpenOptions::new`).
    pub fn new() -> OpenOptions {
        OpenOptions {
            inner: std::fs::OpenOptions::new(),
        }
    }

    /// Read access.
    pub fn read(mut self, on: bool) -> OpenOptions {
        self.inner.read(on);
        self
    }

    /// Write access.
    pub fn write(mut self, on: bool) -> OpenOptions {
        self.inner.write(on);
        self
    }

    /// Append mode: every write goes to the end of the file (`O_APPEND`).
    pub fn append(mut self, on: bool) -> OpenOptions {
        self.inner.append(on);
        self
    }

    /// Truncate to 0 bytes when opened (needs write access).
    pub fn truncate(mut self, on: bool) -> OpenOptions {
        self.inner.truncate(on);
        self
    }

    /// Create the file if it does not exist.
    pub fn create(mut self, on: bool) -> OpenOptions {
        self.inner.create(on);
        self
    }

    /// Create the file, failing with `AlreadyExists` if it exists (`O_CREAT | O_EXCL`).
    pub fn create_new(mut self, on: bool) -> OpenOptions {
        self.inner.create_new(on);
        self
    }

    /// Permission bits for a newly created file (`OpenOptionsExt::mode`; default 0o666,
    /// masked by the umask).
    pub fn mode(mut self, mode: u32) -> OpenOptions {
        self.inner.mode(mode);
        self
    }

    /// Extra `open(2)` flags (`OpenOptionsExt::custom_flags`, e.g. `libc::O_DIRECT`).
    pub fn custom_flags(mut self, flags: i32) -> OpenOptions {
        self.inner.custom_flags(flags);
        self
    }

    /// Opens `path` with these options.
    pub fn open<P: AsRef<Path>>(&self, path: P) -> io::Result<File> {
        let opts = self.inner.clone();
        with_path(path.as_ref(), move |p| opts.open(p)).map(File::from_std)
    }
}

/// The whole file as bytes (`std::fs::read`), in one pool job.
pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    with_path(path.as_ref(), |p| std::fs::read(p))
}

/// The whole file as a `String` (`std::fs::read_to_string`; `InvalidData` if not UTF-8).
pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    with_path(path.as_ref(), |p| std::fs::read_to_string(p))
}

/// Creates or truncates `path` and writes `contents` (`std::fs::write`), in one pool job
/// (inside a ULT the contents are copied once to hand them to the pool).
pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    if !ult::in_ult() {
        return std::fs::write(path, contents);
    }
    let data = contents.as_ref().to_vec();
    with_path(path.as_ref(), move |p| std::fs::write(p, data))
}

/// Metadata of `path`, following symlinks (`std::fs::metadata`).
pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    with_path(path.as_ref(), |p| std::fs::metadata(p))
}

/// Metadata of `path` itself, not following a final symlink (`std::fs::symlink_metadata`).
pub fn symlink_metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    with_path(path.as_ref(), |p| std::fs::symlink_metadata(p))
}

/// Whether `path` exists; errors other than "not found" are returned (`std::fs::exists`).
pub fn try_exists<P: AsRef<Path>>(path: P) -> io::Result<bool> {
    with_path(path.as_ref(), |p| p.try_exists())
}

/// Removes a file (`std::fs::remove_file`).
pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    with_path(path.as_ref(), |p| std::fs::remove_file(p))
}

/// Creates a directory (`std::fs::create_dir`).
pub fn create_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    with_path(path.as_ref(), |p| std::fs::create_dir(p))
}

/// Creates a directory and its missing parents (`std::fs::create_dir_all`).
pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    with_path(path.as_ref(), |p| std::fs::create_dir_all(p))
}

/// Removes an empty directory (`std::fs::remove_dir`).
pub fn remove_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    with_path(path.as_ref(), |p| std::fs::remove_dir(p))
}

/// Removes a directory and everything in it (`std::fs::remove_dir_all`), in one pool job.
pub fn remove_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    with_path(path.as_ref(), |p| std::fs::remove_dir_all(p))
}

/// Renames `from` to `to`, replacing `to` if it is a file (`std::fs::rename`).
pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    let to: PathBuf = to.as_ref().to_path_buf();
    with_path(from.as_ref(), move |p| std::fs::rename(p, to))
}

/// Copies a file's contents and permissions (`std::fs::copy`); returns the bytes copied.
pub fn copy<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<u64> {
    let to: PathBuf = to.as_ref().to_path_buf();
    with_path(from.as_ref(), move |p| std::fs::copy(p, to))
}

/// The absolute path with symlinks resolved (`std::fs::canonicalize`).
pub fn canonicalize<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    with_path(path.as_ref(), |p| std::fs::canonicalize(p))
}

/// Sets the permissions of `path` (`std::fs::set_permissions`).
pub fn set_permissions<P: AsRef<Path>>(path: P, perm: Permissions) -> io::Result<()> {
    with_path(path.as_ref(), move |p| std::fs::set_permissions(p, perm))
}

/// The entries of a directory (`std::fs::read_dir`), read in one pool job: the iterator
/// yields what that job read, in the order the kernel gave them (no `.` or `..`).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("lwp-read-dir-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("a"), b"1")?;
/// let rt = lwp::Runtime::new(lwp::Model::ManyToOne)?;
/// let names = rt.run({
///     let dir = dir.clone();
///     move || -> std::io::Result<Vec<String>> {
///         lwp::fs::read_dir(&dir)?
///             .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
///             .collect()
///     }
/// })?;
/// assert_eq!(names, ["a"]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_dir<P: AsRef<Path>>(path: P) -> io::Result<ReadDir> {
    let entries = with_path(path.as_ref(), |p| {
        std::fs::read_dir(p).map(Iterator::collect::<Vec<_>>)
    })?;
    Ok(ReadDir(entries.into_iter()))
}

/// Iterator returned by [`read_dir`]: the entries one pool job read (an entry that failed to
/// read is an `Err` in its place, as with std).
#[derive(Debug)]
pub struct ReadDir(std::vec::IntoIter<io::Result<std::fs::DirEntry>>);

impl Iterator for ReadDir {
    type Item = io::Result<std::fs::DirEntry>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

/// The target of a symbolic link (`std::fs::read_link`).
pub fn read_link<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    with_path(path.as_ref(), |p| std::fs::read_link(p))
}

/// Makes `link` a new name for the file `original` (`std::fs::hard_link`).
pub fn hard_link<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
    let link: PathBuf = link.as_ref().to_path_buf();
    with_path(original.as_ref(), move |p| std::fs::hard_link(p, link))
}
