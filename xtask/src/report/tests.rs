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
            peers: vec![],
            vs: Default::default(),
            errors: vec![],
        },
        Row {
            name: "atomic_counter".into(),
            unit: "incs/s".into(),
            better: Better::Higher,
            mp: s(1e8),
            cpython: None,
            ratio: None,
            peers: vec![],
            vs: Default::default(),
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

/// A row with two peers and its floor, as a run of the peers and floors
/// produces them.
fn rows_with_peers_and_floor() -> Vec<Row> {
    let s = |m: f64| Stats {
        median: m,
        min: m * 0.9,
        max: m * 1.1,
    };
    vec![
        Row {
            name: "pipe_pingpong".into(),
            unit: "us/roundtrip".into(),
            better: Better::Lower,
            mp: Some(s(4.0)),
            cpython: Some(s(40.0)),
            ratio: Some(10.0),
            peers: vec![("ipc-channel".into(), s(15.0)), ("other".into(), s(20.0))],
            vs: Default::default(),
            errors: vec![],
        },
        Row {
            name: "pipe_pingpong:limit".into(),
            unit: "us/roundtrip".into(),
            better: Better::Lower,
            mp: Some(s(3.2)),
            cpython: None,
            ratio: None,
            peers: vec![],
            vs: Default::default(),
            errors: vec![],
        },
    ]
}

#[test]
fn json_has_peers_and_goals() {
    let text = json(&meta(), &rows_with_peers_and_floor());
    let v: Value = serde_json::from_str(&text).unwrap();
    let peers = &v["results"][0]["peers"];
    assert_eq!(peers["ipc-channel"]["median"], 15.0);
    assert_eq!(peers["ipc-channel"]["min"], 13.5);
    assert_eq!(peers["other"]["max"], 22.0);
    // Peers keep the order of the run (ipc-channel first).
    assert!(
        text.contains(r#""peers": {"ipc-channel": {"median": 15.0,"#),
        "{text}"
    );
    assert_eq!(v["results"][1]["peers"], serde_json::json!({}));
    let goals = v["goals"].as_array().unwrap();
    let pp = goals
        .iter()
        .find(|g| g["goal"] == "<= 1.5x its floor's time")
        .unwrap();
    assert_eq!(pp["row"], "pipe_pingpong");
    assert_eq!(pp["met"], true);
    assert!((pp["measured"].as_f64().unwrap() - 1.25).abs() < 1e-9);
    let ahead = goals
        .iter()
        .filter(|g| g["row"] == "pipe_pingpong" && g["met"] == true)
        .count();
    assert_eq!(ahead, 3, "two peers and the floor: {goals:?}");
    // The rows not in this run are listed as not measured.
    assert!(
        goals
            .iter()
            .any(|g| g["row"] == "shared_memory_block" && g["met"].is_null())
    );
}

#[test]
fn text_reports_show_peer_and_floor() {
    let rows = rows_with_peers_and_floor();
    let t = table(&rows);
    // Best peer ipc-channel at 15 us: mp (4 us) is 3.75x ahead; floor 3.20,
    // mp at 0.80 of it.
    assert!(t.contains("ipc-channel 15.0"), "{t}");
    assert!(
        t.contains("3.75x") && t.contains("3.20") && t.contains("0.80"),
        "{t}"
    );
    assert!(
        t.contains("pipe_pingpong: <= 1.5x its floor's time (measured 1.25): met"),
        "{t}"
    );
    assert!(t.contains("shared_memory_block: >= 0.90 of its floor (measured -): not measured"));
    let md = markdown(&meta(), &rows);
    assert!(
        md.contains("| 10.00x | ipc-channel 15.0 | 3.75x | 3.20 | 0.80 |"),
        "{md}"
    );
    assert!(
        md.contains("## Rust peers")
            && md.contains("| pipe_pingpong | us/roundtrip | other | 20.0 | 18.0 | 22.0 | 5.00x |"),
        "{md}"
    );
    assert!(
        md.contains("## Goals")
            && md.contains("- pipe_pingpong: ahead of ipc-channel (measured 3.75): met"),
        "{md}"
    );
    let svg = svg(&meta(), &rows);
    assert!(
        svg.contains("<title>vs ipc-channel: 3.75x</title>"),
        "{svg}"
    );
    assert!(
        svg.contains("<title>share of the floor: 0.80</title>"),
        "{svg}"
    );
    assert!(svg.contains("floor (no CPython figure)"), "{svg}");
}
