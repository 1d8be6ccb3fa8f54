//! `cargo xtask bench`: runs the benchmark workloads (the fixed list in
//! WORKLOADS.md, see `crates/mp-bench/README.md`) against mp
//! (`crates/mp-bench`) and CPython (`crates/mp-bench/python`), one workload at
//! a time with both sides interleaved, and writes `target/bench/report.*`.
//!
//! Each side is a program with the same CLI: `--list` prints workload names,
//! `--workload NAME [--quick]` prints one JSON line
//! `{"name", "unit", "better", "samples", "check"}` or exits non-zero.
//!
//! The Rust peers (`crates/mp-bench/peers`: procspawn, ipc-channel,
//! shared_memory with raw_sync) are programs with the same CLI; each runs
//! right after mp and CPython on the rows it lists, and its figure goes in
//! the row's `peers` map. The floors are mp-bench's own `NAME:limit` rows.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::{goals, proc, report};

mod rounds;

use rounds::Role;

/// A generous bound on one side of one workload; a hang must not stall the run.
const SIDE_TIMEOUT: Duration = Duration::from_secs(600);

const PYTHON: &str = "python3";
const PYTHON_SCRIPT: &str = "crates/mp-bench/python/bench_cpython.py";
/// The MPI workloads' CPython side: mpi4py.futures (see `mpi_workloads`).
const MPI4PY_SCRIPT: &str = "crates/mp-bench/python/bench_mpi4py.py";

/// The command that installs mpi4py (it builds against the MPI library
/// that `mpirun` belongs to; a few minutes of CPU).
const MPI4PY_INSTALL: [&str; 5] = [PYTHON, "-m", "pip", "install", "mpi4py"];

/// How long installing mpi4py may take.
const MPI4PY_INSTALL_TIMEOUT: Duration = Duration::from_secs(1800);

/// The package of the Rust peers, and each peer's name in the report with
/// its program.
const PEERS_PACKAGE: &str = "mp-bench-peers";
const PEERS: [(&str, &str); 3] = [
    ("procspawn", "peer-procspawn"),
    ("ipc-channel", "peer-ipc-channel"),
    ("shared_memory+raw_sync", "peer-shared-memory"),
];

/// `cargo xtask bench` flags.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    quick: bool,
    only: Vec<String>,
}

impl Flags {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut flags = Flags::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let only = match arg.as_str() {
                "--quick" => {
                    flags.quick = true;
                    continue;
                }
                "--only" => args
                    .next()
                    .ok_or("--only needs PREFIX,PREFIX,...")?
                    .as_str(),
                a if a.starts_with("--only=") => &a["--only=".len()..],
                a => return Err(format!("bench: unknown argument `{a}`")),
            };
            flags
                .only
                .extend(only.split(',').filter(|p| !p.is_empty()).map(String::from));
        }
        Ok(flags)
    }

    fn selects(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| name.starts_with(p.as_str()))
    }
}

/// Whether a smaller or a larger figure is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Better {
    Lower,
    Higher,
}

impl Better {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Better::Lower => "lower",
            Better::Higher => "higher",
        }
    }
}

/// Median, min and max of one side's samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Stats {
    fn of(samples: &[f64]) -> Stats {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Stats {
            median,
            min: s[0],
            max: s[n - 1],
        }
    }
}

/// One side's parsed result line (or several rounds' lines pooled).
#[derive(Debug)]
struct Measured {
    unit: String,
    better: Better,
    samples: Vec<f64>,
}

impl Measured {
    fn stats(&self) -> Stats {
        Stats::of(&self.samples)
    }
}

/// One row of the report.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) unit: String,
    pub(crate) better: Better,
    pub(crate) mp: Option<Stats>,
    pub(crate) cpython: Option<Stats>,
    /// Oriented so that > 1 means mp is better.
    pub(crate) ratio: Option<f64>,
    /// The Rust peers that did this row's work, in the order of `PEERS`.
    pub(crate) peers: Vec<(String, Stats)>,
    /// mp against the floor and the peers, round by round.
    pub(crate) vs: Vs,
    /// Why a side failed its run or its check; empty when all went well.
    pub(crate) errors: Vec<String>,
}

