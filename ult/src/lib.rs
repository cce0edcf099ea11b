//! # ult: user-level threads
//!
//! Stackful green threads (ULTs) on [`corosensei`] coroutines (reused from one ULT to the
//! next) on pooled, guard-paged stacks, with the API of `std::thread`: [`spawn`], [`Builder`], [`JoinHandle::join`] returning the
//! panic payload, [`yield_now`], [`park()`] / [`Unparker::unpark`], [`current`], and
//! ULT-local storage ([`local!`]) as the safe replacement for `thread_local!`.
//!
//! This crate knows nothing about kernel threads: it provides the green thread itself
//! ([`raw`]: the coroutine, its run state, the [`raw::Schedule`] trait a scheduler implements)
//! and one scheduler, the many-to-one [`run`] executor (every ULT on the calling kernel
//! thread). The `lwp` crate builds the one-to-one and many-to-many models on the same ULTs,
//! so code written against this API runs under all three.
//!
//! ```
//! let answer = ult::run(|| {
//!     let child = ult::Builder::new()
//!         .name("worker".into())
//!         .spawn(|| {
//!             assert_eq!(ult::current().name(), Some("worker"));
//!             ult::yield_now();
//!             6 * 7
//!         })
//!         .expect("spawn failed");
//!     child.join().unwrap()
//! });
//! assert_eq!(answer, 42);
//! ```
//!
//! ## Limits, stated plainly
//! - **Blocking system calls block the kernel thread**, and under [`run`] that is every ULT:
//!   this is the lecture's point about user-level threads. Use `lwp` for I/O that parks only
//!   the ULT.
//! - **Stacks** are [`stack::DEFAULT_STACK_SIZE`] (256 KiB of address space, committed page by
//!   page) unless [`Builder::stack_size`] says otherwise. Overflowing one is caught at its
//!   guard page and aborts the process with a message naming the ULT, like std.
//! - **Memory mappings**: on Linux 6.13 and later a guard page is a page-table marker
//!   (`MADV_GUARD_INSTALL`), so stacks side by side share one mapping and the number of live
//!   ULTs is bounded by memory (33,765 parked ULTs added 7 mappings in this crate's tests).
//!   On older kernels, or with `ULT_GUARD_PAGES=mprotect` in the environment, each live ULT
//!   holds two (stack + `PROT_NONE` guard), and at Linux's default `vm.max_map_count` of
//!   65530 about 32,000 can be alive at once ([`stack::guard_kind`] tells which). Either way,
//!   a spawn that would leave fewer than [`stack::MAPPING_RESERVE`] mappings to the rest of
//!   the process returns an [`std::io::Error`] from [`Builder::spawn`] that says so and how
//!   to raise the limit.
//! - **Migration**: a started ULT resumes only on the kernel thread it last ran on, unless its
//!   spawner opted in with the `unsafe` [`Builder::migratable`]; see [`raw`].
//! - A ULT that is parked forever when its runtime goes away is leaked (its stack is not
//!   unwound on a foreign thread), like a thread left running at exit. Under [`run`], so is
//!   the executor's small shared state (its inbox) while any such ULT, or a join handle that
//!   left `run`, still points at it.

#![warn(
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]

mod executor;
mod join;
mod local;
mod overflow;
mod panic_context;
mod park;
pub mod raw;
mod runq;
pub mod stack;
pub mod state;
pub mod timer;

use std::io;
use std::sync::Arc;

pub use executor::{run, try_run};
pub use join::{JoinHandle, Ult, CANCELLED};
pub use local::LocalKey;
pub use park::{
    park, park_deadline, park_timeout, sleep, sleep_until, unparker, yield_now, Unparker,
};
pub use raw::UltId;

/// Configures a ULT before spawning it, like `std::thread::Builder`.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
    migratable: bool,
}

impl Builder {
    /// A builder with the default name (none) and stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the ULT (shown by [`current`], in panic messages and overflow reports).
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// Usable stack size in bytes, rounded up to whole pages and to at least
    /// [`stack::MIN_STACK_SIZE`].
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Allows schedulers to resume this ULT on a kernel thread other than the one it last
    /// ran on (by default only a never-started ULT may move).
    ///
    /// # Safety
    /// The ULT's code must not keep a reference to a thread-local, or anything derived from
    /// one (a `std::sync::MutexGuard`, `RefCell` borrow of a `thread_local!`, an object that
    /// caches the thread id, a `!Send` value), across any call that may switch: `yield_now`,
    /// `park`, blocking on a runtime primitive, I/O through the runtime, `join`. Use
    /// [`local!`] instead of `thread_local!` in such code.
    pub unsafe fn migratable(mut self) -> Builder {
        self.migratable = true;
        self
    }

    /// The name set with [`Builder::name`], if any.
    pub fn get_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The stack size this builder will use.
    pub fn get_stack_size(&self) -> usize {
        self.stack_size.unwrap_or(stack::DEFAULT_STACK_SIZE)
    }

    fn validate(&self) -> io::Result<()> {
        if let Some(name) = &self.name {
            if name.contains('\0') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "ULT name must not contain a NUL byte",
                ));
            }
        }
        if let Some(size) = self.stack_size {
            if size > (1usize << 40) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("ULT stack size {size} bytes is larger than 1 TiB"),
                ));
            }
        }
        Ok(())
    }

    /// The specification a scheduler needs to create the ULT (used by `lwp`).
    pub fn into_spec(self) -> io::Result<raw::Spec> {
        self.validate()?;
        let stack_size = self.get_stack_size();
        Ok(raw::Spec {
            name: self.name,
            stack_size,
            migratable: self.migratable,
        })
    }

    /// Spawns the ULT on the executor of the calling ULT. Fails with an `io::Error` if there
    /// is none, if the builder is invalid, or if no stack could be mapped.
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        executor::spawn_here(self.into_spec()?, f)
    }

    /// Creates the ULT for `sched` without queueing it; returns the runnable handle (give it
    /// to `sched.spawn`) and the join handle. This is how other runtimes (`lwp`) spawn.
    pub fn spawn_with<F, T>(
        self,
        sched: Arc<dyn raw::Schedule>,
        f: F,
    ) -> io::Result<(raw::RawUlt, JoinHandle<T>)>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_with_ref(raw::SchedRef::counted(sched), f)
    }

    /// [`Builder::spawn_with`] with any kind of scheduler handle.
    pub(crate) fn spawn_with_ref<F, T>(
        self,
        sched: raw::SchedRef,
        f: F,
    ) -> io::Result<(raw::RawUlt, JoinHandle<T>)>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (raw, cell) = raw::create(self.into_spec()?, sched, f)?;
        Ok((raw, JoinHandle::new(cell)))
    }
}

/// Spawns a ULT on the executor of the calling ULT, like `std::thread::spawn`.
///
/// # Panics
/// Outside a ULT, or if no stack can be mapped; use [`Builder::spawn`] to get an error
/// instead.
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // The default builder needs no validation: use the default spec directly.
    executor::spawn_here(raw::Spec::default(), f)
        .unwrap_or_else(|e| panic!("ult::spawn failed: {e}"))
}

/// The running ULT.
///
/// # Panics
/// Outside a ULT; see [`try_current`].
pub fn current() -> Ult {
    try_current().expect("ult::current() called outside a ULT")
}

/// The running ULT, or `None` on a plain kernel thread.
pub fn try_current() -> Option<Ult> {
    raw::current_raw().map(|r| Ult::from_raw(r.clone()))
}

/// Whether the caller is a ULT.
pub fn in_ult() -> bool {
    raw::current_header().is_some()
}
