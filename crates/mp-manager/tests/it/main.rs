//! Integration tests of mp-manager: a real server process and real clients
//! in other processes.

mod codec;
mod hostile;
mod objects;
mod processes;
mod robustness;
mod stalls;

use mp_process::StartMethod;

/// Every start method, for tests that run under each.
pub(crate) const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];
