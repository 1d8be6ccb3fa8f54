//! The launcher: runs each scenario under `mpirun` with 3 ranks, inside
//! `timeout`, and checks its exit status and output.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A job that has not ended after this long is killed (`timeout`) and
/// fails the test: nothing may hang.
const JOB_LIMIT: Duration = Duration::from_secs(120);

/// Open MPI's flags that force the TCP transport between ranks on one
/// machine, as between hosts.
pub(crate) const TCP: &[&str] = &["--mca", "btl", "tcp,self", "--mca", "pml", "ob1"];

struct Job {
    status: Option<i32>,
    out: String,
    took: Duration,
}

#[allow(clippy::disallowed_methods)] // `timeout` and `mpirun` are programs, not Rust functions: mp-process cannot start them.
fn mpirun(transport: &[&str], scenario: &str) -> Job {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", &JOB_LIMIT.as_secs().to_string(), "mpirun"])
        .args(["--oversubscribe", "-n", "3"])
        .args(transport)
        .arg(exe)
        .arg(scenario)
        // Open MPI refuses to run as root without both (CI runs as root).
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    let t = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .output()
        .expect("cannot run `timeout mpirun` (is Open MPI installed?)");
    let mut out = String::from_utf8_lossy(&stdout).into_owned();
    out.push_str(&String::from_utf8_lossy(&stderr));
    Job {
        status: status.code(),
        out,
        took: t.elapsed(),
    }
}

fn check(name: &str, ok: bool, job: &Job, failures: &mut Vec<String>) {
    let verdict = if ok { "ok" } else { "FAILED" };
    println!(
        "test {name} ... {verdict} ({:.1} s, exit {:?})",
        job.took.as_secs_f64(),
        job.status
    );
    if !ok {
        println!("---- output of {name} ----\n{}\n----", job.out);
        failures.push(name.to_owned());
    }
}

/// Ended by itself, with a failure status: not by `timeout` (status 124,
/// or 137 after its SIGKILL, which is also how `mpirun` reports a rank
/// killed by SIGKILL: told apart by the time taken).
fn ended_with_error(job: &Job) -> bool {
    matches!(job.status, Some(s) if s != 0 && s != 124) && job.took < JOB_LIMIT
}

pub(crate) fn run_all() {
    let mut failures = Vec::new();
    for (transport, flags) in [("default", &[][..]), ("tcp", TCP)] {
        let job = mpirun(flags, "suite");
        let ok = job.status == Some(0) && job.out.contains("mp-mpi suite: all passed");
        check(
            &format!("suite over the {transport} transport"),
            ok,
            &job,
            &mut failures,
        );
    }

    let job = mpirun(&[], "escape-main");
    let ok = ended_with_error(&job) && job.out.contains("a panic escaped on rank 0");
    check(
        "a panic escaping main on rank 0 aborts the job",
        ok,
        &job,
        &mut failures,
    );

    let job = mpirun(&[], "escape-worker");
    let ok = ended_with_error(&job)
        && (job.out.contains("a panic escaped on rank 1")
            || job.out.contains("a panic escaped on rank 2"));
    check(
        "a panic escaping on a worker rank aborts the job",
        ok,
        &job,
        &mut failures,
    );

    let job = mpirun(&[], "kill-worker");
    // mpirun names the rank that died: "mpirun noticed that process rank
    // 2 with PID 0 on node vm exited on signal 9 (Killed)".
    let named = job.out.contains("process rank 1 ") || job.out.contains("process rank 2 ");
    let ok = ended_with_error(&job) && named && job.out.contains("exited on signal 9");
    check(
        "a SIGKILLed worker rank ends the job, named",
        ok,
        &job,
        &mut failures,
    );

    let job = mpirun(&[], "task-panic");
    let ok = job.status == Some(0) && job.out.contains("task-panic: worker went on");
    check(
        "a task that panics fails only its result",
        ok,
        &job,
        &mut failures,
    );

    if failures.is_empty() {
        println!("\nmp-mpi it: all passed");
    } else {
        println!("\nmp-mpi it: failed: {failures:?}");
        std::process::exit(1);
    }
}
