//! `peer-ipc-channel`: ipc-channel 0.22, the Rust crate for channels between
//! processes, on `pipe_pingpong` (typed channels, the same
//! `(u64, String, f64)` echoed) and `pipe_throughput_1mb` (its bytes channel,
//! 1 MiB messages one way).
//!
//! The child is this program run again (`--child KIND SERVER N`), which
//! connects to the parent's one-shot server, as ipc-channel's own examples
//! do. Children are gated as in `mp-bench`: the child does its setup, says
//! ready and waits; the clock starts at go (the first ping, or a `Go`).

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Instant;

use ipc_channel::ipc::{self, IpcBytesSender, IpcOneShotServer, IpcSender};
use mp_bench_peers::{Better, Workload, err, warm_and_repeat};
use serde::{Deserialize, Serialize};

const MIB: usize = 1 << 20;

/// The message `pipe_pingpong` echoes.
type Msg = (u64, String, f64);

/// What a ping-pong child sends the parent's one-shot server: its inbound
/// channel, and where to send it the parent's.
type PingHello = (IpcSender<Msg>, IpcSender<IpcSender<Msg>>);

/// What the parent sends a throughput child: where to send, then go.
#[derive(Serialize, Deserialize)]
enum Setup {
    Bytes(IpcBytesSender),
    Go,
}

/// Starts this program as a child of `kind`, connecting to `server`.
#[allow(
    clippy::disallowed_methods,
    reason = "a peer starts its children as its crate's users do, without mp-process"
)]
fn child(kind: &str, server: &str, n: u64) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(err)?;
    Command::new(exe)
        .args(["--child", kind, server, &n.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .map_err(err)
}

fn reap(mut c: Child) -> Result<(), String> {
    let status = c.wait().map_err(err)?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("child {status}"))
    }
}

/// 20,000 (5,000 quick) round trips of [`Msg`]; us per round trip.
fn pingpong(quick: bool) -> Result<Vec<f64>, String> {
    let n: u64 = if quick { 5_000 } else { 20_000 };
    warm_and_repeat(quick, || {
        let (server, name) = IpcOneShotServer::<PingHello>::new().map_err(err)?;
        let c = child("pingpong", &name, n)?;
        let (_, (to_child, want_back)) = server.accept().map_err(err)?;
        let (back_tx, back) = ipc::channel::<Msg>().map_err(err)?;
        want_back.send(back_tx).map_err(err)?;
        back.recv().map_err(err)?; // ready
        let msg: Msg = (7, "hello".to_owned(), 1.5);
        let start = Instant::now();
        for _ in 0..n {
            to_child.send(msg.clone()).map_err(err)?;
            if back.recv().map_err(err)? != msg {
                return Err("echo differs".into());
            }
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        reap(c)?;
        Ok(us)
    })
}

fn pingpong_child(server: String, n: u64) -> Result<(), String> {
    let (inbound_tx, inbound) = ipc::channel::<Msg>().map_err(err)?;
    let (want_tx, want) = ipc::channel::<IpcSender<Msg>>().map_err(err)?;
    IpcSender::<PingHello>::connect(server)
        .map_err(err)?
        .send((inbound_tx, want_tx))
        .map_err(err)?;
    let back = want.recv().map_err(err)?;
    back.send((0, String::new(), 0.0)).map_err(err)?; // ready
    for _ in 0..n {
        back.send(inbound.recv().map_err(err)?).map_err(err)?;
    }
    Ok(())
}

/// 500 (100 quick) messages of 1 MiB one way on a bytes channel; MiB/s.
fn throughput_1mb(quick: bool) -> Result<Vec<f64>, String> {
    let n: u64 = if quick { 100 } else { 500 };
    warm_and_repeat(quick, || {
        let (server, name) = IpcOneShotServer::<IpcSender<Setup>>::new().map_err(err)?;
        let c = child("throughput", &name, n)?;
        let (_, setup) = server.accept().map_err(err)?;
        let (tx, rx) = ipc::bytes_channel().map_err(err)?;
        setup.send(Setup::Bytes(tx)).map_err(err)?;
        rx.recv().map_err(err)?; // ready
        let start = Instant::now();
        setup.send(Setup::Go).map_err(err)?;
        let mut ok = true;
        for _ in 0..n {
            let b = rx.recv().map_err(err)?;
            ok &= b.len() == MIB && b[MIB / 2] == 7;
        }
        let secs = start.elapsed().as_secs_f64();
        reap(c)?;
        if !ok {
            return Err("a 1 MiB message arrived wrong".into());
        }
        Ok(n as f64 / secs)
    })
}

fn throughput_child(server: String, n: u64) -> Result<(), String> {
    let (setup_tx, setup) = ipc::channel::<Setup>().map_err(err)?;
    IpcSender::<IpcSender<Setup>>::connect(server)
        .map_err(err)?
        .send(setup_tx)
        .map_err(err)?;
    let Setup::Bytes(tx) = setup.recv().map_err(err)? else {
        return Err("expected the bytes channel first".into());
    };
    let payload = vec![7u8; MIB];
    tx.send(b"ready").map_err(err)?;
    let Setup::Go = setup.recv().map_err(err)? else {
        return Err("expected go".into());
    };
    for _ in 0..n {
        tx.send(&payload).map_err(err)?;
    }
    Ok(())
}

const ALL: &[Workload] = &[
    Workload {
        name: "pipe_pingpong",
        unit: "us/roundtrip",
        better: Better::Lower,
        run: pingpong,
    },
    Workload {
        name: "pipe_throughput_1mb",
        unit: "MiB/s",
        better: Better::Higher,
        run: throughput_1mb,
    },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, kind, server, n] = args.as_slice() {
        if flag == "--child" {
            let n: u64 = n.parse().unwrap_or(0);
            let done = match kind.as_str() {
                "pingpong" => pingpong_child(server.clone(), n),
                "throughput" => throughput_child(server.clone(), n),
                other => Err(format!("unknown child kind `{other}`")),
            };
            return match done {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("peer-ipc-channel child: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    }
    mp_bench_peers::main("peer-ipc-channel", ALL)
}
