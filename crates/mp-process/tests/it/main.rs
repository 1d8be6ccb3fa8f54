//! Integration tests of mp-process: real children under every start method.
//!
//! The test binary is itself the children's program: spawned and forkserver
//! children re-enter it before `main`, so no custom harness is needed.

mod codec;
mod errors;
mod fds;
mod function;
mod identity;
mod lifecycle;
mod limits;

pub(crate) use mp_test_helpers::{METHODS, exclusive, fd_count, running, shared, zombie_count};

/// Lines that a child writes to the end returned beside them (passed in
/// its arguments); a read gives up after 10 s instead of hanging.
pub(crate) fn lines_from_child() -> (
    std::io::Lines<std::io::BufReader<std::os::unix::net::UnixStream>>,
    mp_process::SharedFd,
) {
    use std::io::BufRead;
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    mine.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    (
        std::io::BufReader::new(mine).lines(),
        mp_process::SharedFd::new(theirs.into()),
    )
}
