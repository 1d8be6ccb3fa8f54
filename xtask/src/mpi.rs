//! The MPI part of `cargo xtask ci`: mp-mpi's checks with its `mpi`
//! feature (clippy, docs, the tests, which run under `mpirun`, and the
//! `sums` example under `mpirun` over both transports).
//!
//! The workspace's default build needs neither MPI nor libclang, so these
//! steps run only where `mpirun` is installed; elsewhere they are skipped
//! with a notice. `.ci/run` installs Open MPI and sets
//! `MP_MPI_REQUIRED=1`, and then a missing `mpirun` fails CI instead:
//! on CI the MPI steps always run.

use std::process::Command;
use std::time::Duration;

use crate::proc;

/// How long the MPI test run may take (it starts seven `mpirun` jobs, each
/// under its own `timeout`).
const TEST_TIMEOUT: Duration = Duration::from_secs(900);

/// How long one `mpirun` of the example may take.
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The package the steps are about; `ci` runs its examples here only.
pub(crate) const PACKAGE: &str = "mp-mpi";

/// Open MPI refuses to run as root without these (CI runs as root).
pub(crate) const ROOT_ENV: [(&str, &str); 2] = [
    ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
    ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
];

/// Open MPI's flags that force TCP between the ranks of one machine.
pub(crate) const TCP: [&str; 6] = ["--mca", "btl", "tcp,self", "--mca", "pml", "ob1"];

/// The MPI workloads of `cargo xtask bench` (see `bench::mpi_workloads`).
pub(crate) const BENCH_WORKLOADS: [&str; 2] = ["mpi_pool_map_trivial", "mpi_pool_apply_async"];

/// `mpirun` for 3 ranks (rank 0 and 2 workers), allowed as root and on
/// fewer cores than ranks.
pub(crate) fn mpirun() -> Command {
    let mut cmd = proc::command("mpirun");
    cmd.args(["--oversubscribe", "-n", "3"]).envs(ROOT_ENV);
    cmd
}

/// Whether `mpirun` runs here.
pub(crate) fn available() -> bool {
    proc::command("mpirun")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The MPI steps of `ci`, as (command, timeout); none, with a notice, when
/// MPI is not installed and not required.
pub(crate) fn ci_steps() -> Result<Vec<(Command, Option<Duration>)>, String> {
    if !available() {
        if std::env::var_os("MP_MPI_REQUIRED").is_some_and(|v| v == "1") {
            return Err("MP_MPI_REQUIRED=1 but `mpirun --version` fails: \
                 install libopenmpi-dev openmpi-bin libclang-dev"
                .into());
        }
        println!(
            "==> notice: no `mpirun` here: skipping the mp-mpi steps \
             (apt-get install libopenmpi-dev openmpi-bin libclang-dev to run them)"
        );
        return Ok(Vec::new());
    }
    let cargo = |args: &[&str]| {
        let mut cmd = proc::cargo();
        cmd.args(args);
        cmd
    };
    let mut steps = vec![
        (
            cargo(&[
                "clippy",
                "-p",
                PACKAGE,
                "--features",
                "mpi",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
            None,
        ),
        (
            {
                let mut doc = cargo(&["doc", "-p", PACKAGE, "--features", "mpi", "--no-deps"]);
                doc.env("RUSTDOCFLAGS", "-D warnings");
                doc
            },
            None,
        ),
        // The integration tests start their own `mpirun` jobs (see
        // crates/mp-mpi/tests/it/main.rs).
        (
            cargo(&["test", "-p", PACKAGE, "--features", "mpi"]),
            Some(TEST_TIMEOUT),
        ),
        // The facade's `mp::mpi` re-exports.
        (
            cargo(&["test", "-p", "multiprocess", "--features", "mpi", "--tests"]),
            Some(TEST_TIMEOUT),
        ),
        (
            cargo(&[
                "build",
                "--release",
                "-p",
                PACKAGE,
                "--features",
                "mpi",
                "--examples",
            ]),
            None,
        ),
    ];
    // The steps run at the workspace's root; the example is where cargo
    // put it, under CARGO_TARGET_DIR when that is set.
    let sums = crate::bench::target_dir(std::path::Path::new("."))
        .join("release")
        .join("examples")
        .join("sums");
    for transport in [&[][..], &TCP[..]] {
        let mut run = mpirun();
        run.args(transport).arg(&sums);
        steps.push((run, Some(EXAMPLE_TIMEOUT)));
    }
    Ok(steps)
}
