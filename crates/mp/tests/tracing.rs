//! The `tracing` feature: a pool worker's start, death and replacement,
//! the task that died with it, and a manager's connections and refusals
//! reach a subscriber, each with the pid it concerns.
//!
//! Built only with the feature (`cargo test -p multiprocess --features
//! tracing --test tracing`, a step of `cargo xtask ci`).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Everything the subscriber wrote, one event per line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// One global subscriber for the whole test binary: mp's events from
/// every thread (the pool's supervisor, the manager's acceptors) land here.
fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let out = Captured::default();
        let writer = out.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        out
    })
}

fn lines_with(needle: &str) -> Vec<String> {
    captured()
        .lines()
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

fn die(_: ()) {
    std::process::abort()
}

fn double(x: u32) -> u32 {
    x * 2
}

#[test]
fn a_dying_worker_is_seen_with_its_pid() {
    captured();
    let pool = mp::Pool::new(1).unwrap();
    assert_eq!(pool.apply(double, 4).unwrap(), 8);
    let err = pool.apply(die, ()).unwrap_err();
    assert_eq!(err.kind(), mp::pool::ErrorKind::WorkerLost);
    // The replacement serves the next task.
    assert_eq!(pool.apply(double, 5).unwrap(), 10);
    pool.close();
    pool.join_timeout(Duration::from_secs(10)).unwrap();

    let started = lines_with("pool worker started");
    assert!(started.len() >= 2, "{started:?}");
    let died = lines_with("pool worker died");
    assert_eq!(died.len(), 1, "{died:?}");
    // The dead worker's pid is the one that started first.
    let pid_of = |line: &str| {
        line.split(" pid=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .map(str::to_owned)
    };
    let first = pid_of(&started[0]).expect("a pid");
    assert_eq!(
        pid_of(&died[0]).as_deref(),
        Some(first.as_str()),
        "{died:?}"
    );
    assert!(died[0].contains("WARN"), "{died:?}");
    let lost = lines_with("task failed: the worker running it died");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lines_with("replacing pool worker").len(), 1);
    assert!(!lines_with("process joined").is_empty());
}

#[test]
fn manager_connections_and_refusals_are_seen() {
    captured();
    let dir = std::env::temp_dir().join(format!("mp-tracing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let sock = dir.join("socket");
    let server = mp::manager::Server::bind(sock.clone(), b"key")
        .unwrap()
        .max_connections(1);
    let handle = server.serve_in_background().unwrap();
    // One connection, served (its greeting is one zero byte)...
    let mut first = mp::ipc::Client::new(sock.clone())
        .authkey(b"key")
        .timeout(Duration::from_secs(5))
        .connect()
        .unwrap();
    assert_eq!(
        first.recv_bytes_timeout(Duration::from_secs(5)).unwrap(),
        [0]
    );
    // ...so the next is over the cap.
    assert!(mp::manager::connect(sock.clone(), b"key").is_err());
    // A wrong key is dropped by the listener.
    assert!(mp::manager::connect(sock.clone(), b"not the key").is_err());
    drop(first);
    let me = std::process::id().to_string();
    let accepted = lines_with("manager connection accepted");
    assert!(
        accepted.iter().any(|l| l.contains(&format!(" pid={me} "))),
        "{accepted:?}"
    );
    let refused = lines_with("manager refused a connection: too many connections");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("limit=1"), "{refused:?}");
    assert!(
        !lines_with("listener dropped a peer: its handshake failed").is_empty(),
        "{:?}",
        captured().lines()
    );
    // The dropped connection frees its place soon after.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while mp::manager::connect(sock.clone(), b"key")
        .and_then(|c| c.shutdown_server())
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "no room to shut down");
        std::thread::sleep(Duration::from_millis(20));
    }
    handle.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
