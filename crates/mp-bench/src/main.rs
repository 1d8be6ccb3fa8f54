//! `mp-bench`: the mp side of `cargo xtask bench`.
//!
//! `mp-bench --workload NAME [--quick]` runs one workload and prints one JSON
//! line, `{"name", "unit", "better", "samples", "check": "ok"}`; a failed
//! result check exits non-zero with a message instead. `mp-bench --list`
//! prints the workload names, one per line. `python/bench_cpython.py` has the
//! same CLI for CPython; `README.md` says what each workload times.

mod workloads;

use std::fmt::Write as _;
use std::process::ExitCode;

use workloads::{Better, Workload};

const USAGE: &str = "usage: mp-bench --list | --workload NAME [--quick]";

fn main() -> ExitCode {
    // Children started with `spawn` or `forkserver` re-enter this binary:
    // this must run before anything else.
    mp_process::init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["--list"] => {
            for w in workloads::ALL {
                println!("{}", w.name);
            }
            ExitCode::SUCCESS
        }
        ["--workload", name] => run(name, false),
        ["--workload", name, "--quick"] | ["--quick", "--workload", name] => run(name, true),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(name: &str, quick: bool) -> ExitCode {
    let Some(w) = workloads::ALL.iter().find(|w| w.name == name) else {
        eprintln!("mp-bench: unknown workload `{name}` (see --list)");
        return ExitCode::from(2);
    };
    match (w.run)(quick) {
        Ok(samples) if !samples.is_empty() && samples.iter().all(|s| s.is_finite()) => {
            println!("{}", result_line(w, &samples));
            ExitCode::SUCCESS
        }
        Ok(samples) => {
            eprintln!("mp-bench: {name}: bad samples {samples:?}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("mp-bench: {name}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The JSON result line, written by hand: its shape is fixed and small.
fn result_line(w: &Workload, samples: &[f64]) -> String {
    let better = match w.better {
        Better::Lower => "lower",
        Better::Higher => "higher",
    };
    let samples: Vec<String> = samples.iter().map(|s| format!("{s:?}")).collect();
    let mut line = String::new();
    let _ = write!(
        line,
        r#"{{"name": {}, "unit": {}, "better": "{better}", "samples": [{}], "check": "ok"}}"#,
        json_string(w.name),
        json_string(w.unit),
        samples.join(", "),
    );
    line
}

fn json_string(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
