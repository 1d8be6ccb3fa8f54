"""The pool workloads of bench_cpython.py: pool_*, executor_* and
cpu_sum_speedup[:limit]. Pools have 2 workers, are created and warmed once
per workload, reused across repetitions, and closed and joined untimed."""

import concurrent.futures
import multiprocessing
import time


class CheckFailed(Exception):
    """A workload computed a wrong result."""


def f(x):
    return x + 1


def task(n):
    s = 0
    for i in range(n):
        s += i
    return s


# n such that one task(n) takes about 0.1 s in CPython on this machine.
CPU_N = 2_000_000


def repetitions(quick):
    return 3 if quick else 5


def check_map(got, n):
    if list(got) != list(range(1, n + 1)):
        raise CheckFailed(f"wrong map result ({len(got)} items)")


def make_pool():
    pool = multiprocessing.Pool(2)
    pool.map(f, range(1000), chunksize=1)  # warm-up
    return pool


def finish(pool):
    pool.close()
    pool.join()


def startup(quick):
    def once():
        start = time.perf_counter()
        pool = multiprocessing.Pool(2)
        r = pool.apply(f, (1,))
        t = (time.perf_counter() - start) * 1e3
        if r != 2:
            raise CheckFailed(f"apply(f, 1) gave {r}")
        finish(pool)
        return t

    once()
    return [once() for _ in range(repetitions(quick))]


def throughput(quick, n, run, check=check_map):
    pool = make_pool()
    check(run(pool), n)
    samples = []
    for _ in range(repetitions(quick)):
        start = time.perf_counter()
        got = run(pool)
        t = time.perf_counter() - start
        check(got, n)
        samples.append(n / t)
    finish(pool)
    return samples


def map_trivial(quick):
    return throughput(quick, 100_000, lambda p: p.map(f, range(100_000)))


def map_trivial_chunksize1(quick):
    return throughput(quick, 10_000, lambda p: p.map(f, range(10_000), chunksize=1))


def apply_async(quick):
    def run(p):
        rs = [p.apply_async(f, (i,)) for i in range(10_000)]
        return [r.get() for r in rs]

    return throughput(quick, 10_000, run)


def apply_latency(quick):
    pool = make_pool()

    def run():
        for i in range(3_000):
            r = pool.apply(f, (i,))
            if r != i + 1:
                raise CheckFailed(f"apply(f, {i}) gave {r}")

    run()  # warm-up
    samples = []
    for _ in range(repetitions(quick)):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1e6 / 3_000)
    finish(pool)
    return samples


def imap(quick):
    return throughput(quick, 100_000, lambda p: list(p.imap(f, range(100_000), chunksize=64)))


def imap_unordered(quick):
    return throughput(
        quick,
        100_000,
        lambda p: list(p.imap_unordered(f, range(100_000), chunksize=64)),
        lambda got, n: check_map(sorted(got), n),
    )


def executor_throughput(quick, n, run):
    ex = concurrent.futures.ProcessPoolExecutor(2)
    check_map(list(ex.map(f, range(1000), chunksize=1)), 1000)  # warm-up
    check_map(run(ex), n)
    samples = []
    for _ in range(repetitions(quick)):
        start = time.perf_counter()
        got = run(ex)
        t = time.perf_counter() - start
        check_map(got, n)
        samples.append(n / t)
    ex.shutdown(wait=True)
    return samples


def executor_submit(quick):
    def run(ex):
        fs = [ex.submit(f, i) for i in range(10_000)]
        return [x.result() for x in fs]

    return executor_throughput(quick, 10_000, run)


def executor_map(quick):
    return executor_throughput(
        quick, 100_000, lambda ex: list(ex.map(f, range(100_000), chunksize=64))
    )


def serial_seconds():
    start = time.perf_counter()
    for _ in range(4):
        task(CPU_N)
    return time.perf_counter() - start


def check_sums(got):
    want = CPU_N * (CPU_N - 1) // 2
    if list(got) != [want] * 4:
        raise CheckFailed(f"wrong sums {got}")


def cpu_sum_speedup(quick):
    pool = make_pool()
    check_sums(pool.map(task, [CPU_N] * 4))
    samples = []
    for _ in range(repetitions(quick)):
        serial = serial_seconds()
        start = time.perf_counter()
        got = pool.map(task, [CPU_N] * 4)
        parallel = time.perf_counter() - start
        check_sums(got)
        samples.append(serial / parallel)
    finish(pool)
    return samples


def two_tasks(n, q):
    q.put([task(n), task(n)])


def cpu_sum_speedup_limit(quick):
    ctx = multiprocessing.get_context("fork")

    def run():
        q = ctx.SimpleQueue()
        ps = [ctx.Process(target=two_tasks, args=(CPU_N, q)) for _ in range(2)]
        for p in ps:
            p.start()
        out = q.get() + q.get()
        for p in ps:
            p.join()
        return out

    check_sums(run())
    samples = []
    for _ in range(repetitions(quick)):
        serial = serial_seconds()
        start = time.perf_counter()
        got = run()
        parallel = time.perf_counter() - start
        check_sums(got)
        samples.append(serial / parallel)
    return samples


# name -> (unit, better, function(quick) -> samples); the order of WORKLOADS.md.
WORKLOADS = {
    "pool_startup": ("ms", "lower", startup),
    "pool_map_trivial": ("tasks/s", "higher", map_trivial),
    "pool_map_trivial:chunksize1": ("tasks/s", "higher", map_trivial_chunksize1),
    "pool_apply_async": ("tasks/s", "higher", apply_async),
    "pool_apply_latency": ("us/call", "lower", apply_latency),
    "pool_imap": ("tasks/s", "higher", imap),
    "pool_imap_unordered": ("tasks/s", "higher", imap_unordered),
    "executor_submit": ("tasks/s", "higher", executor_submit),
    "executor_map": ("tasks/s", "higher", executor_map),
    "cpu_sum_speedup": ("x speedup", "higher", cpu_sum_speedup),
    "cpu_sum_speedup:limit": ("x speedup", "higher", cpu_sum_speedup_limit),
}
