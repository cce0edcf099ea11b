//! Channels whose blocking operations park ULTs, never LWPs (to be written).
