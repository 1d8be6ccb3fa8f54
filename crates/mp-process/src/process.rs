//! `Process`: a child process that runs one function, and its handle.

use std::fmt;
use std::io::Write;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bootstrap;
use crate::error::{Error, ErrorKind, ExitStatus};
use crate::forkserver;
use crate::sys;
use crate::wire::{self, CallHeader, ChildInfo, ChildLimits, Outcome, ParentConn, Stop};
use crate::{StartMethod, get_start_method};

mod join;
mod wait;

pub(crate) use join::failure_error;

/// The default limit on the size of serialized arguments and results.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1 << 30;

/// A child process that runs one function: Python's `multiprocessing.Process`.
///
/// Build it with [`Process::new`] (a function and its arguments, under any
/// start method) or [`Process::closure`] (any closure, under
/// [`StartMethod::Fork`] only), adjust it with the builder methods, then
/// [`start`](Process::start) it and [`join`](Process::join) it to get the
/// function's return value.
///
/// ```
/// use mp_process::Process;
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let mut p = Process::new(square, 12).name("squarer");
/// p.start()?;
/// assert_eq!(p.join()?, 144);
/// assert_eq!(p.exitcode(), Some(0));
/// # Ok::<(), mp_process::Error>(())
/// ```
///
/// # Dropping a handle
///
/// Dropping a `Process` whose child still runs kills and reaps the child if
/// it is a [daemon](Process::daemon). A non-daemon child is detached: it runs
/// on, and a background thread reaps it when it ends. Either way no zombie
/// is left behind.
pub struct Process<R> {
    target: Option<Target>,
    name: Option<String>,
    daemon: bool,
    method: Option<StartMethod>,
    max_message: u64,
    limits: ChildLimits,
    state: State,
    _result: PhantomData<fn() -> R>,
}

enum Target {
    /// A function resolvable in any child, with its encoded arguments.
    Entry {
        entry: sys::EntryFn,
        name: &'static str,
        /// The encoded arguments and the descriptors their `SharedFd`s
        /// carry (see `fdpass`).
        args: Result<(Vec<u8>, Vec<OwnedFd>), crate::codec::CodecError>,
    },
    /// A closure, runnable only in a forked child.
    Closure(Box<dyn FnOnce() -> Outcome + Send>),
}

enum State {
    NotStarted,
    Running(Running),
    Joined(Arc<Inner>),
}

struct Running {
    inner: Arc<Inner>,
    conn: ParentConn,
    /// The child's report, once read; kept across timed-out joins.
    outcome: Option<Result<Outcome, Error>>,
}

/// What the registry, the handle and a detached reaper share about a child.
pub(crate) struct Inner {
    pid: u32,
    name: String,
    daemon: bool,
    wait: Mutex<Waiter>,
}

struct Waiter {
    pid: u32,
    how: WaitHow,
    status: Option<ExitStatus>,
}

enum WaitHow {
    /// Our own child: `waitpid`, with a pidfd to wait with a timeout.
    Direct { pidfd: Option<OwnedFd> },
    /// A child of the fork server, which sends the wait status.
    Server { status: UnixStream },
}

