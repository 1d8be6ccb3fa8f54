//! `SharedMemory`: anonymous and named blocks, across processes, and no
//! `/dev/shm` entry left behind even by a killed creator.

use std::time::Duration;

use mp_process::Process;
use mp_shm::{ErrorKind, Event, SharedMemory};

use crate::{METHODS, dev_shm};

fn fill(block: SharedMemory) -> usize {
    let data: Vec<u8> = (0..block.len()).map(|i| i as u8).collect();
    block.write_at(0, &data).unwrap();
    block.len()
}

#[test]
fn a_child_writes_what_the_parent_reads() {
    for method in METHODS {
        let block = SharedMemory::new(10_000).unwrap();
        let mut p = Process::new(fill, block.clone()).start_method(method);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 10_000);
        let mut buf = vec![0u8; 10_000];
        block.read_at(0, &mut buf).unwrap();
        assert!(
            buf.iter().enumerate().all(|(i, &b)| b == i as u8),
            "{method}"
        );
    }
}

#[test]
fn bad_sizes_and_ranges_are_errors() {
    assert_eq!(
        SharedMemory::new(0).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        SharedMemory::create(0).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let b = SharedMemory::new(8).unwrap();
    assert!(b.write_at(4, &[0; 5]).is_err());
    assert!(b.read_at(usize::MAX, &mut [0; 2]).is_err());
    assert!(b.unlink().is_err(), "an anonymous block has no name");
}

#[test]
fn named_blocks_attach_and_unlink_like_python() {
    let b = SharedMemory::create(100).unwrap();
    let name = b.name().unwrap().to_owned();
    let a = SharedMemory::attach(&name).unwrap();
    assert_eq!(a.len(), 100);
    a.write_at(10, b"xyz").unwrap();
    let mut buf = [0u8; 3];
    b.read_at(10, &mut buf).unwrap();
    assert_eq!(&buf, b"xyz");
    a.unlink().unwrap();
    assert_eq!(b.unlink().unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        SharedMemory::attach(&name).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Handles already attached keep working.
    b.write_at(0, b"still").unwrap();
    assert_eq!(
        SharedMemory::attach("not-a-name").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn a_name_dies_with_its_creator_handles() {
    let b = SharedMemory::create(10).unwrap();
    let name = b.name().unwrap().to_owned();
    drop(b);
    assert_eq!(
        SharedMemory::attach(&name).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

fn attach_and_write(name: String) {
    let b = SharedMemory::attach(&name).unwrap();
    b.write_at(0, b"child").unwrap();
}

#[test]
fn an_unrelated_process_attaches_by_name() {
    let b = SharedMemory::create(16).unwrap();
    let mut p = Process::new(attach_and_write, b.name().unwrap().to_owned());
    p.start().unwrap();
    p.join().unwrap();
    let mut buf = [0u8; 5];
    b.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"child");
}

/// Creates a named block, publishes its name, and waits to be killed.
fn create_and_wait(args: (SharedMemory, Event)) {
    let (out, ready) = args;
    let b = SharedMemory::create(1 << 20).unwrap();
    let name = b.name().unwrap().as_bytes().to_vec();
    out.write_at(0, &(name.len() as u32).to_ne_bytes()).unwrap();
    out.write_at(4, &name).unwrap();
    ready.set();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let _ = &b;
    }
}

#[test]
fn a_killed_creator_leaves_nothing_in_dev_shm() {
    let before = dev_shm();
    let out = SharedMemory::new(256).unwrap();
    let ready = Event::new().unwrap();
    let mut p = Process::new(create_and_wait, (out.clone(), ready.clone()));
    p.start().unwrap();
    assert!(ready.wait_timeout(Duration::from_secs(10)));
    let mut len = [0u8; 4];
    out.read_at(0, &mut len).unwrap();
    let mut name = vec![0u8; u32::from_ne_bytes(len) as usize];
    out.read_at(4, &mut name).unwrap();
    let name = String::from_utf8(name).unwrap();
    let attached = SharedMemory::attach(&name).unwrap();
    p.kill().unwrap();
    let _ = p.join();
    assert_eq!(
        SharedMemory::attach(&name).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // The memory stays valid for those attached; nothing is in /dev/shm.
    attached.write_at(0, b"ok").unwrap();
    assert_eq!(dev_shm(), before);
}
