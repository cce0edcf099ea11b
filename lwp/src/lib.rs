//! # lwp: kernel threads (LWPs) that run user-level threads
//!
//! The two-level thread model of the lecture (Solaris' LWPs, Go's Ms and Ps): user-level
//! threads (ULTs, from the `ult` crate) multiplexed onto kernel threads ("light-weight
//! processes"), behind one std-like API, under the three models of the lecture:
//!
//! | [`Model`] | kernel threads | a blocking call stalls | switch cost |
//! |---|---|---|---|
//! | [`Model::ManyToOne`] | 1 | every ULT | user-level |
//! | [`Model::OneToOne`] | one per ULT | only that ULT | kernel |
//! | [`Model::ManyToMany`] | `lwps` (+ sysmon's) | that LWP's started ULTs, briefly | user-level |
//!
//! ```
//! use lwp::channel;
//!
//! let rt = lwp::Runtime::builder().lwps(2).build().unwrap();
//! let sum = rt.run(|| {
//!     let (tx, rx) = channel::bounded(16);
//!     for i in 0..100u64 {
//!         let tx = tx.clone();
//!         lwp::spawn(move || tx.send(i).unwrap());
//!     }
//!     drop(tx);
//!     rx.iter().sum::<u64>()
//! });
//! assert_eq!(sum, 4950);
//! ```
//!
//! What is here: the runtime and its models ([`Runtime`], [`RuntimeBuilder`], [`spawn`],
//! [`Builder`]), scoped ULTs that borrow from their spawner's stack ([`scope()`]), the LWP
//! scheduler with work stealing and idle parking (`scheduler`), sysmon ([`sysmon`]), the
//! blocking pool ([`blocking()`]), ULT-parking synchronisation primitives ([`sync`]) and
//! channels ([`channel`]), timers ([`sleep`], [`park_timeout`]), sockets ([`net`]), pipes
//! and any other fd that epoll can watch ([`io`]), child processes ([`process`]), files on
//! the blocking pool ([`fs`]), futures on ULTs ([`block_on`]) and [`metrics`] with the
//! exact TLP histogram. Everything that blocks parks only the calling ULT, and works from
//! plain kernel threads too (blocking the thread).

#![warn(
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]

pub mod blocking;
mod bridge;
pub mod channel;
pub mod fs;
#[cfg(feature = "hyper")]
pub mod hyper_rt;
#[doc(hidden)]
pub mod idle;
pub mod metrics;
// `#[macro_use]`: `io` (declared after it) builds its pipe ends with `net`'s macros.
#[macro_use]
pub mod net;
pub mod io;
mod one_to_one;
pub mod process;
mod reactor;
mod runtime;
mod scheduler;
mod scope;
pub mod sync;
pub mod sysmon;

/// The README's Rust examples, compiled and run as doc tests so that the front door cannot
/// drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;

pub use blocking::blocking;
pub use bridge::block_on;
pub use metrics::{MetricsSnapshot, Timeline, Tlp};
pub use runtime::{default_runtime, run, spawn, Builder, Model, Runtime, RuntimeBuilder};
pub use scope::{scope, Scope, ScopedJoinHandle};
pub use ult::{
    current, in_ult, local, park, park_deadline, park_timeout, sleep, sleep_until, try_current,
    unparker, yield_now, JoinHandle, LocalKey, Ult, UltId, Unparker,
};
