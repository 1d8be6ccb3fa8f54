//! The supervisor's side of the limits: it stops a worker whose task ran
//! past its hard time limit, gives the reason to the death path, and
//! counts deaths against the restart limit.
//!
//! Deadlines cost no system call per task. The worker stamps the start of
//! each task in its block (`Block::set_task_start`, before `started`; a
//! vDSO clock read); the supervisor, which sleeps in `recv_timeout` anyway, sleeps
//! only until the earliest deadline it knows (`Alarm`) and then compares,
//! under the pool lock: the running task is the one numbered `started`,
//! at index `started - 1 - completed` of the worker's `outstanding` list.
//! A task sent while the supervisor sleeps can only end later than now
//! plus its limit; `pump` wakes the supervisor if that is earlier than
//! its alarm (`put_limits`), so a pool with long limits sends no message
//! per task.
//!
//! A stop is SIGTERM, then SIGKILL after the grace, never blocking the
//! supervisor for the grace: it looks every millisecond while a stopped
//! worker lives. The stop records the number of the task it was for; if
//! the worker had moved on (the task returned between the check and the
//! signal), that task's result is delivered, and the next, which the stop
//! cut short, fails with `WorkerLost` and says why.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use mp_process::ExitStatus;

use super::{SupMsg, Supervisor, lock};
use crate::error::{Error, ErrorKind};
use crate::limits::{Limits, PoolLimits, Restarts, coarse_ns, monotonic_ns};

/// How often the supervisor looks at a worker it stopped.
const STOP_POLL: Duration = Duration::from_millis(1);
/// How long the supervisor waits at once for a worker it sent SIGTERM to
/// (most die in well under a millisecond); after that it looks every
/// [`STOP_POLL`] between its other work.
const STOP_SPIN: Duration = Duration::from_millis(3);

/// When the supervisor wakes next, on the monotonic clock (ns).
pub(super) struct Alarm {
    wake_at: AtomicU64,
}

impl Alarm {
    pub(super) fn new() -> Alarm {
        Alarm {
            wake_at: AtomicU64::new(u64::MAX),
        }
    }
}

