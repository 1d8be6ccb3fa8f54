//! The descriptor reactor: one thread in `epoll_wait`, one-shot
//! registrations keyed by descriptor number, wakers woken on readiness.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

use rustix::event::epoll;

/// What a registration waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Readable, end of stream, hang-up or an error (a pidfd is readable
    /// once its process has ended).
    Read,
    /// Room to write, or an error.
    Write,
}

/// The wakers waiting on one descriptor number.
#[derive(Default)]
struct Entry {
    waiters: Vec<(u64, Interest, Waker)>,
}

/// One process's descriptor reactor.
struct Reactor {
    pid: u32,
    epoll: OwnedFd,
    entries: Mutex<HashMap<RawFd, Entry>>,
    next: AtomicU64,
}

/// The current process's reactor (null until first use). A pointer to a
/// leaked reactor: its thread runs for the life of the process, and a
/// forked child's copy of the parent's must never be freed or used.
static CURRENT: AtomicPtr<Reactor> = AtomicPtr::new(std::ptr::null_mut());

fn lock(m: &Mutex<HashMap<RawFd, Entry>>) -> MutexGuard<'_, HashMap<RawFd, Entry>> {
    // A waker that panicked in `wake` poisons nothing we rely on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Reactor {
    /// This process's reactor, started on first use (and anew in a forked
    /// child).
    fn get() -> io::Result<&'static Reactor> {
        let me = super::pid();
        let cur = CURRENT.load(Ordering::Acquire);
        // SAFETY: a non-null CURRENT points to a leaked, never freed reactor.
        if let Some(r) = unsafe { cur.as_ref() } {
            if r.pid == me {
                return Ok(r);
            }
        }
        let fresh = Box::into_raw(Box::new(Reactor {
            pid: me,
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            entries: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }));
        match CURRENT.compare_exchange(cur, fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                // SAFETY: `fresh` was just leaked and is now CURRENT: never
                // freed, so a 'static reference is valid.
                let r: &'static Reactor = unsafe { &*fresh };
                std::thread::Builder::new()
                    .name("mp-reactor-fd".into())
                    .spawn(move || r.run())?;
                Ok(r)
            }
            Err(_) => {
                // Another thread installed one first: ours was never shared.
                // SAFETY: `fresh` came from Box::into_raw above and nothing
                // else has seen it.
                drop(unsafe { Box::from_raw(fresh) });
                Reactor::get()
            }
        }
    }

    fn run(&self) {
        let mut events = Vec::with_capacity(256);
        loop {
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                None,
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                // Nothing else can fail on a valid epoll descriptor with a
                // valid buffer; never spin on an unexpected error.
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
            let mut woken = Vec::new();
            {
                let mut entries = lock(&self.entries);
                for ev in &events {
                    let fd = ev.data.u64() as RawFd;
                    if let Some(e) = entries.remove(&fd) {
                        woken.extend(e.waiters.into_iter().map(|(_, _, w)| w));
                    }
                }
            }
            // Woken outside the lock: a waker may run the future inline and
            // register again.
            for w in woken {
                w.wake();
            }
        }
    }

    fn arm(
        &self,
        token: u64,
        fd: BorrowedFd<'_>,
        interest: Interest,
        waker: &Waker,
    ) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        let mut entries = lock(&self.entries);
        let entry = entries.entry(raw).or_default();
        match entry.waiters.iter_mut().find(|(t, _, _)| *t == token) {
            Some(slot) => {
                slot.1 = interest;
                if !slot.2.will_wake(waker) {
                    slot.2 = waker.clone();
                }
            }
            None => entry.waiters.push((token, interest, waker.clone())),
        }
        let mut flags = epoll::EventFlags::ONESHOT | epoll::EventFlags::RDHUP;
        for (_, i, _) in &entry.waiters {
            flags |= match i {
                Interest::Read => epoll::EventFlags::IN,
                Interest::Write => epoll::EventFlags::OUT,
            };
        }
        let data = epoll::EventData::new_u64(raw as u64);
        // Re-arming a one-shot registration re-checks readiness at once, so
        // a source that became ready before this call still wakes us.
        let r = match epoll::modify(&self.epoll, fd, data, flags) {
            Err(rustix::io::Errno::NOENT) => match epoll::add(&self.epoll, fd, data, flags) {
                Err(rustix::io::Errno::EXIST) => epoll::modify(&self.epoll, fd, data, flags),
                r => r,
            },
            r => r,
        };
        if let Err(e) = r {
            if let Some(entry) = entries.get_mut(&raw) {
                entry.waiters.retain(|(t, _, _)| *t != token);
            }
            return Err(e.into());
        }
        Ok(())
    }

    fn forget(&self, token: u64) {
        let mut entries = lock(&self.entries);
        entries.retain(|_, e| {
            e.waiters.retain(|(t, _, _)| *t != token);
            !e.waiters.is_empty()
        });
    }
}

/// One future's registration with the descriptor reactor: [`arm`] it each
/// time its operation would block; dropping it forgets its waker.
///
/// [`arm`]: FdWaiter::arm
pub struct FdWaiter {
    reactor: Option<&'static Reactor>,
    token: u64,
}

impl FdWaiter {
    /// A registration that waits for nothing yet (no system call).
    pub fn new() -> FdWaiter {
        FdWaiter {
            reactor: None,
            token: 0,
        }
    }

    /// Wakes `waker` once `fd` is ready for `interest` (at once if it is
    /// ready now). One-shot: after the wake, arm again to wait again. The
    /// reactor thread is started on first use, so this can fail only as
    /// `epoll_ctl` or `clone` can (out of memory or descriptors).
    pub fn arm(&mut self, fd: BorrowedFd<'_>, interest: Interest, waker: &Waker) -> io::Result<()> {
        let r = Reactor::get()?;
        match self.reactor {
            Some(old) if std::ptr::eq(old, r) => {}
            // First use, or the first after a fork (the parent's reactor is
            // not ours).
            _ => {
                self.reactor = Some(r);
                self.token = r.next.fetch_add(1, Ordering::Relaxed);
            }
        }
        r.arm(self.token, fd, interest, waker)
    }
}

impl Default for FdWaiter {
    fn default() -> FdWaiter {
        FdWaiter::new()
    }
}

impl Drop for FdWaiter {
    fn drop(&mut self) {
        if let Some(r) = self.reactor {
            if r.pid == super::pid() {
                r.forget(self.token);
            }
        }
    }
}

impl std::fmt::Debug for FdWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdWaiter")
            .field("token", &self.token)
            .finish()
    }
}
