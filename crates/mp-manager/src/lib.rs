//! A `Manager` server process and its proxies (values, locks, queues, dicts,
//! lists, namespaces), local or remote over TCP with an authentication key.
//!
//! This crate is being built. Only data crosses the wire (serde), never code.
//!
//! Nothing is exported yet; see the `mp` crate for what works today.
#![forbid(unsafe_code)]
// Lifting `forbid(unsafe_code)` needs a measured reason: the server is started
// through mp-process, which owns every unsafe call.