/// mp's ratios to its floor and to each peer (oriented: > 1 means mp is
/// better), each the median of the ratios within interleaved rounds
/// (`rounds.rs`). Empty where the row ran alone.
#[derive(Debug, Default)]
pub(crate) struct Vs {
    /// How many rounds the row ran.
    pub(crate) rounds: usize,
    /// mp's share of its `NAME:limit` row.
    pub(crate) floor: Option<f64>,
    /// mp against each peer, by name.
    pub(crate) peers: Vec<(String, f64)>,
}

/// What the report says about the run itself.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) date: String,
    pub(crate) nproc: usize,
    pub(crate) python: Option<String>,
    pub(crate) quick: bool,
}

pub(crate) fn run(root: &Path, flags: &Flags) -> Result<(), String> {
    proc::run(
        proc::cargo().args(["build", "--release", "-p", "mp-bench", "-p", PEERS_PACKAGE]),
        None,
    )?;
    let release = target_dir(root).join("release");
    let exe = |name: &str| release.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mp_bin = exe("mp-bench");

    let python = python_version();
    if python.is_none() {
        eprintln!("bench: NOTE: `{PYTHON}` not found: running mp only, CPython columns stay empty");
    }
    let script = root.join(PYTHON_SCRIPT);
    let python_side = |args: &[&str]| {
        let mut cmd = proc::command(PYTHON);
        cmd.arg(&script).args(args);
        cmd
    };

    let mp_names = list(proc::command(&mp_bin))?;
    let py_names = match python {
        Some(_) => list(python_side(&[]))?,
        None => Vec::new(),
    };
    for name in py_names.iter().filter(|n| !mp_names.contains(n)) {
        eprintln!("bench: NOTE: skipping `{name}`: the CPython script has it, mp-bench does not");
    }
    let mut peers = Vec::new();
    for (peer, program) in PEERS {
        let bin = exe(program);
        let names = list(proc::command(&bin))?;
        for name in names.iter().filter(|n| !mp_names.contains(n)) {
            eprintln!("bench: NOTE: skipping {peer} on `{name}`: mp-bench has no such row yet");
        }
        peers.push((peer, bin, names));
    }
    let names: Vec<&String> = mp_names.iter().filter(|n| flags.selects(n)).collect();
    let mpi_selected = crate::mpi::BENCH_WORKLOADS.iter().any(|n| flags.selects(n));
    if names.is_empty() && !mpi_selected {
        return Err(format!(
            "bench: no workload matches --only {}",
            flags.only.join(",")
        ));
    }

    let quick: &[&str] = if flags.quick { &["--quick"] } else { &[] };
    let mp_cmd = |workload: &str| {
        let mut cmd = proc::command(&mp_bin);
        cmd.args(["--workload", workload]).args(quick);
        cmd
    };
    let mut rows = Vec::new();
    // The floors measured in their row's rounds, not again on their own.
    let mut done: Vec<String> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if done.contains(name) {
            continue;
        }
        eprint!("[{}/{}] {name}:", i + 1, names.len());
        let limit = format!("{name}:limit");
        let floor =
            (goals::judges_floor(name) && mp_names.contains(&limit) && flags.selects(&limit))
                .then_some(limit.as_str());
        let mut sides = vec![rounds::Side {
            role: Role::Mp,
            label: "mp",
            workload: name,
            command: Box::new(|| mp_cmd(name)),
        }];
        if let Some(limit) = floor {
            sides.push(rounds::Side {
                role: Role::Floor,
                label: "floor",
                workload: limit,
                command: Box::new(move || mp_cmd(limit)),
            });
        }
        if py_names.contains(name) {
            sides.push(rounds::Side {
                role: Role::CPython,
                label: "cpython",
                workload: name,
                command: Box::new(|| {
                    let mut cmd = python_side(&["--workload", name]);
                    cmd.args(quick);
                    cmd
                }),
            });
        } else {
            eprint!(" cpython: n/a;");
        }
        for (peer, bin, names) in &peers {
            if names.contains(name) {
                sides.push(rounds::Side {
                    role: Role::Peer,
                    label: peer,
                    workload: name,
                    command: Box::new(move || {
                        let mut cmd = proc::command(bin);
                        cmd.args(["--workload", name]).args(quick);
                        cmd
                    }),
                });
            }
        }
        let count = match sides.iter().filter(|s| s.every_round()).count() {
            1 => 1,
            _ if flags.quick => rounds::QUICK,
            _ => rounds::FULL,
        };
        let mut mp_rounds = Ok(Vec::new());
        let mut floor_rounds = None;
        let mut cpython = None;
        let mut peer_rounds: Vec<(&str, Result<Vec<Measured>, String>)> = Vec::new();
        for (side, r) in sides.iter().zip(rounds::run(&sides, count)) {
            match side.role {
                Role::Mp => mp_rounds = r,
                Role::Floor => floor_rounds = Some(r),
                Role::CPython => cpython = Some(r),
                Role::Peer => peer_rounds.push((side.label, r)),
            }
        }

        let mut errors = Vec::new();
        let mp_all = match &mp_rounds {
            Ok(r) => rounds::pooled(r),
            Err(e) => {
                errors.push(format!("mp: {e}"));
                None
            }
        };
        let cpython = cpython.and_then(|r| {
            r.map_err(|e| errors.push(format!("cpython: {e}")))
                .ok()
                .and_then(|r| rounds::pooled(&r))
        });
        if let (Some(a), Some(b)) = (&mp_all, &cpython) {
            if (&a.unit, a.better) != (&b.unit, b.better) {
                errors.push(format!(
                    "mp reports {} ({} is better), cpython {} ({} is better)",
                    a.unit,
                    a.better.as_str(),
                    b.unit,
                    b.better.as_str()
                ));
            }
        }
        let (unit, better) = match mp_all.as_ref().or(cpython.as_ref()) {
            Some(m) => (m.unit.clone(), m.better),
            None => ("?".to_owned(), Better::Lower),
        };
        let ratio = match (&mp_all, &cpython) {
            (Some(m), Some(c)) if errors.is_empty() => {
                Some(goals::oriented(better, m.stats().median, c.stats().median))
            }
            _ => None,
        };
        let mp_rounds = mp_rounds.unwrap_or_default();
        let mut vs = Vs {
            rounds: count,
            ..Vs::default()
        };
        for (peer, r) in &peer_rounds {
            if let Ok(r) = r {
                if let Some(x) = rounds::median_ratio(better, &mp_rounds, r) {
                    vs.peers.push((peer.to_string(), x));
                }
            }
        }
        // A peer's failure is the row's too, but leaves the CPython ratio.
        let peer_runs = peer_rounds
            .into_iter()
            .map(|(peer, r)| {
                let m = r.and_then(|r| rounds::pooled(&r).ok_or_else(|| "no rounds".to_owned()));
                (peer, m)
            })
            .collect();
        let peers = collect_peers(peer_runs, &unit, better, &mut errors);
        vs.peers.retain(|(p, _)| peers.iter().any(|(q, _)| q == p));
        let floor_row = floor.zip(floor_rounds).map(|(limit, r)| {
            done.push(limit.to_owned());
            let mut errors = Vec::new();
            let r = r
                .map_err(|e| errors.push(format!("mp: {e}")))
                .unwrap_or_default();
            vs.floor = rounds::median_ratio(better, &mp_rounds, &r);
            Row {
                name: limit.to_owned(),
                unit: unit.clone(),
                better,
                mp: rounds::pooled(&r).map(|m| m.stats()),
                cpython: None,
                ratio: None,
                peers: Vec::new(),
                vs: Vs::default(),
                errors,
            }
        });
        for e in errors
            .iter()
            .chain(floor_row.iter().flat_map(|r| &r.errors))
        {
            eprintln!("    FAILED {e}");
        }
        rows.push(Row {
            name: name.to_string(),
            unit,
            better,
            mp: mp_all.map(|m| m.stats()),
            cpython: cpython.map(|c| c.stats()),
            ratio,
            peers,
            vs,
            errors,
        });
        rows.extend(floor_row);
    }

    mpi_workloads(root, flags, &mut rows)?;

    let meta = Meta {
        date: utc_now(),
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        python,
        quick: flags.quick,
    };
    print!("\n{}", report::table(&rows));

    let dir = target_dir(root).join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (file, text) in [
        ("report.json", report::json(&meta, &rows)),
        ("report.md", report::markdown(&meta, &rows)),
        ("report.svg", report::svg(&meta, &rows)),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!("\nwrote {}/report.{{json,md,svg}}", dir.display());

    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.errors.is_empty())
        .map(|r| r.name.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "bench: {} workload(s) failed: {}",
            failed.len(),
            failed.join(", ")
        ))
    }
}

