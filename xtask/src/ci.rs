//! `cargo xtask ci`: every check CI runs, in order, stopping at the first
//! failure: fmt, clippy, tests, doc tests, docs, then every example in release.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::proc;

/// How long one example may run before it is killed and the step fails.
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(300);

struct Step {
    cmd: Command,
    timeout: Option<Duration>,
}

fn step(args: &[&str]) -> Step {
    let mut cmd = proc::cargo();
    cmd.args(args);
    Step { cmd, timeout: None }
}

pub(crate) fn run(root: &Path) -> Result<(), String> {
    let mut steps = vec![
        step(&["fmt", "--all", "--", "--check"]),
        step(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        step(&["test", "--workspace", "--all-targets"]),
        step(&["test", "--workspace", "--doc"]),
        {
            let mut doc = step(&["doc", "--workspace", "--no-deps"]);
            doc.cmd.env("RUSTDOCFLAGS", "-D warnings");
            doc
        },
    ];
    let examples = examples(root)?;
    if !examples.is_empty() {
        // Build them all first so that the timeout below covers running only.
        steps.push(step(&["build", "--release", "--workspace", "--examples"]));
    }
    for (package, name) in &examples {
        let mut run = step(&["run", "--release", "-p", package, "--example", name]);
        run.timeout = Some(EXAMPLE_TIMEOUT);
        steps.push(run);
    }

    let total = steps.len();
    let started = Instant::now();
    for (i, step) in steps.iter_mut().enumerate() {
        println!("\n==> [{}/{total}] {}", i + 1, proc::display(&step.cmd));
        let t = Instant::now();
        let result = proc::run(&mut step.cmd, step.timeout);
        let took = t.elapsed().as_secs_f64();
        if let Err(err) = result {
            println!("==> [{}/{total}] FAILED after {took:.1} s: {err}", i + 1);
            println!("xtask-ci: {i} passed, 1 failed");
            // Already reported: the summary line above stays the last line.
            return Err(String::new());
        }
        println!("==> [{}/{total}] ok in {took:.1} s", i + 1);
    }
    println!(
        "\nxtask ci: all steps took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("xtask-ci: {total} passed, 0 failed");
    Ok(())
}

/// `(package, example)` for every `crates/<package>/examples/<example>.rs`,
/// sorted. The directory name is the package name (house style).
fn examples(root: &Path) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    let crates = root.join("crates");
    let entries = std::fs::read_dir(&crates).map_err(|e| format!("{}: {e}", crates.display()))?;
    for entry in entries {
        let dir = entry
            .map_err(|e| format!("{}: {e}", crates.display()))?
            .path();
        let Ok(files) = std::fs::read_dir(dir.join("examples")) else {
            continue;
        };
        let package = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for file in files {
            let path = file.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if path.extension().is_some_and(|e| e == "rs") {
                let name = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                found.push((package.clone(), name));
            }
        }
    }
    found.sort();
    Ok(found)
}
