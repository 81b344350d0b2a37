//! The in-process reader/writer layer: one entry per lock name per process.
//!
//! `flock` conflicts are per open file description, and a process holds one OS lock per
//! name; so threads must be excluded here, above the back end. The rules:
//!
//! - Holders are threads (or async tasks), never `user` strings.
//! - A thread may re-enter a lock it holds: shared in shared, anything in exclusive,
//!   counted. Asking for exclusive while holding shared is `WouldDeadlock`.
//! - New readers queue behind a waiting writer (writer preference), except a thread
//!   re-entering its own shared hold, which would otherwise deadlock.
//! - The OS lock is taken by one thread at a time on the process's behalf and released
//!   when the last in-process holder leaves, unless a thread of this process is waiting
//!   to write and the back end finds it worth it (files: yes; PostgreSQL: no): then an
//!   exclusive OS lock is kept for that thread, an in-process hand-over that costs no
//!   system call. At most [`MAX_KEPT`] times in a row and for at most [`MAX_KEPT_FOR`]
//!   after the OS lock was taken, so that other processes, which queue at the back end,
//!   are not kept out by a busy process.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::backend::{Backend, BackendLock, Deadline, HolderRecord, WaitCtx, publish_holder};
use crate::info::LockInfo;
use crate::name::LockName;
use crate::{LockError, LockType};

/// Who holds: a thread or tokio task (re-entrant) or one movable guard (never
/// re-entrant: it may move between threads, so it cannot be recognised when it asks
/// again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HolderKey {
    Thread(ThreadId),
    /// One [`SendLockGuard`](crate::SendLockGuard)'s acquisition (async or movable).
    Task(u64),
    /// A tokio task using the blocking API (re-entrant within the task).
    #[cfg(feature = "tokio")]
    TokioTask(tokio::task::Id),
}

/// How a wait on the in-process condition variable may sleep when the caller can be
/// cancelled: in slices, so that cancellation is noticed.
const CANCEL_SLICE: Duration = Duration::from_millis(5);

/// Consecutive in-process hand-overs of an exclusive OS lock before it is released to
/// the back end (where other processes wait) anyway.
const MAX_KEPT: u32 = 16;

/// How long after it was taken an exclusive OS lock may still be handed over in-process.
const MAX_KEPT_FOR: Duration = Duration::from_millis(2);

#[derive(Debug)]
struct Holder {
    key: HolderKey,
    count: u32,
    record: Option<Box<dyn HolderRecord>>,
}

#[derive(Debug, Default)]
struct State {
    os: Option<Box<dyn BackendLock>>,
    /// A thread is taking the OS lock for this process right now.
    acquiring: bool,
    /// Mode of the current holders (meaningful while `holders` is non-empty).
    mode: Option<LockType>,
    holders: Vec<Holder>,
    waiting_writers: usize,
    /// Mode of `os`.
    os_mode: Option<LockType>,
    /// When `os` was taken from the back end, and how many in-process hand-overs it has
    /// had since.
    os_since: Option<Instant>,
    kept: u32,
    /// Threads sleeping on the condition variable: wake-ups cost a syscall, so they
    /// are only sent when someone sleeps.
    sleepers: usize,
    /// A writer of another process waits for the lock: new readers of this process no
    /// longer join the process's shared hold, so that it drains and the writer gets in.
    /// Cleared when the OS lock is released.
    draining: bool,
}

/// One lock name's in-process state.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) name: LockName,
    state: Mutex<State>,
    cond: Condvar,
}

/// What an acquisition produced.
pub(crate) struct Acquired {
    /// A re-entrant hold by a thread that already held.
    pub(crate) reentered: bool,
}

