"""Queue and pipe workloads, the CPython side of mp-bench's workloads/ipc.rs.

Children are gated: each does its setup, sends "ready" on its own pipe and
waits for "go"; the parent starts the clock at "go" and stops it when it has
the last message. Standard library only.
"""

import multiprocessing
import time

MIB = 1 << 20


class CheckFailed(Exception):
    """A workload computed a wrong result."""


def _gate(c):
    c.send(None)
    c.recv()


def _producer(q, g, n):
    _gate(g)
    for i in range(n):
        q.put(i)


def _start_gated(target, args, k, n):
    procs, gates = [], []
    for _ in range(k):
        mine, theirs = multiprocessing.Pipe()
        p = multiprocessing.Process(target=target, args=(*args, theirs, n))
        p.start()
        mine.recv()
        procs.append(p)
        gates.append(mine)
    return procs, gates


def _go(gates):
    t = time.perf_counter()
    for g in gates:
        g.send(None)
    return t


def _join_all(procs):
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise CheckFailed(f"child exited with {p.exitcode}")


def _repeat(quick, rep):
    rep()  # warm-up
    return [rep() for _ in range(3 if quick else 5)]


def queue_small(quick, producers):
    total = 100_000 if quick else 200_000
    per = total // producers

    def rep():
        q = multiprocessing.Queue()
        procs, gates = _start_gated(_producer, (q,), producers, per)
        t = _go(gates)
        s = 0
        for _ in range(per * producers):
            s += q.get()
        secs = time.perf_counter() - t
        _join_all(procs)
        want = producers * (per * (per - 1) // 2)
        if s != want:
            raise CheckFailed(f"sum {s}, expected {want}")
        return per * producers / secs

    return _repeat(quick, rep)


def _big_producer(q, g, n):
    payloads = [bytes([i % 256]) * MIB for i in range(n)]
    _gate(g)
    for p in payloads:
        q.put(p)


def queue_1mb(quick):
    n = 50 if quick else 200

    def rep():
        q = multiprocessing.Queue()
        procs, gates = _start_gated(_big_producer, (q,), 1, n)
        t = _go(gates)
        ok = True
        for i in range(n):
            b = q.get()
            ok = ok and len(b) == MIB and b[0] == i % 256 and b[-1] == i % 256
        secs = time.perf_counter() - t
        _join_all(procs)
        if not ok:
            raise CheckFailed("a 1 MiB item arrived wrong")
        return n / secs

    return _repeat(quick, rep)


def _joinable_worker(q, g, _n, out):
    _gate(g)
    s = 0
    while True:
        x = q.get()
        if x is None:
            q.task_done()
            break
        s += x
        q.task_done()
    out.put(s)


def joinable_queue(quick):
    n = 20_000 if quick else 50_000

    def rep():
        q = multiprocessing.JoinableQueue()
        out = multiprocessing.Queue()
        procs, gates = [], []
        for _ in range(2):
            mine, theirs = multiprocessing.Pipe()
            p = multiprocessing.Process(target=_joinable_worker, args=(q, theirs, 0, out))
            p.start()
            mine.recv()
            procs.append(p)
            gates.append(mine)
        t = _go(gates)
        for i in range(n):
            q.put(i)
        q.join()
        secs = time.perf_counter() - t
        for _ in range(2):
            q.put(None)
        s = out.get() + out.get()
        _join_all(procs)
        if s != n * (n - 1) // 2:
            raise CheckFailed(f"workers summed {s}")
        return n / secs

    return _repeat(quick, rep)


def _echo(c, g, n):
    _gate(g)
    for _ in range(n):
        c.send(c.recv())


def pipe_pingpong(quick):
    n = 5_000 if quick else 20_000

    def rep():
        mine, theirs = multiprocessing.Pipe()
        procs, gates = _start_gated(_echo, (theirs,), 1, n)
        msg = (7, "hello", 1.5)
        t = _go(gates)
        for _ in range(n):
            mine.send(msg)
            if mine.recv() != msg:
                raise CheckFailed("echo differs")
        us = (time.perf_counter() - t) * 1e6 / n
        _join_all(procs)
        return us

    return _repeat(quick, rep)


def _echo_bytes(c, g, n):
    _gate(g)
    buf = bytearray(64)
    for _ in range(n):
        k = c.recv_bytes_into(buf)
        c.send_bytes(buf, 0, k)


def pipe_bytes_pingpong(quick):
    n = 5_000 if quick else 20_000

    def rep():
        mine, theirs = multiprocessing.Pipe()
        procs, gates = _start_gated(_echo_bytes, (theirs,), 1, n)
        msg = bytes([42]) * 64
        buf = bytearray(64)
        t = _go(gates)
        for _ in range(n):
            mine.send_bytes(msg)
            k = mine.recv_bytes_into(buf)
            if buf[:k] != msg:
                raise CheckFailed("echo differs")
        us = (time.perf_counter() - t) * 1e6 / n
        _join_all(procs)
        return us

    return _repeat(quick, rep)


def _bytes_sender(c, g, n):
    payload = bytes([7]) * MIB
    _gate(g)
    for _ in range(n):
        c.send_bytes(payload)


def pipe_throughput_1mb(quick):
    n = 100 if quick else 500

    def rep():
        reader, writer = multiprocessing.Pipe(duplex=False)
        procs, gates = _start_gated(_bytes_sender, (writer,), 1, n)
        t = _go(gates)
        ok = True
        for _ in range(n):
            b = reader.recv_bytes()
            ok = ok and len(b) == MIB and b[MIB // 2] == 7
        secs = time.perf_counter() - t
        _join_all(procs)
        if not ok:
            raise CheckFailed("a 1 MiB message arrived wrong")
        return n / secs

    return _repeat(quick, rep)
