//! Events for `tracing`, behind the default-off `tracing` feature.
//!
//! `mp_event!(level, fields..., "message")` expands to `tracing`'s macro of
//! that level when the feature is on, and to nothing when it is off, so a
//! build without the feature carries no trace of it (the bench does not
//! move). mp's other crates call it through `mp_process::mp_event!`: one
//! switch, this crate's feature, turns every part's events on (the facade's
//! `tracing` feature sets it).
//!
//! Every event names the process it concerns with a `pid` field.

#[cfg(feature = "tracing")]
#[doc(hidden)]
pub mod __private {
    //! What `mp_event!` names when it expands in other crates.
    pub use tracing;
}

/// Emits a `tracing` event when the `tracing` feature is on.
#[cfg(feature = "tracing")]
#[doc(hidden)]
#[macro_export]
macro_rules! mp_event {
    ($level:ident, $($arg:tt)+) => {
        $crate::trace::__private::tracing::$level!(target: "mp", $($arg)+)
    };
}

/// Emits nothing: the `tracing` feature is off.
#[cfg(not(feature = "tracing"))]
#[doc(hidden)]
#[macro_export]
macro_rules! mp_event {
    ($level:ident, $($arg:tt)+) => {};
}
