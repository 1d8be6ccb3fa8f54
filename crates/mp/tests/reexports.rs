//! Every re-export of the facade resolves to the item of its sub-crate.

#[test]
fn process_items() {
    let _: fn() = mp::init;
    let _: fn() -> usize = mp::cpu_count;
    assert_eq!(
        mp::get_context(mp::StartMethod::Spawn).start_method(),
        mp::process::StartMethod::Spawn
    );
    assert_eq!(mp::current_process().name(), "MainProcess");
    assert!(mp::parent_process().is_none());
    let _ = mp::active_children();
    let _ = mp::get_all_start_methods();
}

#[test]
fn sub_crates() {
    // The modules exist under their facade names.
    use mp::{ipc as _, manager as _, pool as _, process as _, shm as _};
}

#[test]
fn shm_items() {
    // The top-level names are mp-shm's types, usable as such.
    let v: mp::shm::Value<i64> = mp::Value::new(10).unwrap();
    *v.lock().unwrap() += 5;
    assert_eq!(v.get().unwrap(), 15);
    let _: mp::shm::Array<f64> = mp::Array::new(3).unwrap();
    let _: mp::shm::RawValue<u8> = mp::RawValue::new(1).unwrap();
    let _: mp::shm::RawArray<u8> = mp::RawArray::new(1).unwrap();
    let _: mp::shm::SharedMemory = mp::SharedMemory::new(1).unwrap();
    let lock: mp::shm::Lock = mp::Lock::new().unwrap();
    let _: mp::shm::LockGuard<'_> = lock.lock().unwrap();
    let _: mp::shm::RLock = mp::RLock::new().unwrap();
    let _: mp::shm::Condition = mp::Condition::new().unwrap();
    let _: mp::shm::Event = mp::Event::new().unwrap();
    let _: mp::shm::Semaphore = mp::Semaphore::new(1).unwrap();
    let _: mp::shm::BoundedSemaphore = mp::BoundedSemaphore::new(1).unwrap();
    let _: mp::shm::Barrier = mp::Barrier::new(1).unwrap();
    fn plain<T: mp::Plain>() {}
    plain::<[f64; 3]>();
    let _: mp::shm::AtomicU64 = mp::shm::AtomicU64::new(0).unwrap();
    let _: Option<mp::OwnerDied<()>> = None::<mp::shm::OwnerDied<()>>;
}

#[test]
fn pool_items() {
    // The facade's pool names are mp-pool's.
    fn same<T>(_: fn() -> T, _: fn() -> T) {}
    same::<mp::PoolBuilder>(mp::Pool::builder, mp::pool::Pool::builder);
    let _: fn(usize) -> Result<mp::ThreadPool, mp::pool::Error> = mp::ThreadPool::new;
    let _: fn(usize) -> Result<mp::ProcessPoolExecutor, mp::pool::Error> =
        mp::ProcessPoolExecutor::new;
    let _: fn(usize) -> Result<mp::ThreadPoolExecutor, mp::pool::Error> =
        mp::pool::ThreadPoolExecutor::new;
    fn takes_task_pool<P: mp::TaskPool>(_: &P) {}
    let _ = takes_task_pool::<mp::pool::Pool>;
    let _: Option<mp::AsyncResult<u8>> = None::<mp::pool::AsyncResult<u8>>;
    let _: Option<mp::Future<u8>> = None::<mp::pool::Future<u8>>;
    let _: Option<mp::ImapIter<u8>> = None::<mp::pool::ImapIter<u8>>;
    // The limits for untrusted work.
    let _: mp::pool::Limits = mp::pool::Limits::new();
    let _: fn() -> Option<std::time::Duration> = mp::pool::time_left;
    let _: Option<mp::pool::WorkerStats> = None;
    let _: i32 = mp::process::MEMORY_LIMIT_EXIT;
}

#[test]
fn manager_items() {
    fn takes(
        _: Option<&mp::Manager>,
        _: Option<&mp::manager::ManagerClient>,
        _: Option<mp::manager::Error>,
    ) {
    }
    takes(None, None, None);
    let _: fn(
        std::net::SocketAddr,
        &[u8],
    ) -> Result<mp::manager::ManagerClient, mp::manager::Error> = mp::manager::connect;
}

#[test]
fn ipc_items() {
    let (mut a, mut b): (mp::Connection, mp::ipc::Connection) = mp::pipe(true).unwrap();
    a.send(&1u8).unwrap();
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    let q: mp::ipc::Queue<u8> = mp::Queue::new().unwrap();
    q.put(2).unwrap();
    assert_eq!(q.get().unwrap(), 2);
    let _: mp::ipc::SimpleQueue<u8> = mp::SimpleQueue::new().unwrap();
    let _: mp::ipc::JoinableQueue<u8> = mp::JoinableQueue::new().unwrap();
    let l = mp::ipc::Listener::new(None).unwrap();
    let _ = mp::ipc::Client::new(l.address().clone());
    assert!(
        mp::ipc::wait(&[&a], Some(std::time::Duration::ZERO))
            .unwrap()
            .is_empty()
    );
}

#[cfg(feature = "mpi")]
#[test]
fn mpi_items() {
    // Only with the facade's `mpi` feature: the MPI pool and counter.
    let _ = std::any::type_name::<mp::mpi::MpiPool>();
    let _ = std::any::type_name::<mp::mpi::SharedCounter>();
    let _: fn() -> Result<mp::mpi::World, mp::mpi::Error> = mp::mpi::init;
}

#[test]
fn codec_items() {
    // The wrapper and the codec's error are mp-process's.
    let w: mp::process::SelfDescribing<u8> = mp::SelfDescribing(1);
    let b = mp::process::encode(&w).unwrap();
    let e: mp::process::CodecError = mp::process::codec::decode::<u64>(&[0xff]).unwrap_err();
    let _: &mp::CodecError = &e;
    assert_eq!(
        mp::process::decode::<mp::SelfDescribing<u8>>(&b).unwrap().0,
        1
    );
}