/// The MPI workloads (`mpi_*`, see `mpi.rs`): mp-mpi's `mpi-bench` under
/// `mpirun -n 3` (2 worker ranks), with mpi4py.futures' `MPIPoolExecutor`
/// under the same `mpirun` in the CPython column, and each compared with
/// its mp-pool row (`pool_*`) of this run. Skipped with a notice where
/// `mpirun` (or mpi4py) is missing.
fn mpi_workloads(root: &Path, flags: &Flags, rows: &mut Vec<Row>) -> Result<(), String> {
    let names: Vec<&str> = crate::mpi::BENCH_WORKLOADS
        .into_iter()
        .filter(|n| flags.selects(n))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    if !crate::mpi::available() {
        eprintln!(
            "bench: NOTE: no `mpirun`: skipping {} (apt-get install libopenmpi-dev openmpi-bin libclang-dev)",
            names.join(", ")
        );
        return Ok(());
    }
    proc::run(
        proc::cargo().args([
            "build",
            "--release",
            "-p",
            crate::mpi::PACKAGE,
            "--features",
            "mpi",
            "--example",
            "mpi-bench",
        ]),
        None,
    )?;
    let bin = target_dir(root)
        .join("release")
        .join("examples")
        .join(format!("mpi-bench{}", std::env::consts::EXE_SUFFIX));
    let mpi4py = python_version().is_some();
    if mpi4py {
        ensure_mpi4py()?;
        eprintln!("bench: NOTE: the CPython column of mpi_* is mpi4py.futures.MPIPoolExecutor");
    }
    let quick: &[&str] = if flags.quick { &["--quick"] } else { &[] };
    for name in names {
        eprint!("[mpi] {name}: mp ...");
        let mut errors = Vec::new();
        let mut cmd = crate::mpi::mpirun();
        cmd.arg(&bin).args(["--workload", name]).args(quick);
        let mp = measure(cmd, name);
        progress(&mp);
        let cpython = mpi4py.then(|| {
            eprint!("; mpi4py ...");
            let mut cmd = crate::mpi::mpirun();
            cmd.args([PYTHON, "-m", "mpi4py.futures"])
                .arg(root.join(MPI4PY_SCRIPT))
                .args(["--workload", name])
                .args(quick);
            let m = measure(cmd, name);
            progress(&m);
            m
        });
        eprintln!();
        let mp = mp.map_err(|e| errors.push(format!("mp: {e}"))).ok();
        let cpython = cpython.and_then(|r| r.map_err(|e| errors.push(format!("mpi4py: {e}"))).ok());
        for e in &errors {
            eprintln!("    FAILED {e}");
        }
        let ratio = match (&mp, &cpython) {
            (Some(m), Some(c)) => Some(m.stats().median / c.stats().median),
            _ => None,
        };
        let pool = name.trim_start_matches("mpi_");
        if let (Some(m), Some(p)) = (&mp, rows.iter().find(|r| r.name == pool).and_then(|r| r.mp)) {
            eprintln!(
                "    {name}: MpiPool at {:.2}x of mp-pool's Pool ({pool})",
                m.stats().median / p.median
            );
        }
        rows.push(Row {
            name: name.to_owned(),
            unit: "tasks/s".to_owned(),
            better: Better::Higher,
            mp: mp.map(|m| m.stats()),
            cpython: cpython.map(|c| c.stats()),
            ratio,
            peers: Vec::new(),
            vs: Vs::default(),
            errors,
        });
    }
    Ok(())
}

