//! Functions across ranks: a task's function travels as the offset of a
//! monomorphised "namer" from an anchor in this crate, as mp-process sends
//! functions to re-executed children.
//!
//! mp-process's own `RawFunction` cannot travel between ranks: it is tagged
//! with a key that each rank, started by `mpirun` and not by mp-process,
//! makes for itself, and with the identity (device, inode) of the
//! executable file, which differs on every host. So a rank receives a
//! [`FuncToken`] instead, checks its tag (keyed with rank 0's key, which
//! every rank received at start-up, and with the executable's contents,
//! which every rank checked against rank 0's), and calls the namer, which
//! makes a local `RawFunction` of the same function; that one is then
//! called as a pool worker calls it (panics caught, message and location
//! kept).

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use mp_process::{Function, RawFunction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;

/// What a namer makes: the function as mp-process names it in this rank.
type Namer = fn() -> Result<RawFunction, mp_process::Error>;

/// A function of this program as it travels to another rank.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FuncToken {
    offset: i64,
    tag: u64,
    name: String,
}

/// The job's key and the executable's digest, the same on every rank (set
/// once by `init`, from rank 0).
static JOB: OnceLock<(u64, u64)> = OnceLock::new();

pub(crate) fn set_job(key: u64, digest: u64) {
    let _ = JOB.set((key, digest));
}

fn tag(offset: i64, name: &str) -> u64 {
    let (key, digest) = JOB.get().copied().unwrap_or((0, 0));
    #[allow(deprecated)] // SipHash through DefaultHasher: stable within a build.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    digest.hash(&mut h);
    offset.hash(&mut h);
    name.hash(&mut h);
    h.finish()
}

/// The anchor that namers are measured from: every rank runs the same
/// executable (checked at start-up), so `namer - anchor` is the same on
/// every rank whatever address-space layout each one got.
#[inline(never)]
fn anchor() -> usize {
    std::hint::black_box(0x6d70_6d70)
}

fn namer<F, A, R>() -> Result<RawFunction, mp_process::Error>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    const { assert!(std::mem::size_of::<F>() == 0) };
    // `F` is `Copy` and zero-sized (asserted at compile time above): a fn
    // item or a closure that captures nothing. Such a type has one value
    // and no invariants, so making it duplicates nothing an owner relies on.
    // SAFETY: as above; `mem::zeroed` of a zero-sized type writes nothing.
    let f: F = unsafe { std::mem::zeroed() };
    Function::<A, R>::new(f).map(|f| f.raw().clone())
}

/// Names `f` for the workers. mp-process checks first that `f` lives in
/// the executable (not in a library loaded at run time, whose address
/// could differ between ranks).
pub(crate) fn token<F, A, R>(f: F) -> Result<FuncToken, Error>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let named = Function::<A, R>::new(f)?;
    let name = named.raw().name().to_owned();
    let entry = namer::<F, A, R> as Namer as usize;
    let offset = entry as i64 - anchor as fn() -> usize as usize as i64;
    Ok(FuncToken {
        offset,
        tag: tag(offset, &name),
        name,
    })
}

/// Makes this rank's `RawFunction` for a token made by [`token`] on rank 0.
pub(crate) fn resolve(t: &FuncToken) -> Result<RawFunction, Error> {
    if JOB.get().is_none() || tag(t.offset, &t.name) != t.tag {
        return Err(crate::error(
            mp_pool::ErrorKind::Process,
            format!("`{}` was not named by rank 0 of this job", t.name),
        ));
    }
    let addr = (anchor as fn() -> usize as usize as i64 + t.offset) as usize;
    // The tag, keyed with this job's key (sent by rank 0) and the digest of
    // the executable's contents (checked equal to rank 0's at start-up),
    // shows that `token` made `t.offset` from a `Namer` of this executable.
    // SAFETY: so `anchor + offset` is the address of that `Namer` here.
    let namer = unsafe { std::mem::transmute::<usize, Namer>(addr) };
    Ok(namer()?)
}