impl<R> Process<R>
where
    R: Serialize + DeserializeOwned + 'static,
{
    /// A process that will run `f(args)`.
    ///
    /// `f` must be a function item or a closure that captures nothing: a
    /// re-executed child finds it by its address in the executable, and a
    /// capturing closure is refused when the program is built (use
    /// [`Process::closure`] under the fork method for those). `args` travel
    /// by serde; pass a tuple for several.
    ///
    /// The refusal is a constant evaluated as the generic code is built, so
    /// it shows at `cargo build` (and `cargo test`), not at `cargo check`:
    /// "mp: the function given to Process::new, Pool::apply, map and the
    /// like must be a fn item or a closure that captures nothing", with a
    /// note naming the closure's place in your code. The same holds for
    /// every pool call that takes a function.
    ///
    /// ```compile_fail,E0080
    /// let k = 3u64;
    /// // Captures `k`: refused at build time.
    /// let mut p = mp_process::Process::new(move |x: u64| x + k, 1);
    /// ```
    pub fn new<F, A>(f: F, args: A) -> Process<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
    {
        let _ = f;
        let target = Target::Entry {
            entry: sys::entry_of::<F, A, R>(),
            name: std::any::type_name::<F>(),
            args: match crate::fdpass::collect(|| {
                crate::codec::encode(&args)
                    .and_then(|b| crate::codec::check_sent::<A>(&b).map(|()| b))
            }) {
                (Ok(bytes), fds) => Ok((bytes, fds)),
                (Err(e), _) => Err(e),
            },
        };
        Process::with_target(target, None)
    }

    /// A process that will run `f` in a forked copy of this process.
    ///
    /// The closure may capture any `Send` value, because the child is a
    /// copy of the parent's memory; nothing is serialized but the result.
    /// (`Send`, as for `std::thread::spawn`, keeps `Process` itself `Send`.)
    /// Only [`StartMethod::Fork`] can run it; starting it under another
    /// method is an [`ErrorKind::NotAllowed`] error.
    pub fn closure<F>(f: F) -> Process<R>
    where
        F: FnOnce() -> R + Send + 'static,
    {
        let run = Box::new(move || bootstrap::run_caught(f));
        Process::with_target(Target::Closure(run), Some(StartMethod::Fork))
    }

    fn with_target(target: Target, method: Option<StartMethod>) -> Process<R> {
        Process {
            target: Some(target),
            name: None,
            daemon: bootstrap::current_info().is_some_and(|i| i.daemon),
            method,
            max_message: DEFAULT_MAX_MESSAGE_SIZE,
            limits: ChildLimits::default(),
            state: State::NotStarted,
            _result: PhantomData,
        }
    }

    /// Sets the name (default `Process-N`, with the creator's own number
    /// in front in a child: `Process-2:1`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Makes the child a daemon: it is killed when its parent exits, or
    /// when its handle is dropped. The default is the creator's own flag.
    ///
    /// A daemon may start children of its own (CPython forbids it); they
    /// are daemons too unless made otherwise, so a daemon's whole tree dies
    /// with it.
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Chooses the start method for this process (default:
    /// [`get_start_method`]).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// Stops the child `limit` after it starts, however busy it is: a
    /// kernel timer (ITIMER_REAL) set in the child as it starts, whose
    /// SIGALRM ends it. [`join`](Process::join) then fails with
    /// [`ErrorKind::TimeLimit`] (and the status, SIGALRM). The clock is
    /// the wall clock and starts in the child, before its function runs.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_process::{ErrorKind, Process};
    ///
    /// fn spin(_: ()) { loop { std::hint::spin_loop() } }
    ///
    /// let mut p = Process::new(spin, ()).time_limit(Duration::from_millis(100));
    /// p.start()?;
    /// assert_eq!(p.join().unwrap_err().kind(), ErrorKind::TimeLimit);
    /// # Ok::<(), mp_process::Error>(())
    /// ```
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.limits.time = Some(limit);
        self
    }

    /// Caps the child's data segment at `bytes` (RLIMIT_DATA, set in the
    /// child as it starts, soft and hard: the heap and private writable
    /// mappings, not address space merely reserved). An allocation past it
    /// fails; Rust's allocation-failure abort then ends the child with exit
    /// code [`MEMORY_LIMIT_EXIT`](crate::MEMORY_LIMIT_EXIT), and
    /// [`join`](Process::join) fails with [`ErrorKind::MemoryLimit`].
    /// (Fallible allocation, `try_reserve`, sees the error instead.) Under
    /// fork the count includes what the child inherited from the parent's
    /// heap. Other aborts stay SIGABRT.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.limits.memory = Some(bytes);
        self
    }

    /// Limits the size of the serialized arguments and result (default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`], 1 GiB). Larger ones are a
    /// [`ErrorKind::TooLarge`] error.
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.max_message = bytes;
        self
    }

    /// Starts the child.
    ///
    /// Errors: a second start ([`ErrorKind::AlreadyStarted`]); arguments
    /// that fail to serialize or exceed the limit; a closure under a method
    /// other than fork; a function outside the executable
    /// ([`ErrorKind::Unresolvable`]); operating-system failures.
    pub fn start(&mut self) -> Result<(), Error> {
        if !matches!(self.state, State::NotStarted) {
            return Err(Error::new(
                ErrorKind::AlreadyStarted,
                "cannot start a process twice",
            ));
        }
        if std::env::var_os(bootstrap::ENV_CHILD).is_some() {
            return Err(Error::new(
                ErrorKind::NotEntered,
                "this process was started as an mp child but never entered mp: call mp::init() first in main",
            ));
        }
        let method = self.method.unwrap_or_else(get_start_method);
        let Some(target) = self.target.take() else {
            return Err(Error::new(
                ErrorKind::AlreadyStarted,
                "a process whose start failed cannot be started again",
            ));
        };
        if let Target::Entry {
            args: Ok((args, _)),
            ..
        } = &target
        {
            if args.len() as u64 > self.max_message {
                let msg = format!(
                    "the arguments take {} bytes, over the limit of {}",
                    args.len(),
                    self.max_message
                );
                self.target = Some(target);
                return Err(Error::new(ErrorKind::TooLarge, msg));
            }
        }
        let identity = next_identity();
        let name = self.name.clone().unwrap_or_else(|| {
            let ids: Vec<String> = identity.iter().map(|i| i.to_string()).collect();
            format!("Process-{}", ids.join(":"))
        });
        let me = crate::current_process();
        let info = ChildInfo {
            name: name.clone(),
            daemon: self.daemon,
            parent_pid: me.pid(),
            parent_name: me.name().to_owned(),
            method: method as u8,
            identity,
            max_message: self.max_message,
            key: crate::function::program_key(),
            limits: self.limits,
        };
        let result = match (target, method) {
            (Target::Closure(run), StartMethod::Fork) => self.start_fork(info, run),
            (Target::Closure(run), _) => {
                self.target = Some(Target::Closure(run));
                return Err(Error::new(
                    ErrorKind::NotAllowed,
                    "a closure can only run under the fork start method; use Process::new with a fn",
                ));
            }
            (
                Target::Entry {
                    args: Err(e),
                    entry,
                    name,
                },
                _,
            ) => {
                self.target = Some(Target::Entry {
                    args: Err(e.clone()),
                    entry,
                    name,
                });
                return Err(Error::codec("cannot encode the arguments", e));
            }
            (
                Target::Entry {
                    entry,
                    args: Ok((args, fds)),
                    ..
                },
                StartMethod::Fork,
            ) => self.start_fork(
                info,
                Box::new(move || {
                    // The forked child inherited these duplicates.
                    crate::fdpass::provide(fds);
                    entry(&args)
                }),
            ),
            (
                Target::Entry {
                    entry,
                    name,
                    args: Ok((args, fds)),
                },
                method,
            ) => self.start_exec(info, method, entry, name, args, fds),
        };
        let running = result?;
        register(&running.inner);
        crate::mp_event!(
            debug,
            pid = running.inner.pid,
            name = %running.inner.name,
            daemon = running.inner.daemon,
            "process started"
        );
        self.state = State::Running(running);
        Ok(())
    }

    fn start_fork(
        &mut self,
        info: ChildInfo,
        run: Box<dyn FnOnce() -> Outcome + Send>,
    ) -> Result<Running, Error> {
        bootstrap::install_panic_hook();
        crate::fdpass::prepare_fork();
        let (mine, theirs) =
            UnixStream::pair().map_err(|e| Error::io("cannot create a socket pair", e))?;
        let mine =
            ParentConn::new(mine).map_err(|e| Error::io("cannot configure the child socket", e))?;
        if info.daemon {
            lifeline_reader()?;
        }
        // Buffered output would be written twice: once by each process.
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        sys::flush_c_stdio();
        let limit = info.max_message;
        let name = info.name.clone();
        let daemon = info.daemon;
        match sys::fork().map_err(|e| Error::io("fork failed", e))? {
            sys::Forked::Child => {
                bootstrap::mark_forked();
                drop(mine);
                // The parent's lifeline writer must close here, or the
                // parent's daemons would not see it go while we live.
                let reader = take_lifeline_in_child().filter(|_| daemon);
                forkserver::forget_in_child();
                forget_children_in_child();
                bootstrap::become_child(info, reader);
                let outcome = run();
                bootstrap::report(theirs, outcome, limit, false)
            }
            sys::Forked::Parent(pid) => {
                drop(theirs);
                let pidfd = sys::pidfd_open(pid).ok();
                Ok(Running::new(
                    pid,
                    name,
                    daemon,
                    WaitHow::Direct { pidfd },
                    mine,
                ))
            }
        }
    }

    fn start_exec(
        &mut self,
        info: ChildInfo,
        method: StartMethod,
        entry: sys::EntryFn,
        entry_name: &'static str,
        args: Vec<u8>,
        fds: Vec<OwnedFd>,
    ) -> Result<Running, Error> {
        let offset = sys::encode_entry(entry).map_err(|why| {
            Error::new(
                ErrorKind::Unresolvable,
                format!("cannot run `{entry_name}` in a child: {why}"),
            )
        })?;
        let header = CallHeader {
            fingerprint: bootstrap::exe_fingerprint(),
            entry: offset,
            entry_name: entry_name.to_owned(),
            nfds: fds.len() as u32,
            info: info.clone(),
        };
        let header = postcard::to_stdvec(&header)
            .map_err(|e| Error::new(ErrorKind::Serialization, e.to_string()))?;
        let (mine, theirs) =
            UnixStream::pair().map_err(|e| Error::io("cannot create a socket pair", e))?;
        let lifeline = if info.daemon {
            Some(lifeline_reader()?)
        } else {
            None
        };
        // The call goes into the socket before the child exists, as far as
        // the socket buffer takes it: a child can read it as soon as it
        // runs, with no round trip to wait for (saves about 10% of a
        // forkserver start).
        let mut call = wire::frame(wire::CALL, &header);
        call.extend_from_slice(&wire::frame(wire::ARGS, &args));
        drop(args);
        let mut conn =
            ParentConn::new(mine).map_err(|e| Error::io("cannot configure the child socket", e))?;
        let sent = match conn.write_now(&call) {
            Ok(n) => n,
            Err(Stop::Io(e)) => return Err(Error::io("cannot write the call", e)),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    "the child socket closed before the child started",
                ));
            }
        };
        let mut running = match method {
            StartMethod::Spawn => {
                let mut keep = vec![theirs.as_raw_fd()];
                keep.extend(lifeline);
                // The child's numbers for its connection and lifeline.
                let value = |n: &[RawFd]| {
                    let n: Vec<String> = n.iter().map(|fd| fd.to_string()).collect();
                    vec![(bootstrap::ENV_CHILD, n.join(","))]
                };
                let child = sys::spawn_self(&keep, value)
                    .map_err(|e| Error::io("cannot start the child program", e))?;
                drop(theirs);
                let pid = child.id();
                let pidfd = sys::pidfd_open(pid).ok();
                Running::new(pid, info.name, info.daemon, WaitHow::Direct { pidfd }, conn)
            }
            StartMethod::ForkServer => {
                let (pid, status) =
                    forkserver::fork_child(OwnedFd::from(theirs), info.daemon, lifeline)?;
                Running::new(
                    pid,
                    info.name,
                    info.daemon,
                    WaitHow::Server { status },
                    conn,
                )
            }
            StartMethod::Fork => unreachable!("fork is started by start_fork"),
        };
        // A child that dies before reading its call is reported by join;
        // a child that never reads it (it never entered mp) times out here.
        let deadline = Some(Instant::now() + BOOTSTRAP_TIMEOUT);
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let written = running
            .conn
            .write_all(&call[sent..], deadline)
            .and_then(|()| running.conn.send_fds(&raw, deadline));
        drop(fds);
        match written {
            Ok(()) | Err(Stop::Closed) => Ok(running),
            Err(Stop::Timeout) => {
                let _ = running.inner.signal(sys::SIGKILL);
                let _ = running.inner.wait(None);
                Err(Error::new(
                    ErrorKind::NotEntered,
                    "the child did not take its call: does main call mp::init() first?",
                ))
            }
            Err(Stop::Io(e)) => Err(Error::io("cannot send the call to the child", e)),
            Err(Stop::TooLarge(_)) => unreachable!("writes have no limit"),
        }
    }

    /// The child's process id, once started.
    pub fn pid(&self) -> Option<u32> {
        self.inner().map(|i| i.pid)
    }

    /// The process name.
    pub fn get_name(&self) -> Option<&str> {
        match self.inner() {
            Some(i) => Some(&i.name),
            None => self.name.as_deref(),
        }
    }

    /// Whether the child is a daemon.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// Whether the child has started and not yet ended. Reaps it if it ended.
    pub fn is_alive(&self) -> bool {
        matches!(self.state, State::Running(_))
            && self.inner().is_some_and(|i| i.try_status().is_none())
    }

    /// A descriptor that becomes readable when the child ends, and stays
    /// so: Python's `sentinel`, for `mp_ipc::wait` beside connections, or
    /// for `poll`. Each call makes a new descriptor. Before `start`, an
    /// [`ErrorKind::NotStarted`] error.
    ///
    /// ```
    /// use mp_process::Process;
    ///
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    ///
    /// let mut p = Process::new(nap, 10);
    /// p.start()?;
    /// let sentinel = p.sentinel()?; // for mp_ipc::wait, or poll(2)
    /// p.join()?;
    /// drop(sentinel);
    /// # Ok::<(), mp_process::Error>(())
    /// ```
    pub fn sentinel(&self) -> Result<OwnedFd, Error> {
        self.started()?.sentinel()
    }

    /// Python's `exitcode`: `None` while running (or before start), else the
    /// exit code, or minus the signal number that killed the child.
    pub fn exitcode(&self) -> Option<i32> {
        self.exit_status().map(|s| s.exitcode())
    }

    /// How the child ended, once it has.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.inner().and_then(|i| i.try_status())
    }

    /// Sends SIGTERM. A no-op once the child has ended.
    pub fn terminate(&self) -> Result<(), Error> {
        self.started()?.signal(sys::SIGTERM)
    }

    /// Sends SIGKILL. A no-op once the child has ended.
    pub fn kill(&self) -> Result<(), Error> {
        self.started()?.signal(sys::SIGKILL)
    }
}

