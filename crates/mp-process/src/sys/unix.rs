//! Unix system calls: fork, wait, pidfd, poll, signals, fd passing, the
//! pre-`main` constructor, and the function-address codec used by re-executed
//! children.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Turns a `-1` return into the `errno` error.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The current process id.
pub(crate) fn getpid() -> u32 {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() as u32 }
}

/// What `fork` returned in this process.
pub(crate) enum Forked {
    /// We are the parent; the child has this pid.
    Parent(u32),
    /// We are the new child.
    Child,
}

/// Forks the calling process.
///
/// In the child only the calling thread exists. Callers must keep to work that
/// cannot deadlock on a lock another thread held at the moment of the fork;
/// the `Fork` start method documents this contract to its users.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory-safety preconditions of its own; the hazards
    // of a multi-threaded parent are documented on `StartMethod::Fork` and are
    // the user's choice to accept.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid as u32)
    })
}

/// Ends the process at once with `code`: no destructors, no `atexit`
/// handlers (which belong to the parent after a fork), no stdio flush.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Sends signal `sig` to process `pid`.
pub(crate) fn kill(pid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers; a stale pid is reported as ESRCH.
    cvt(unsafe { libc::kill(pid as libc::pid_t, sig) }).map(drop)
}

/// Whether a process with this pid exists (it may be a zombie).
pub(crate) fn pid_exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Watches the parent of this process by a pidfd held for the process's
/// life: `-1` none (no parent to watch, or no pidfds), `-2` the parent was
/// gone when the child started, `-3` the parent is this process's own
/// (`getppid` tells), else the descriptor. Set anew in each child, since a
/// forked child inherits its parent's.
static PARENT_PIDFD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// `PARENT_PIDFD` for a parent that is the kernel's parent of this process.
const DIRECT_PARENT: i32 = -3;

/// This process's parent in the kernel's sense.
fn getppid() -> u32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// Starts watching `pid`, this child's parent (see [`parent_alive`]).
pub(crate) fn watch_parent(pid: u32) {
    // A forked or spawned child's parent is its kernel parent, and the
    // kernel re-parents a child the moment its parent exits: `getppid`
    // tells as surely as a pidfd, without one to open and hold in every
    // start. A fork server's child watches the process that asked for it,
    // not the server, and needs the pidfd.
    let fd = if getppid() == pid {
        DIRECT_PARENT
    } else {
        match pidfd_open(pid) {
            Ok(fd) => std::os::fd::IntoRawFd::into_raw_fd(fd),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => -2,
            Err(_) => -1,
        }
    };
    let old = PARENT_PIDFD.swap(fd, std::sync::atomic::Ordering::AcqRel);
    if old >= 0 {
        // SAFETY: `old` was the inherited copy of a pidfd this module
        // opened and owns; it is closed once, here.
        drop(unsafe { OwnedFd::from_raw_fd(old) });
    }
}

/// Whether this child's parent (`pid`) still runs. `getppid` and a pidfd
/// tell even while the parent is a zombie, and cannot be fooled by a
/// reused pid; without either, whether the pid exists.
pub(crate) fn parent_alive(pid: u32) -> bool {
    match PARENT_PIDFD.load(std::sync::atomic::Ordering::Acquire) {
        DIRECT_PARENT => getppid() == pid,
        -2 => false,
        -1 => pid_exists(pid),
        fd => {
            // SAFETY: the descriptor stays open for the life of the
            // process once set (only a new child, single-threaded at its
            // start, replaces it).
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            !poll_read(&[fd], Some(Duration::ZERO)).is_ok_and(|r| r[0])
        }
    }
}

/// Reaps `pid` if it has exited (`block == false`), or waits for it to exit.
/// Returns the raw wait status, or `None` when it is still running.
pub(crate) fn waitpid(pid: u32, block: bool) -> io::Result<Option<i32>> {
    let flags = if block { 0 } else { libc::WNOHANG };
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out-pointer for the duration of the call.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, flags) };
        match r {
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            -1 => return Err(io::Error::last_os_error()),
            0 => return Ok(None),
            _ => return Ok(Some(status)),
        }
    }
}

/// Reaps any exited child without blocking: `(pid, raw status)`.
pub(crate) fn wait_any() -> Option<(u32, i32)> {
    let mut status = 0;
    // SAFETY: status is a valid out-pointer for the duration of the call.
    let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (r > 0).then_some((r as u32, status))
}

/// A pollable descriptor that becomes readable when `pid` exits (Linux 5.3+).
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: the syscall takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Waits until one of `fds` is readable (or hung up), or `timeout` passes.
/// Returns one flag per fd. `None` waits forever.
pub(crate) fn poll_read(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    poll(fds, libc::POLLIN, timeout)
}

