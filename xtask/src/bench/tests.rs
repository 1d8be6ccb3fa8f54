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
        (m.unit.as_str(), m.better, m.stats().median),
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

fn measured(samples: &[f64]) -> Measured {
    Measured {
        unit: "us".into(),
        better: Better::Lower,
        samples: samples.to_vec(),
    }
}

#[test]
fn rounds_pool_samples_and_take_the_median_ratio() {
    // mp 2, 3, 9 us; the floor 1, 2, 3 us: ratios 0.5, 0.67, 0.33 (floor
    // time / mp time), median 0.5. The third round's burst of load hit mp
    // only; the ratio of pooled medians (2/3) would carry it.
    let mp = [measured(&[2.0]), measured(&[3.0]), measured(&[9.0])];
    let floor = [measured(&[1.0]), measured(&[2.0]), measured(&[3.0])];
    let r = rounds::median_ratio(Better::Lower, &mp, &floor).unwrap();
    assert!((r - 0.5).abs() < 1e-9, "{r}");
    let all = rounds::pooled(&mp).unwrap();
    assert_eq!(all.samples, [2.0, 3.0, 9.0]);
    assert_eq!(all.stats().median, 3.0);
    // Only the rounds both sides completed count; none, no ratio.
    let r = rounds::median_ratio(Better::Lower, &mp, &floor[..1]).unwrap();
    assert!((r - 0.5).abs() < 1e-9, "{r}");
    assert!(rounds::median_ratio(Better::Higher, &mp, &[]).is_none());
    assert!(rounds::pooled(&[]).is_none());
}

#[test]
fn the_floor_goals_pick_the_interleaved_rows() {
    for name in [
        "spawn_join_fork",
        "pipe_pingpong",
        "atomic_counter",
        "shared_memory_block",
    ] {
        assert!(goals::judges_floor(name), "{name}");
    }
    // cpu_sum_speedup:limit is a row of its own, with a CPython side.
    assert!(!goals::judges_floor("cpu_sum_speedup"));
}
