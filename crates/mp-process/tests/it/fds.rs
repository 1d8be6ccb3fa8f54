//! File descriptors passed to children inside their arguments.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use mp_process::{Process, SharedFd};

use crate::{METHODS, shared};

fn write_all(fds: Vec<SharedFd>) -> usize {
    for (i, fd) in fds.iter().enumerate() {
        let mut s = UnixStream::from(fd.try_clone().unwrap().into_inner());
        s.write_all(format!("{i};").as_bytes()).unwrap();
    }
    fds.len()
}

#[test]
fn descriptors_reach_children_under_every_method() {
    let _g = shared();
    for m in METHODS {
        // More than one SCM_RIGHTS batch.
        let pairs: Vec<(UnixStream, UnixStream)> =
            (0..300).map(|_| UnixStream::pair().unwrap()).collect();
        let (mine, theirs): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        let theirs: Vec<SharedFd> = theirs
            .into_iter()
            .map(|s| SharedFd::new(s.into()))
            .collect();
        let mut p = Process::new(write_all, theirs).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 300, "{m}");
        for (i, mut s) in mine.into_iter().enumerate() {
            let mut got = String::new();
            s.read_to_string(&mut got).unwrap();
            assert_eq!(got, format!("{i};"), "{m}");
        }
    }
}

#[test]
fn a_descriptor_outside_process_arguments_is_an_error() {
    let (a, _b) = UnixStream::pair().unwrap();
    let fd = SharedFd::new(a.into());
    let err = postcard::to_stdvec(&fd).unwrap_err();
    let _ = err;
}

/// Whether descriptor `fd` of this process is the open file `what` names
/// (its `/proc/self/fd` link): the number alone may have been reused.
fn is_open(args: (i32, String)) -> bool {
    let (fd, what) = args;
    std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|l| l.to_string_lossy() == what)
}

/// A descriptor opened without close-on-exec and not passed reaches a
/// forked child (it is a copy of the parent) but neither a spawned child
/// nor a fork server's (CPython closes such descriptors too).
#[test]
fn unpassed_descriptors_reach_forked_children_only() {
    let _g = shared();
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes; no
    // O_CLOEXEC on purpose, as a C library might open them.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let what = std::fs::read_link(format!("/proc/self/fd/{}", fds[0]))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for m in METHODS {
        let mut p = Process::new(is_open, (fds[0], what.clone())).start_method(m);
        p.start().unwrap();
        let open = p.join().unwrap();
        assert_eq!(open, m == mp_process::StartMethod::Fork, "{m:?}");
    }
    // SAFETY: the two descriptors are ours, made above, closed once.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}
