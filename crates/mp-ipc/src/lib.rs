//! Communication between processes: `Pipe` and `Connection`, `Queue`,
//! `SimpleQueue` and `JoinableQueue`, `Listener` and `Client`.
//!
//! This crate is being built. It will hold, with the semantics of Python's
//! `multiprocessing.connection` and `multiprocessing.queues`:
//!
//! - `Pipe` (duplex or one-way) with `send`/`recv` of serde values and raw bytes;
//! - many-producer, many-consumer `Queue<T>` with an optional bound, and the
//!   `SimpleQueue` and `JoinableQueue` variants;
//! - `Listener` and `Client` with authentication.
//!
//! Nothing is exported yet; see the `mp` crate for what works today.
#![forbid(unsafe_code)]
// Lifting `forbid(unsafe_code)` needs a measured reason: a transport that
// cannot be built on mp-process and mp-shm's safe interfaces.