impl<R> Process<R> {
    fn inner(&self) -> Option<&Arc<Inner>> {
        match &self.state {
            State::NotStarted => None,
            State::Running(r) => Some(&r.inner),
            State::Joined(i) => Some(i),
        }
    }

    fn started(&self) -> Result<&Arc<Inner>, Error> {
        self.inner()
            .ok_or_else(|| Error::new(ErrorKind::NotStarted, "the process has not been started"))
    }
}

/// How long a re-executed child may take to read its call.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(60);

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        let State::Running(running) = std::mem::replace(&mut self.state, State::NotStarted) else {
            return;
        };
        let inner = running.inner;
        drop(running.conn);
        if inner.try_status().is_some() {
            return;
        }
        if inner.daemon {
            let _ = inner.signal(sys::SIGKILL);
            let _ = inner.wait(None);
        } else {
            // Detached: a thread reaps it whenever it ends.
            let reaper = std::thread::Builder::new().name("mp-reaper".into()).spawn({
                let inner = inner.clone();
                move || {
                    let _ = inner.wait(None);
                }
            });
            if reaper.is_err() {
                let _ = inner.wait(None);
            }
        }
    }
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::NotStarted => "initial",
            State::Running(_) => "started",
            State::Joined(_) => "joined",
        };
        f.debug_struct("Process")
            .field(
                "name",
                &self
                    .inner()
                    .map(|i| i.name.as_str())
                    .or(self.name.as_deref()),
            )
            .field("pid", &self.inner().map(|i| i.pid))
            .field("daemon", &self.daemon)
            .field("method", &self.method)
            .field("state", &state)
            .finish()
    }
}

