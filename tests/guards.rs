//! Who holds: a thread's guard is `!Send` and re-entrant for that thread; a movable
//! guard (async or `acquire_lock_send`) is its own holder and never re-entrant; inside a
//! tokio task the blocking API's holder is the task (feature `tokio`).

use std::time::Duration;

use scanlock::{LockError, LockType, ScanLockManager, Wait};

fn manager() -> (tempfile::TempDir, ScanLockManager) {
    let d = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(d.path()).unwrap();
    (d, m)
}

fn assert_excluded(r: Result<impl std::fmt::Debug, LockError>, what: &str) {
    match r {
        Err(LockError::WouldBlock { .. }) => {}
        other => panic!("{what}: expected WouldBlock, got {other:?}"),
    }
}

/// Moving a guard to another thread never leaves the first thread inside.
#[test]
fn a_moved_guard_leaves_nobody_else_inside() {
    let (_d, m) = manager();
    let g = m
        .acquire_lock_send("scan001", LockType::Exclusive, "w", Wait::Default)
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        rx.recv().unwrap();
        g.release().unwrap();
    });
    // The thread that took the guard is not a holder: no re-entry.
    assert_excluded(
        m.try_acquire_lock("scan001", LockType::Exclusive, "w"),
        "the acquiring thread after the guard moved",
    );
    assert_excluded(
        m.try_acquire_lock("scan001", LockType::Shared, "r"),
        "a reader while the moved guard holds",
    );
    tx.send(()).unwrap();
    holder.join().unwrap();
    drop(
        m.try_acquire_lock("scan001", LockType::Exclusive, "w")
            .unwrap(),
    );
}

/// A movable guard is never re-entrant, even on the thread that holds it.
#[test]
fn a_movable_guard_is_not_reentrant() {
    let (_d, m) = manager();
    let _g = m
        .acquire_lock_send("scan001", LockType::Shared, "r", Wait::Default)
        .unwrap();
    // Shared beside it is fine (another holder), exclusive is not, from this thread too.
    drop(
        m.acquire_lock_send("scan001", LockType::Shared, "r2", Wait::NoWait)
            .unwrap(),
    );
    assert_excluded(
        m.acquire_lock_send("scan001", LockType::Exclusive, "w", Wait::NoWait),
        "an exclusive request beside a movable shared guard",
    );
}

/// Two tasks on one runtime thread are two holders, through the async API and through
/// the blocking API alike, while one holds across `.await`.
#[test]
fn two_tasks_on_one_thread_never_both_hold() {
    let (_d, m) = manager();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                for blocking in [false, true] {
                    let (m1, m2) = (m.clone(), m.clone());
                    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                    let a = tokio::task::spawn_local(async move {
                        if blocking {
                            let g = m1
                                .try_acquire_lock("scan001", LockType::Exclusive, "a")
                                .unwrap();
                            rx.await.unwrap();
                            drop(g);
                        } else {
                            let g = m1
                                .acquire_lock_async(
                                    "scan001",
                                    LockType::Exclusive,
                                    "a",
                                    Wait::NoWait,
                                )
                                .await
                                .unwrap();
                            rx.await.unwrap();
                            drop(g);
                        }
                    });
                    let b = tokio::task::spawn_local(async move {
                        tokio::task::yield_now().await;
                        let r = if blocking {
                            m2.try_acquire_lock("scan001", LockType::Exclusive, "b")
                                .map(drop)
                        } else {
                            m2.acquire_lock_async("scan001", LockType::Exclusive, "b", Wait::NoWait)
                                .await
                                .map(drop)
                        };
                        tx.send(()).unwrap();
                        r
                    });
                    let r = tokio::time::timeout(Duration::from_secs(10), b)
                        .await
                        .expect("task b hung")
                        .unwrap();
                    assert_excluded(
                        r,
                        if blocking {
                            "blocking API"
                        } else {
                            "async API"
                        },
                    );
                    a.await.unwrap();
                }
            })
            .await;
    });
}
