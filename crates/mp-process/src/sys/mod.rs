//! The operating-system layer: every `unsafe` call of mp-process lives here.
//!
//! The rest of the crate sees safe functions with checked preconditions. Only
//! Linux (and other Unix systems with `/proc/self/exe`) is supported today.

mod limits;
mod unix;

pub(crate) use limits::*;
pub(crate) use unix::*;