/// The parent's end of every daemon's lifeline: the children hold readers,
/// this process alone holds the writer, so end-of-stream reaches the
/// readers exactly when this process is gone, however it ended.
///
/// Kept as raw fds in atomics, not behind a lock: a forked child must drop
/// the parent's pair without taking a lock another thread may have held at
/// the fork.
static LIFELINE_READER: AtomicI32 = AtomicI32::new(-1);
static LIFELINE_WRITER: AtomicI32 = AtomicI32::new(-1);
static LIFELINE_INIT: Mutex<()> = Mutex::new(());

/// The reading end of this process's lifeline, made on first use.
fn lifeline_reader() -> Result<RawFd, Error> {
    let fd = LIFELINE_READER.load(Ordering::Acquire);
    if fd >= 0 {
        return Ok(fd);
    }
    let _g = LIFELINE_INIT.lock().unwrap_or_else(|p| p.into_inner());
    let fd = LIFELINE_READER.load(Ordering::Acquire);
    if fd >= 0 {
        return Ok(fd);
    }
    let (r, w) = UnixStream::pair().map_err(|e| Error::io("cannot create the lifeline", e))?;
    LIFELINE_WRITER.store(w.into_raw_fd(), Ordering::Release);
    let r = r.into_raw_fd();
    LIFELINE_READER.store(r, Ordering::Release);
    Ok(r)
}

