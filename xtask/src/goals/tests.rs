//! Tests for `goals.rs`: the best peer, the floor share and every kind of
//! goal, met, missed and not measured.

use super::*;

fn s(m: f64) -> Option<Stats> {
    Some(Stats {
        median: m,
        min: m * 0.9,
        max: m * 1.1,
    })
}

fn row(name: &str, better: Better, mp: Option<Stats>, peers: &[(&str, f64)]) -> Row {
    Row {
        name: name.into(),
        unit: "u".into(),
        better,
        mp,
        cpython: None,
        ratio: None,
        peers: peers
            .iter()
            .map(|(p, m)| (p.to_string(), s(*m).unwrap()))
            .collect(),
        vs: Default::default(),
        errors: vec![],
    }
}

fn rows() -> Vec<Row> {
    vec![
        // Lower is better: mp 4 us, ipc-channel 15 us, a faster peer 3 us.
        row(
            "pipe_pingpong",
            Better::Lower,
            s(4.0),
            &[("ipc-channel", 15.0), ("fast", 3.0)],
        ),
        row("pipe_pingpong:limit", Better::Lower, s(3.0), &[]),
        // Higher is better: mp at 0.95 of its floor.
        row("shared_memory_block", Better::Higher, s(1.9), &[]),
        row("shared_memory_block:limit", Better::Higher, s(2.0), &[]),
        // mp at 2.5x the floor's time: the 2x goal is missed.
        row(
            "spawn_join_fork",
            Better::Lower,
            s(500.0),
            &[("procspawn", 1200.0)],
        ),
        row("spawn_join_fork:limit", Better::Lower, s(200.0), &[]),
        // No floor row in this run.
        row("atomic_counter", Better::Higher, s(1e8), &[]),
    ]
}

#[test]
fn best_peer_and_floor_share() {
    let rows = rows();
    let (name, best, vs) = best_peer(&rows[0]).unwrap();
    assert_eq!((name, best.median), ("fast", 3.0));
    assert!((vs.unwrap() - 0.75).abs() < 1e-9, "{vs:?}");
    assert!(best_peer(&rows[2]).is_none());
    assert!((floor_share(&rows, &rows[0]).unwrap() - 0.75).abs() < 1e-9);
    assert!((floor_share(&rows, &rows[2]).unwrap() - 0.95).abs() < 1e-9);
    assert!(floor_share(&rows, &rows[6]).is_none());
    // A floor row has no floor of its own.
    assert!(floor_share(&rows, &rows[1]).is_none());
}

#[test]
fn verdicts() {
    let v = check(&rows());
    let find = |row: &str, goal: &str| {
        v.iter()
            .find(|x| x.row == row && x.goal == goal)
            .unwrap_or_else(|| panic!("no verdict {row} / {goal} in {v:#?}"))
    };
    assert_eq!(
        find("pipe_pingpong", "ahead of ipc-channel").met,
        Some(true)
    );
    assert_eq!(find("pipe_pingpong", "ahead of fast").met, Some(false));
    assert_eq!(
        find("spawn_join_fork", "ahead of procspawn").met,
        Some(true)
    );
    let pp = find("pipe_pingpong", "<= 1.5x its floor's time");
    assert_eq!(pp.met, Some(true));
    assert!((pp.measured.unwrap() - 4.0 / 3.0).abs() < 1e-9);
    assert_eq!(
        find("shared_memory_block", ">= 0.90 of its floor").met,
        Some(true)
    );
    let sj = find("spawn_join_fork", "<= 2.0x its floor's time");
    assert_eq!((sj.met, sj.measured), (Some(false), Some(2.5)));
    let ac = find("atomic_counter", ">= 0.80 of its floor");
    assert_eq!((ac.met, ac.measured), (None, None));
    // 3 peer verdicts and one per named goal (the limits' rows unmeasured).
    assert_eq!(v.len(), 3 + 9, "{v:#?}");
}

#[test]
fn missing_rows_are_not_measured() {
    let v = check(&[]);
    assert_eq!(v.len(), 9, "one per named row, none for the peers: {v:#?}");
    assert!(v.iter().all(|x| x.met.is_none()));
    // A failed mp side: the peer's verdict has no figure.
    let failed = row(
        "pipe_pingpong",
        Better::Lower,
        None,
        &[("ipc-channel", 15.0)],
    );
    let v = check(&[failed]);
    assert_eq!(v[0].goal, "ahead of ipc-channel");
    assert_eq!(v[0].met, None);
}

#[test]
fn a_row_against_another_row_a_paired_share_and_an_absolute_bound() {
    let rows = vec![
        row("queue_throughput_small", Better::Higher, s(1000.0), &[]),
        row(
            "queue_throughput_small_async",
            Better::Higher,
            s(450.0),
            &[],
        ),
        row(
            "pool_apply_async_limited:paired",
            Better::Higher,
            s(0.95),
            &[],
        ),
        row("pool_apply_async_await:paired", Better::Higher, s(0.7), &[]),
        row("pool_timeout_recovery", Better::Lower, s(3.0), &[]),
        row(
            "pool_timeout_recovery:forkserver",
            Better::Lower,
            s(7.0),
            &[],
        ),
    ];
    let v = check(&rows);
    let find = |row: &str| v.iter().find(|x| x.row == row).unwrap();
    let q = find("queue_throughput_small_async");
    assert_eq!(q.goal, ">= 0.50 of queue_throughput_small");
    assert_eq!(q.met, Some(false));
    assert!((q.measured.unwrap() - 0.45).abs() < 1e-9);
    let l = find("pool_apply_async_limited:paired");
    assert_eq!(l.goal, ">= 0.90 of pool_apply_async, paired on one pool");
    assert_eq!((l.met, l.measured), (Some(true), Some(0.95)));
    assert_eq!(find("pool_apply_async_await:paired").met, Some(false));
    assert_eq!(find("pool_timeout_recovery").goal, "<= 5");
    assert_eq!(find("pool_timeout_recovery").met, Some(true));
    assert_eq!(find("pool_timeout_recovery:forkserver").met, Some(false));
    // Without the other row there is no figure.
    let v = check(&rows[1..2]);
    let q = v
        .iter()
        .find(|x| x.row == "queue_throughput_small_async")
        .unwrap();
    assert_eq!(q.met, None);
}

#[test]
fn rounds_decide_over_medians() {
    let mut rows = rows();
    // The medians put spawn_join_fork at 2.5x its floor; the rounds'
    // ratios at 1.6x (a share of 0.625), and ahead of procspawn by 3x.
    rows[4].vs = crate::bench::Vs {
        rounds: 5,
        floor: Some(0.625),
        peers: vec![("procspawn".into(), 3.0)],
    };
    assert_eq!(floor_share(&rows, &rows[4]), Some(0.625));
    assert_eq!(best_peer(&rows[4]).unwrap().2, Some(3.0));
    let v = super::verdicts(&rows, &rows[4], Target::FloorTimesAtMost(2.0));
    assert_eq!((v[0].measured, v[0].met), (Some(1.6), Some(true)));
    // Without its floor row in the run, no share, rounds or not.
    rows.remove(5);
    assert_eq!(floor_share(&rows, &rows[4]), None);
}
