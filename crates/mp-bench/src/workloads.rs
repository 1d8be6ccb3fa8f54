//! The workload table: one entry per workload of WORKLOADS.md that mp-bench
//! implements. Adding a workload is one function plus one entry in [`ALL`].

mod floors;
mod ipc;
mod manager;
mod pool;
mod shm;
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

/// Every workload, in the order of WORKLOADS.md; each floor (`NAME:limit`)
/// right after its row, so that the two are measured close together.
pub(crate) const ALL: &[Workload] = &[
    Workload {
        name: "spawn_join_fork",
        unit: "us/process",
        better: Better::Lower,
        run: spawn_join::fork,
    },
    Workload {
        name: "spawn_join_fork:limit",
        unit: "us/process",
        better: Better::Lower,
        run: floors::spawn_join_fork,
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
    Workload {
        name: "pool_startup",
        unit: "ms",
        better: Better::Lower,
        run: pool::startup,
    },
    Workload {
        name: "pool_map_trivial",
        unit: "tasks/s",
        better: Better::Higher,
        run: pool::map_trivial,
    },
    Workload {
        name: "pool_map_trivial:chunksize1",
        unit: "tasks/s",
        better: Better::Higher,
        run: pool::map_trivial_chunksize1,
    },
    Workload {
        name: "pool_apply_async",
        unit: "tasks/s",
        better: Better::Higher,
        run: pool::apply_async,
    },
    Workload {
        name: "pool_apply_async_await",
        unit: "tasks/s",
        better: Better::Higher,
        run: pool::apply_async_await,
    },
    Workload {
        name: "pool_apply_async_await:paired",
        unit: "share",
        better: Better::Higher,
        run: pool::apply_async_await_paired,
    },
    Workload {
        name: "pool_apply_async_limited",
        unit: "tasks/s",
        better: Better::Higher,
        run: pool::apply_async_limited,
    },
    Workload {
        name: "pool_apply_async_limited:paired",
        unit: "share",
        better: Better::Higher,
        run: pool::apply_async_limited_paired,
    },
    Workload {
        name: "pool_timeout_recovery",
        unit: "ms",
        better: Better::Lower,
        run: pool::timeout_recovery_fork,
    },
    Workload {
        name: "pool_timeout_recovery:forkserver",
        unit: "ms",
        better: Better::Lower,
        run: pool::timeout_recovery_forkserver,
    },
    Workload {
        name: "pool_imap",
        unit: "tasks/s",
        better: Better::Higher,
        run: pool::imap,
    },
    Workload {
        name: "pool_imap_unordered",
        unit: "tasks/s",
        better: Better::Higher,
        run: pool::imap_unordered,
    },
    Workload {
        name: "executor_submit",
        unit: "tasks/s",
        better: Better::Higher,
        run: pool::executor_submit,
    },
    Workload {
        name: "executor_map",
        unit: "tasks/s",
        better: Better::Higher,
        run: pool::executor_map,
    },
    Workload {
        name: "cpu_sum_speedup",
        unit: "x speedup",
        better: Better::Higher,
        run: pool::cpu_sum_speedup,
    },
    Workload {
        name: "cpu_sum_speedup:limit",
        unit: "x speedup",
        better: Better::Higher,
        run: pool::cpu_sum_speedup_limit,
    },
    Workload {
        name: "queue_throughput_small",
        unit: "msgs/s",
        better: Better::Higher,
        run: ipc::queue_throughput_small,
    },
    Workload {
        name: "queue_throughput_small_async",
        unit: "msgs/s",
        better: Better::Higher,
        run: ipc::queue_throughput_small_async,
    },
    Workload {
        name: "queue_throughput_small:4producers",
        unit: "msgs/s",
        better: Better::Higher,
        run: ipc::queue_throughput_small_4producers,
    },
    Workload {
        name: "queue_throughput_1mb",
        unit: "MiB/s",
        better: Better::Higher,
        run: ipc::queue_throughput_1mb,
    },
    Workload {
        name: "joinable_queue",
        unit: "items/s",
        better: Better::Higher,
        run: ipc::joinable_queue,
    },
    Workload {
        name: "pipe_pingpong",
        unit: "us/roundtrip",
        better: Better::Lower,
        run: ipc::pipe_pingpong,
    },
    Workload {
        name: "pipe_pingpong:limit",
        unit: "us/roundtrip",
        better: Better::Lower,
        run: floors::pipe_pingpong,
    },
    Workload {
        name: "pipe_bytes_pingpong",
        unit: "us/roundtrip",
        better: Better::Lower,
        run: ipc::pipe_bytes_pingpong,
    },
    Workload {
        name: "pipe_throughput_1mb",
        unit: "MiB/s",
        better: Better::Higher,
        run: ipc::pipe_throughput_1mb,
    },
    Workload {
        name: "value_lock_counter_sharedctypes",
        unit: "incs/s",
        better: Better::Higher,
        run: shm::value_lock_counter,
    },
    Workload {
        name: "value_lock_counter_manager",
        unit: "incs/s",
        better: Better::Higher,
        run: manager::value_lock_counter,
    },
    Workload {
        name: "raw_value_no_lock",
        unit: "incs/s",
        better: Better::Higher,
        run: shm::raw_value_no_lock,
    },
    Workload {
        name: "atomic_counter",
        unit: "incs/s",
        better: Better::Higher,
        run: shm::atomic_counter,
    },
    Workload {
        name: "atomic_counter:limit",
        unit: "incs/s",
        better: Better::Higher,
        run: floors::atomic_counter,
    },
    Workload {
        name: "array_sum",
        unit: "MiB/s",
        better: Better::Higher,
        run: shm::array_sum,
    },
    Workload {
        name: "manager_dict_ops",
        unit: "ops/s",
        better: Better::Higher,
        run: manager::dict_ops,
    },
    Workload {
        name: "shared_memory_block",
        unit: "GiB/s",
        better: Better::Higher,
        run: shm::shared_memory_block,
    },
    Workload {
        name: "shared_memory_block:limit",
        unit: "GiB/s",
        better: Better::Higher,
        run: floors::shared_memory_block,
    },
    Workload {
        name: "pool_apply_latency",
        unit: "us/call",
        better: Better::Lower,
        run: pool::apply_latency,
    },
    Workload {
        name: "lock_uncontended",
        unit: "ns/op",
        better: Better::Lower,
        run: shm::lock_uncontended,
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
