//! Process pools: `Pool` (`apply_async`, `map`, `imap`, `imap_unordered`,
//! `starmap`), `ProcessPoolExecutor` with futures, and a rayon-backed
//! `ThreadPool` with the same API.
//!
//! This crate is being built. Its pools will never hang: a worker that dies
//! fails its task with the exit code or signal and is replaced.
//!
//! Nothing is exported yet; see the `mp` crate for what works today.
#![forbid(unsafe_code)]
// Lifting `forbid(unsafe_code)` needs a measured reason: workers are started
// through mp-process, which owns every unsafe call.
