//! The README's and the guide's code blocks, compiled and run as doctests
//! (`cargo test -p mp-docs --doc`, part of `cargo xtask ci`), so that what
//! a newcomer copies from them works.
//!
//! They live in this workspace-only crate, not in the facade, because they
//! include files from outside any package: the facade's published package
//! must build and test on its own.

/// The README's examples, compiled as doctests so that they stay true.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The guide's chapters, compiled and run as doctests.
#[cfg(doctest)]
pub mod guide {
    #[doc = include_str!("../../../docs/guide/first-program.md")]
    pub struct FirstProgram;

    #[doc = include_str!("../../../docs/guide/processes.md")]
    pub struct Processes;

    #[doc = include_str!("../../../docs/guide/start-methods.md")]
    pub struct StartMethods;

    #[doc = include_str!("../../../docs/guide/pools.md")]
    pub struct Pools;

    #[doc = include_str!("../../../docs/guide/shared-memory.md")]
    pub struct SharedMemory;

    #[doc = include_str!("../../../docs/guide/managers.md")]
    pub struct Managers;

    #[doc = include_str!("../../../docs/guide/queues-and-pipes.md")]
    pub struct QueuesAndPipes;

    #[doc = include_str!("../../../docs/guide/what-travels.md")]
    pub struct WhatTravels;

    #[doc = include_str!("../../../docs/guide/seeing-what-mp-does.md")]
    pub struct SeeingWhatMpDoes;

    #[doc = include_str!("../../../docs/guide/untrusted-work.md")]
    pub struct UntrustedWork;

    #[doc = include_str!("../../../docs/guide/async.md")]
    pub struct Async;
}
