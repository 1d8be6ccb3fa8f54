//! The harness the peer programs share: the CLI of `mp-bench` (`--list`,
//! `--workload NAME [--quick]`, one JSON result line) and the repetition
//! rule of WORKLOADS.md (one untimed warm-up, then N timed repetitions).
//!
//! Each peer is one program (`src/bin/`) measuring, for a few rows of the
//! fixed workload list, the same work done with a crate a Rust user would
//! pick instead of mp. `cargo xtask bench` runs it right after mp's side of
//! the row and puts its median, min and max in the row's `"peers"` map.

use std::fmt::Write as _;
use std::process::ExitCode;

/// Whether a smaller or a larger figure is better.
#[derive(Debug, Clone, Copy)]
pub enum Better {
    /// Times: lower is better.
    Lower,
    /// Rates: higher is better.
    Higher,
}

/// One workload a peer serves: the row's fixed name and unit, and the
/// function measuring it (`quick` shrinks sizes and repetitions).
#[derive(Debug)]
pub struct Workload {
    /// The row of WORKLOADS.md this figure belongs to.
    pub name: &'static str,
    /// The row's unit.
    pub unit: &'static str,
    /// Whether lower or higher is better (the row's).
    pub better: Better,
    /// The warm-up and the timed repetitions, checking results; one sample
    /// per repetition, or why a check failed.
    pub run: fn(quick: bool) -> Result<Vec<f64>, String>,
}

/// How many timed repetitions (after one warm-up): as `mp-bench`.
pub fn repetitions(quick: bool) -> usize {
    if quick { 3 } else { 5 }
}

/// Runs `rep` once untimed (the warm-up), then [`repetitions`] times.
pub fn warm_and_repeat(
    quick: bool,
    mut rep: impl FnMut() -> Result<f64, String>,
) -> Result<Vec<f64>, String> {
    rep()?;
    (0..repetitions(quick)).map(|_| rep()).collect()
}

/// A displayable error as the harness's `String`.
pub fn err(e: impl std::fmt::Debug) -> String {
    format!("{e:?}")
}

/// The peer program's `main` after its own start-up: parses the CLI and
/// runs one workload of `all`.
pub fn main(peer: &str, all: &[Workload]) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (name, quick) = match args.as_slice() {
        ["--list"] => {
            for w in all {
                println!("{}", w.name);
            }
            return ExitCode::SUCCESS;
        }
        ["--workload", name] => (*name, false),
        ["--workload", name, "--quick"] | ["--quick", "--workload", name] => (*name, true),
        _ => {
            eprintln!("usage: {peer} --list | --workload NAME [--quick]");
            return ExitCode::from(2);
        }
    };
    let Some(w) = all.iter().find(|w| w.name == name) else {
        eprintln!("{peer}: unknown workload `{name}` (see --list)");
        return ExitCode::from(2);
    };
    match (w.run)(quick) {
        Ok(samples) if !samples.is_empty() && samples.iter().all(|s| s.is_finite() && *s > 0.0) => {
            println!("{}", result_line(w, &samples));
            ExitCode::SUCCESS
        }
        Ok(samples) => {
            eprintln!("{peer}: {name}: bad samples {samples:?}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{peer}: {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `mp-bench`'s result line. Names and units are fixed identifiers with
/// nothing to escape.
fn result_line(w: &Workload, samples: &[f64]) -> String {
    let better = match w.better {
        Better::Lower => "lower",
        Better::Higher => "higher",
    };
    let mut s = String::new();
    let samples: Vec<String> = samples.iter().map(|x| format!("{x:?}")).collect();
    let _ = write!(
        s,
        r#"{{"name": "{}", "unit": "{}", "better": "{better}", "samples": [{}], "check": "ok"}}"#,
        w.name,
        w.unit,
        samples.join(", ")
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_has_the_fields_xtask_reads() {
        let w = Workload {
            name: "pipe_pingpong",
            unit: "us/roundtrip",
            better: Better::Lower,
            run: |_| Ok(vec![1.0]),
        };
        assert_eq!(
            result_line(&w, &[1.5, 2.0]),
            r#"{"name": "pipe_pingpong", "unit": "us/roundtrip", "better": "lower", "samples": [1.5, 2.0], "check": "ok"}"#
        );
    }
}
