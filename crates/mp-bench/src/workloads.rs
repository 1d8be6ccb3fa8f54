//! The workload table: one entry per workload of WORKLOADS.md that mp-bench
//! implements. Adding a workload is one function plus one entry in [`ALL`].

mod spawn_join;

/// Whether a smaller or a larger figure is better.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Better {
    Lower,
    #[allow(dead_code, reason = "for the throughput workloads still to come")]
    Higher,
}

/// One workload: its fixed name, the unit of its samples, and the function
/// that measures it (`quick` shrinks sizes and repetitions).
#[derive(Debug)]
pub(crate) struct Workload {
    pub(crate) name: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) better: Better,
    /// Runs the untimed warm-up, then the timed repetitions, checking results;
    /// returns one sample per repetition or why the check failed.
    pub(crate) run: fn(quick: bool) -> Result<Vec<f64>, String>,
}

/// Every workload, in the order of WORKLOADS.md.
pub(crate) const ALL: &[Workload] = &[
    Workload {
        name: "spawn_join_fork",
        unit: "us/process",
        better: Better::Lower,
        run: spawn_join::fork,
    },
    Workload {
        name: "spawn_join_spawn",
        unit: "us/process",
        better: Better::Lower,
        run: spawn_join::spawn,
    },
    Workload {
        name: "spawn_join_forkserver",
        unit: "us/process",
        better: Better::Lower,
        run: spawn_join::forkserver,
    },
];

/// How many timed repetitions each workload makes (after one warm-up).
pub(crate) fn repetitions(quick: bool) -> usize {
    if quick { 3 } else { 5 }
}

/// Runs `rep` [`repetitions`] times and collects its samples.
pub(crate) fn repeat(
    quick: bool,
    mut rep: impl FnMut() -> Result<f64, String>,
) -> Result<Vec<f64>, String> {
    (0..repetitions(quick)).map(|_| rep()).collect()
}
