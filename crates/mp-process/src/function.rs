//! Functions as values: a [`Function`] names a function of this program so
//! that another process of the same program can call it. Pools send these
//! to their workers, with encoded arguments, task after task.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::sys;
use crate::wire::Outcome;

/// The program's function key: random, made by the program's first process
/// and handed to every child. A [`RawFunction`] carries a tag computed with
/// it, so that one decoded from bytes this program did not make (corrupt or
/// forged) is refused instead of being called at a wrong address.
static KEY: AtomicU64 = AtomicU64::new(0);

/// This process's key, made on first use.
pub(crate) fn program_key() -> u64 {
    let k = KEY.load(Ordering::Acquire);
    if k != 0 {
        return k;
    }
    // RandomState is seeded from the operating system's random source.
    let fresh = std::collections::hash_map::RandomState::new().hash_one(sys::getpid()) | 1;
    match KEY.compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => fresh,
        Err(existing) => existing,
    }
}

/// Takes the key of the parent (in a child, before any use).
pub(crate) fn adopt_key(key: u64) {
    if key != 0 {
        KEY.store(key, Ordering::Release);
    }
}

fn tag(offset: i64, name: &str) -> u64 {
    // DefaultHasher is deterministic within one build, and both sides run
    // the same executable (its fingerprint is part of the tag).
    #[allow(deprecated)] // SipHash through DefaultHasher: stable within a build.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    program_key().hash(&mut h);
    crate::bootstrap::exe_fingerprint().hash(&mut h);
    offset.hash(&mut h);
    name.hash(&mut h);
    h.finish()
}

/// A function of this program, callable by value in any process of it:
/// `f(A) -> R` with serde arguments and result.
///
/// ```
/// use mp_process::Function;
///
/// fn double(x: u32) -> u32 { x * 2 }
///
/// let f = Function::new(double).unwrap();
/// // The raw form travels to other processes (it is serde data).
/// let raw = f.raw().clone();
/// let args = mp_process::encode(&21u32).unwrap();
/// let out: u32 = mp_process::decode(&raw.call(&args).unwrap()).unwrap();
/// assert_eq!(out, 42);
/// ```
pub struct Function<A, R> {
    raw: RawFunction,
    _sig: PhantomData<fn(A) -> R>,
}

impl<A, R> Function<A, R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    /// Names `f`, a fn item or a closure that captures nothing (a capturing
    /// closure is a compile-time error). Fails with
    /// [`ErrorKind::Unresolvable`] if `f` lives outside the executable.
    pub fn new<F>(f: F) -> Result<Function<A, R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
    {
        let _ = f;
        let name = std::any::type_name::<F>().to_owned();
        let offset = sys::encode_entry(sys::entry_of::<F, A, R>()).map_err(|why| {
            Error::new(
                ErrorKind::Unresolvable,
                format!("cannot name `{name}`: {why}"),
            )
        })?;
        let tag = tag(offset, &name);
        Ok(Function {
            raw: RawFunction { offset, tag, name },
            _sig: PhantomData,
        })
    }

    /// The type-erased form, which travels between processes.
    pub fn raw(&self) -> &RawFunction {
        &self.raw
    }

    /// Calls the function in this process, the way a worker would:
    /// encoded arguments, panics caught.
    pub fn call(&self, args: &A) -> Result<R, Error> {
        decode(&self.raw.call(&encode(args)?)?)
    }
}

impl<A, R> Clone for Function<A, R> {
    fn clone(&self) -> Self {
        Function {
            raw: self.raw.clone(),
            _sig: PhantomData,
        }
    }
}

impl<A, R> fmt::Debug for Function<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Function").field(&self.raw.name).finish()
    }
}

/// A [`Function`] without its types: what crosses to another process.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawFunction {
    offset: i64,
    tag: u64,
    name: String,
}

impl RawFunction {
    /// The function's type name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls the function on encoded arguments and returns its encoded
    /// result. A panic is an [`ErrorKind::Panicked`] error with its message
    /// and location; arguments or a result that do not (de)serialize are
    /// [`ErrorKind::Serialization`]; a `RawFunction` that this program tree
    /// did not make (or made for another executable) is
    /// [`ErrorKind::Unresolvable`], and nothing is called.
    pub fn call(&self, args: &[u8]) -> Result<Vec<u8>, Error> {
        if tag(self.offset, &self.name) != self.tag {
            return Err(Error::new(
                ErrorKind::Unresolvable,
                format!(
                    "`{}` was not named by this program (or its executable changed)",
                    self.name
                ),
            ));
        }
        crate::bootstrap::install_panic_hook();
        // SAFETY: the tag, keyed with this program tree's secret key and the
        // executable's fingerprint, shows that `offset` came from
        // `encode_entry` in a process running this executable.
        let entry = unsafe { sys::decode_entry(self.offset) };
        match entry(args) {
            Outcome::Ok(bytes) => Ok(bytes),
            Outcome::Panic(info) => Err(Error::panicked(info, None)),
            Outcome::Failed(f) => Err(crate::process::failure_error(f)),
        }
    }
}

/// Encodes a value the way arguments and results travel (postcard). A
/// failure is an [`ErrorKind::Serialization`] error that names the type
/// and says why (see [`codec`](crate::codec)).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    crate::codec::encode(value).map_err(|e| Error::codec("cannot encode the value", e))
}

/// Decodes a value made by [`encode`]. A failure names the type, says why,
/// and keeps the bytes ([`Error::codec_error`]).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    crate::codec::decode(bytes).map_err(|e| Error::codec("cannot decode the value", e))
}
