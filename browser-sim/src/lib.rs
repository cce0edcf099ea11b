//! # browser-sim: a multithreaded web client
//!
//! Fetches a page and its embedded objects with one thread per object, hiding network
//! latency, and measures thread-level parallelism (TLP). Not built yet.

#![warn(missing_docs)]
