//! Queue and pipe workloads: `queue_throughput_small` (and `:4producers`,
//! and its async form `queue_throughput_small_async`),
//! `queue_throughput_1mb`, `joinable_queue`, `pipe_pingpong`,
//! `pipe_bytes_pingpong` and `pipe_throughput_1mb`.
//!
//! Children are gated: each does its setup, sends "ready" on its own pipe,
//! and waits for "go"; the parent starts the clock at "go" and stops it when
//! it has the last message.

use std::time::Instant;

use mp_ipc::{Connection, JoinableQueue, Queue, pipe};
use mp_process::Process;
use serde_bytes::ByteBuf;

use super::repeat;

const MIB: usize = 1 << 20;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Child side of the gate.
fn gate(c: &mut Connection) {
    c.send(&()).expect("ready");
    c.recv::<()>().expect("go");
}

fn producer((q, mut g, n): (Queue<u64>, Connection, u64)) {
    gate(&mut g);
    for i in 0..n {
        q.put(i).expect("put");
    }
}

/// Starts `k` gated children running `f(arg)`, waits until all are ready;
/// returns them and their gates.
fn start_gated<F, A, R>(
    f: F,
    args: impl Fn() -> A,
    k: usize,
    n: u64,
) -> Result<(Vec<Process<R>>, Vec<Connection>), String>
where
    F: Fn((A, Connection, u64)) -> R + Copy + 'static,
    A: serde::Serialize + serde::de::DeserializeOwned + 'static,
    R: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let mut ps = Vec::new();
    let mut gates = Vec::new();
    for _ in 0..k {
        let (mut mine, theirs) = pipe(true).map_err(err)?;
        let mut p = Process::new(f, (args(), theirs, n));
        p.start().map_err(err)?;
        mine.recv::<()>().map_err(err)?;
        ps.push(p);
        gates.push(mine);
    }
    Ok((ps, gates))
}

fn go(gates: &mut [Connection]) -> Result<Instant, String> {
    let t = Instant::now();
    for g in gates {
        g.send(&()).map_err(err)?;
    }
    Ok(t)
}

fn join_all<R: serde::Serialize + serde::de::DeserializeOwned + 'static>(
    ps: Vec<Process<R>>,
) -> Result<(), String> {
    for mut p in ps {
        p.join().map_err(err)?;
    }
    Ok(())
}

/// `queue_throughput_small` with the items taken by `get_async().await`
/// on a current-thread tokio runtime.
pub(crate) fn queue_throughput_small_async(quick: bool) -> Result<Vec<f64>, String> {
    let rt = super::pool::current_thread()?;
    queue_small_by(quick, 1, |q, n| {
        rt.block_on(async {
            let mut sum = 0u64;
            for _ in 0..n {
                sum += q.get_async().await.map_err(err)?;
            }
            Ok(sum)
        })
    })
}

fn queue_small(quick: bool, producers: u64) -> Result<Vec<f64>, String> {
    queue_small_by(quick, producers, |q, n| {
        let mut sum = 0u64;
        for _ in 0..n {
            sum += q.get().map_err(err)?;
        }
        Ok(sum)
    })
}

/// `producers` children put `0..per` each; `take(q, n)` takes the `n`
/// items and returns their sum.
fn queue_small_by(
    quick: bool,
    producers: u64,
    take: impl Fn(&Queue<u64>, u64) -> Result<u64, String>,
) -> Result<Vec<f64>, String> {
    let total: u64 = if quick { 100_000 } else { 200_000 };
    let per = total / producers;
    let rep = || -> Result<f64, String> {
        let q: Queue<u64> = Queue::new().map_err(err)?;
        let (ps, mut gates) = start_gated(producer, || q.clone(), producers as usize, per)?;
        let t = go(&mut gates)?;
        let sum = take(&q, per * producers)?;
        let secs = t.elapsed().as_secs_f64();
        join_all(ps)?;
        let want = producers * (per * (per - 1) / 2);
        if sum != want {
            return Err(format!("sum {sum}, expected {want}"));
        }
        Ok((per * producers) as f64 / secs)
    };
    rep()?; // warm-up
    repeat(quick, rep)
}

pub(crate) fn queue_throughput_small(quick: bool) -> Result<Vec<f64>, String> {
    queue_small(quick, 1)
}

pub(crate) fn queue_throughput_small_4producers(quick: bool) -> Result<Vec<f64>, String> {
    queue_small(quick, 4)
}

fn big_producer((q, mut g, n): (Queue<ByteBuf>, Connection, u64)) {
    let payloads: Vec<ByteBuf> = (0..n).map(|i| ByteBuf::from(vec![i as u8; MIB])).collect();
    gate(&mut g);
    for p in payloads {
        q.put(p).expect("put");
    }
}

pub(crate) fn queue_throughput_1mb(quick: bool) -> Result<Vec<f64>, String> {
    let n: u64 = if quick { 50 } else { 200 };
    let rep = || -> Result<f64, String> {
        let q: Queue<ByteBuf> = Queue::new().map_err(err)?;
        let (ps, mut gates) = start_gated(big_producer, || q.clone(), 1, n)?;
        let t = go(&mut gates)?;
        let mut ok = true;
        for i in 0..n {
            let b = q.get().map_err(err)?;
            ok &= b.len() == MIB && b[0] == i as u8 && b[MIB - 1] == i as u8;
        }
        let secs = t.elapsed().as_secs_f64();
        join_all(ps)?;
        if !ok {
            return Err("a 1 MiB item arrived wrong".into());
        }
        Ok(n as f64 / secs)
    };
    rep()?;
    repeat(quick, rep)
}

