#!/usr/bin/env python3
"""The CPython side of `cargo xtask bench`: the same workloads as mp-bench.

`bench_cpython.py --workload NAME [--quick]` runs one workload and prints one
JSON line, {"name", "unit", "better", "samples", "check": "ok"}; a failed
result check exits non-zero with a message instead. `--list` prints the
workload names, one per line. Standard library only.

Conventions (see ../README.md): one untimed warm-up, then N timed
repetitions (5, or 3 with --quick); the clock is read in the parent only.
"""

import json
import multiprocessing
import sys
import time

import ipc  # the queue and pipe workloads (next to this file)
import manager  # the manager workloads (next to this file)
import pool  # the pool and executor workloads (next to this file)
import shm  # the shared-memory workloads (next to this file)


class CheckFailed(Exception):
    """A workload computed a wrong result."""


def noop():
    pass


def repetitions(quick):
    return 3 if quick else 5


def spawn_join(method, quick):
    """K sequential start+join of a process running noop; us per process."""
    ctx = multiprocessing.get_context(method)
    per_rep = 20 if quick else 50

    def start_join():
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        if p.exitcode != 0:
            raise CheckFailed(f"child exited with {p.exitcode}")

    start_join()  # Warm-up: also starts the fork server, untimed.
    samples = []
    for _ in range(repetitions(quick)):
        start = time.perf_counter()
        for _ in range(per_rep):
            start_join()
        samples.append((time.perf_counter() - start) * 1e6 / per_rep)
    return samples


# name -> (unit, better, function(quick) -> samples); the order of WORKLOADS.md.
WORKLOADS = {
    "spawn_join_fork": ("us/process", "lower", lambda q: spawn_join("fork", q)),
    "spawn_join_spawn": ("us/process", "lower", lambda q: spawn_join("spawn", q)),
    "spawn_join_forkserver": (
        "us/process",
        "lower",
        lambda q: spawn_join("forkserver", q),
    ),
    "pool_startup": pool.WORKLOADS["pool_startup"],
    "pool_map_trivial": pool.WORKLOADS["pool_map_trivial"],
    "pool_map_trivial:chunksize1": pool.WORKLOADS["pool_map_trivial:chunksize1"],
    "pool_apply_async": pool.WORKLOADS["pool_apply_async"],
    "pool_imap": pool.WORKLOADS["pool_imap"],
    "pool_imap_unordered": pool.WORKLOADS["pool_imap_unordered"],
    "executor_submit": pool.WORKLOADS["executor_submit"],
    "executor_map": pool.WORKLOADS["executor_map"],
    "cpu_sum_speedup": pool.WORKLOADS["cpu_sum_speedup"],
    "cpu_sum_speedup:limit": pool.WORKLOADS["cpu_sum_speedup:limit"],
    "queue_throughput_small": ("msgs/s", "higher", lambda q: ipc.queue_small(q, 1)),
    "queue_throughput_small:4producers": ("msgs/s", "higher", lambda q: ipc.queue_small(q, 4)),
    "queue_throughput_1mb": ("MiB/s", "higher", ipc.queue_1mb),
    "joinable_queue": ("items/s", "higher", ipc.joinable_queue),
    "pipe_pingpong": ("us/roundtrip", "lower", ipc.pipe_pingpong),
    "pipe_bytes_pingpong": ("us/roundtrip", "lower", ipc.pipe_bytes_pingpong),
    "pipe_throughput_1mb": ("MiB/s", "higher", ipc.pipe_throughput_1mb),
    "value_lock_counter_sharedctypes": ("incs/s", "higher", shm.value_lock_counter),
    "value_lock_counter_manager": ("incs/s", "higher", manager.value_lock_counter),
    "raw_value_no_lock": ("incs/s", "higher", shm.raw_value_no_lock),
    "array_sum": ("MiB/s", "higher", shm.array_sum),
    "manager_dict_ops": ("ops/s", "higher", manager.dict_ops),
    "shared_memory_block": ("GiB/s", "higher", shm.shared_memory_block),
    "pool_apply_latency": pool.WORKLOADS["pool_apply_latency"],
}

USAGE = "usage: bench_cpython.py --list | --workload NAME [--quick]"


def main(argv):
    quick = "--quick" in argv
    args = [a for a in argv if a != "--quick"]
    if args == ["--list"] and not quick:
        for name in WORKLOADS:
            print(name)
        return 0
    if len(args) != 2 or args[0] != "--workload":
        print(USAGE, file=sys.stderr)
        return 2
    name = args[1]
    if name not in WORKLOADS:
        print(f"bench_cpython.py: unknown workload {name!r} (see --list)", file=sys.stderr)
        return 2
    unit, better, run = WORKLOADS[name]
    try:
        samples = run(quick)
    except (CheckFailed, ipc.CheckFailed, manager.CheckFailed, shm.CheckFailed, pool.CheckFailed) as e:
        print(f"bench_cpython.py: {name}: check failed: {e}", file=sys.stderr)
        return 1
    line = {
        "name": name,
        "unit": unit,
        "better": better,
        "samples": samples,
        "check": "ok",
    }
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
