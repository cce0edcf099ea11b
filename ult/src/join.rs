//! Join handles and the public per-ULT handle.
//!
//! A [`JoinHandle`] owns the right to take the ULT's result. Joining registers the joiner's
//! [`crate::Unparker`] in the ULT's header and parks until the ULT completes (the handshake is
//! described in [`crate::raw`]): a ULT joiner parks only itself, a kernel-thread joiner blocks
//! its thread. Dropping a handle detaches the ULT, as with `std::thread`.

use crate::raw::{CellRef, RawUlt, UltId};

/// The panic payload `join` returns for a ULT that never finished because its runtime shut
/// down and cancelled it (a `&'static str`).
pub const CANCELLED: &str = "the ULT was cancelled: its runtime shut down before it finished";

/// A handle to a ULT, like `std::thread::Thread`: id, name, unpark.
#[derive(Clone, Debug)]
pub struct Ult {
    raw: RawUlt,
}

impl Ult {
    pub(crate) fn from_raw(raw: RawUlt) -> Ult {
        Ult { raw }
    }

    /// The ULT's process-unique id.
    pub fn id(&self) -> UltId {
        self.raw.id()
    }

    /// The ULT's name, if it was given one with [`crate::Builder::name`].
    pub fn name(&self) -> Option<&str> {
        self.raw.name()
    }

    /// Wakes the ULT if it is parked, or makes its next park return at once.
    pub fn unpark(&self) {
        self.raw.unparker().unpark();
    }

    /// An [`crate::Unparker`] for this ULT.
    pub fn unparker(&self) -> crate::Unparker {
        self.raw.unparker()
    }

    /// Usable stack size in bytes.
    pub fn stack_size(&self) -> usize {
        self.raw.stack_size()
    }
}

/// An owned permission to join a ULT (wait for it and take its result), like
/// `std::thread::JoinHandle`.
pub struct JoinHandle<T> {
    cell: CellRef<T>,
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.cell.header.id())
            .finish()
    }
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(cell: CellRef<T>) -> JoinHandle<T> {
        JoinHandle { cell }
    }

    /// Waits for the ULT to finish and returns its result: `Ok(value)`, or `Err(payload)` if
    /// it panicked, exactly like `std::thread::JoinHandle::join`. A ULT its runtime cancelled
    /// at shutdown returns `Err` with the payload [`CANCELLED`].
    ///
    /// Inside a ULT only the caller parks; on a plain kernel thread the thread blocks.
    /// Inlined so the park switch sits at the caller's call depth (see `yield_now`).
    ///
    /// ```
    /// let outcome = ult::run(|| ult::spawn(|| -> u32 { panic!("oops") }).join());
    /// let payload = outcome.unwrap_err();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"oops"));
    /// ```
    #[inline]
    pub fn join(self) -> std::thread::Result<T> {
        let header = &self.cell.header;
        if !header.is_finished()
            && !crate::raw::help_until_finished(header)
            && header.register_join_waiter(crate::unparker())
        {
            while !header.is_finished() {
                crate::park();
            }
        }
        // A ULT cancelled at its runtime's shutdown finished without a result.
        self.cell
            .take_result()
            .unwrap_or_else(|| Err(Box::new(CANCELLED)))
    }

    /// Whether the ULT has finished (returned or panicked). Does not block.
    ///
    /// ```
    /// ult::run(|| {
    ///     let child = ult::spawn(|| 42);
    ///     assert!(!child.is_finished()); // queued, not run yet
    ///     ult::yield_now();
    ///     assert!(child.is_finished());
    ///     assert_eq!(child.join().unwrap(), 42);
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.cell.header.is_finished()
    }

    /// The ULT this handle joins.
    pub fn ult(&self) -> Ult
    where
        T: Send + 'static,
    {
        Ult::from_raw(self.cell.raw())
    }

    /// The ULT's id.
    pub fn id(&self) -> UltId {
        self.cell.header.id()
    }
}
