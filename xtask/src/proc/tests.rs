//! Tests for running commands: exit statuses, captured output, timeouts.

use super::*;

#[cfg(unix)]
#[test]
fn statuses_and_output() {
    assert!(run(command("true").arg("ignored"), None).is_ok());
    let err = run(&mut command("false"), Some(Duration::from_secs(60))).unwrap_err();
    assert!(err.contains("`false` failed"), "{err}");
    let out = output(command("sh").args(["-c", "echo out; echo err >&2"]), None).unwrap();
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("out\n", "err\n")
    );
    assert!(run(&mut command("/nonexistent/program"), None).is_err());
}

#[cfg(unix)]
#[test]
fn timeout_kills_the_whole_group() {
    let start = Instant::now();
    // Killing `sh` alone would leave the background `sleep` running.
    let mut cmd = command("sh");
    cmd.args(["-c", "sleep 30 & sleep 30"]);
    let err = output(&mut cmd, Some(Duration::from_millis(300))).unwrap_err();
    assert!(err.contains("timed out"), "{err}");
    let err = run(&mut cmd, Some(Duration::from_millis(300))).unwrap_err();
    assert!(err.contains("timed out after"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(20));
    let left = output(command("ps").args(["-eo", "args"]), None)
        .unwrap()
        .stdout;
    assert!(!left.lines().any(|l| l.trim() == "sleep 30"), "{left}");
}
