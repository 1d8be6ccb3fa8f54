//! `cargo xtask ci`: every check CI runs, in order, stopping at the first
//! failure: fmt, clippy, tests, doc tests, docs, packaging, then every example
//! in release, then the MPI steps (`mpi.rs`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::proc;

/// How long one example may run before it is killed and the step fails.
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the whole test run may take: a hung test fails CI in bounded
/// time instead of holding it until its limit.
const TEST_TIMEOUT: Duration = Duration::from_secs(1500);

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
    forget_packaged_sources();
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
        {
            let mut test = step(&["test", "--workspace", "--all-targets"]);
            test.timeout = Some(TEST_TIMEOUT);
            test
        },
        {
            let mut doc = step(&["test", "--workspace", "--doc"]);
            doc.timeout = Some(TEST_TIMEOUT);
            doc
        },
        {
            // The `tracing` feature's events (crates/mp/tests/tracing.rs):
            // a build of its own, since the feature changes mp-process.
            let mut tracing = step(&[
                "test",
                "-p",
                "multiprocess",
                "--features",
                "tracing",
                "--test",
                "tracing",
            ]);
            tracing.timeout = Some(TEST_TIMEOUT);
            tracing
        },
        {
            // The codec's receiver side: release builds skip the sender's
            // trial decode (`check_sent`), so what postcard cannot decode
            // reaches the receiver there, which must keep its bytes.
            let mut codec = step(&[
                "test",
                "--release",
                "-p",
                "mp-process",
                "-p",
                "mp-ipc",
                "-p",
                "mp-pool",
                "-p",
                "mp-manager",
                "--test",
                "it",
                "codec",
            ]);
            codec.timeout = Some(TEST_TIMEOUT);
            codec
        },
        {
            // The lock word's protocol under loom (crates/mp-shm/src/lock/
            // loom_model.rs): its own target directory, since the cfg
            // changes every crate's build.
            let mut loom = step(&["test", "-p", "mp-shm", "--release", "--lib", "loom"]);
            loom.cmd
                .env("RUSTFLAGS", "--cfg mp_loom")
                .env("CARGO_TARGET_DIR", root.join("target").join("loom"));
            loom.timeout = Some(TEST_TIMEOUT);
            loom
        },
        {
            let mut doc = step(&["doc", "--workspace", "--no-deps"]);
            doc.cmd.env("RUSTDOCFLAGS", "-D warnings");
            doc
        },
        // Every publishable crate packs and builds from its package alone
        // (the workspace's crates stand in for the registry's copies).
        // `--allow-dirty`: a local run may have uncommitted work; CI's
        // clone has none.
        step(&["package", "--workspace", "--allow-dirty"]),
    ];
    let examples = examples(root)?;
    if !examples.is_empty() {
        // Build them all first so that the timeout below covers running only.
        steps.push(step(&["build", "--release", "--workspace", "--examples"]));
    }
    for (package, name) in &examples {
        // mp-mpi's examples need its `mpi` feature and `mpirun`: the MPI
        // steps below run them.
        if package == crate::mpi::PACKAGE {
            continue;
        }
        let mut run = step(&["run", "--release", "-p", package, "--example", name]);
        run.timeout = Some(EXAMPLE_TIMEOUT);
        steps.push(run);
    }
    for (cmd, timeout) in crate::mpi::ci_steps()? {
        steps.push(Step { cmd, timeout });
    }

    let total = steps.len();
    let started = Instant::now();
    for (i, step) in steps.iter_mut().enumerate() {
        println!("\n==> [{}/{total}] {}", i + 1, proc::display(&step.cmd));
        let t = Instant::now();
        let result = proc::run(&mut step.cmd, step.timeout);
        let took = t.elapsed().as_secs_f64();
        sweep_strays(root);
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

/// Kills processes of this workspace's build outputs that outlived their
/// step: a child a test failed to reap (its parent gone) would otherwise
/// hold CI's output pipe open. Each one is reported: it is a leak to fix.
/// Removes what `cargo package --workspace` unpacked of this workspace's
/// own packages under `$CARGO_HOME/registry/src`: the verification builds
/// each package against the others' packed copies, unpacked into a
/// directory named after the (path-keyed, so unnamed: `-HASH`) local
/// registry, and cargo reuses an unpacked copy of the same version without
/// looking at its contents. The copies a previous run left (same version,
/// older code) then fail the build with errors of code long gone.
fn forget_packaged_sources() {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry").join("src")) else {
        return;
    };
    let Ok(dirs) = std::fs::read_dir(&src) else {
        return;
    };
    for d in dirs.flatten() {
        if d.file_name().to_string_lossy().starts_with('-') {
            let _ = std::fs::remove_dir_all(d.path());
        }
    }
}

fn sweep_strays(root: &Path) {
    let target = crate::bench::target_dir(root);
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        // The xtask binary itself lives under target/ too.
        let is_xtask = exe.file_name().is_some_and(|n| n == "xtask");
        if exe.starts_with(&target) && !is_xtask {
            println!(
                "==> warning: killing stray process {pid} ({}) left by this step",
                exe.display()
            );
            let _ = proc::command("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
}

/// `(package, example)` for every `crates/<dir>/examples/<example>.rs` and
/// `crates/<dir>/examples/<example>/main.rs`, sorted. The package is the
/// one `crates/<dir>/Cargo.toml` names: the directory's name but for the
/// facade, whose package is `multiprocess` (the name `mp` is taken).
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
        let package = package_name(&dir.join("Cargo.toml"))?;
        for file in files {
            let path = file.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if path.is_dir() && path.join("main.rs").is_file() {
                let name = path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                found.push((package.clone(), name));
            } else if path.extension().is_some_and(|e| e == "rs") {
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

/// The `name` of a manifest's `[package]`: its first `name = "..."` line,
/// which the house's manifests put first under `[package]`.
fn package_name(manifest: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    text.lines()
        .find_map(|line| {
            let value = line.strip_prefix("name")?.trim_start().strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
        .ok_or_else(|| format!("{}: no package name", manifest.display()))
}