/// In a forked child: closes the parent's lifeline pair and returns its
/// reader (a daemon watches it; anyone else drops it).
fn take_lifeline_in_child() -> Option<OwnedFd> {
    let w = LIFELINE_WRITER.swap(-1, Ordering::AcqRel);
    let r = LIFELINE_READER.swap(-1, Ordering::AcqRel);
    // SAFETY: we are a freshly forked child, and the atomics were the only
    // record of these inherited fds; swapping them out makes them ours.
    unsafe {
        drop(sys::adopt_inherited(w));
        sys::adopt_inherited(r)
    }
}

/// The children this process started and has not seen end.
static CHILDREN: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

fn register(inner: &Arc<Inner>) {
    let mut list = CHILDREN.lock().unwrap_or_else(|p| p.into_inner());
    list.retain(|w| w.strong_count() > 0);
    list.push(Arc::downgrade(inner));
}

/// In a forked child: the parent's children are not ours.
fn forget_children_in_child() {
    if let Ok(mut list) = CHILDREN.try_lock() {
        list.clear();
    }
    COUNTER.store(0, Ordering::Relaxed);
}

/// A child that is still running, as [`active_children`](crate::active_children) lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveChild {
    /// Its process id.
    pub pid: u32,
    /// Its name.
    pub name: String,
}

pub(crate) fn active_children() -> Vec<ActiveChild> {
    let list: Vec<Arc<Inner>> = {
        let mut list = CHILDREN.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    };
    list.iter()
        .filter(|i| i.try_status().is_none())
        .map(|i| ActiveChild {
            pid: i.pid,
            name: i.name.clone(),
        })
        .collect()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The identity of the next child: ours, plus a fresh number.
fn next_identity() -> Vec<u32> {
    let mut id = bootstrap::current_info()
        .map(|i| i.identity.clone())
        .unwrap_or_default();
    id.push(COUNTER.fetch_add(1, Ordering::Relaxed) + 1);
    id
}