/// The peers' figures for a row whose unit is `unit`; a failed peer, or one
/// that reports another unit, becomes an error of the row, named after it.
fn collect_peers(
    runs: Vec<(&str, Result<Measured, String>)>,
    unit: &str,
    better: Better,
    errors: &mut Vec<String>,
) -> Vec<(String, Stats)> {
    let mut peers = Vec::new();
    for (peer, run) in runs {
        match run {
            Ok(m) if m.unit == unit && m.better == better => {
                peers.push((peer.to_owned(), m.stats()))
            }
            Ok(m) => errors.push(format!(
                "{peer}: reports {} ({} is better), mp {unit} ({} is better)",
                m.unit,
                m.better.as_str(),
                better.as_str()
            )),
            Err(e) => errors.push(format!("{peer}: {e}")),
        }
    }
    peers
}

/// Whether `import mpi4py.futures` works.
fn mpi4py_importable() -> bool {
    proc::output(
        proc::command(PYTHON).args(["-c", "import mpi4py.futures"]),
        Some(SIDE_TIMEOUT),
    )
    .is_ok_and(|o| o.status.success())
}

/// Makes mpi4py importable for the MPI rows' CPython column: installs it
/// with pip when it is missing, or fails naming the command to run.
fn ensure_mpi4py() -> Result<(), String> {
    if mpi4py_importable() {
        return Ok(());
    }
    let shown = MPI4PY_INSTALL.join(" ");
    eprintln!(
        "bench: mpi4py is missing: running `{shown}` (it builds against Open MPI; a few minutes)"
    );
    let mut cmd = proc::command(MPI4PY_INSTALL[0]);
    cmd.args(&MPI4PY_INSTALL[1..]);
    let installed = proc::run(&mut cmd, Some(MPI4PY_INSTALL_TIMEOUT));
    match installed {
        Ok(()) if mpi4py_importable() => Ok(()),
        Ok(()) => Err(format!(
            "bench: `{shown}` succeeded but `import mpi4py.futures` still fails: \
             the MPI rows need mpi4py for `{PYTHON}`; run `{shown}` for that interpreter"
        )),
        Err(e) => Err(format!(
            "bench: the MPI rows need mpi4py and installing it failed ({e}): run `{shown}`"
        )),
    }
}

