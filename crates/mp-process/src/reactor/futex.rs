//! The futex reactor: one thread in `futex_waitv` on every registered
//! futex word (shared memory, so the shared, not private, futex flavour)
//! and on a private word of its own that says "the set changed".
//!
//! A registration names a word and the value the caller saw there; the
//! kernel returns at once if the word no longer holds it, so a change
//! between the caller's look and the thread's wait is never missed. The
//! waking side must still issue a `FUTEX_WAKE` on the word: each primitive
//! counts its async waiters among its sleepers (or sets its waiters bit), as
//! its blocking waiters do.

use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use rustix::thread::futex;

/// `futex_waitv` takes at most 128 words; one is the reactor's own.
const MAX_WORDS: usize = 127;

/// How often registrations that asked for it are woken anyway, to look
/// again at what no futex wake announces (a lock owner that died).
const RECHECK: Duration = Duration::from_millis(100);

/// While more words are registered than one `futex_waitv` takes, the
/// reactor looks at all of them this often.
const OVERFLOW_POLL: Duration = Duration::from_millis(1);

/// The wakers waiting on one word for one expected value.
struct Word {
    addr: usize,
    expected: u32,
    waiters: Vec<(u64, bool, Waker)>,
}

struct Reactor {
    pid: u32,
    /// Bumped (and woken) by every registration.
    changed: AtomicU32,
    words: Mutex<Vec<Word>>,
    next: AtomicU64,
}

static CURRENT: AtomicPtr<Reactor> = AtomicPtr::new(std::ptr::null_mut());

fn lock(m: &Mutex<Vec<Word>>) -> MutexGuard<'_, Vec<Word>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads a registered word.
///
/// # Safety
///
/// `addr` is the address of an `AtomicU32` of a live registration: a
/// [`FutexWaiter<'a>`] borrows its word for `'a` and removes its entry (under
/// the words lock, which the caller holds) before `'a` ends.
unsafe fn read(addr: usize) -> u32 {
    // SAFETY: the caller's contract: a live, aligned AtomicU32.
    unsafe { (*(addr as *const AtomicU32)).load(Ordering::SeqCst) }
}

fn monotonic_after(d: Duration) -> futex::Timespec {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let ns = now.tv_nsec + i64::from(d.subsec_nanos());
    futex::Timespec {
        tv_sec: now.tv_sec + d.as_secs() as i64 + ns / 1_000_000_000,
        tv_nsec: ns % 1_000_000_000,
    }
}

