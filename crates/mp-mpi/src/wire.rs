//! What travels between rank 0 and the workers: message tags and the
//! bodies (postcard).

use mp_process::PanicInfo;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::Error;
use crate::func::FuncToken;

/// Rank 0 to a worker: a [`Batch`] of tasks.
pub(crate) const TASKS: i32 = 11;
/// A worker to rank 0: the [`Results`] of one batch, in order.
pub(crate) const RESULTS: i32 = 12;
/// Rank 0 to a worker: make the shared counter whose id is the body (a
/// collective call that rank 0 makes too).
pub(crate) const COUNTER: i32 = 13;
/// Rank 0 to a worker: the job ends; free the counters, finalize, exit.
pub(crate) const FINALIZE: i32 = 14;

/// Tasks for one worker, answered by one [`Results`] in the same order.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct Batch {
    /// Functions the worker has not seen yet: id and token.
    pub(crate) defs: Vec<(u32, FuncToken)>,
    /// Function id and encoded argument, per task.
    pub(crate) tasks: Vec<(u32, ByteBuf)>,
}

/// The outcomes of a batch.
#[derive(Serialize, Deserialize)]
pub(crate) struct Results {
    /// Time the worker spent running the batch's tasks.
    pub(crate) busy_ns: u64,
    pub(crate) outcomes: Vec<Result<ByteBuf, WireError>>,
}

/// A task's failure on the wire.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireError {
    serialization: bool,
    message: String,
    panic: Option<PanicInfo>,
}

impl WireError {
    pub(crate) fn from_error(e: &mp_process::Error) -> WireError {
        WireError {
            serialization: matches!(
                e.kind(),
                mp_process::ErrorKind::Serialization | mp_process::ErrorKind::TooLarge
            ),
            message: e.to_string(),
            panic: e.panic_info().cloned(),
        }
    }

    pub(crate) fn message(message: String) -> WireError {
        WireError {
            serialization: false,
            message,
            panic: None,
        }
    }

    pub(crate) fn into_error(self) -> Error {
        match self.panic {
            Some(info) => mp_pool::remote::panicked(info),
            None if self.serialization => {
                crate::error(mp_pool::ErrorKind::Serialization, self.message)
            }
            None => crate::error(mp_pool::ErrorKind::Process, self.message),
        }
    }
}
