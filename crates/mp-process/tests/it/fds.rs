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
