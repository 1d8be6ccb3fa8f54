//! The floors: `NAME:limit` rows, each the smallest program that does NAME's
//! work on this machine without mp, measured in the same run so that mp's
//! row can be judged against what the machine allows right now
//! (`cpu_sum_speedup:limit` started the convention).
//!
//! - `spawn_join_fork:limit`: `fork`, `_exit(0)` in the child, `waitpid`.
//! - `pipe_pingpong:limit`: 8 bytes back and forth on a stream socket pair,
//!   each receive spinning with `MSG_DONTWAIT` for 30 us before it sleeps in
//!   `poll`, as mp's `Connection` does.
//! - `atomic_counter:limit`: two forked processes `fetch_add` one `AtomicU64`
//!   in a shared memfd mapping, timing themselves while the parent sleeps in
//!   `waitpid` (a polling parent makes the pair look twice as fast).
//! - `shared_memory_block:limit`: a forked child `pwrite`s 100 MiB into a
//!   fresh memfd, the parent `pread`s it back into a buffer the child does
//!   not share (the fastest way here to fill and read fresh shared pages; a
//!   `memset` of the mapping is slower).
//!
//! Children are gated as mp's are: forked before the clock, they say ready
//! and wait for go. `fork` needs `unsafe` (rustix has no fork), so this file
//! is one of tidy's documented exceptions: a floor must be measured without
//! mp. Everything else is rustix's safe calls and memmap2's `MmapRaw`. A
//! forked child runs only system calls and atomics (no allocation, no
//! locks, no panics) and leaves with `_exit`.

use std::hint::spin_loop;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memmap2::{Advice, MmapMut, MmapRaw};
use rustix::event::{PollFd, PollFlags};
use rustix::fs::MemfdFlags;
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use rustix::process::{Pid, WaitOptions};

use super::repeat;

/// mp-ipc's receive spin (`sock::SPIN`): busy-poll this long, then sleep.
const SPIN: Duration = Duration::from_micros(30);

/// How long the parent naps between looks at a gate word.
const NAP: Duration = Duration::from_micros(20);

/// A generous bound on any wait of a floor: a broken child must not hang
/// the run.
const WAIT: Duration = Duration::from_secs(120);

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Forks; the child runs `child` and `_exit`s with the code it returns.
/// `child` must only make system calls and touch atomics or memory that
/// was set up before the fork: no allocation, no locks, no panics.
fn fork(child: impl FnOnce() -> i32) -> Result<Pid, String> {
    // The child side runs only `child`, which by this function's contract
    // makes only async-signal-safe calls (system calls, atomics), then
    // `_exit`s without running destructors or atexit handlers.
    // SAFETY: as above; the parent side only reads the returned pid.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            let code = child();
            // SAFETY: `_exit` ends the child at once; nothing of the
            // parent's state is flushed or dropped twice.
            unsafe { libc::_exit(code) }
        }
        pid => Pid::from_raw(pid).ok_or_else(|| format!("fork returned {pid}")),
    }
}

/// Waits for `pid` and checks that it exited with 0.
fn reap(pid: Pid) -> Result<(), String> {
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) if status.exit_status() == Some(0) => return Ok(()),
            Ok(Some((_, status))) => return Err(format!("child ended with {status:?}")),
            Ok(None) => return Err("waitpid returned no status".into()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(format!("waitpid: {e}")),
        }
    }
}

/// `spawn_join_fork:limit`: K x (`fork`, `_exit(0)`, `waitpid`); us/process.
pub(crate) fn spawn_join_fork(quick: bool) -> Result<Vec<f64>, String> {
    let per_rep = if quick { 20 } else { 50 };
    let once = || -> Result<(), String> { reap(fork(|| 0)?) };
    once()?;
    repeat(quick, || {
        let start = Instant::now();
        for _ in 0..per_rep {
            once()?;
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(per_rep))
    })
}

fn socketpair() -> Result<(OwnedFd, OwnedFd), String> {
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(err)
}

