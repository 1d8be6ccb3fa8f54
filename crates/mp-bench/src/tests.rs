//! Tests for the result line and the workload table.

use super::*;

#[test]
fn result_line_is_json() {
    let w = &workloads::ALL[0];
    let line = result_line(w, &[1.5, 2.0, 1e-7]);
    assert_eq!(
        line,
        format!(
            r#"{{"name": "{}", "unit": "us/process", "better": "lower", "samples": [1.5, 2.0, 1e-7], "check": "ok"}}"#,
            w.name
        )
    );
    assert_eq!(json_string("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
}

#[test]
fn names_are_unique() {
    let mut names: Vec<&str> = workloads::ALL.iter().map(|w| w.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), workloads::ALL.len());
}
