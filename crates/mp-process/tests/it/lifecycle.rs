//! Results, panics, exit codes, signals, timeouts and reaping, under each
//! start method.

use std::time::{Duration, Instant};

use mp_process::{ErrorKind, Process, StartMethod};

const METHODS: [StartMethod; 3] = [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer];

fn add(x: (i64, i64)) -> i64 {
    x.0 + x.1
}

#[test]
fn result_round_trip() {
    for m in METHODS {
        let mut p = Process::new(add, (40, 2)).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 42, "{m}");
        assert_eq!(p.exitcode(), Some(0), "{m}");
    }
}
