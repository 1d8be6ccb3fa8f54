"""The mpi4py twin of mp-mpi's `mpi-bench` (crates/mp-bench/src/workloads/mpi.rs):
`mpi_pool_map_trivial` and `mpi_pool_apply_async` on
`mpi4py.futures.MPIPoolExecutor` with 2 worker ranks.

Same CLI as mp-bench: `--list`, or `--workload NAME [--quick]`, which prints one
JSON line. Run the workloads under MPI, as `cargo xtask bench` does:

    mpirun -n 3 python3 -m mpi4py.futures bench_mpi4py.py --workload NAME

(rank 0 runs this script, ranks 1 and 2 serve as the executor's workers).
"""

import json
import sys
import time


def f(x):
    """WORKLOADS.md's `f(x) = x + 1`."""
    return x + 1


def repetitions(quick):
    return 3 if quick else 5


def check_map(got, n):
    if len(got) != n or any(v != i + 1 for i, v in enumerate(got)):
        raise RuntimeError(f"wrong map result ({len(got)} items)")


def throughput(quick, n, run):
    from mpi4py.futures import MPIPoolExecutor

    with MPIPoolExecutor(max_workers=2) as ex:
        # Warm-up: both workers busy once.
        list(ex.map(f, range(1000)))
        check_map(run(ex), n)
        samples = []
        for _ in range(repetitions(quick)):
            start = time.perf_counter()
            got = run(ex)
            t = time.perf_counter() - start
            check_map(got, n)
            samples.append(n / t)
    return samples


def map_trivial(quick):
    # multiprocessing's default chunksize for 2 workers (mp's too):
    # ceil(100_000 / (4 * 2)). MPIPoolExecutor.map's default is 1.
    return throughput(quick, 100_000, lambda ex: list(ex.map(f, range(100_000), chunksize=12_500)))


def apply_async(quick):
    def run(ex):
        futures = [ex.submit(f, i) for i in range(10_000)]
        return [fut.result() for fut in futures]

    return throughput(quick, 10_000, run)


WORKLOADS = {
    "mpi_pool_map_trivial": map_trivial,
    "mpi_pool_apply_async": apply_async,
}


def main(argv):
    if argv == ["--list"]:
        for name in WORKLOADS:
            print(name)
        return 0
    quick = "--quick" in argv
    rest = [a for a in argv if a != "--quick"]
    if len(rest) != 2 or rest[0] != "--workload" or rest[1] not in WORKLOADS:
        print("usage: bench_mpi4py.py --list | --workload NAME [--quick]", file=sys.stderr)
        return 2
    name = rest[1]
    samples = WORKLOADS[name](quick)
    line = {
        "name": name,
        "unit": "tasks/s",
        "better": "higher",
        "samples": samples,
        "check": "ok",
    }
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
