//! Integration tests of mp-ipc: pipes, queues, listeners and clients across
//! real processes under every start method.

mod asyncs;
mod codec;
mod hostile;
mod listener;
mod pipe;
mod props;
mod queue;

use std::time::Duration;

use mp_process::StartMethod;

/// Every start method.
const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

/// A generous bound for "returned in time" (never a speed assertion).
const GENEROUS: Duration = Duration::from_secs(10);

use mp_test_helpers::fd_count;