/// Like [`poll_read`], for writability.
pub(crate) fn poll_write(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    Ok(poll(&[fd], libc::POLLOUT, timeout)?[0])
}

fn poll(
    fds: &[BorrowedFd<'_>],
    events: libc::c_short,
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        })
        .collect();
    let ms = match timeout {
        None => -1,
        // Round up so that a wait never returns before its timeout.
        Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int,
    };
    // SAFETY: pfds is a valid array of pfds.len() pollfd structs.
    match unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) } {
        -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {
            Ok(vec![false; fds.len()])
        }
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(pfds.iter().map(|p| p.revents != 0).collect()),
    }
}

/// Sets or clears `O_NONBLOCK`.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on a descriptor we borrow; no pointers involved.
    unsafe {
        let flags = cvt(libc::fcntl(fd, libc::F_GETFL))?;
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        cvt(libc::fcntl(fd, libc::F_SETFL, flags)).map(drop)
    }
}

/// A connected `SOCK_SEQPACKET` pair with `FD_CLOEXEC` set: message
/// boundaries are kept and fds can travel with a message.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid out-array of two ints.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair just created both fds and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one message carrying `data` and the descriptors `fds` (SCM_RIGHTS).
pub(crate) fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let space = cmsg_space(fds.len());
    let mut cbuf = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` bytes, enough for one cmsg
        // holding fds.len() ints (CMSG_SPACE), so the first header and its
        // data fit inside cbuf.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg) as *mut RawFd,
                fds.len(),
            );
        }
    }
    loop {
        // SAFETY: msg and everything it points at (iov, data, cbuf) are live.
        let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn cmsg_space(nfds: usize) -> usize {
    // SAFETY: CMSG_SPACE is pure arithmetic.
    unsafe { libc::CMSG_SPACE((nfds * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// Receives one message into `buf` with up to `max_fds` descriptors.
/// Returns the byte count (0 at end of stream) and the received fds, which
/// arrive with `FD_CLOEXEC` set.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let space = cmsg_space(max_fds);
    let mut cbuf = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg points at live buffers of the lengths it states.
        let r = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if r >= 0 {
            break r as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut out = Vec::new();
    // SAFETY: the kernel filled msg_control with well-formed cmsg headers of
    // total length msg_controllen; CMSG_FIRSTHDR/NXTHDR stay inside it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                let len = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    out.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, out))
}

/// A child started by [`spawn_self`]: its pid, to signal and to reap.
#[derive(Debug)]
pub(crate) struct Spawned {
    pid: u32,
}

impl Spawned {
    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    /// SIGKILL; a child already gone is not an error.
    pub(crate) fn kill(&self) -> io::Result<()> {
        match kill(self.pid, libc::SIGKILL) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r,
        }
    }

    /// Waits for the child to end and reaps it; its raw wait status.
    pub(crate) fn wait(&self) -> io::Result<Option<i32>> {
        waitpid(self.pid, true)
    }
}

/// Re-executes this very program (`/proc/self/exe`, which names the
/// running file even if its path was replaced since) with `posix_spawn`,
/// which glibc runs as a vfork: no copy of this process's page tables, a
/// third of a fork's cost for a small parent and less the larger it is.
///
/// The child holds exactly `keep`'s descriptors, renumbered from 3 up
/// (`envs` gets the child's numbers, in `keep`'s order, to name them in
/// the environment), besides stdout and stderr, with stdin on
/// `/dev/null`: every other descriptor is closed in the child, as
/// CPython's spawn closes them, so one the program opened without
/// close-on-exec (a C library's, or one inherited from the shell) reaches
/// no spawned child and none of the fork server's. The signal mask is
/// emptied and SIGPIPE's action reset, as std's `Command` does.
pub(crate) fn spawn_self(
    keep: &[RawFd],
    envs: impl FnOnce(&[RawFd]) -> Vec<(&'static str, String)>,
) -> io::Result<Spawned> {
    use std::ffi::{CString, OsStr};
    use std::os::unix::ffi::OsStrExt;

    let cstr = |b: &[u8]| {
        CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte"))
    };
    let path = cstr(b"/proc/self/exe")?;
    let arg0 = match std::env::args_os().next() {
        Some(a) => cstr(a.as_bytes())?,
        None => path.clone(),
    };
    // The child's numbers, in `keep`'s order: 3, 4, ... in ascending order
    // of the parent's.
    let mut sorted = keep.to_vec();
    sorted.sort_unstable();
    let numbers: Vec<RawFd> = keep
        .iter()
        .map(|fd| 3 + sorted.binary_search(fd).expect("present") as RawFd)
        .collect();
    let ours = envs(&numbers);
    let mut env = Vec::new();
    for (k, v) in std::env::vars_os() {
        if ours.iter().any(|(o, _)| OsStr::new(o) == k) {
            continue;
        }
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        env.push(cstr(&kv)?);
    }
    for (k, v) in &ours {
        env.push(cstr(format!("{k}={v}").as_bytes())?);
    }
    let argv = [arg0.as_ptr() as *mut libc::c_char, std::ptr::null_mut()];
    let mut envp: Vec<*mut libc::c_char> = env
        .iter()
        .map(|e| e.as_ptr() as *mut libc::c_char)
        .collect();
    envp.push(std::ptr::null_mut());
    let devnull = cstr(b"/dev/null")?;

    // Out of the way first (above every kept number, so no move clobbers
    // a descriptor still to move), then down to 3, 4, ...; then everything
    // from just past them is closed, the parked copies too.
    let park = sorted.last().map_or(3, |&m| m + 1);
    let cvt_spawn = |r: libc::c_int| {
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(r))
        }
    };

    // The file actions and attributes are initialised before use and
    // destroyed on every path (the guards below).
    // SAFETY: every pointer handed to posix_spawn (path, argv, envp and the
    // strings they point to) lives until it returns; it writes only `pid`.
    unsafe {
        let mut fa = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        cvt_spawn(libc::posix_spawn_file_actions_init(fa.as_mut_ptr()))?;
        let fa = FileActions(fa.assume_init());
        let mut at = MaybeUninit::<libc::posix_spawnattr_t>::uninit();
        cvt_spawn(libc::posix_spawnattr_init(at.as_mut_ptr()))?;
        let at = SpawnAttr(at.assume_init());
        let fap = &fa.0 as *const _ as *mut libc::posix_spawn_file_actions_t;
        let atp = &at.0 as *const _ as *mut libc::posix_spawnattr_t;

        cvt_spawn(libc::posix_spawn_file_actions_addopen(
            fap,
            0,
            devnull.as_ptr(),
            libc::O_RDONLY,
            0,
        ))?;
        for (i, &fd) in sorted.iter().enumerate() {
            cvt_spawn(libc::posix_spawn_file_actions_adddup2(
                fap,
                fd,
                park + i as RawFd,
            ))?;
        }
        for i in 0..sorted.len() as RawFd {
            cvt_spawn(libc::posix_spawn_file_actions_adddup2(fap, park + i, 3 + i))?;
        }
        cvt_spawn(libc::posix_spawn_file_actions_addclosefrom_np(
            fap,
            3 + sorted.len() as RawFd,
        ))?;

        let mut none = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(none.as_mut_ptr());
        cvt_spawn(libc::posix_spawnattr_setsigmask(atp, none.as_ptr()))?;
        let mut pipe = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(pipe.as_mut_ptr());
        libc::sigaddset(pipe.as_mut_ptr(), libc::SIGPIPE);
        cvt_spawn(libc::posix_spawnattr_setsigdefault(atp, pipe.as_ptr()))?;
        cvt_spawn(libc::posix_spawnattr_setflags(
            atp,
            (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short,
        ))?;

        let mut pid: libc::pid_t = 0;
        cvt_spawn(libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            fap,
            atp,
            argv.as_ptr(),
            envp.as_ptr(),
        ))?;
        Ok(Spawned { pid: pid as u32 })
    }
}

/// Destroys the file actions when dropped.
struct FileActions(libc::posix_spawn_file_actions_t);

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised by posix_spawn_file_actions_init, destroyed once.
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut self.0);
        }
    }
}

/// Destroys the spawn attributes when dropped.
struct SpawnAttr(libc::posix_spawnattr_t);

impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: initialised by posix_spawnattr_init, destroyed once.
        unsafe {
            libc::posix_spawnattr_destroy(&mut self.0);
        }
    }
}

/// Blocks SIGCHLD for the calling thread and returns a signalfd that becomes
/// readable when a child changes state. Used by the single-threaded fork
/// server only.
pub(crate) fn sigchld_fd() -> io::Result<OwnedFd> {
    // SAFETY: set is a valid sigset_t out-parameter initialised by
    // sigemptyset before use; the calls only read and write it.
    unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGCHLD);
        let set = set.assume_init();
        cvt(libc::pthread_sigmask(
            libc::SIG_BLOCK,
            &set,
            std::ptr::null_mut(),
        ))?;
        let fd = cvt(libc::signalfd(
            -1,
            &set,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Unblocks every signal for the calling thread (a forked child must not
/// keep the fork server's mask) and restores SIGCHLD's default action.
pub(crate) fn reset_signal_mask() {
    // SAFETY: set is initialised by sigemptyset before it is read.
    unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut());
    }
}

/// Ignores SIGPIPE, as the Rust runtime does before `main`: a write to a
/// closed pipe then fails with EPIPE instead of killing the process.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN for SIGPIPE touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Removes an environment variable while the process is still single-threaded.
///
/// # Safety
///
/// - No other thread may exist (it runs before `main`, or just after a fork).
pub(crate) unsafe fn remove_env_single_threaded(key: &str) {
    // SAFETY: the caller guarantees that no other thread reads the
    // environment concurrently.
    unsafe { std::env::remove_var(key) }
}

/// The constructor that lets a re-executed child take its role before
/// `main`, whatever `main` does and even inside a test harness.
///
/// glibc calls `.init_array` entries after the C runtime and the Rust
/// standard library's own initialisation, on the main thread, before any
/// other thread exists.
#[used]
// SAFETY: `.init_array` expects exactly one function pointer per entry with
// the C ABI, which is what this static is.
#[unsafe(link_section = ".init_array")]
pub(crate) static CHILD_ENTRY: extern "C" fn() = {
    extern "C" fn entry() {
        crate::bootstrap::before_main();
    }
    entry
};

/// The signature of a child entry point: arguments in, outcome frame out.
pub(crate) type EntryFn = fn(&[u8]) -> crate::wire::Outcome;

/// The anchor from which entry points are measured. Re-executed children run
/// the same file (checked by `exe_fingerprint`), so `entry - anchor` is the
/// same in both processes whatever ASLR chose.
#[inline(never)]
fn anchor() -> usize {
    std::hint::black_box(0x6d70)
}

/// The base address of the loaded object (executable or shared library)
/// that contains `addr`, from the dynamic linker.
fn object_base(addr: usize) -> Option<usize> {
    // SAFETY: info is a valid out-parameter; dladdr only reads the loader's
    // tables and fills it.
    unsafe {
        let mut info = MaybeUninit::<libc::Dl_info>::zeroed();
        if libc::dladdr(addr as *const libc::c_void, info.as_mut_ptr()) == 0 {
            return None;
        }
        Some(info.assume_init().dli_fbase as usize)
    }
}

/// Encodes `entry` as an offset from the anchor, after checking that both
/// live in the same loaded object. An entry point in a dynamically loaded
/// library could sit at another offset in the child: it is refused.
pub(crate) fn encode_entry(entry: EntryFn) -> Result<i64, String> {
    let entry = entry as usize;
    let anchor = anchor as fn() -> usize as usize;
    match (object_base(entry), object_base(anchor)) {
        (Some(a), Some(b)) if a == b => Ok(entry as i64 - anchor as i64),
        (Some(_), Some(_)) => {
            Err("the function lives in a dynamically loaded library, not in the executable".into())
        }
        _ => Err("the dynamic linker does not know the function's address".into()),
    }
}

/// Decodes an offset made by [`encode_entry`] in a process running the same
/// executable.
///
/// # Safety
///
/// - `offset` was produced by `encode_entry` in a process whose executable
///   has the same fingerprint as this one (checked by the caller against
///   `exe_fingerprint`), so `anchor + offset` is the address of the same
///   monomorphised `EntryFn` here.
pub(crate) unsafe fn decode_entry(offset: i64) -> EntryFn {
    let anchor = anchor as fn() -> usize as usize;
    let addr = (anchor as i64 + offset) as usize;
    // SAFETY: by the caller's guarantee addr is the address of a function of
    // type EntryFn in this very executable.
    unsafe { std::mem::transmute::<usize, EntryFn>(addr) }
}

/// Refuses at build time a function that another process cannot name.
///
/// A child gets its function as an address in the executable, so the
/// function must be the whole of its value: a fn item or a closure that
/// captures nothing (zero-sized). The check is a constant evaluated when
/// the generic code is built for `F`, so the error shows at `cargo build`,
/// not at `cargo check`; the compiler's note "the above error was
/// encountered while instantiating" names the call that passed `F`.
struct Nameable<F>(std::marker::PhantomData<F>);

impl<F> Nameable<F> {
    const CHECK: () = assert!(
        std::mem::size_of::<F>() == 0,
        "mp: the function given to Process::new, Pool::apply, map and the like \
         must be a fn item or a closure that captures nothing, since another \
         process names it by its address and cannot receive what it captured. \
         Pass the values it needs as its argument (a tuple for several), or \
         use Process::closure, which runs any closure in a forked child."
    );
}

/// Makes a value of the zero-sized, `Copy` function type `F` out of nothing,
/// in a process that cannot receive it otherwise.
///
/// # Safety
///
/// - `F` is zero-sized and `Copy`: a fn item or a closure that captures
///   nothing. Such a type has a single value and no invariants, so making one
///   duplicates nothing that its owner relies on.
pub(crate) unsafe fn conjure<F: Copy>() -> F {
    let () = Nameable::<F>::CHECK;
    // SAFETY: F is a zero-sized Copy type (caller's guarantee, size checked
    // at compile time), so there are no bytes to initialise.
    unsafe { std::mem::zeroed::<F>() }
}

/// Flushes C stdio buffers, so that a fork does not duplicate them.
pub(crate) fn flush_c_stdio() {
    // SAFETY: fflush(NULL) flushes all open C streams; no pointers of ours.
    unsafe {
        libc::fflush(std::ptr::null_mut());
    }
}

/// The name of a signal, for messages: "SIGKILL".
pub(crate) fn signal_name(sig: i32) -> String {
    let known = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
    ];
    known
        .iter()
        .find(|(n, _)| *n == sig)
        .map_or_else(|| format!("signal {sig}"), |(_, s)| (*s).to_owned())
}

/// Number of online processors, as Python's `os.cpu_count()` reports it.
pub(crate) fn cpu_count() -> usize {
    // SAFETY: sysconf takes an integer name and returns a number or -1.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 1 { 1 } else { n as usize }
}

/// Signal numbers the handle sends.
pub(crate) const SIGTERM: i32 = libc::SIGTERM;
/// See [`SIGTERM`].
pub(crate) const SIGKILL: i32 = libc::SIGKILL;

/// The entry trampoline for `F(A) -> R`: decodes `A`, makes the zero-sized
/// `F`, calls it and encodes the outcome. Its address is what travels to a
/// re-executed child (see [`encode_entry`]).
///
/// A capturing closure is refused at compile time (by `conjure`'s size
/// assertion), so an entry can never need data it cannot have.
pub(crate) fn entry_of<F, A, R>() -> EntryFn
where
    F: Fn(A) -> R + Copy + 'static,
    A: serde::de::DeserializeOwned + 'static,
    R: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let () = Nameable::<F>::CHECK;
    fn trampoline<F, A, R>(args: &[u8]) -> crate::wire::Outcome
    where
        F: Fn(A) -> R + Copy + 'static,
        A: serde::de::DeserializeOwned + 'static,
        R: serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        // SAFETY: F is Copy, and zero-sized as `conjure` asserts at compile
        // time: a fn item or a closure that captures nothing.
        let f = unsafe { conjure::<F>() };
        crate::bootstrap::call(f, args)
    }
    trampoline::<F, A, R>
}

/// Takes ownership of a descriptor that this process inherited through
/// `fork` and that a static of the parent names; `None` for `-1`.
///
/// # Safety
///
/// - Called in a freshly forked child, on a descriptor that no other owner
///   in this process will use or close (its static was cleared first).
pub(crate) unsafe fn adopt_inherited(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: by the caller's guarantee fd is open and has no other owner.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Writes `bytes` to fd 2 with no lock and no buffer (best effort).
pub(crate) fn write_stderr(bytes: &[u8]) {
    // SAFETY: bytes is a live buffer of bytes.len() bytes; fd 2 is only
    // written, never closed or taken over.
    unsafe {
        libc::write(2, bytes.as_ptr() as *const libc::c_void, bytes.len());
    }
}

/// This process's identity as a child: a leaked box, replaced (never freed)
/// when a forked child takes a new identity over the one it inherited. An
/// atomic rather than a lock, so that a fork never copies it locked.
static CURRENT_IDENTITY: std::sync::atomic::AtomicPtr<crate::wire::ChildInfo> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Sets the identity returned by [`current_identity`].
pub(crate) fn set_current_identity(info: crate::wire::ChildInfo) {
    let p = Box::into_raw(Box::new(info));
    CURRENT_IDENTITY.store(p, std::sync::atomic::Ordering::Release);
}

/// The identity set by [`set_current_identity`], if any.
pub(crate) fn current_identity() -> Option<&'static crate::wire::ChildInfo> {
    let p = CURRENT_IDENTITY.load(std::sync::atomic::Ordering::Acquire);
    // SAFETY: only set_current_identity stores here, and only pointers from
    // Box::into_raw that are never freed, so p is null or valid for 'static.
    unsafe { p.as_ref() }
}
