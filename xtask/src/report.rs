//! The bench report in its four forms: the terminal table, `report.json` (the
//! schema of WORKLOADS.md), `report.md` and `report.svg` (a log-scale bar
//! chart of the ratios, written by hand).
//!
//! Each row shows mp, CPython and mp's ratio to it; the best Rust peer of the
//! row and mp's ratio to it; and the row's floor (`NAME:limit` of the same
//! run) with mp's share of it. Every ratio is oriented so that > 1 means mp
//! is better; a share of the floor is at most about 1. The goals
//! (`goals.rs`) close each form.

use std::fmt::Write as _;

use serde_json::Value;

use crate::bench::{Meta, Row, Stats};
use crate::goals::{self, Verdict};

/// A figure with as many digits as a noisy benchmark deserves.
pub(crate) fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 {
        // Thousands separators: 78,708 reads better than 78708.
        let digits = format!("{:.0}", a);
        let mut out = String::new();
        for (i, d) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(d);
        }
        if x < 0.0 { format!("-{out}") } else { out }
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}x"))
}

fn median(row: &Row, s: Option<Stats>, side_failed: bool) -> String {
    match s {
        Some(s) => num(s.median),
        None if side_failed => "FAILED".to_owned(),
        None if row.errors.is_empty() => "n/a".to_owned(),
        None => "-".to_owned(),
    }
}

fn failed(row: &Row, side: &str) -> bool {
    row.errors.iter().any(|e| e.starts_with(side))
}

/// The best peer's cell: its name and median.
fn peer_cell(row: &Row) -> String {
    match goals::best_peer(row) {
        Some((name, s, _)) => format!("{name} {}", num(s.median)),
        None => "n/a".to_owned(),
    }
}

fn floor_cell(rows: &[Row], row: &Row) -> String {
    goals::floor(rows, &row.name).map_or_else(|| "n/a".to_owned(), |f| num(f.median))
}

fn share(s: Option<f64>) -> String {
    s.map_or_else(|| "n/a".to_owned(), |s| format!("{s:.2}"))
}

/// A goal's verdict in words.
fn verdict_line(v: &Verdict) -> String {
    let measured = v
        .measured
        .map_or_else(|| "-".to_owned(), |m| format!("{m:.2}"));
    let met = match v.met {
        Some(true) => "met",
        Some(false) => "NOT MET",
        None => "not measured",
    };
    format!("{}: {} (measured {measured}): {met}", v.row, v.goal)
}