/// Receives exactly `buf.len()` bytes: each attempt spins with
/// `MSG_DONTWAIT` for [`SPIN`], then sleeps in `poll` (mp-ipc's
/// `recv_until`). `Err` on end of stream or an error.
fn recv_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(), Errno> {
    let mut got = 0;
    while got < buf.len() {
        let mut spin_until: Option<Instant> = None;
        loop {
            match rustix::net::recv(fd, &mut buf[got..], RecvFlags::DONTWAIT) {
                Ok((0, _)) => return Err(Errno::PIPE),
                Ok((n, _)) => {
                    got += n;
                    break;
                }
                Err(Errno::AGAIN) => {
                    let now = Instant::now();
                    if now < *spin_until.get_or_insert(now + SPIN) {
                        spin_loop();
                    } else {
                        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
                        match rustix::event::poll(&mut fds, None) {
                            Ok(_) | Err(Errno::INTR) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn send_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match rustix::net::send(fd, data, SendFlags::NOSIGNAL) {
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The child of the ping-pong: ready, then echo `n` messages of 8 bytes.
fn echo(fd: BorrowedFd<'_>, n: u64) -> i32 {
    let mut buf = [0u8; 8];
    if send_all(fd, b"r").is_err() {
        return 1;
    }
    for _ in 0..n {
        if recv_exact(fd, &mut buf).is_err() || send_all(fd, &buf).is_err() {
            return 1;
        }
    }
    0
}

/// `pipe_pingpong:limit`: 20,000 (5,000 quick) round trips of 8 bytes on a
/// socket pair; us/roundtrip.
pub(crate) fn pipe_pingpong(quick: bool) -> Result<Vec<f64>, String> {
    let n: u64 = if quick { 5_000 } else { 20_000 };
    let rep = || -> Result<f64, String> {
        let (mine, theirs) = socketpair()?;
        let pid = fork(|| echo(theirs.as_fd(), n))?;
        drop(theirs);
        let fd = mine.as_fd();
        let mut ready = [0u8; 1];
        recv_exact(fd, &mut ready).map_err(|e| format!("ready: {e}"))?;
        let start = Instant::now();
        let mut back = [0u8; 8];
        for i in 0..n {
            let msg = i.to_le_bytes();
            send_all(fd, &msg).map_err(err)?;
            recv_exact(fd, &mut back).map_err(err)?;
            if back != msg {
                return Err("echo differs".into());
            }
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        drop(mine);
        reap(pid)?;
        Ok(us)
    };
    rep()?;
    repeat(quick, rep)
}

/// A shared mapping of one page from a memfd (`MAP_SHARED`: a forked child
/// writes the parent's pages).
fn shared_page() -> Result<MmapRaw, String> {
    let fd = rustix::fs::memfd_create("mp-bench-floor", MemfdFlags::CLOEXEC).map_err(err)?;
    rustix::fs::ftruncate(&fd, 4096).map_err(err)?;
    MmapRaw::map_raw(&std::fs::File::from(fd)).map_err(err)
}

/// The `i`-th gate or counter word of `page` (one of the constants below)
/// as an atomic.
fn word(page: &MmapRaw, i: usize) -> &AtomicU64 {
    // The page is 4096 bytes, page-aligned and mapped for as long as `page`
    // lives; `i` is at most `END + 1` (7), so word `i` starts at
    // 64 * i < 4096 (its own cache line, 8-aligned).
    // SAFETY: as above, and every process reaches it only through atomics.
    unsafe { AtomicU64::from_ptr(page.as_mut_ptr().add(64 * i).cast()) }
}

const COUNTER: usize = 0;
const READY: usize = 1;
const GO: usize = 2;
/// `atomic_counter:limit`'s children's clocks: words `START` and `START + 1`,
/// `END` and `END + 1`.
const START: usize = 4;
const END: usize = 6;

fn wait_word(page: &MmapRaw, i: usize, want: u64, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    while word(page, i).load(Ordering::Acquire) < want {
        if Instant::now() > deadline {
            return Err(format!("the children never {what}"));
        }
        std::thread::sleep(NAP);
    }
    Ok(())
}

/// `atomic_counter:limit`: 2 forked processes x 1,000,000 `fetch_add` on one
/// shared `AtomicU64`; increments/s.
///
/// The children time themselves (the monotonic clock is one clock for every
/// process) and the parent sleeps in `waitpid` meanwhile. A parent that
/// polls a done word, even with 20 us naps, wakes a CPU 50,000 times a
/// second and keeps taking it from one child, which then leaves the
/// counter's cache line to the other: with that noise the pair ran 2.3x
/// faster here (about 120M/s against 50M/s), a rate two processes that run
/// side by side never reach.
pub(crate) fn atomic_counter(quick: bool) -> Result<Vec<f64>, String> {
    let n: u64 = 1_000_000;
    let once = || -> Result<f64, String> {
        let page = shared_page()?;
        let incs = || {
            let me = word(&page, READY).fetch_add(1, Ordering::AcqRel) as usize;
            while word(&page, GO).load(Ordering::Acquire) == 0 {
                spin_loop();
            }
            let counter = word(&page, COUNTER);
            let start = now_ns();
            for _ in 0..n {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            word(&page, END + me).store(now_ns(), Ordering::Release);
            word(&page, START + me).store(start, Ordering::Release);
            0
        };
        let pids = [fork(incs)?, fork(incs)?];
        wait_word(&page, READY, 2, "became ready")?;
        word(&page, GO).store(1, Ordering::Release);
        for pid in pids {
            reap(pid)?;
        }
        let at = |i| word(&page, i).load(Ordering::Acquire);
        let span = at(END).max(at(END + 1)) - at(START).min(at(START + 1));
        let got = at(COUNTER);
        if got != 2 * n {
            return Err(format!("counter is {got}, expected {}", 2 * n));
        }
        Ok((2 * n) as f64 / (span as f64 / 1e9))
    };
    once()?;
    repeat(quick, once)
}

/// The monotonic clock in nanoseconds: a system call through the vDSO,
/// safe in a forked child.
fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn pwrite_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<(), Errno> {
    let mut at = 0u64;
    while !data.is_empty() {
        match rustix::io::pwrite(fd, data, at) {
            Ok(0) => return Err(Errno::NOSPC),
            Ok(k) => {
                data = &data[k..];
                at += k as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn pread_all(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(), Errno> {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::pread(fd, &mut buf[got..], got as u64) {
            Ok(0) => return Err(Errno::NODATA),
            Ok(k) => got += k,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The child of `shared_memory_block:limit`: makes its payload (an
/// anonymous mapping: a system call, not the allocator), says ready, waits
/// for go, writes the whole block, says done.
fn write_block(gate: BorrowedFd<'_>, block: BorrowedFd<'_>, len: usize) -> i32 {
    let Ok(mut payload) = MmapMut::map_anon(len) else {
        return 4;
    };
    payload.fill(0xAB);
    let mut go = [0u8; 1];
    if send_all(gate, b"r").is_err() || recv_exact(gate, &mut go).is_err() {
        return 1;
    }
    if pwrite_all(block, &payload).is_err() {
        return 2;
    }
    if send_all(gate, b"d").is_err() { 3 } else { 0 }
}

/// `shared_memory_block:limit`: from go, the parent sizes a fresh 100 MiB
/// memfd, a forked child `pwrite`s all of it, the parent `pread`s it all
/// back; GiB/s.
pub(crate) fn shared_memory_block(quick: bool) -> Result<Vec<f64>, String> {
    let len = 100 << 20;
    // The parent's buffer, touched once: as mp's reader, it must not be
    // shared copy-on-write with the child (mp's children come from its
    // fork server), or every page the parent reads into would be copied.
    let mut buf = MmapMut::map_anon(len).map_err(err)?;
    buf.advise(Advice::DontFork).map_err(err)?;
    buf.fill(0);
    let mut once = || -> Result<f64, String> {
        let block = rustix::fs::memfd_create("mp-bench-floor", MemfdFlags::CLOEXEC).map_err(err)?;
        let (mine, theirs) = socketpair()?;
        let pid = fork(|| write_block(theirs.as_fd(), block.as_fd(), len))?;
        drop(theirs);
        let gate = mine.as_fd();
        let mut b = [0u8; 1];
        recv_exact(gate, &mut b).map_err(|e| format!("ready: {e}"))?;
        let start = Instant::now();
        rustix::fs::ftruncate(&block, len as u64).map_err(err)?;
        send_all(gate, b"g").map_err(err)?;
        recv_exact(gate, &mut b).map_err(|e| format!("done: {e}"))?;
        pread_all(block.as_fd(), &mut buf).map_err(err)?;
        let secs = start.elapsed().as_secs_f64();
        reap(pid)?;
        if buf.iter().any(|&x| x != 0xAB) {
            return Err("the parent read bytes the child did not write".into());
        }
        buf.fill(0);
        Ok(len as f64 / (1u64 << 30) as f64 / secs)
    };
    once()?;
    repeat(quick, once)
}
