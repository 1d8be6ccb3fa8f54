//! What a child knows of itself and its parent; the active children list.

use std::time::Duration;

use mp_process::{Process, StartMethod, current_process, parent_process};

use crate::{METHODS, shared};

fn whoami(_: ()) -> (String, u32, Option<(String, u32, bool)>, bool) {
    let me = current_process();
    let parent = parent_process().map(|p| (p.name().to_owned(), p.pid(), p.is_alive()));
    (me.name().to_owned(), me.pid(), parent, me.is_daemon())
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Starts a grandchild and returns the names both see.
fn nested(_: ()) -> (String, String) {
    let mut p = Process::new(whoami, ());
    p.start().unwrap();
    let (name, _, parent, _) = p.join().unwrap();
    (name, parent.unwrap().0)
}

#[test]
fn a_child_knows_its_name_pid_and_parent() {
    let _g = shared();
    assert_eq!(current_process().name(), "MainProcess");
    assert!(parent_process().is_none());
    for m in METHODS {
        let mut p = Process::new(whoami, ())
            .start_method(m)
            .name("worker-7")
            .daemon(true);
        p.start().unwrap();
        let pid = p.pid().unwrap();
        let (name, child_pid, parent, daemon) = p.join().unwrap();
        assert_eq!(name, "worker-7", "{m}");
        assert_eq!(child_pid, pid, "{m}");
        assert!(daemon);
        let (pname, ppid, alive) = parent.unwrap();
        assert_eq!(
            (pname.as_str(), ppid, alive),
            ("MainProcess", std::process::id(), true),
            "{m}"
        );
    }
}

#[test]
fn default_names_and_nesting() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(nested, ()).start_method(m);
        p.start().unwrap();
        let own = p.get_name().unwrap().to_owned();
        assert!(own.starts_with("Process-"), "{own}");
        let (grandchild, its_parent) = p.join().unwrap_or_else(|e| panic!("{m}: {e}"));
        assert_eq!(its_parent, own, "{m}");
        assert_eq!(grandchild, format!("{own}:1"), "{m}");
    }
}

#[test]
fn active_children_lists_running_ones() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(sleep_ms, 300).start_method(m);
        p.start().unwrap();
        let pid = p.pid().unwrap();
        assert!(
            mp_process::active_children().iter().any(|c| c.pid == pid),
            "{m}"
        );
        p.join().unwrap();
        assert!(
            !mp_process::active_children().iter().any(|c| c.pid == pid),
            "{m}"
        );
    }
    assert!(mp_process::cpu_count() >= 1);
}

/// The default start method as a child sees it, then what setting it
/// does there: a second `set_start_method` fails, `force_start_method`
/// replaces it.
fn methods_here(_: ()) -> (String, bool, String) {
    let seen = mp_process::get_start_method().as_str().to_string();
    let set_again = mp_process::set_start_method(StartMethod::Spawn).is_ok();
    mp_process::force_start_method(StartMethod::Fork);
    let forced = mp_process::get_start_method().as_str().to_string();
    (seen, set_again, forced)
}

/// A child reports the method that started it, whatever its parent's
/// default (CPython forces it in the child), and setting the method there
/// follows Python's `set_start_method` and its `force=True`.
#[test]
fn a_child_reports_the_method_that_started_it() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(methods_here, ()).start_method(m);
        p.start().unwrap();
        let (seen, set_again, forced) = p.join().unwrap();
        assert_eq!(seen, m.as_str());
        assert!(!set_again, "{m:?}: the method was set already");
        assert_eq!(forced, "fork", "{m:?}");
    }
}

/// The grandchild: says it is up, then reports when its parent ends.
fn watch_parent(out: mp_process::SharedFd) {
    use std::io::Write;
    let mut out = std::os::unix::net::UnixStream::from(out.into_inner());
    let parent = parent_process().expect("a child has a parent");
    out.write_all(b"up\n").unwrap();
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    while parent.is_alive() && std::time::Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = out.write_all(if parent.is_alive() {
        b"alive\n"
    } else {
        b"dead\n"
    });
}

/// The child: starts the grandchild (not a daemon, so it outlives this
/// one), then waits to be terminated.
fn start_watcher(out: mp_process::SharedFd) {
    let mut g = Process::new(watch_parent, out);
    g.start().unwrap();
    std::thread::sleep(Duration::from_secs(30));
}

/// A grandchild sees its parent end the moment it is terminated, before
/// anybody reaps it (Python's `parent_process().is_alive()`).
#[test]
fn a_grandchild_sees_its_parent_end_before_it_is_reaped() {
    let _g = shared();
    for m in METHODS {
        let (mut lines, theirs) = crate::lines_from_child();
        let mut c = Process::new(start_watcher, theirs).start_method(m);
        c.start().unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), "up", "{m:?}");
        c.terminate().unwrap();
        // Not joined yet: the child is a zombie until then.
        assert_eq!(lines.next().unwrap().unwrap(), "dead", "{m:?}");
        let _ = c.join();
    }
}
