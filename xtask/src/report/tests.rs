//! Tests for `report.rs`: number formatting and the three report files.

use super::*;
use crate::bench::Better;

fn rows() -> Vec<Row> {
    let s = |m| {
        Some(Stats {
            median: m,
            min: m * 0.9,
            max: m * 1.1,
        })
    };
    vec![
        Row {
            name: "spawn_join_fork".into(),
            unit: "us/process".into(),
            better: Better::Lower,
            mp: s(500.0),
            cpython: s(2692.0),
            ratio: Some(5.384),
            errors: vec![],
        },
        Row {
            name: "atomic_counter".into(),
            unit: "incs/s".into(),
            better: Better::Higher,
            mp: s(1e8),
            cpython: None,
            ratio: None,
            errors: vec![],
        },
    ]
}

fn meta() -> Meta {
    Meta {
        date: "2024-05-01T12:00:00Z".into(),
        nproc: 2,
        python: Some("3.11.7".into()),
        quick: true,
    }
}

#[test]
fn numbers() {
    assert_eq!(num(78708.4), "78,708");
    assert_eq!(num(1_000_000.0), "1,000,000");
    assert_eq!(num(377.2), "377");
    assert_eq!(num(50.64), "50.6");
    assert_eq!(num(5.584), "5.58");
    assert_eq!(num(0.4321), "0.432");
}

#[test]
fn json_schema() {
    let text = json(&meta(), &rows());
    assert!(text.starts_with(r#"{"meta": {"date": "2024-05-01T12:00:00Z", "nproc": 2,"#));
    assert!(text.contains(
        r#"{"name": "spawn_join_fork", "unit": "us/process", "better": "lower", "mp": {"median": 500.0, "min": 450.0, "max": 550.0}, "cpython": {"median": 2692.0,"#
    ));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["meta"]["python"], "3.11.7");
    assert_eq!(v["results"][0]["mp"]["median"], 500.0);
    assert_eq!(v["results"][0]["better"], "lower");
    assert!(v["results"][1]["cpython"].is_null() && v["results"][1]["ratio"].is_null());
    assert!(v["results"][0].get("error").is_none());
}

#[test]
fn text_reports() {
    let t = table(&rows());
    assert!(
        t.contains("5.38x") && t.contains("2,692") && t.contains("n/a"),
        "{t}"
    );
    let md = markdown(&meta(), &rows());
    assert!(
        md.contains("| spawn_join_fork | us/process | lower | 500 | 450 | 550 | 2,692 |"),
        "{md}"
    );
    let svg = svg(&meta(), &rows());
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    assert!(svg.contains(">5.38x<") && svg.contains(">1x<") && svg.contains(">0.1x<"));
}
