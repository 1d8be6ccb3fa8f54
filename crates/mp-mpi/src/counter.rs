//! A counter shared by every rank: eight bytes in an MPI window on rank 0,
//! changed with `MPI_Fetch_and_op`, which the MPI library applies
//! atomically whoever calls it (the distributed form of a counter behind
//! a lock, without the lock).

use std::sync::Mutex;

use mpi::collective::CommunicatorCollectives;
use mpi::ffi;
use mpi::point_to_point::Destination;
use mpi::topology::{Communicator, SimpleCommunicator};
use serde::{Deserialize, Serialize};

use crate::engine::lock;
use crate::{Error, World, wire};

/// A window handle.
struct Win(ffi::MPI_Win);

// SAFETY: an MPI window handle is an opaque reference owned by the MPI
// library, valid from any thread: `init` requires MPI_THREAD_MULTIPLE.
unsafe impl Send for Win {}

/// This rank's windows, by counter id, in creation order (the same on
/// every rank). `None` once freed.
static WINDOWS: Mutex<Vec<Option<Win>>> = Mutex::new(Vec::new());

/// Rank 0 makes one counter at a time: creation is a collective call, and
/// two at once could reach the ranks in different orders.
static CREATE: Mutex<()> = Mutex::new(());

/// Makes this rank's part of the next counter (a collective call: every
/// rank makes it, in the same order). `initial` matters on rank 0 only.
pub(crate) fn create_here(world: &SimpleCommunicator, initial: i64) {
    let rank0 = world.rank() == 0;
    let size = if rank0 { 8 } else { 0 };
    let mut base: *mut i64 = std::ptr::null_mut();
    let mut win = std::mem::MaybeUninit::<ffi::MPI_Win>::uninit();
    // Every rank calls this collectively over the world communicator (rank
    // 0 tells the workers to, in order), and MPI's default error handler
    // aborts the job on an error, so on return both outputs are set.
    // SAFETY: `base` and `win` are valid out-parameters; see above.
    let win = unsafe {
        ffi::MPI_Win_allocate(
            size,
            8,
            ffi::RSMPI_INFO_NULL,
            ffi::RSMPI_COMM_WORLD,
            (&mut base as *mut *mut i64).cast(),
            win.as_mut_ptr(),
        );
        win.assume_init()
    };
    if rank0 && !base.is_null() {
        // SAFETY: on rank 0 the window's memory is 8 bytes at `base`,
        // aligned for i64 (MPI_Win_allocate aligns as malloc does), and no
        // other rank touches it before the barrier below.
        unsafe { base.write(initial) };
    }
    world.barrier();
    // SAFETY: `win` is a window just created on every rank; a shared
    // passive-target epoch lasts until `free_all`.
    unsafe { ffi::MPI_Win_lock_all(0, win) };
    lock(&WINDOWS).push(Some(Win(win)));
}

/// Frees every window, in creation order (collective: every rank does it
/// as the job ends).
pub(crate) fn free_all() {
    let mut wins = lock(&WINDOWS);
    for w in wins.iter_mut() {
        if let Some(Win(mut win)) = w.take() {
            // SAFETY: `win` is a live window locked by `create_here`; every
            // rank frees its windows in the same order at the end of the
            // job, and no operation is under way (WINDOWS is locked).
            unsafe {
                ffi::MPI_Win_unlock_all(win);
                ffi::MPI_Win_free(&mut win);
            }
        }
    }
}

/// A 64-bit counter shared by every rank of the job, exact under
/// contention: [`fetch_add`](SharedCounter::fetch_add) from any rank is
/// one atomic MPI operation on rank 0's memory.
///
/// Made on rank 0 with [`SharedCounter::new`]; it travels to tasks as an
/// argument (it serializes as its id), and works on every rank until the
/// [`World`] ends. See the [crate docs](crate) for an example.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedCounter {
    id: u32,
}

impl SharedCounter {
    /// Makes a counter holding `initial`. Every worker rank takes part (a
    /// collective MPI call), each once it has finished the batch of tasks
    /// it is running.
    pub fn new(world: &World, initial: i64) -> Result<SharedCounter, Error> {
        let _one = lock(&CREATE);
        let comm = SimpleCommunicator::world();
        let id = lock(&WINDOWS).len() as u32;
        if world.is_ended() {
            return Err(crate::ended());
        }
        for rank in 1..comm.size() {
            comm.process_at_rank(rank)
                .send_with_tag(&[0u8][..], wire::COUNTER);
        }
        create_here(&comm, initial);
        Ok(SharedCounter { id })
    }

    /// Adds `delta` and returns the value before, atomically across all
    /// ranks (`MPI_Fetch_and_op` with `MPI_SUM`).
    pub fn fetch_add(&self, delta: i64) -> Result<i64, Error> {
        let wins = lock(&WINDOWS);
        let Some(Some(Win(win))) = wins.get(self.id as usize) else {
            return Err(crate::ended());
        };
        let mut old: i64 = 0;
        // `win` is live: WINDOWS is locked, so it is not freed meanwhile.
        // It is in the passive-target epoch opened by `create_here`, and
        // rank 0's part holds one i64 at displacement 0.
        // SAFETY: as above; `delta` and `old` are i64s that outlive the
        // call, which is complete locally after the flush.
        unsafe {
            ffi::MPI_Fetch_and_op(
                (&delta as *const i64).cast(),
                (&mut old as *mut i64).cast(),
                ffi::RSMPI_INT64_T,
                0,
                0,
                ffi::RSMPI_SUM,
                *win,
            );
            ffi::MPI_Win_flush(0, *win);
        }
        Ok(old)
    }

    /// The current value.
    pub fn get(&self) -> Result<i64, Error> {
        self.fetch_add(0)
    }
}
