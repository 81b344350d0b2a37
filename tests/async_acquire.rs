//! `acquire_lock_async`: never blocks the executor, holds across `.await`, and a dropped
//! waiting future leaves nothing locked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use scanlock::{LockError, LockType, ScanLockManager, Wait};

fn manager() -> (tempfile::TempDir, ScanLockManager) {
    let dir = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    (dir, m)
}

#[tokio::test(flavor = "current_thread")]
async fn waiting_for_a_lock_leaves_other_tasks_running() {
    let (_d, m) = manager();
    let holder = m
        .acquire_lock("scan001", LockType::Exclusive, "sync", None)
        .unwrap();
    let waiter = tokio::spawn({
        let m = m.clone();
        async move {
            m.acquire_lock_async("scan001", LockType::Exclusive, "task", Wait::Forever)
                .await
                .unwrap()
        }
    });
    // On a current-thread runtime, this ticker only advances if the waiter yields.
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ticker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ticks.load(Ordering::SeqCst), 5);
    assert!(
        !waiter.is_finished(),
        "the waiter got in while the lock was held"
    );
    // Release from a plain thread: the sync guard may not be dropped on this runtime thread
    // while we also want the waiter to run; either works.
    drop(holder);
    let g = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(g.name(), "scan001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_is_held_across_awaits_and_the_future_is_send() {
    let (_d, m) = manager();
    fn assert_send<T: Send + 'static>(_: &T) {}
    let fut = m.acquire_lock_async("scan001", LockType::Shared, "task", Wait::Default);
    assert_send(&fut);
    let g = fut.await.unwrap();
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let m2 = m.clone();
    let e = tokio::task::spawn_blocking(move || {
        m2.try_acquire_lock("scan001", LockType::Exclusive, "other")
            .unwrap_err()
    })
    .await
    .unwrap();
    assert!(matches!(e, LockError::WouldBlock { .. }), "{e:?}");
    drop(g);
    let m3 = m.clone();
    tokio::task::spawn_blocking(move || {
        let _x = m3
            .try_acquire_lock("scan001", LockType::Exclusive, "other")
            .unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_a_waiting_future_leaves_nothing_locked() {
    let (_d, m) = manager();
    let holder = m
        .acquire_lock("scan001", LockType::Shared, "sync", None)
        .unwrap();
    let fut = m.acquire_lock_async("scan001", LockType::Exclusive, "task", Wait::Forever);
    let timed_out = tokio::time::timeout(Duration::from_millis(50), fut).await;
    assert!(timed_out.is_err(), "got an exclusive lock beside a reader");
    // While the reader still holds, the cancelled writer must stop waiting: otherwise it
    // keeps new readers queued behind it (writer preference) until the reader leaves.
    let m2 = m.clone();
    let reader_got_in = tokio::task::spawn_blocking(move || {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match m2.try_acquire_lock("scan001", LockType::Shared, "late-reader") {
                Ok(_) => return true,
                Err(_) if std::time::Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap();
    assert!(reader_got_in, "a dropped future still queued a writer");
    assert!(
        m.get_lock_status("scan001")
            .unwrap()
            .waiting_writers
            .is_empty()
    );
    drop(holder);
    let m3 = m.clone();
    tokio::task::spawn_blocking(move || {
        let _x = m3
            .try_acquire_lock("scan001", LockType::Exclusive, "after")
            .unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn async_timeouts_and_single_attempts_are_typed() {
    let (_d, m) = manager();
    let _x = m
        .acquire_lock("scan001", LockType::Exclusive, "sync", None)
        .unwrap();
    let e = m
        .acquire_lock_async("scan001", LockType::Shared, "t", Wait::NoWait)
        .await
        .unwrap_err();
    assert!(matches!(e, LockError::WouldBlock { .. }), "{e:?}");
    let e = m
        .acquire_lock_async(
            "scan001",
            LockType::Shared,
            "t",
            Wait::Timeout(Duration::from_millis(30)),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, LockError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains("sync"), "names the holder: {e}");
}
