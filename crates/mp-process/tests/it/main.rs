//! Integration tests of mp-process: real children under every start method.
//!
//! The test binary is itself the children's program: spawned and forkserver
//! children re-enter it before `main`, so no custom harness is needed.

mod errors;
mod fds;
mod function;
mod identity;
mod lifecycle;

pub(crate) use mp_test_helpers::{METHODS, exclusive, fd_count, running, shared, zombie_count};
