//! Interleaved rounds: a row judged against its floor or a Rust peer runs
//! mp, the floor and each peer once per round, in the same order, for
//! several rounds, and each comparison is the median of the rounds' ratios.
//!
//! Why: the machine's load drifts on the scale of seconds, and one
//! invocation of `spawn_join_fork` lasts a tenth of one. Run once each, mp
//! and its floor can land in different weather: on an idle machine three
//! back-to-back pairs gave mp 2.76x, 1.53x and 1.61x its floor's time, the
//! first pair alone missing the 2x goal. A ratio taken within a round sees
//! both sides under the same load, and the median over rounds drops the
//! round a burst of load spoiled. CPython's ratios are 10x and more, far
//! past such noise, so CPython runs in the first round only.

use std::process::Command;

use super::{Better, Measured, Stats};
use crate::goals::oriented;

/// Rounds in a full run, and in `--quick`. Odd, so that the median is one
/// round's ratio.
pub(crate) const FULL: usize = 5;
pub(crate) const QUICK: usize = 3;

/// What a side is to its row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Role {
    Mp,
    Floor,
    /// Runs in the first round only.
    CPython,
    Peer,
}

/// One program that measures a row: mp, the floor, CPython or a peer.
pub(crate) struct Side<'a> {
    pub(crate) role: Role,
    /// How the progress line and the errors name it: `mp`, `floor`, ...
    pub(crate) label: &'a str,
    /// The workload name it is asked for (the floor's is `NAME:limit`).
    pub(crate) workload: &'a str,
    pub(crate) command: Box<dyn Fn() -> Command + 'a>,
}

impl Side<'_> {
    /// Whether it runs in every round (else in the first only).
    pub(crate) fn every_round(&self) -> bool {
        self.role != Role::CPython
    }
}

/// Runs `sides` for `count` rounds; per side, its measurement of each
/// round, or the error of the first round it failed (it is not run again:
/// a broken side would only fail again, slowly).
pub(crate) fn run(sides: &[Side<'_>], count: usize) -> Vec<Result<Vec<Measured>, String>> {
    let mut out: Vec<Result<Vec<Measured>, String>> =
        sides.iter().map(|_| Ok(Vec::new())).collect();
    for round in 0..count {
        if count > 1 {
            eprint!(
                "{}round {}:",
                if round == 0 { " " } else { " |" },
                round + 1
            );
        }
        for (side, result) in sides.iter().zip(&mut out) {
            let Ok(done) = result else { continue };
            if round > 0 && !side.every_round() {
                continue;
            }
            eprint!(" {} ...", side.label);
            let m = super::measure((side.command)(), side.workload);
            super::progress(&m);
            match m {
                Ok(m) => done.push(m),
                Err(e) => *result = Err(e),
            }
        }
    }
    eprintln!();
    out
}

/// One side's rounds as one measurement: all its samples together.
pub(crate) fn pooled(rounds: &[Measured]) -> Option<Measured> {
    let first = rounds.first()?;
    Some(Measured {
        unit: first.unit.clone(),
        better: first.better,
        samples: rounds
            .iter()
            .flat_map(|m| m.samples.iter().copied())
            .collect(),
    })
}

/// The median over rounds of mp's ratio to `other` (oriented: > 1 means
/// mp is better), from rounds that both sides completed.
pub(crate) fn median_ratio(better: Better, mp: &[Measured], other: &[Measured]) -> Option<f64> {
    let ratios: Vec<f64> = mp
        .iter()
        .zip(other)
        .map(|(m, o)| oriented(better, m.stats().median, o.stats().median))
        .collect();
    (!ratios.is_empty()).then(|| Stats::of(&ratios).median)
}
