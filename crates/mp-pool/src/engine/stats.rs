//! What the pool says about its workers on request (`Pool::worker_stats`):
//! each one's pid, tasks done, resident set and how long its current task
//! has run. Read from the workers' blocks and `/proc`, under the pool lock
//! only for the counts: nothing is kept or measured between requests.

use std::time::Duration;

use super::{Engine, lock};
use crate::limits::{monotonic_ns, rss_of};

/// One worker of a process pool, as [`Pool::worker_stats`](crate::Pool::worker_stats)
/// saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// The worker's slot (0 to `processes - 1`); a replacement takes its
    /// predecessor's slot.
    pub slot: usize,
    /// Its process id.
    pub pid: u32,
    /// Tasks whose results the pool has received from it (a chunk of a
    /// `map` is one task).
    pub tasks_done: u64,
    /// Its resident set in bytes (`/proc/<pid>/statm`), if it could be read.
    pub rss: Option<u64>,
    /// How long its current task (or the current item of a `map` with time
    /// limits) has run; `None` when it is idle.
    pub current_task: Option<Duration>,
}

impl Engine {
    /// The workers running now, by slot.
    pub(crate) fn worker_stats(&self) -> Vec<WorkerStats> {
        let seen: Vec<(usize, u32, u64, Option<Duration>)> = {
            let st = lock(&self.shared.state);
            let now = monotonic_ns();
            st.workers
                .iter()
                .enumerate()
                .filter_map(|(slot, w)| {
                    let block = w.port.as_ref()?.block();
                    let pid = block.pid();
                    if pid == 0 {
                        return None;
                    }
                    let started = block.started();
                    let running = (started > w.completed && !w.outstanding.is_empty())
                        .then(|| Duration::from_nanos(now.saturating_sub(block.task_start())));
                    Some((slot, pid, w.completed, running))
                })
                .collect()
        };
        // `/proc` is read outside the lock.
        seen.into_iter()
            .map(|(slot, pid, tasks_done, current_task)| WorkerStats {
                slot,
                pid,
                tasks_done,
                rss: rss_of(Some(pid)),
                current_task,
            })
            .collect()
    }
}
