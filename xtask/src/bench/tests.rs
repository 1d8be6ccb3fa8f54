//! Tests for `bench.rs`: flags, statistics, result lines, dates.

use super::*;

#[test]
fn stats() {
    let s = Stats::of(&[3.0, 1.0, 2.0]);
    assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
    assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
}

#[test]
fn flags() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let f = Flags::parse(&args(&["--quick", "--only", "spawn,pool_"])).unwrap();
    assert!(f.quick && f.selects("spawn_join_fork") && f.selects("pool_imap"));
    assert!(!f.selects("pipe_pingpong"));
    assert!(
        Flags::parse(&args(&["--only=pipe"]))
            .unwrap()
            .selects("pipe_pingpong")
    );
    assert!(Flags::parse(&args(&["--fast"])).is_err());
    assert!(Flags::default().selects("anything"));
}

#[test]
fn result_lines() {
    let line =
        r#"{"name": "w", "unit": "us", "better": "lower", "samples": [2, 1.5], "check": "ok"}"#;
    let m = parse_line(line, "w").unwrap();
    assert_eq!(
        (m.unit.as_str(), m.better, m.stats.median),
        ("us", Better::Lower, 1.75)
    );
    assert!(parse_line(line, "other").is_err());
    assert!(parse_line(&line.replace("\"ok\"", "\"lost 3\""), "w").is_err());
    assert!(parse_line(&line.replace("[2, 1.5]", "[]"), "w").is_err());
    assert!(parse_line("oops", "w").is_err());
}

#[test]
fn date_format() {
    let d = utc_now();
    assert_eq!(d.len(), "2024-05-01T12:00:00Z".len());
    assert!(d.starts_with("20") && d.ends_with('Z'), "{d}");
}
