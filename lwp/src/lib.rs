//! # lwp: kernel threads (LWPs) that run user-level threads
//!
//! The two-level scheduler of the lecture: the many-to-one, one-to-one and many-to-many
//! models behind one std-like API.

#![warn(missing_docs, unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod channel;
pub mod sync;

pub use ult::{park, park_deadline, park_timeout, sleep, sleep_until, unparker, yield_now, Unparker};
