
#[test]
fn stopped_children_leave_no_zombies_and_no_descriptors() {
    let _g = exclusive();
    let fds = fd_count();
    let zombies = zombie_count();
    for m in METHODS {
        let mut p = Process::new(spin, ())
            .start_method(m)
            .time_limit(Duration::from_millis(50));
        p.start().unwrap();
        let e = p.join_timeout(Duration::from_secs(10)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimeLimit, "{m}");
        let mut p = Process::new(hog, 1024).start_method(m).memory_limit(128 << 20);
        p.start().unwrap();
        let e = p.join_timeout(Duration::from_secs(30)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MemoryLimit, "{m}");
    }
    assert_eq!(zombie_count(), zombies);
    // The fork server, started by the first forkserver child, keeps its
    // descriptors for the program's life.
    assert!(fd_count() <= fds + 2, "{} descriptors, {fds} before", fd_count());
}
