"""Shared-memory workloads, the CPython side of mp-bench's workloads/shm.rs.

Children are gated: each attaches, releases `ready`, and waits for `go`; the
clock runs from `go` to the last `done`. Start-up, exit and result checks are
untimed. Standard library only. (`atomic_counter` and `lock_uncontended` are
mp only: CPython has no shared atomics, and the lock figure is ours alone.)
"""

import multiprocessing
import sys
import time
from multiprocessing import resource_tracker, shared_memory

WAIT = 120


class CheckFailed(Exception):
    """A workload computed a wrong result."""


def _repetitions(quick):
    return 3 if quick else 5


def _gated(target, args_list):
    """Runs target(gate, *args) per args; returns (seconds, results)."""
    ready = multiprocessing.Semaphore(0)
    go = multiprocessing.Event()
    done = multiprocessing.Semaphore(0)
    results = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=target, args=((ready, go, done, results), *a))
        for a in args_list
    ]
    for p in procs:
        p.start()
    for _ in procs:
        if not ready.acquire(timeout=WAIT):
            raise CheckFailed("a child never became ready")
    start = time.perf_counter()
    go.set()
    for _ in procs:
        if not done.acquire(timeout=WAIT):
            raise CheckFailed("a child never finished")
    secs = time.perf_counter() - start
    got = [results.get(timeout=WAIT) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise CheckFailed(f"child exited with {p.exitcode}")
    return secs, got


def _enter(gate):
    ready, go, _, _ = gate
    ready.release()
    go.wait()


def _leave(gate, result=None):
    _, _, done, results = gate
    done.release()
    results.put(result)


def _locked_incs(gate, v, n):
    _enter(gate)
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    _leave(gate)


def value_lock_counter(quick):
    """Value('i') with its lock; 2 processes x 100,000 locked += 1."""
    n = 100_000

    def once():
        v = multiprocessing.Value("i", 0)
        secs, _ = _gated(_locked_incs, [(v, n), (v, n)])
        if v.value != 2 * n:
            raise CheckFailed(f"counter is {v.value}, expected {2 * n}")
        return 2 * n / secs

    once()
    return [once() for _ in range(_repetitions(quick))]


def _raw_incs(gate, v, n):
    _enter(gate)
    for _ in range(n):
        v.value += 1
    _leave(gate)


def raw_value_no_lock(quick):
    """Unlocked Value('i'), 2 processes x 100,000 += 1; lost updates expected."""
    n = 100_000

    def once():
        v = multiprocessing.Value("i", 0, lock=False)
        secs, _ = _gated(_raw_incs, [(v, n), (v, n)])
        if not n <= v.value <= 2 * n:
            raise CheckFailed(f"counter is {v.value}, outside {n}..={2 * n}")
        print(f"raw_value_no_lock: {2 * n - v.value} of {2 * n} updates lost", file=sys.stderr)
        return 2 * n / secs

    once()
    return [once() for _ in range(_repetitions(quick))]


def _sum_half(gate, a, lo, hi):
    _enter(gate)
    with a.get_lock():
        s = sum(a.get_obj()[lo:hi])
    _leave(gate, s)


def array_sum(quick):
    """Array('d', 10_000_000) filled by the parent; 2 children sum halves."""
    n = 10_000_000
    a = multiprocessing.Array("d", n)
    with a.get_lock():
        a.get_obj()[:] = [float(i) for i in range(n)]
    want = (n - 1) * n / 2

    def once():
        secs, sums = _gated(_sum_half, [(a, 0, n // 2), (a, n // 2, n)])
        if sum(sums) != want:
            raise CheckFailed(f"sum is {sum(sums)}, expected {want}")
        return n * 8 / (1 << 20) / secs

    once()
    return [once() for _ in range(_repetitions(quick))]


def _write_block(gate, names, size):
    payload = b"\xab" * size
    _enter(gate)
    name = bytes(names[1 : 1 + names[0]]).decode()
    shm = shared_memory.SharedMemory(name=name)
    shm.buf[:size] = payload
    shm.close()
    _leave(gate)


def shared_memory_block(quick):
    """100 MiB SharedMemory: create + a child writes all + the parent reads all."""
    size = 100 << 20
    # Start the tracker before the child: a child forked without one starts
    # its own, which unlinks the block when the child exits (gh-82300).
    resource_tracker.ensure_running()

    def once():
        names = multiprocessing.Array("B", 256, lock=False)
        ready = multiprocessing.Semaphore(0)
        go = multiprocessing.Event()
        done = multiprocessing.Semaphore(0)
        results = multiprocessing.Queue()
        p = multiprocessing.Process(
            target=_write_block, args=((ready, go, done, results), names, size)
        )
        p.start()
        if not ready.acquire(timeout=WAIT):
            raise CheckFailed("the child never became ready")
        start = time.perf_counter()
        shm = shared_memory.SharedMemory(create=True, size=size)
        encoded = shm.name.encode()
        names[0] = len(encoded)
        names[1 : 1 + len(encoded)] = encoded
        go.set()
        if not done.acquire(timeout=WAIT):
            raise CheckFailed("the child never finished")
        data = bytes(shm.buf[:size])
        secs = time.perf_counter() - start
        results.get(timeout=WAIT)
        p.join()
        shm.close()
        shm.unlink()
        if data != b"\xab" * size:
            raise CheckFailed("the parent read bytes the child did not write")
        return size / (1 << 30) / secs

    once()
    return [once() for _ in range(_repetitions(quick))]
