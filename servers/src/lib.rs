//! # servers: the lecture's three file-server models
//!
//! Multithreaded, single-threaded and finite-state-machine servers over one HTTP/1.1
//! protocol module and one disk model, plus a load generator. Not built yet.

#![warn(missing_docs)]
