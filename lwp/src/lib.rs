//! # lwp: kernel threads (LWPs) that run user-level threads
//!
//! The two-level scheduler of the lecture: the many-to-one, one-to-one and many-to-many
//! models behind one std-like API. Not built yet; see the open issues.

#![warn(missing_docs)]
