//! A child's own limits, set as it starts (`become_child`): a memory cap
//! (RLIMIT_DATA) whose allocation failures exit with a code of their own,
//! and a time limit (an ITIMER_REAL timer whose SIGALRM ends it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The exit code of a process under a memory limit whose allocation failed
/// (see [`set_memory_limit`]).
pub(crate) const MEMORY_LIMIT_EXIT: i32 = 86;

/// The cap set by [`set_memory_limit`], and the data segment when it was
/// set, for the SIGABRT handler.
static CAP: AtomicU64 = AtomicU64::new(0);
static BASE: AtomicU64 = AtomicU64::new(0);

/// SIGABRT while a memory limit is set: Rust's allocation-failure path
/// (`handle_alloc_error`) prints its message and calls `abort`. The
/// process then exits with [`MEMORY_LIMIT_EXIT`], so that the parent can
/// tell it from other aborts (`std::process::abort`, a failed C `assert`,
/// glibc's heap checks), which keep SIGABRT: the handler returns, and
/// `abort` restores the default action and raises again.
///
/// An allocation failure is told by `errno`: the allocator's failed
/// `brk`/`mmap` left ENOMEM on this thread, and the message's `write` and
/// `abort`'s own calls succeed and keep it. With `RUST_BACKTRACE` set, the
/// hook prints a backtrace first, whose failed lookups overwrite it; so an
/// abort counts too when the data segment has grown by a third or more of
/// the room the cap left at the start (a growing buffer fails its doubling
/// with at least that much in use). Measured from the start, because a
/// forked child inherits its parent's heap and thread stacks.
extern "C" fn on_abort(_: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno slot, valid for
    // the life of the thread; reading it is async-signal-safe.
    let errno = unsafe { *libc::__errno_location() };
    let base = BASE.load(Ordering::Relaxed);
    let room = CAP.load(Ordering::Relaxed).saturating_sub(base);
    let near = data_bytes().is_some_and(|d| d.saturating_sub(base).saturating_mul(3) >= room);
    if errno == libc::ENOMEM || near {
        // SAFETY: _exit is async-signal-safe and does not return.
        unsafe { libc::_exit(MEMORY_LIMIT_EXIT) }
    }
}

/// The data segment as RLIMIT_DATA counts it, roughly: the `data` field of
/// `/proc/self/statm` (data and stack pages), read with async-signal-safe
/// calls only and no allocation.
fn data_bytes() -> Option<u64> {
    let mut buf = [0u8; 256];
    // SAFETY: the path is a NUL-terminated literal; open, read and close
    // are async-signal-safe, and read writes at most buf.len() bytes into
    // buf, which lives across the call.
    let n = unsafe {
        let fd = libc::open(
            c"/proc/self/statm".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    let text = buf.get(..usize::try_from(n).ok()?)?;
    // Fields: size resident shared text lib data dt.
    let field = text.split(|&b| b == b' ').nth(5)?;
    let mut pages = 0u64;
    for &b in field {
        if !b.is_ascii_digit() {
            break;
        }
        pages = pages.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    // SAFETY: sysconf takes an integer name and returns a number or -1.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages.saturating_mul(u64::try_from(page).ok()?))
}

/// Caps this process's data segment (heap and private writable mappings:
/// RLIMIT_DATA, soft and hard, so that it cannot be raised again) at
/// `bytes`, and turns an allocation failure into exit code
/// [`MEMORY_LIMIT_EXIT`].
pub(crate) fn set_memory_limit(bytes: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    CAP.store(bytes, Ordering::Relaxed);
    BASE.store(data_bytes().unwrap_or(0), Ordering::Relaxed);
    // SAFETY: lim is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: sigaction is plain data; zeroed is an empty mask and no flags.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = on_abort as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: act is initialised above and lives across the call; the
    // handler only reads errno and calls _exit, both async-signal-safe.
    if unsafe { libc::sigaction(libc::SIGABRT, &act, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Ends this process with SIGALRM (its default action) `after` from now,
/// on the wall clock: a kernel timer, which a busy loop cannot hold off.
pub(crate) fn set_time_limit(after: Duration) -> std::io::Result<()> {
    let value = libc::timeval {
        tv_sec: after.as_secs() as libc::time_t,
        tv_usec: after.subsec_micros().max(u32::from(after.is_zero())) as libc::suseconds_t,
    };
    let timer = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: value,
    };
    // SAFETY: SIG_DFL for SIGALRM touches no memory of ours; the timer
    // struct is valid for the duration of setitimer.
    unsafe {
        libc::signal(libc::SIGALRM, libc::SIG_DFL);
        if libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
