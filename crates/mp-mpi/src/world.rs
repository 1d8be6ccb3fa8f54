//! Start-up and the end of the job: [`init`] and the [`World`] it gives
//! rank 0.

use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::Arc;
use std::thread::JoinHandle;

use mpi::Threading;
use mpi::collective::Root;
use mpi::environment::Universe;
use mpi::point_to_point::Destination;
use mpi::topology::{Communicator, SimpleCommunicator};

use crate::engine::{Engine, lock};
use crate::{Error, ErrorKind};

/// The MPI job as rank 0 sees it. Keep it until the end of `main`:
/// dropping it fails the tasks still queued, waits for those under way,
/// ends the worker ranks and finalizes MPI.
pub struct World {
    universe: Option<Universe>,
    size: usize,
    engine: Arc<Engine>,
    comm: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World").field("size", &self.size).finish()
    }
}

impl World {
    /// This rank's number: always 0 (the workers never get a `World`).
    pub fn rank(&self) -> usize {
        0
    }

    /// The number of ranks, rank 0 included.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The number of worker ranks (`size - 1`).
    pub fn workers(&self) -> usize {
        self.size - 1
    }

    pub(crate) fn engine(&self) -> Result<Arc<Engine>, Error> {
        if self.is_ended() {
            return Err(crate::ended());
        }
        Ok(self.engine.clone())
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.universe.is_none()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.engine.stop();
        if let Some(t) = lock(&self.comm).take() {
            let _ = t.join();
        }
        let world = SimpleCommunicator::world();
        for rank in 1..world.size() {
            world
                .process_at_rank(rank)
                .send_with_tag(&[0u8][..], crate::wire::FINALIZE);
        }
        crate::counter::free_all();
        // Finalizes MPI.
        self.universe = None;
    }
}

/// A digest of this executable's contents: every rank must run the same
/// program (function offsets are sent between ranks).
fn exe_digest() -> u64 {
    #[allow(deprecated)] // SipHash through DefaultHasher: stable within a build.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let Ok(mut f) = std::fs::File::open("/proc/self/exe") else {
        return 0;
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.write(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return 0,
        }
    }
    h.finish()
}

fn install_panic_hook(rank: i32) {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        prev(info);
        if crate::worker::IN_TASK
            .try_with(|t| t.get())
            .unwrap_or(false)
        {
            return;
        }
        if mpi::environment::is_finalized() {
            return;
        }
        eprintln!("mp-mpi: a panic escaped on rank {rank}: aborting the job");
        SimpleCommunicator::world().abort(101);
    }));
}

/// Starts the MPI job; call it first in `main`.
///
/// On ranks 1 to N it serves tasks until rank 0 ends the job, then
/// finalizes MPI and exits the process: it never returns there. On rank 0
/// it returns the [`World`].
///
/// Fails (on rank 0; the workers exit) if MPI is initialised already, or
/// lacks `MPI_THREAD_MULTIPLE`. A rank that runs another executable than
/// rank 0 aborts the job.
pub fn init() -> Result<World, Error> {
    mp_process::init();
    let Some((universe, threading)) = mpi::initialize_with_threading(Threading::Multiple) else {
        return Err(crate::error(
            ErrorKind::Process,
            "mpi is initialized already: call mp_mpi::init once",
        ));
    };
    let world = universe.world();
    let rank = world.rank();
    if threading != Threading::Multiple {
        let e = crate::error(
            ErrorKind::Process,
            format!("the mpi library gives {threading:?} threading, mp-mpi needs Multiple"),
        );
        if rank == 0 {
            return Err(e);
        }
        drop(universe);
        std::process::exit(1);
    }
    install_panic_hook(rank);
    let digest = exe_digest();
    let key = if rank == 0 {
        std::collections::hash_map::RandomState::new().hash_one(std::process::id()) | 1
    } else {
        0
    };
    let mut job = [key, digest];
    world.process_at_rank(0).broadcast_into(&mut job[..]);
    if job[1] != digest || digest == 0 {
        eprintln!(
            "mp-mpi: rank {rank} runs another executable than rank 0 (or cannot read it): aborting the job"
        );
        world.abort(1);
    }
    crate::func::set_job(job[0], job[1]);
    if rank != 0 {
        crate::worker::serve(&world);
        crate::counter::free_all();
        drop(universe);
        std::process::exit(0);
    }
    let size = world.size() as usize;
    let engine = Engine::new(size - 1);
    let comm = {
        let engine = engine.clone();
        std::thread::Builder::new()
            .name("mp-mpi-comm".into())
            .spawn(move || engine.run())
            .map_err(|e| crate::error(ErrorKind::Process, format!("cannot start a thread: {e}")))?
    };
    Ok(World {
        universe: Some(universe),
        size,
        engine,
        comm: std::sync::Mutex::new(Some(comm)),
    })
}
