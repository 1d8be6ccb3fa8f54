"""Manager workloads, the CPython side of mp-bench's workloads/manager.rs.

Children are gated with the manager's own objects: each connects, releases
`ready`, and waits for `go`; the clock runs from `go` to the last `done`.
Standard library only.
"""

import multiprocessing
import time

WAIT = 120


class CheckFailed(Exception):
    """A workload computed a wrong result."""


def _repetitions(quick):
    return 3 if quick else 5


def _counter_child(gate, num, lock, delta, n):
    ready, go, done = gate
    num.value  # connect
    ready.release()
    go.wait(WAIT)
    for _ in range(n):
        lock.acquire()
        num.value += delta
        lock.release()
    done.release()


def _time(gate, n):
    ready, go, done = gate
    for _ in range(n):
        if not ready.acquire(timeout=WAIT):
            raise CheckFailed("a child never became ready")
    start = time.perf_counter()
    go.set()
    for _ in range(n):
        if not done.acquire(timeout=WAIT):
            raise CheckFailed("a child never finished")
    return time.perf_counter() - start


def value_lock_counter(quick):
    n = 2_000 if quick else 10_000
    with multiprocessing.Manager() as m:

        def rep():
            gate = (m.Semaphore(0), m.Event(), m.Semaphore(0))
            num = m.Value("i", 0)
            lock = m.Lock()
            procs = [
                multiprocessing.Process(target=_counter_child, args=(gate, num, lock, d, n))
                for d in (1, -1)
            ]
            for p in procs:
                p.start()
            secs = _time(gate, 2)
            for p in procs:
                p.join()
            if num.value != 0:
                raise CheckFailed(f"the counter ended at {num.value}, not 0")
            return 2 * n / secs

        rep()
        return [rep() for _ in range(_repetitions(quick))]


def _dict_child(gate, d, n):
    ready, go, done = gate
    len(d)  # connect
    ready.release()
    go.wait(WAIT)
    for i in range(n):
        d[i] = i * 2
    for i in range(n):
        if d[i] != i * 2:
            raise SystemExit(1)
    done.release()


def dict_ops(quick):
    n = 5_000 if quick else 20_000
    with multiprocessing.Manager() as m:

        def rep():
            gate = (m.Semaphore(0), m.Event(), m.Semaphore(0))
            d = m.dict()
            p = multiprocessing.Process(target=_dict_child, args=(gate, d, n))
            p.start()
            secs = _time(gate, 1)
            p.join()
            if p.exitcode != 0 or len(d) != n:
                raise CheckFailed("the dict child failed")
            return 2 * n / secs

        rep()
        return [rep() for _ in range(_repetitions(quick))]
