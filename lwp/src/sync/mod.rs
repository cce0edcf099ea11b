//! Synchronisation primitives that park ULTs, never LWPs.
//!
//! Same names and behaviour as `std::sync` (poisoning included), but a ULT that must wait
//! parks through [`ult::park`]: its kernel thread goes on running other ULTs. The same
//! primitives work from plain kernel threads (then the thread blocks), so ULTs and threads
//! can share them.
//!
//! | type | like | extra |
//! |---|---|---|
//! | [`Mutex`] | `std::sync::Mutex` | [`Mutex::lock_timeout`], [`Mutex::try_lock_until`] |
//! | [`RwLock`] | `std::sync::RwLock` | writer-preferring; `read_timeout`, `write_timeout` |
//! | [`Condvar`] | `std::sync::Condvar` | [`Condvar::wait_deadline`] |
//! | [`Barrier`] | `std::sync::Barrier` | [`Barrier::wait_timeout`] |
//! | [`Semaphore`] | `tokio::sync::Semaphore` | FIFO, RAII [`SemaphorePermit`] |
//! | [`WaitGroup`] | `crossbeam_utils::sync::WaitGroup` | [`WaitGroup::wait_timeout`] |
//! | [`OnceLock`], [`LazyLock`] | `std::sync::OnceLock`, `LazyLock` | [`OnceLock::get_or_try_init`]; reentrant initialisation panics |
//!
//! Every blocking operation has a variant with a deadline or timeout, except waiting for a
//! [`OnceLock`]'s initialiser (std has none either: the value is needed to go on).
//!
//! # How they block
//! All of them are built on one internal wait queue (`waitqueue.rs`): a FIFO of waiters,
//! each an [`ult::Unparker`] plus a token set by the notifier, under a short internal lock
//! that is never held across a park. Its module header states the no-lost-wake-up protocol
//! every primitive follows, including what happens when a notification races a timeout.
//!
//! # Limits
//! - Internal locks are `std::sync::Mutex`es held for a few list operations; a kernel thread
//!   can block on one for that long, never for a user's critical section.
//! - Each ULT that ever blocks on one of these keeps one small waiter (an `Arc` of about
//!   40 bytes, in ULT-local storage) until it finishes; blocking allocates nothing after that.
//! - A ULT destroyed while parked or while holding a notification (an executor cancelling
//!   its queued ULTs at shutdown) takes that notification with it: a mutex it was handed,
//!   or a wake-up meant for it, is not passed on. Shut runtimes down after the ULTs that
//!   share primitives with the outside world have finished.
//! - Poisoning uses `std::thread::panicking()`, which is per kernel thread: a ULT that parks
//!   inside a `Drop` while unwinding makes other ULTs of that thread look like they are
//!   panicking too, so a guard they drop meanwhile poisons its lock.

mod barrier;
mod condvar;
mod mutex;
mod once;
mod rwlock;
mod semaphore;
pub(crate) mod spin;
mod waitgroup;
pub(crate) mod waitqueue;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard};
pub use once::{LazyLock, OnceLock};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{Semaphore, SemaphorePermit};
pub use waitgroup::WaitGroup;

pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