impl Reactor {
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
            changed: AtomicU32::new(0),
            words: Mutex::new(Vec::new()),
            next: AtomicU64::new(1),
        }));
        match CURRENT.compare_exchange(cur, fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                // SAFETY: `fresh` is CURRENT now and never freed.
                let r: &'static Reactor = unsafe { &*fresh };
                std::thread::Builder::new()
                    .name("mp-reactor-futex".into())
                    .spawn(move || r.run())?;
                Ok(r)
            }
            Err(_) => {
                // SAFETY: from Box::into_raw above, seen by nobody else.
                drop(unsafe { Box::from_raw(fresh) });
                Reactor::get()
            }
        }
    }

    fn run(&self) {
        let mut waits: Vec<futex::Wait> = Vec::with_capacity(MAX_WORDS + 1);
        loop {
            let overflow;
            let any_recheck;
            {
                let words = lock(&self.words);
                waits.clear();
                let mut own = futex::Wait::new();
                own.uaddr = futex::WaitPtr::new(self.changed.as_ptr().cast());
                own.val = u64::from(self.changed.load(Ordering::SeqCst));
                own.flags = futex::WaitFlags::SIZE_U32 | futex::WaitFlags::PRIVATE;
                waits.push(own);
                for w in words.iter().take(MAX_WORDS) {
                    let mut one = futex::Wait::new();
                    one.uaddr = futex::WaitPtr::new(w.addr as *mut _);
                    one.val = u64::from(w.expected);
                    // Shared memory between processes: not PRIVATE.
                    one.flags = futex::WaitFlags::SIZE_U32;
                    waits.push(one);
                }
                overflow = words.len() > MAX_WORDS;
                any_recheck = words.iter().any(|w| w.waiters.iter().any(|x| x.1));
            }
            let timeout = if overflow {
                Some(OVERFLOW_POLL)
            } else if any_recheck {
                Some(RECHECK)
            } else {
                None
            };
            let ts = timeout.map(monotonic_after);
            let r = futex::waitv(
                &waits,
                futex::WaitvFlags::empty(),
                ts.as_ref(),
                rustix::time::ClockId::Monotonic,
            );
            let woken = {
                let mut words = lock(&self.words);
                let timed_out = matches!(r, Err(rustix::io::Errno::TIMEDOUT));
                let mut woken = Vec::new();
                words.retain_mut(|w| {
                    // SAFETY: `w` is a live registration's word and we hold
                    // the words lock (see `read`).
                    let moved = unsafe { read(w.addr) } != w.expected;
                    if moved {
                        woken.extend(w.waiters.drain(..).map(|(_, _, k)| k));
                        return false;
                    }
                    if timed_out {
                        // Wake those that look again on their own schedule
                        // (a lock's owner may have died).
                        let mut i = 0;
                        while i < w.waiters.len() {
                            if w.waiters[i].1 {
                                woken.push(w.waiters.swap_remove(i).2);
                            } else {
                                i += 1;
                            }
                        }
                    }
                    !w.waiters.is_empty()
                });
                woken
            };
            if matches!(r, Err(e) if e != rustix::io::Errno::TIMEDOUT
                && e != rustix::io::Errno::AGAIN
                && e != rustix::io::Errno::INTR)
            {
                // ENOSYS (a kernel before 5.16) or EFAULT: never spin.
                std::thread::sleep(OVERFLOW_POLL);
            }
            for k in woken {
                k.wake();
            }
        }
    }

    fn arm(&self, token: u64, addr: usize, expected: u32, recheck: bool, waker: &Waker) {
        {
            let mut words = lock(&self.words);
            for w in words.iter_mut() {
                w.waiters.retain(|x| x.0 != token);
            }
            words.retain(|w| !w.waiters.is_empty());
            let entry = match words
                .iter_mut()
                .position(|w| w.addr == addr && w.expected == expected)
            {
                Some(i) => &mut words[i],
                None => {
                    words.push(Word {
                        addr,
                        expected,
                        waiters: Vec::new(),
                    });
                    words.last_mut().expect("just pushed")
                }
            };
            entry.waiters.push((token, recheck, waker.clone()));
        }
        self.changed.fetch_add(1, Ordering::SeqCst);
        let _ = futex::wake(&self.changed, futex::Flags::PRIVATE, 1);
    }

    fn forget(&self, token: u64) {
        let mut words = lock(&self.words);
        for w in words.iter_mut() {
            w.waiters.retain(|x| x.0 != token);
        }
        words.retain(|w| !w.waiters.is_empty());
    }
}

/// One future's registration with the futex reactor, for words that live
/// at least `'a`: [`arm`] it each time its operation would block; dropping
/// it forgets its waker.
///
/// [`arm`]: FutexWaiter::arm
pub struct FutexWaiter<'a> {
    reactor: Option<&'static Reactor>,
    token: u64,
    _word: PhantomData<&'a AtomicU32>,
}

impl<'a> FutexWaiter<'a> {
    /// A registration that waits for nothing yet (no system call).
    pub fn new() -> FutexWaiter<'a> {
        FutexWaiter {
            reactor: None,
            token: 0,
            _word: PhantomData,
        }
    }

    /// Wakes `waker` once `word` no longer holds `expected` and a
    /// `FUTEX_WAKE` was issued on it, or at once if it already differs.
    /// With `recheck`, also about every 100 ms, for what no wake announces.
    /// One-shot: a later `arm` replaces this one.
    pub fn arm(
        &mut self,
        word: &'a AtomicU32,
        expected: u32,
        recheck: bool,
        waker: &Waker,
    ) -> io::Result<()> {
        let r = Reactor::get()?;
        match self.reactor {
            Some(old) if std::ptr::eq(old, r) => {}
            _ => {
                self.reactor = Some(r);
                self.token = r.next.fetch_add(1, Ordering::Relaxed);
            }
        }
        r.arm(self.token, word.as_ptr() as usize, expected, recheck, waker);
        Ok(())
    }
}

impl Default for FutexWaiter<'_> {
    fn default() -> Self {
        FutexWaiter::new()
    }
}

impl Drop for FutexWaiter<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.reactor {
            if r.pid == super::pid() {
                r.forget(self.token);
            }
        }
    }
}

impl std::fmt::Debug for FutexWaiter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FutexWaiter")
            .field("token", &self.token)
            .finish()
    }
}
