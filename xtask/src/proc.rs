//! Running commands: `cargo` through `$CARGO`, an optional timeout that kills
//! the command's whole process group, and output captured through files.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// `Command::new`, the one place where xtask may call it.
pub(crate) fn command(program: impl AsRef<OsStr>) -> Command {
    #[allow(
        clippy::disallowed_methods,
        reason = "xtask runs development tools; mp-process starts library children"
    )]
    Command::new(program)
}

/// `cargo`, the one that runs this xtask (the `CARGO` env var) if known.
pub(crate) fn cargo() -> Command {
    command(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")))
}

/// How a command line reads in messages: `VAR=value program arg ...`.
pub(crate) fn display(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| {
            Some(format!(
                "{}={:?}",
                k.to_string_lossy(),
                v?.to_string_lossy()
            ))
        })
        .collect();
    let program = cmd.get_program().to_string_lossy();
    // `$CARGO` is a full path; the short name reads better.
    let program = if program.ends_with("cargo") {
        "cargo".into()
    } else {
        program
    };
    parts.push(program.into_owned());
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs `cmd` with inherited stdout/stderr; fails on a non-zero exit or when
/// `timeout` passes (the command and everything it started are then killed).
pub(crate) fn run(cmd: &mut Command, timeout: Option<Duration>) -> Result<(), String> {
    let shown = display(cmd);
    let child = spawn(cmd, timeout.is_some()).map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    match wait(child, timeout).map_err(|e| format!("waiting for `{shown}`: {e}"))? {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("`{shown}` failed: {status}")),
        None => Err(format!(
            "`{shown}` timed out after {} s and was killed",
            secs(timeout)
        )),
    }
}

/// What a command printed, and how it ended.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `cmd` and captures its output. `Err` only when it cannot be started
/// or timed out; a non-zero exit is in `Output::status`.
///
/// Output goes to temporary files, not pipes: grandchildren that outlive the
/// command (a fork server, CPython's resource tracker) would keep a pipe open
/// and make reading it hang until they exit.
pub(crate) fn output(cmd: &mut Command, timeout: Option<Duration>) -> Result<Output, String> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let shown = display(cmd);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let base = std::env::temp_dir().join(format!("xtask-{}-{seq}", std::process::id()));
    let out_path = base.with_extension("out");
    let err_path = base.with_extension("err");
    let result = (|| {
        let create = |p: &PathBuf| File::create(p).map_err(|e| format!("{}: {e}", p.display()));
        cmd.stdout(create(&out_path)?).stderr(create(&err_path)?);
        let child =
            spawn(cmd, timeout.is_some()).map_err(|e| format!("cannot run `{shown}`: {e}"))?;
        let status = wait(child, timeout).map_err(|e| format!("waiting for `{shown}`: {e}"))?;
        let read = |p: &PathBuf| {
            std::fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .map_err(|e| format!("{}: {e}", p.display()))
        };
        let (stdout, stderr) = (read(&out_path)?, read(&err_path)?);
        match status {
            Some(status) => Ok(Output {
                status,
                stdout,
                stderr,
            }),
            None => Err(format!(
                "`{shown}` timed out after {} s and was killed; its stderr:\n{stderr}",
                secs(timeout)
            )),
        }
    })();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    result
}

fn secs(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| t.as_secs())
}

fn spawn(cmd: &mut Command, own_group: bool) -> std::io::Result<Child> {
    if own_group {
        // A timed command gets its own process group so that a timeout can
        // kill what it started too (examples and benches start processes).
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(cmd, 0);
        cmd.stdin(Stdio::null());
    }
    cmd.spawn()
}

/// Waits for `child`; `Ok(None)` when `timeout` passed and it was killed.
fn wait(mut child: Child, timeout: Option<Duration>) -> std::io::Result<Option<ExitStatus>> {
    let Some(timeout) = timeout else {
        return child.wait().map(Some);
    };
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if start.elapsed() >= timeout {
            kill_group(&mut child);
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn kill_group(child: &mut Child) {
    // The child leads its own group (see `spawn`): `kill -KILL -- -PGID`.
    #[cfg(unix)]
    let _ = command("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
}

#[cfg(test)]
mod tests;