/// `pump`, under the pool lock, sends a task with limits: the `LIMITS`
/// frame, and a wake-up for the supervisor if this task's deadline may
/// come before its alarm.
pub(super) fn put_limits(
    buf: &mut Vec<u8>,
    limits: &Limits,
    alarm: &Alarm,
    sup_tx: &Mutex<Sender<SupMsg>>,
) {
    crate::wire::put_header(buf, crate::wire::LIMITS, 16);
    limits.encode(buf);
    if let Some(hard) = limits.hard() {
        // The coarse clock is never ahead: at worst a needless wake-up.
        let at = coarse_ns().saturating_add(nanos(hard));
        if at < alarm.wake_at.load(Ordering::Relaxed) {
            alarm.wake_at.store(at, Ordering::Relaxed);
            let _ = lock(sup_tx).send(SupMsg::Wake);
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A worker the supervisor stopped.
struct Stop {
    generation: u64,
    /// The task it was stopped for (its `started` number).
    task: u64,
    error: Error,
    /// When SIGKILL follows SIGTERM.
    kill_at: Instant,
    killed: bool,
}

/// What the supervisor keeps for the limits.
pub(super) struct Watch {
    stops: Vec<Option<Stop>>,
    restarts: Restarts,
    grace: Duration,
    memory_cap: Option<u64>,
}

impl Watch {
    pub(super) fn new(n: usize, limits: &PoolLimits) -> Watch {
        Watch {
            stops: (0..n).map(|_| None).collect(),
            restarts: Restarts::new(limits.max_restarts),
            grace: limits.grace(),
            memory_cap: limits.memory_limit,
        }
    }

    /// A worker died (its `generation`, having started `started` tasks):
    /// the error for the task it was running, whether the pool caused the
    /// death (a limit: not counted, and an executor does not break), and
    /// the error that breaks the pool if the restart limit is reached.
    pub(super) fn verdict(
        &mut self,
        slot: usize,
        generation: u64,
        started: u64,
        clean: bool,
        status: Option<ExitStatus>,
    ) -> Verdict {
        let stop = self.stops[slot]
            .take_if(|s| s.generation == generation)
            .map(|s| (s.task, s.error));
        if let Some((task, error)) = stop {
            let error = if task == started {
                error.with_status(status)
            } else {
                Error::new(
                    ErrorKind::WorkerLost,
                    "the worker was stopped for the time limit of the task before this one, which returned just before the stop",
                )
                .with_status(status)
            };
            return Verdict {
                error,
                ours: true,
                storm: None,
            };
        }
        // `Process::memory_limit` turns an allocation failure into this
        // exit code.
        if let Some(cap) = self.memory_cap {
            if status.is_some_and(|s| s.code() == Some(mp_process::MEMORY_LIMIT_EXIT)) {
                // One that dies so before its first task (an initializer
                // past the cap) counts toward the restart limit, or it
                // would be replaced for ever.
                let storm = if started == 0 {
                    self.restarts.note_death(0)
                } else {
                    None
                };
                return Verdict {
                    error: Error::memory_limit_hit(cap).with_status(status),
                    ours: true,
                    storm,
                };
            }
        }
        let storm = if clean {
            None
        } else {
            self.restarts.note_death(started)
        };
        Verdict {
            error: Error::new(ErrorKind::WorkerLost, "the worker running the task died")
                .with_status(status),
            ours: false,
            storm,
        }
    }
}

/// How a worker's death settles its running task (see [`Watch::verdict`]).
pub(super) struct Verdict {
    pub(super) error: Error,
    pub(super) ours: bool,
    pub(super) storm: Option<Error>,
}

impl Supervisor {
    /// How long the supervisor may sleep: until its alarm, at most `sweep`,
    /// and [`STOP_POLL`] while a worker it stopped lives.
    pub(super) fn watch_wait(&self, sweep: Duration) -> Duration {
        if self.watch.stops.iter().any(Option::is_some) {
            return STOP_POLL;
        }
        let at = self.shared.alarm.wake_at.load(Ordering::Relaxed);
        if at == u64::MAX {
            return sweep;
        }
        Duration::from_nanos(at.saturating_sub(monotonic_ns())).min(sweep)
    }

    /// Stops the workers whose task is past its hard limit, escalates
    /// stops past their grace, settles stopped workers that died, and sets
    /// the alarm for the next deadline.
    pub(super) fn enforce_limits(&mut self) {
        self.settle_stops();
        let mut due: Vec<(usize, u64, Error)> = Vec::new();
        {
            let st = lock(&self.shared.state);
            let now = monotonic_ns();
            let mut next = u64::MAX;
            for (slot, w) in self.workers.iter().enumerate() {
                let Some(w) = w else { continue };
                let s = &st.workers[slot];
                if s.generation != w.generation || self.watch.stops[slot].is_some() {
                    continue;
                }
                let block = w.port.block();
                let started = block.started();
                let stamp = block.task_start();
                let mut unstarted = 0;
                if started > s.completed {
                    let at = (started - 1 - s.completed) as usize;
                    unstarted = at + 1;
                    if let Some(hard) = s.outstanding.get(at).and_then(|t| t.limits.hard()) {
                        let deadline = stamp.saturating_add(nanos(hard));
                        if now >= deadline && block.started() == started {
                            let elapsed = Duration::from_nanos(now.saturating_sub(stamp));
                            due.push((slot, started, Error::time_limit_hit(hard, elapsed)));
                        } else {
                            next = next.min(deadline);
                        }
                    }
                }
                // A task not started yet ends its limit after now plus it.
                if let Some(h) = s
                    .outstanding
                    .iter()
                    .skip(unstarted)
                    .filter_map(|t| t.limits.hard())
                    .min()
                {
                    next = next.min(now.saturating_add(nanos(h)));
                }
            }
            // Stored under the lock: a `pump` after this compares with it.
            self.shared.alarm.wake_at.store(next, Ordering::Relaxed);
        }
        for (slot, task, error) in due {
            self.stop(slot, task, error);
        }
    }

    /// SIGTERM to the worker in `slot`, stopped for task number `task`;
    /// waits [`STOP_SPIN`] at most for it to die.
    fn stop(&mut self, slot: usize, task: u64, error: Error) {
        let Some(w) = &self.workers[slot] else { return };
        let _ = w.process.terminate();
        self.watch.stops[slot] = Some(Stop {
            generation: w.generation,
            task,
            error,
            kill_at: Instant::now() + self.watch.grace,
            killed: false,
        });
        let give_up = Instant::now() + STOP_SPIN;
        while Instant::now() < give_up {
            if !w.process.is_alive() {
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        self.settle_stops();
    }

    /// Stopped workers that died go through the death path (which takes
    /// their stop); those past their grace get SIGKILL.
    fn settle_stops(&mut self) {
        for slot in 0..self.workers.len() {
            let Some(stop) = &mut self.watch.stops[slot] else {
                continue;
            };
            match &self.workers[slot] {
                Some(w) if w.generation == stop.generation => {
                    if w.process.is_alive() {
                        if !stop.killed && Instant::now() >= stop.kill_at {
                            let _ = w.process.kill();
                            stop.killed = true;
                        }
                    } else {
                        self.on_exit(slot);
                    }
                }
                // The worker is gone already (settled elsewhere).
                _ => self.watch.stops[slot] = None,
            }
        }
    }
}
