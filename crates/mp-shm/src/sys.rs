//! The system calls under the crate: memfd, mmap, futex, pids and liveness.
//!
//! Every system call lives here behind a checked helper: rustix's safe
//! calls and memmap2's raw mapping, and `libc` only for `pthread_atfork`,
//! which neither has. So the crate's other `unsafe` blocks are all about
//! reading and writing shared memory.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::thread::futex;

/// Creates an anonymous memfd of `len` bytes (zero-filled), close-on-exec,
/// with its size sealed so that no process can shrink it under a mapping
/// (which would turn reads into SIGBUS).
pub(crate) fn memfd(name: &str, len: usize) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let size = u64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    rustix::fs::ftruncate(&fd, size)?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
    Ok(fd)
}

/// The size of the file behind `fd`, and whether its size is sealed (so
/// that mapping it can never fault on a truncated page).
///
/// Also the file's device and inode ([`file_id`]), from the same `fstat`.
pub(crate) fn size_and_sealed(fd: BorrowedFd<'_>) -> io::Result<(u64, bool, (u64, u64))> {
    let st = rustix::fs::fstat(fd)?;
    let sealed = rustix::fs::fcntl_get_seals(fd).is_ok_and(|s| s.contains(SealFlags::SHRINK));
    let size = u64::try_from(st.st_size).unwrap_or(0);
    Ok((size, sealed, (st.st_dev, st.st_ino)))
}

/// The device and inode of the file behind `fd`: equal for two
/// descriptors (or mappings) of one memfd, in any process.
pub(crate) fn file_id(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// Opens another process's descriptor by its `/proc/<pid>/fd/<n>` path,
/// read-write and close-on-exec; the error keeps its errno, which tells a
/// block that is gone from other failures.
pub(crate) fn open_rdwr(path: &str) -> Result<OwnedFd, rustix::io::Errno> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
}

/// A `MAP_SHARED` read-write mapping of a whole file (memmap2's `MmapRaw`,
/// which hands out only raw pointers); unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping(memmap2::MmapRaw);

impl Mapping {
    /// Maps `len` bytes of `fd`, shared with every other mapping of it.
    pub(crate) fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        memmap2::MmapOptions::new()
            .len(len)
            .map_raw(&fd)
            .map(Mapping)
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// What a futex wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken or interrupted.
    Retry,
    /// The word no longer held the expected value: no sleep at all.
    Changed,
    /// The timeout passed.
    TimedOut,
}

/// Sleeps while `*word == expected`, for at most `timeout` (None: forever).
/// Not the `_PRIVATE` variant: the word lives in memory shared between
/// processes, so the kernel must key it on the page, not the address space.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let ts = timeout.map(|d| futex::Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Always below 1e9: a normalised timespec (raw_sync's EINVAL bug).
        tv_nsec: i64::from(d.subsec_nanos()),
    });
    match futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()) {
        Err(rustix::io::Errno::TIMEDOUT) => Wake::TimedOut,
        Err(rustix::io::Errno::AGAIN) => Wake::Changed,
        // Woken, or EINTR (a signal): the caller re-checks.
        _ => Wake::Retry,
    }
}

/// Wakes up to `n` sleepers on `word`.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    let n = n.min(i32::MAX as u32);
    let _ = futex::wake(word, futex::Flags::empty(), n);
}

/// This process's pid, cached: `getpid` is a system call, and the lock's
/// fast path needs the pid on every acquire. A fork handler clears the
/// cache in the child, which has a new pid.
pub(crate) fn pid() -> u32 {
    static PID: AtomicU32 = AtomicU32::new(0);
    static ATFORK: Once = Once::new();
    extern "C" fn clear_in_child() {
        PID.store(0, Ordering::Relaxed);
    }
    let cached = PID.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic, which is
        // async-signal-safe, as a fork child handler must be.
        unsafe {
            libc::pthread_atfork(None, None, Some(clear_in_child));
        }
    });
    let pid = std::process::id();
    PID.store(pid, Ordering::Relaxed);
    pid
}

/// A number unique to this thread within its process, never 0. With the pid
/// it names a thread across processes (a forked child keeps the forking
/// thread's number but has a new pid).
pub(crate) fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    ID.with(|id| *id)
}

/// Whether process `pid` has ended (exited or killed, reaped or a zombie).
///
/// A pidfd says so reliably, zombie included (it polls readable once the
/// process has exited). Without pidfds, `/proc/<pid>/stat` gives the state.
/// An unknown answer counts as alive: a wrong "dead" would break a lock.
pub(crate) fn process_ended(pid: u32) -> bool {
    use rustix::event::{PollFd, PollFlags};
    use rustix::process::{Pid, PidfdFlags};
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    match rustix::process::pidfd_open(p, PidfdFlags::empty()) {
        Ok(fd) => {
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            let zero = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            rustix::event::poll(&mut fds, Some(&zero)).is_ok_and(|n| n > 0)
                && fds[0].revents().contains(PollFlags::IN)
        }
        Err(rustix::io::Errno::SRCH) => true,
        Err(_) => match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(e) => e.kind() == io::ErrorKind::NotFound,
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_some_and(|state| state == 'Z' || state == 'X'),
        },
    }
}

/// A random 64-bit number, for names that must not collide.
pub(crate) fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    if rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty())
        .is_ok_and(|n| n == 8)
    {
        return u64::from_ne_bytes(buf);
    }
    // No getrandom: time and pid are unique enough for a name that is also
    // checked for collision by its users.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(pid()) << 40) ^ thread_id()
}

/// Reads `buf.len()` bytes of `fd` at `offset` (`pread`, retried until
/// complete).
pub(crate) fn pread_all(fd: BorrowedFd<'_>, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::pread(fd, &mut *buf, offset) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes all of `data` to `fd` at `offset` (`pwrite`, retried until
/// complete).
pub(crate) fn pwrite_all(fd: BorrowedFd<'_>, mut data: &[u8], mut offset: u64) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::pwrite(fd, data, offset) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                data = &data[n..];
                offset += n as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The CPU the calling thread runs on (a hint: it may move at once).
pub(crate) fn current_cpu() -> Option<usize> {
    Some(rustix::thread::sched_getcpu())
}
