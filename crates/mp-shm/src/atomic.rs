//! Shared atomic integers: std's atomics, placed in shared memory.
//!
//! Each method takes std's [`Ordering`] and means what it means for std's
//! atomics; on a `MAP_SHARED` mapping the hardware gives the same
//! guarantees between processes as between threads.

use std::fmt;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::region::{self, Kind, Region, Shape};

macro_rules! shared_atomic {
    ($(#[$doc:meta])* $name:ident, $std:ty, $int:ty) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            region: Region,
        }

        impl $name {
            const SHAPE: Shape = Shape {
                kind: Kind::Atomic,
                payload_len: std::mem::size_of::<$int>(),
                elem_size: std::mem::size_of::<$int>(),
                elem_align: std::mem::align_of::<$int>(),
                count: 0,
            };

            /// Creates a shared atomic holding `v`.
            pub fn new(v: $int) -> Result<$name, Error> {
                let a = $name {
                    region: Region::create(Self::SHAPE)?,
                };
                a.get().store(v, Ordering::Relaxed);
                Ok(a)
            }

            fn get(&self) -> &$std {
                // SAFETY: the payload is 64-byte aligned and holds exactly one
                // integer, which every process accesses only through this
                // atomic type.
                unsafe { <$std>::from_ptr(self.region.payload().cast()) }
            }

            /// The std atomic in shared memory, borrowed for as long as
            /// this handle lives: every method of std's type, those this
            /// handle does not repeat too (`fetch_update`, `as_ptr`).
            ///
            /// ```
            /// use std::sync::atomic::Ordering::Relaxed;
            #[doc = concat!("let counter = mp_shm::", stringify!($name), "::new(0).unwrap();")]
            /// let a = counter.as_std();
            /// for _ in 0..1000 {
            ///     a.fetch_add(1, Relaxed);
            /// }
            /// assert_eq!(counter.load(Relaxed), 1000);
            /// ```
            pub fn as_std(&self) -> &$std {
                self.get()
            }

            /// Loads the value.
            pub fn load(&self, order: Ordering) -> $int {
                self.get().load(order)
            }

            /// Stores `v`.
            pub fn store(&self, v: $int, order: Ordering) {
                self.get().store(v, order)
            }

            /// Stores `v`, returning the previous value.
            pub fn swap(&self, v: $int, order: Ordering) -> $int {
                self.get().swap(v, order)
            }

            /// Adds `v` (wrapping), returning the previous value.
            pub fn fetch_add(&self, v: $int, order: Ordering) -> $int {
                self.get().fetch_add(v, order)
            }

            /// Subtracts `v` (wrapping), returning the previous value.
            pub fn fetch_sub(&self, v: $int, order: Ordering) -> $int {
                self.get().fetch_sub(v, order)
            }

            /// Stores the maximum of the value and `v`, returning the previous value.
            pub fn fetch_max(&self, v: $int, order: Ordering) -> $int {
                self.get().fetch_max(v, order)
            }

            /// Stores the minimum of the value and `v`, returning the previous value.
            pub fn fetch_min(&self, v: $int, order: Ordering) -> $int {
                self.get().fetch_min(v, order)
            }

            /// Stores `new` if the value is `current`; returns the previous
            /// value, `Ok` if it was stored.
            pub fn compare_exchange(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.get().compare_exchange(current, new, success, failure)
            }

            /// Like [`compare_exchange`](Self::compare_exchange), but may fail
            /// spuriously; for loops.
            pub fn compare_exchange_weak(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.get().compare_exchange_weak(current, new, success, failure)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name))
                    .field(&self.load(Ordering::Relaxed))
                    .finish()
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.region.serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                Ok($name {
                    region: region::deserialize_region(d, Self::SHAPE)?,
                })
            }
        }
    };
}

shared_atomic!(
    /// A shared `u64`: std's [`AtomicU64`](std::sync::atomic::AtomicU64) in
    /// shared memory.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::SeqCst;
    /// use mp_shm::AtomicU64;
    ///
    /// let n = AtomicU64::new(1)?;
    /// assert_eq!(n.fetch_add(2, SeqCst), 1);
    /// assert_eq!(n.compare_exchange(3, 10, SeqCst, SeqCst), Ok(3));
    /// assert_eq!(n.load(SeqCst), 10);
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    AtomicU64,
    std::sync::atomic::AtomicU64,
    u64
);
shared_atomic!(
    /// A shared `i64`: std's [`AtomicI64`](std::sync::atomic::AtomicI64) in
    /// shared memory.
    AtomicI64,
    std::sync::atomic::AtomicI64,
    i64
);
shared_atomic!(
    /// A shared `u32`: std's [`AtomicU32`](std::sync::atomic::AtomicU32) in
    /// shared memory.
    AtomicU32,
    std::sync::atomic::AtomicU32,
    u32
);
shared_atomic!(
    /// A shared `i32`: std's [`AtomicI32`](std::sync::atomic::AtomicI32) in
    /// shared memory.
    AtomicI32,
    std::sync::atomic::AtomicI32,
    i32
);
shared_atomic!(
    /// A shared `usize`: std's [`AtomicUsize`](std::sync::atomic::AtomicUsize)
    /// in shared memory.
    AtomicUsize,
    std::sync::atomic::AtomicUsize,
    usize
);