fn progress(m: &Result<Measured, String>) {
    match m {
        Ok(m) => eprint!(" {} {}", report::num(m.stats().median), m.unit),
        Err(_) => eprint!(" FAILED"),
    }
    let _ = std::io::stderr().flush();
}

/// Cargo's target directory for the workspace at `root`: `CARGO_TARGET_DIR`
/// (relative to `root` when it is relative) or `root/target`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// `3.11.7` from `python3 --version`, or `None` if there is no `python3`.
fn python_version() -> Option<String> {
    let out = proc::output(proc::command(PYTHON).arg("--version"), Some(SIDE_TIMEOUT)).ok()?;
    // Python 2 printed its version on stderr; take whichever has it.
    let text = format!("{}{}", out.stdout, out.stderr);
    let version = text.trim().strip_prefix("Python ")?.to_owned();
    out.status.success().then_some(version)
}

/// The workload names a side knows (`--list`).
fn list(mut cmd: Command) -> Result<Vec<String>, String> {
    cmd.arg("--list");
    let shown = proc::display(&cmd);
    let out = proc::output(&mut cmd, Some(SIDE_TIMEOUT))?;
    if !out.status.success() {
        return Err(format!(
            "`{shown}` failed: {}\n{}",
            out.status,
            out.stderr.trim_end()
        ));
    }
    Ok(out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Runs one side of one workload and checks what it printed.
fn measure(mut cmd: Command, name: &str) -> Result<Measured, String> {
    let out = proc::output(&mut cmd, Some(SIDE_TIMEOUT))?;
    if !out.status.success() {
        let stderr = out.stderr.trim_end();
        return Err(format!("{}: {stderr}", out.status));
    }
    let line = out
        .stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    parse_line(line, name).map_err(|e| format!("{e}; it printed {line:?}"))
}

fn parse_line(line: &str, name: &str) -> Result<Measured, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .ok_or(format!("no string `{k}`"))
    };
    if field("name")? != name {
        return Err(format!("result is for `{}`", field("name")?));
    }
    let check = field("check")?;
    if check != "ok" {
        return Err(format!("check failed: {check}"));
    }
    let better = match field("better")? {
        "lower" => Better::Lower,
        "higher" => Better::Higher,
        other => return Err(format!("`better` is {other:?}")),
    };
    let samples: Vec<f64> = v
        .get("samples")
        .and_then(Value::as_array)
        .ok_or("no `samples` array")?
        .iter()
        .map(|s| s.as_f64().filter(|x| x.is_finite() && *x > 0.0))
        .collect::<Option<_>>()
        .ok_or("a sample is not a positive number")?;
    if samples.is_empty() {
        return Err("no samples".into());
    }
    Ok(Measured {
        unit: field("unit")?.to_owned(),
        better,
        samples,
    })
}

/// Now, as `2024-05-01T12:00:00Z`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to civil date: Howard Hinnant's `civil_from_days`.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests;