/// The aligned table printed at the end of a run, then the goals.
pub(crate) fn table(rows: &[Row]) -> String {
    const COLS: usize = 9;
    let mut cells = vec![
        [
            "workload",
            "unit",
            "mp",
            "cpython",
            "ratio",
            "best peer",
            "vs peer",
            "floor",
            "of floor",
        ]
        .map(str::to_owned),
    ];
    for row in rows {
        cells.push([
            row.name.clone(),
            row.unit.clone(),
            median(row, row.mp, failed(row, "mp")),
            median(row, row.cpython, failed(row, "cpython")),
            ratio(row.ratio),
            peer_cell(row),
            ratio(goals::best_peer(row).and_then(|(_, _, r)| r)),
            floor_cell(rows, row),
            share(goals::floor_share(rows, row)),
        ]);
    }
    let mut width = [0; COLS];
    for line in &cells {
        for (w, cell) in width.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (i, line) in cells.iter().enumerate() {
        let mut text = String::new();
        for (j, (cell, w)) in line.iter().zip(width).enumerate() {
            match j {
                0 | 1 => {
                    let _ = write!(text, "{cell:<w$}  ");
                }
                _ => {
                    let _ = write!(text, "{cell:>w$}  ");
                }
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
        if i == 0 {
            let _ = writeln!(
                out,
                "{}",
                "-".repeat(width.iter().sum::<usize>() + 2 * (COLS - 1))
            );
        }
    }
    out.push_str(
        "ratio and vs peer > 1 mean mp is better (other/mp when lower is better, mp/other when higher);\n\
         of floor is mp's share of this run's NAME:limit row (1 = at the floor)\n",
    );
    let verdicts = goals::check(rows);
    if !verdicts.is_empty() {
        out.push_str("\ngoals:\n");
        for v in &verdicts {
            let _ = writeln!(out, "  {}", verdict_line(v));
        }
    }
    out
}

/// `report.json`, in the schema of WORKLOADS.md and in its key order, one
/// result per line. A workload that failed also has an `"error"` string; the
/// sides it lacks are `null`.
pub(crate) fn json(meta: &Meta, rows: &[Row]) -> String {
    let stats = |s: Option<Stats>| match s {
        Some(s) => object(&[
            ("median", lit(s.median)),
            ("min", lit(s.min)),
            ("max", lit(s.max)),
        ]),
        None => lit(Value::Null),
    };
    let results: Vec<String> = rows
        .iter()
        .map(|row| {
            let mut fields = vec![
                ("name", lit(row.name.as_str())),
                ("unit", lit(row.unit.as_str())),
                ("better", lit(row.better.as_str())),
                ("mp", stats(row.mp)),
                ("cpython", stats(row.cpython)),
                ("ratio", lit(row.ratio)),
                ("peers", {
                    let peers: Vec<(&str, String)> = row
                        .peers
                        .iter()
                        .map(|(name, s)| (name.as_str(), stats(Some(*s))))
                        .collect();
                    object(&peers)
                }),
            ];
            if row.vs.rounds > 1 {
                let mut vs: Vec<(&str, String)> = Vec::new();
                if let Some(f) = row.vs.floor {
                    vs.push(("floor", lit(f)));
                }
                vs.extend(row.vs.peers.iter().map(|(p, r)| (p.as_str(), lit(*r))));
                fields.push(("rounds", lit(row.vs.rounds)));
                fields.push(("vs", object(&vs)));
            }
            if !row.errors.is_empty() {
                fields.push(("error", lit(row.errors.join("; "))));
            }
            object(&fields)
        })
        .collect();
    let meta = object(&[
        ("date", lit(meta.date.as_str())),
        ("nproc", lit(meta.nproc)),
        ("python", lit(meta.python.as_deref())),
        ("quick", lit(meta.quick)),
    ]);
    let verdicts: Vec<String> = goals::check(rows)
        .iter()
        .map(|v| {
            object(&[
                ("row", lit(v.row.as_str())),
                ("goal", lit(v.goal.as_str())),
                ("measured", lit(v.measured)),
                ("met", lit(v.met)),
            ])
        })
        .collect();
    format!(
        "{{\"meta\": {meta},\n \"results\": [\n   {}\n ],\n \"goals\": [\n   {}\n ]}}\n",
        results.join(",\n   "),
        verdicts.join(",\n   ")
    )
}

/// One JSON value as text.
fn lit(v: impl Into<Value>) -> String {
    v.into().to_string()
}

/// `{"k": v, ...}` from JSON texts, keys in the order given (serde_json's
/// `Map` sorts them unless its `preserve_order` feature brings in indexmap).
fn object(fields: &[(&str, String)]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}: {v}", lit(*k)))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// `report.md`: the table with min and max, and the failures below it.
pub(crate) fn markdown(meta: &Meta, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# mp vs CPython multiprocessing, the Rust peers and the floors\n"
    );
    let _ = writeln!(
        out,
        "{}, {} CPU(s), CPython {}{}. Ratio > 1 means mp is better.\n",
        meta.date,
        meta.nproc,
        meta.python.as_deref().unwrap_or("not found"),
        if meta.quick { ", `--quick`" } else { "" },
    );
    out.push_str("Ratio and vs peer: mp against CPython and against the best Rust peer of the row. Of floor: mp's share of the row's floor (`NAME:limit`, the same work without mp, this run), 1 at the floor.\n\n");
    if let Some(n) = rows.iter().map(|r| r.vs.rounds).max().filter(|n| *n > 1) {
        let _ = writeln!(
            out,
            "A row with a floor goal or a Rust peer ran in {n} interleaved rounds (mp, its floor, its peers, once each per round; CPython in the first): its medians, min and max pool every round's samples, and its vs peer and of floor are the medians of the {n} rounds' ratios, each taken under one round's load.\n"
        );
    }
    out.push_str("| workload | unit | better | mp median | mp min | mp max | cpython median | cpython min | cpython max | ratio | best peer | vs peer | floor | of floor |\n");
    out.push_str("|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|\n");
    for row in rows {
        let side = |s: Option<Stats>, name: &str| match s {
            Some(s) => format!("{} | {} | {}", num(s.median), num(s.min), num(s.max)),
            None => {
                let m = median(row, None, failed(row, name));
                format!("{m} | | ")
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.unit,
            row.better.as_str(),
            side(row.mp, "mp"),
            side(row.cpython, "cpython"),
            ratio(row.ratio),
            peer_cell(row),
            ratio(goals::best_peer(row).and_then(|(_, _, r)| r)),
            floor_cell(rows, row),
            share(goals::floor_share(rows, row)),
        );
    }
    let with_peers: Vec<&Row> = rows.iter().filter(|r| !r.peers.is_empty()).collect();
    if !with_peers.is_empty() {
        out.push_str("\n## Rust peers\n\n");
        out.push_str("| workload | unit | peer | median | min | max | mp vs peer |\n");
        out.push_str("|---|---|---|--:|--:|--:|--:|\n");
        for row in with_peers {
            for (peer, s) in &row.peers {
                let vs = goals::vs_peer(row, peer, s);
                let _ = writeln!(
                    out,
                    "| {} | {} | {peer} | {} | {} | {} | {} |",
                    row.name,
                    row.unit,
                    num(s.median),
                    num(s.min),
                    num(s.max),
                    ratio(vs),
                );
            }
        }
    }
    let verdicts = goals::check(rows);
    if !verdicts.is_empty() {
        out.push_str("\n## Goals\n\n");
        for v in &verdicts {
            let _ = writeln!(out, "- {}", verdict_line(v));
        }
    }
    let failures: Vec<&Row> = rows.iter().filter(|r| !r.errors.is_empty()).collect();
    if !failures.is_empty() {
        out.push_str("\n## Failures\n\n");
        for row in failures {
            for e in &row.errors {
                let _ = writeln!(out, "- `{}`: {}", row.name, e.replace('\n', " "));
            }
        }
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The best peer of `row` and mp's ratio to it, when both are known.
fn peer(row: &Row) -> Option<(&str, f64)> {
    goals::best_peer(row).and_then(|(name, _, r)| Some((name, r?)))
}

/// `report.svg`: one horizontal bar per workload from the 1x line to its
/// ratio to CPython, on a log scale, green where mp wins and red where it
/// loses; a blue diamond at mp's ratio to the best Rust peer and an orange
/// circle at mp's share of the floor, on the same scale.
pub(crate) fn svg(meta: &Meta, rows: &[Row]) -> String {
    const WIDTH: f64 = 900.0;
    const LABEL_END: f64 = 270.0;
    const PLOT_LEFT: f64 = 280.0;
    const PLOT_RIGHT: f64 = 800.0;
    const TOP: f64 = 60.0;
    const ROW: f64 = 26.0;
    const BAR: f64 = 16.0;

    let ratios: Vec<f64> = rows
        .iter()
        .flat_map(|r| {
            [
                r.ratio,
                peer(r).map(|(_, x)| x),
                goals::floor_share(rows, r),
            ]
        })
        .flatten()
        .filter(|r| *r > 0.0)
        .collect();
    let lowest = ratios.iter().copied().fold(1.0, f64::min);
    let highest = ratios.iter().copied().fold(1.0, f64::max);
    // Whole decades, at least 0.1x..10x, with a little room past the bars.
    let lo = (lowest.log10() - 0.05).floor().min(-1.0) as i32;
    let hi = (highest.log10() + 0.05).ceil().max(1.0) as i32;
    let x = |r: f64| {
        PLOT_LEFT + (r.log10() - f64::from(lo)) / f64::from(hi - lo) * (PLOT_RIGHT - PLOT_LEFT)
    };
    let top = TOP + 20.0; // room for the legend
    let bottom = top + ROW * rows.len() as f64;
    let height = bottom + 40.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">mp vs CPython multiprocessing, the Rust peers and the floors: log scale (&gt; 1x: mp is better)</text>"#
    );
    let _ = writeln!(
        out,
        r##"<text x="10" y="42" fill="#555">{} · {} CPU(s) · CPython {}{}</text>"##,
        xml_escape(&meta.date),
        meta.nproc,
        xml_escape(meta.python.as_deref().unwrap_or("not found")),
        if meta.quick { " · --quick" } else { "" },
    );
    let _ = writeln!(
        out,
        r##"<rect x="10" y="{:.1}" width="14" height="10" fill="#2e7d32"/><text x="30" y="{:.1}">vs CPython</text><path d="M 127 {:.1} l 6 6 l -6 6 l -6 -6 z" fill="#1565c0"/><text x="139" y="{:.1}">vs best Rust peer</text><circle cx="277" cy="{:.1}" r="5" fill="#ef6c00"/><text x="287" y="{:.1}">share of the floor (NAME:limit)</text>"##,
        TOP - 2.0,
        TOP + 7.0,
        TOP - 3.0,
        TOP + 7.0,
        TOP + 3.0,
        TOP + 7.0,
    );

    for (i, row) in rows.iter().enumerate() {
        let y = top + ROW * i as f64;
        if i % 2 == 1 {
            let _ = writeln!(
                out,
                r##"<rect x="0" y="{y}" width="{WIDTH}" height="{ROW}" fill="#f4f4f4"/>"##
            );
        }
        let text_y = y + ROW / 2.0 + 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{LABEL_END}" y="{text_y}" text-anchor="end">{}</text>"#,
            xml_escape(&row.name)
        );
        let one = x(1.0);
        match row.ratio.filter(|r| *r > 0.0) {
            Some(r) => {
                let (left, right) = (one.min(x(r)), one.max(x(r)));
                let colour = if r >= 1.0 { "#2e7d32" } else { "#c62828" };
                let _ = writeln!(
                    out,
                    r#"<rect x="{left:.1}" y="{:.1}" width="{:.1}" height="{BAR}" fill="{colour}"/>"#,
                    y + (ROW - BAR) / 2.0,
                    (right - left).max(1.0),
                );
                // Losses end left of 1x: their value goes right of the line.
                let _ = writeln!(
                    out,
                    r#"<text x="{:.1}" y="{text_y}">{:.2}x</text>"#,
                    right + 4.0,
                    r
                );
            }
            None => {
                let why = if !row.errors.is_empty() {
                    "FAILED"
                } else if row.name.ends_with(":limit") {
                    "floor (no CPython figure)"
                } else {
                    "n/a (no CPython figure)"
                };
                let _ = writeln!(
                    out,
                    r##"<text x="{:.1}" y="{text_y}" fill="#777">{why}</text>"##,
                    one + 4.0
                );
            }
        }
        let mid = y + ROW / 2.0;
        if let Some((name, r)) = peer(row).filter(|(_, r)| *r > 0.0) {
            let _ = writeln!(
                out,
                r##"<path d="M {:.1} {:.1} l 6 6 l -6 6 l -6 -6 z" fill="#1565c0"><title>vs {}: {r:.2}x</title></path>"##,
                x(r),
                mid - 6.0,
                xml_escape(name),
            );
        }
        if let Some(f) = goals::floor_share(rows, row).filter(|f| *f > 0.0) {
            let _ = writeln!(
                out,
                r##"<circle cx="{:.1}" cy="{mid:.1}" r="5" fill="#ef6c00"><title>share of the floor: {f:.2}</title></circle>"##,
                x(f),
            );
        }
    }

    for e in lo..=hi {
        let r = 10f64.powi(e);
        let gx = x(r);
        let (stroke, w) = if e == 0 { ("#000", 2) } else { ("#bbb", 1) };
        let label = if e < 0 {
            format!("{r:.*}x", e.unsigned_abs() as usize)
        } else {
            format!("{r:.0}x")
        };
        let _ = writeln!(
            out,
            r#"<line x1="{gx:.1}" y1="{:.1}" x2="{gx:.1}" y2="{bottom:.1}" stroke="{stroke}" stroke-width="{w}"/>"#,
            top - 6.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{gx:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            bottom + 18.0
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests;
