//! Shared memory between processes: `SharedMemory` blocks, `Value` and `Array`,
//! shared atomics, and process-shared locks that survive a dead owner.
//!
//! This crate is being built. It will hold, with the semantics of Python's
//! `multiprocessing.sharedctypes`, `shared_memory` and `synchronize` modules:
//!
//! - `SharedMemory`: memfd-backed or named blocks that pass to children under
//!   every start method and never leak a `/dev/shm` entry;
//! - `Value<T>` / `Array<T>` with a lock, `RawValue` / `RawArray` without;
//! - `Lock`, `RLock`, `Condition`, `Event`, `Semaphore`, `BoundedSemaphore`
//!   and `Barrier`, process-shared, robust against an owner that dies.
//!
//! Nothing is exported yet; see the `mp` crate for what works today.