impl Entry {
    pub(crate) fn new(name: LockName) -> Entry {
        Entry {
            name,
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only changed in short sections that do not panic mid-way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps on the condition variable; `false` when the wait is over (deadline passed,
    /// single attempt, or cancelled).
    fn wake(&self, st: &State) {
        if st.sleepers > 0 {
            self.cond.notify_all();
        }
    }

    fn sleep<'a>(
        &self,
        st: MutexGuard<'a, State>,
        wait: &WaitCtx,
    ) -> (MutexGuard<'a, State>, bool) {
        if wait.cancelled() {
            return (st, false);
        }
        let limit = match wait.deadline {
            Deadline::Try => return (st, false),
            Deadline::Forever => None,
            Deadline::At(t) => {
                let now = Instant::now();
                if now >= t {
                    return (st, false);
                }
                Some(t - now)
            }
        };
        let limit = match (limit, &wait.cancel) {
            (l, Some(_)) => Some(l.map_or(CANCEL_SLICE, |l| l.min(CANCEL_SLICE))),
            (l, None) => l,
        };
        let mut st = st;
        st.sleepers += 1;
        let mut st = match limit {
            None => self.cond.wait(st).unwrap_or_else(PoisonError::into_inner),
            Some(d) => {
                self.cond
                    .wait_timeout(st, d)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
        st.sleepers -= 1;
        (st, true)
    }

    /// Takes the lock for `key`, asking `backend` for the OS lock when this process does
    /// not hold it in a usable mode. `info` describes the holder for its metadata record
    /// (`None`: metadata is off).
    pub(crate) fn acquire(
        &self,
        backend: &dyn Backend,
        mode: LockType,
        key: HolderKey,
        wait: &WaitCtx,
        info: Option<&LockInfo>,
    ) -> Result<Acquired, LockError> {
        let mut st = self.lock();
        let held = st.mode.unwrap_or(LockType::Shared);
        if let Some(h) = st.holders.iter_mut().find(|h| h.key == key) {
            if held == LockType::Exclusive || mode == LockType::Shared {
                h.count += 1;
                return Ok(Acquired { reentered: true });
            }
            return Err(LockError::WouldDeadlock {
                name: self.name.as_str().to_owned(),
                requested: mode,
                held,
            });
        }
        if mode == LockType::Exclusive {
            st.waiting_writers += 1;
        }
        // The record of the holder that takes the OS lock comes with it (one round trip
        // where the back end can); holders joining a held lock publish theirs below.
        let mut first_record = None;
        let result = loop {
            let joinable = mode == LockType::Shared
                && st.mode == Some(LockType::Shared)
                && !st.holders.is_empty()
                && st.waiting_writers == 0
                && !st.draining;
            // Joining skips the back end's gate, where other processes' writers queue:
            // without this look at it, reader threads that overlap keep the shared OS
            // lock held for ever and starve a writer in another process.
            if joinable && st.os.as_ref().is_some_and(|os| os.writer_waits_elsewhere()) {
                st.draining = true;
            } else if joinable {
                break Ok(());
            }
            let may_take_os = st.holders.is_empty()
                && !st.acquiring
                && (mode == LockType::Exclusive || st.waiting_writers == 0);
            if may_take_os && st.os.is_some() {
                // Kept for this writer by the last holder (see `release`). Taken over only
                // if still held: a hand-over must give what a fresh acquisition gives.
                let state = &mut *st;
                let os = state.os.as_mut().expect("checked above");
                if mode == LockType::Exclusive
                    && state.os_mode == Some(LockType::Exclusive)
                    && os.is_held()
                {
                    os.renew_hold();
                    st.mode = Some(mode);
                    break Ok(());
                }
                if let Err(e) = self.release_os(&mut st) {
                    tracing::warn!(lock = self.name.as_str(), error = %e, "releasing a kept lock failed");
                }
            }
            if may_take_os {
                st.acquiring = true;
                drop(st);
                let os = backend.acquire_with_holder(&self.name, mode, wait, info);
                st = self.lock();
                st.acquiring = false;
                self.wake(&st);
                match os {
                    Ok((os, record)) => {
                        first_record = Some(record);
                        st.os = Some(os);
                        st.os_mode = Some(mode);
                        st.os_since = Some(Instant::now());
                        st.kept = 0;
                        st.mode = Some(mode);
                        break Ok(());
                    }
                    Err(e) => break Err(e),
                }
            }
            let (next, more) = self.sleep(st, wait);
            st = next;
            if !more {
                break Err(wait.give_up(&self.name, mode));
            }
        };
        if mode == LockType::Exclusive {
            st.waiting_writers -= 1;
            if result.is_err() {
                // A lock kept for waiting writers is released once none is left to take
                // it; readers may have queued behind this writer.
                if st.holders.is_empty()
                    && st.waiting_writers == 0
                    && st.os.is_some()
                    && let Err(e) = self.release_os(&mut st)
                {
                    tracing::warn!(lock = self.name.as_str(), error = %e, "releasing a kept lock failed");
                }
                self.wake(&st);
            }
        }
        result?;
        let record = match (first_record, info, &st.os) {
            (Some(record), _, _) => record,
            (None, Some(info), Some(os)) => publish_holder(&**os, &self.name, info),
            _ => None,
        };
        st.holders.push(Holder {
            key,
            count: 1,
            record,
        });
        Ok(Acquired { reentered: false })
    }

    /// Ends one hold of `key`. Returns whether the entry has no holders left.
    pub(crate) fn release(&self, key: HolderKey) -> Result<(), LockError> {
        let mut st = self.lock();
        let Some(i) = st.holders.iter().position(|h| h.key == key) else {
            return Ok(());
        };
        st.holders[i].count -= 1;
        if st.holders[i].count > 0 {
            return Ok(());
        }
        let holder = st.holders.swap_remove(i);
        let mut result = Ok(());
        if st.holders.is_empty() {
            st.mode = None;
            if self.keep_for_writer(&st) {
                st.kept += 1;
                drop(holder); // withdraws its record while the OS lock is still held
            } else {
                result = self.release_os_with(&mut st, holder.record);
            }
        } else {
            drop(holder); // withdraws its record while the OS lock is still held
        }
        self.wake(&st);
        result
    }

    /// Whether the last holder, leaving, should keep the OS lock for a writer of this
    /// process that waits for it, rather than release it to the back end.
    fn keep_for_writer(&self, st: &State) -> bool {
        st.waiting_writers > 0
            && st.os_mode == Some(LockType::Exclusive)
            && st.kept < MAX_KEPT
            && st.os_since.is_some_and(|t| t.elapsed() < MAX_KEPT_FOR)
            && st.os.as_ref().is_some_and(|os| os.hands_over_in_process())
    }

    fn release_os(&self, st: &mut State) -> Result<(), LockError> {
        self.release_os_with(st, None)
    }

    /// Releases the OS lock; `last` is the record of the holder that just left, which
    /// goes with the lock (in the same round trip where the back end can), never after.
    fn release_os_with(
        &self,
        st: &mut State,
        last: Option<Box<dyn HolderRecord>>,
    ) -> Result<(), LockError> {
        st.os_mode = None;
        st.os_since = None;
        st.kept = 0;
        st.draining = false;
        match st.os.take() {
            Some(os) => os.release_with_holder(last),
            None => {
                drop(last);
                Ok(())
            }
        }
    }

    /// The fencing token of this process's current hold (0 when not held).
    pub(crate) fn fencing_token(&self) -> u64 {
        self.lock().os.as_ref().map_or(0, |os| os.fencing_token())
    }

    /// Whether this process still holds the lock at the back end.
    pub(crate) fn os_is_held(&self) -> bool {
        self.lock().os.as_ref().is_some_and(|os| os.is_held())
    }

    /// Threads of this process waiting for the lock exclusively.
    pub(crate) fn waiting_writers(&self) -> usize {
        self.lock().waiting_writers
    }

    /// The mode this process's holders hold, if any.
    pub(crate) fn held_mode(&self) -> Option<LockType> {
        let st = self.lock();
        if st.holders.is_empty() { None } else { st.mode }
    }
}
