//! The worker ranks' loop: receive a batch, run its tasks in order, send
//! their results back; make shared counters when rank 0 does; at the end,
//! free them and finalize.

use std::time::{Duration, Instant};

use mp_process::RawFunction;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use serde_bytes::ByteBuf;

use crate::engine::backoff;
use crate::wire::{self, Batch, Results, WireError};

thread_local! {
    /// Set while a task runs: a panic then is the task's (caught and sent
    /// back as its error), not one that escapes (which aborts the job).
    pub(crate) static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Serves rank 0 until it ends the job.
pub(crate) fn serve(world: &SimpleCommunicator) {
    let root = world.process_at_rank(0);
    let mut funcs: Vec<Option<Result<RawFunction, String>>> = Vec::new();
    let mut idle_since: Option<Instant> = None;
    loop {
        let Some(probed) = root.immediate_matched_probe() else {
            // Idle: after a while, sleep longer (up to 1 ms between probes).
            backoff(idle_since.get_or_insert_with(Instant::now).elapsed());
            continue;
        };
        idle_since = None;
        let (body, status) = probed.matched_receive_vec::<u8>();
        match status.tag() {
            wire::TASKS => {
                let results = run_batch(&body, &mut funcs);
                let bytes = mp_process::encode(&results).unwrap_or_default();
                root.send_with_tag(&bytes[..], wire::RESULTS);
            }
            wire::COUNTER => crate::counter::create_here(world, 0),
            wire::FINALIZE => return,
            _ => {}
        }
    }
}

fn run_batch(body: &[u8], funcs: &mut Vec<Option<Result<RawFunction, String>>>) -> Results {
    let batch: Batch = match mp_process::decode(body) {
        Ok(b) => b,
        Err(e) => {
            // Undecodable: every task fails, none runs. (Cannot happen
            // between ranks of one executable; kept an error, not a panic.)
            return Results {
                busy_ns: 0,
                outcomes: vec![Err(WireError::from_error(&e))],
            };
        }
    };
    for (fid, token) in batch.defs {
        let fid = fid as usize;
        if funcs.len() <= fid {
            funcs.resize(fid + 1, None);
        }
        funcs[fid] = Some(crate::func::resolve(&token).map_err(|e| e.to_string()));
    }
    let start = Instant::now();
    let outcomes = batch
        .tasks
        .into_iter()
        .map(|(fid, args)| match funcs.get(fid as usize) {
            Some(Some(Ok(raw))) => {
                IN_TASK.with(|t| t.set(true));
                let r = raw.call(&args);
                IN_TASK.with(|t| t.set(false));
                r.map(ByteBuf::from).map_err(|e| WireError::from_error(&e))
            }
            Some(Some(Err(why))) => Err(WireError::message(why.clone())),
            _ => Err(WireError::message(format!(
                "the worker does not know function {fid}"
            ))),
        })
        .collect();
    Results {
        busy_ns: Duration::as_nanos(&start.elapsed()) as u64,
        outcomes,
    }
}
