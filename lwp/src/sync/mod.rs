//! Synchronisation primitives that park ULTs, never LWPs (to be written).