fn joinable_worker((q, mut g, _): (JoinableQueue<Option<u64>>, Connection, u64)) -> u64 {
    gate(&mut g);
    let mut sum = 0;
    while let Some(x) = q.get().expect("get") {
        sum += x;
        q.task_done().expect("task_done");
    }
    q.task_done().expect("task_done");
    sum
}

pub(crate) fn joinable_queue(quick: bool) -> Result<Vec<f64>, String> {
    let n: u64 = if quick { 20_000 } else { 50_000 };
    let rep = || -> Result<f64, String> {
        let q: JoinableQueue<Option<u64>> = JoinableQueue::new().map_err(err)?;
        let (ps, mut gates) = start_gated(joinable_worker, || q.clone(), 2, 0)?;
        let t = go(&mut gates)?;
        for i in 0..n {
            q.put(Some(i)).map_err(err)?;
        }
        q.join();
        let secs = t.elapsed().as_secs_f64();
        for _ in 0..2 {
            q.put(None).map_err(err)?;
        }
        let mut sum = 0;
        for mut p in ps {
            sum += p.join().map_err(err)?;
        }
        if sum != n * (n - 1) / 2 {
            return Err(format!("workers summed {sum}"));
        }
        Ok(n as f64 / secs)
    };
    rep()?;
    repeat(quick, rep)
}

fn echo((mut c, mut g, n): (Connection, Connection, u64)) {
    gate(&mut g);
    for _ in 0..n {
        let v: (u64, String, f64) = c.recv().expect("recv");
        c.send(&v).expect("send");
    }
}

pub(crate) fn pipe_pingpong(quick: bool) -> Result<Vec<f64>, String> {
    let n: u64 = if quick { 5_000 } else { 20_000 };
    let rep = || -> Result<f64, String> {
        let (mut mine, theirs) = pipe(true).map_err(err)?;
        let (ps, mut gates) = start_gated(echo, || theirs.try_clone().expect("clone"), 1, n)?;
        drop(theirs);
        let t = go(&mut gates)?;
        let msg = (7u64, "hello".to_string(), 1.5f64);
        for _ in 0..n {
            mine.send(&msg).map_err(err)?;
            let back: (u64, String, f64) = mine.recv().map_err(err)?;
            if back != msg {
                return Err("echo differs".into());
            }
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        join_all(ps)?;
        Ok(us)
    };
    rep()?;
    repeat(quick, rep)
}

fn echo_bytes((mut c, mut g, n): (Connection, Connection, u64)) {
    gate(&mut g);
    let mut buf = [0u8; 64];
    for _ in 0..n {
        let k = c.recv_bytes_into(&mut buf).expect("recv");
        c.send_bytes(&buf[..k]).expect("send");
    }
}

pub(crate) fn pipe_bytes_pingpong(quick: bool) -> Result<Vec<f64>, String> {
    let n: u64 = if quick { 5_000 } else { 20_000 };
    let rep = || -> Result<f64, String> {
        let (mut mine, theirs) = pipe(true).map_err(err)?;
        let (ps, mut gates) = start_gated(echo_bytes, || theirs.try_clone().expect("clone"), 1, n)?;
        drop(theirs);
        let t = go(&mut gates)?;
        let msg = [42u8; 64];
        let mut buf = [0u8; 64];
        for _ in 0..n {
            mine.send_bytes(&msg).map_err(err)?;
            let k = mine.recv_bytes_into(&mut buf).map_err(err)?;
            if buf[..k] != msg {
                return Err("echo differs".into());
            }
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        join_all(ps)?;
        Ok(us)
    };
    rep()?;
    repeat(quick, rep)
}

fn bytes_sender((mut c, mut g, n): (Connection, Connection, u64)) {
    let payload = vec![7u8; MIB];
    gate(&mut g);
    for _ in 0..n {
        c.send_bytes(&payload).expect("send");
    }
}

pub(crate) fn pipe_throughput_1mb(quick: bool) -> Result<Vec<f64>, String> {
    let n: u64 = if quick { 100 } else { 500 };
    let rep = || -> Result<f64, String> {
        let (mut reader, writer) = pipe(false).map_err(err)?;
        let (ps, mut gates) =
            start_gated(bytes_sender, || writer.try_clone().expect("clone"), 1, n)?;
        drop(writer);
        let t = go(&mut gates)?;
        let mut ok = true;
        for _ in 0..n {
            let b = reader.recv_bytes().map_err(err)?;
            ok &= b.len() == MIB && b[MIB / 2] == 7;
        }
        let secs = t.elapsed().as_secs_f64();
        join_all(ps)?;
        if !ok {
            return Err("a 1 MiB message arrived wrong".into());
        }
        Ok(n as f64 / secs)
    };
    rep()?;
    repeat(quick, rep)
}
