//! Acquisition from async code without blocking the executor and without depending on
//! any async runtime.
//!
//! The future first makes one non-blocking attempt on the polling thread. If the lock is
//! busy, a short-lived helper thread waits for it (polling the kernel lock with a capped
//! back-off, because a blocked `flock` cannot be cancelled) and wakes the task. Dropping
//! the future cancels the helper; a guard it obtained anyway is released at once, so a
//! dropped future leaves nothing locked.
//!
//! Async holders are not re-entrant: a task moves between threads, so scanlock cannot
//! recognise it when it asks again. Taking the same lock twice in one task deadlocks
//! until the timeout, as with `tokio::sync::RwLock`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::backend::{Deadline, WaitCtx};
use crate::guard::SendLockGuard;
use crate::local::HolderKey;
use crate::manager::Wait;
use crate::{LockError, LockType, ScanLockManager};

#[derive(Default)]
struct Slot {
    result: Option<Result<SendLockGuard, LockError>>,
    waker: Option<Waker>,
    abandoned: bool,
}

/// The future returned by [`ScanLockManager::acquire_lock_async`].
#[must_use = "futures do nothing unless polled"]
pub struct AcquireFuture {
    manager: ScanLockManager,
    name: String,
    user: String,
    lock_type: LockType,
    wait: Option<WaitCtx>,
    key: HolderKey,
    helper: Option<(Arc<Mutex<Slot>>, Arc<AtomicBool>)>,
}

impl std::fmt::Debug for AcquireFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcquireFuture")
            .field("name", &self.name)
            .field("lock_type", &self.lock_type)
            .finish_non_exhaustive()
    }
}

impl ScanLockManager {
    /// Takes `name` from async code: the executor thread never blocks, the returned
    /// future is `Send + 'static`, and dropping it while it waits leaves nothing locked.
    ///
    /// ```
    /// # use scanlock::{LockType, ScanLockManager, Wait};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let m = ScanLockManager::new(dir.path())?;
    /// let fut = m.acquire_lock_async("scan001", LockType::Exclusive, "task", Wait::Default);
    /// fn assert_send<T: Send + 'static>(_: &T) {}
    /// assert_send(&fut);
    /// # drop(fut);
    /// # Ok::<(), scanlock::LockError>(())
    /// ```
    pub fn acquire_lock_async(
        &self,
        name: &str,
        lock_type: LockType,
        user: &str,
        wait: Wait,
    ) -> AcquireFuture {
        AcquireFuture {
            manager: self.clone(),
            name: name.to_owned(),
            user: user.to_owned(),
            lock_type,
            wait: Some(self.wait_ctx(wait)),
            key: ScanLockManager::task_key(),
            helper: None,
        }
    }
}

impl Future for AcquireFuture {
    type Output = Result<SendLockGuard, LockError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(wait) = this.wait.take() {
            let first = WaitCtx {
                deadline: Deadline::Try,
                ..wait.clone()
            };
            match this
                .manager
                .take_send(&this.name, this.lock_type, &this.user, first, this.key)
            {
                Err(LockError::WouldBlock { .. }) if wait.deadline != Deadline::Try => {}
                done => return Poll::Ready(done),
            }
            let slot = Arc::new(Mutex::new(Slot {
                waker: Some(cx.waker().clone()),
                ..Slot::default()
            }));
            let cancel = Arc::new(AtomicBool::new(false));
            let ctx = WaitCtx {
                cancel: Some(cancel.clone()),
                ..wait
            };
            let (manager, name, user, lock_type, key) = (
                this.manager.clone(),
                this.name.clone(),
                this.user.clone(),
                this.lock_type,
                this.key,
            );
            let thread_slot = slot.clone();
            let spawned = std::thread::Builder::new()
                .name("scanlock-wait".into())
                .spawn(move || {
                    let r = manager.take_send(&name, lock_type, &user, ctx, key);
                    let mut s = thread_slot.lock().unwrap_or_else(PoisonError::into_inner);
                    if s.abandoned {
                        drop(s);
                        drop(r); // nobody will receive it: release at once
                        return;
                    }
                    s.result = Some(r);
                    if let Some(w) = s.waker.take() {
                        w.wake();
                    }
                });
            if let Err(e) = spawned {
                return Poll::Ready(Err(LockError::Io(std::io::Error::new(
                    e.kind(),
                    format!("lock \"{}\": cannot start a waiting thread: {e}", this.name),
                ))));
            }
            this.helper = Some((slot, cancel));
            return Poll::Pending;
        }
        let Some((slot, _)) = &this.helper else {
            panic!("AcquireFuture polled after completion");
        };
        let mut s = slot.lock().unwrap_or_else(PoisonError::into_inner);
        match s.result.take() {
            Some(r) => {
                drop(s);
                this.helper = None;
                Poll::Ready(r)
            }
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for AcquireFuture {
    fn drop(&mut self) {
        if let Some((slot, cancel)) = self.helper.take() {
            cancel.store(true, Ordering::Release);
            let mut s = slot.lock().unwrap_or_else(PoisonError::into_inner);
            s.abandoned = true;
            let late = s.result.take();
            drop(s);
            drop(late);
        }
    }
}
