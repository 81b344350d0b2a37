//! Locked `async fn`s on tokio: waiting does not block the executor, the guard lives
//! across `.await`, the future is `Send`, and dropping a waiting future leaves nothing
//! locked. Every wait is bounded by `tokio::time::timeout` or a lock timeout.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use scanlock::{LockError, LockType, ScanLockManager};
use scanlock_testkit::eventually;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(20);

fn fresh() -> (TempDir, ScanLockManager) {
    let dir = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    (dir, m)
}

fn global() -> &'static ScanLockManager {
    static ROOT: OnceLock<TempDir> = OnceLock::new();
    let root = ROOT.get_or_init(|| tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap());
    scanlock::init_lock_root(root.path()).unwrap();
    scanlock::global_manager().unwrap()
}

/// Probes from a plain thread, so the answer does not depend on the runtime.
fn held_elsewhere(m: &ScanLockManager, name: &str) -> bool {
    std::thread::scope(|s| {
        s.spawn(
            || match m.try_acquire_lock(name, LockType::Exclusive, "probe") {
                Ok(_) => false,
                Err(LockError::WouldBlock { .. }) => true,
                Err(e) => panic!("probe of {name:?}: {e}"),
            },
        )
        .join()
        .unwrap()
    })
}

fn assert_send<T: Send>(_: &T) {}

// ---------------------------------------------------------------------------------

/// Holds the lock until told to stop; says when it is inside.
#[scanlock::synchronized("task-{id}", manager = m)]
async fn hold_until(
    m: ScanLockManager,
    id: u32,
    inside: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
) -> Result<(), LockError> {
    let _ = inside.send(());
    let _ = timeout(DEADLINE, release).await;
    Ok(())
}

#[scanlock::write_locked("task-{id}", manager = m, timeout = DEADLINE)]
async fn wait_for_it(
    m: ScanLockManager,
    id: u32,
    entered: Arc<AtomicBool>,
) -> Result<(), LockError> {
    entered.store(true, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiting_task_leaves_other_tasks_running() {
    let (_dir, m) = fresh();
    let (inside_tx, inside_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    let holder = tokio::spawn(hold_until(m.clone(), 1, inside_tx, release_rx));
    timeout(DEADLINE, inside_rx).await.unwrap().unwrap();

    // Same thread, another task, same lock: it must wait, and wait without blocking.
    let entered = Arc::new(AtomicBool::new(false));
    let waiter = tokio::spawn(wait_for_it(m.clone(), 1, entered.clone()));

    // On a current-thread runtime this ticker only advances if the waiter yields.
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    timeout(DEADLINE, ticker).await.unwrap().unwrap();
    assert_eq!(ticks.load(Ordering::SeqCst), 5);
    assert!(
        !waiter.is_finished(),
        "the waiter got in while the lock was held"
    );
    assert!(!entered.load(Ordering::SeqCst));

    release_tx.send(()).unwrap();
    timeout(DEADLINE, holder).await.unwrap().unwrap().unwrap();
    timeout(DEADLINE, waiter).await.unwrap().unwrap().unwrap();
    assert!(entered.load(Ordering::SeqCst));
    assert!(m.get_lock_status("task-1").unwrap().is_free());
}

// ---------------------------------------------------------------------------------

struct Store {
    id: u32,
    locks: ScanLockManager,
}

impl Store {
    #[scanlock::read_locked("store-{self.id}", manager = self.locks)]
    async fn read_across_awaits(&self) -> std::io::Result<Option<LockType>> {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        // Still held after the task may have moved to another worker thread.
        assert!(held_elsewhere(&self.locks, "store-7"));
        Ok(self.locks.get_lock_status("store-7")?.lock_type)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_is_held_across_awaits_and_the_future_is_send() {
    let (_dir, locks) = fresh();
    let store = Arc::new(Store { id: 7, locks });

    let fut = store.read_across_awaits();
    assert_send(&fut);
    drop(fut);

    // Spawning needs Send + 'static: an owned Arc gives both.
    let task = tokio::spawn({
        let store = store.clone();
        async move { store.read_across_awaits().await }
    });
    let lock_type = timeout(DEADLINE, task).await.unwrap().unwrap().unwrap();
    assert_eq!(lock_type, Some(LockType::Shared));
    assert!(!held_elsewhere(&store.locks, "store-7"));
}

// ---------------------------------------------------------------------------------

#[scanlock::synchronized("dropped-{id}", manager = m, timeout = DEADLINE)]
async fn never_gets_in(m: &ScanLockManager, id: u32, ran: &AtomicBool) -> Result<(), LockError> {
    ran.store(true, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_a_waiting_future_leaves_nothing_locked() {
    let (_dir, m) = fresh();
    let ran = AtomicBool::new(false);
    let holder = m
        .acquire_lock("dropped-1", LockType::Exclusive, "holder", None)
        .unwrap();

    let fut = never_gets_in(&m, 1, &ran);
    assert!(timeout(Duration::from_millis(30), fut).await.is_err());
    drop(holder);

    // The abandoned acquisition's helper may still take the lock for a moment after
    // the holder lets go, and gives it back at once: nothing stays locked.
    assert!(
        eventually(DEADLINE, || m
            .get_lock_status("dropped-1")
            .unwrap()
            .is_free()
            && !held_elsewhere(&m, "dropped-1")),
        "a dropped waiter left dropped-1 locked"
    );
    assert!(
        !ran.load(Ordering::SeqCst),
        "the body of a dropped future ran"
    );

    // And the lock works afterwards.
    timeout(DEADLINE, never_gets_in(&m, 1, &ran))
        .await
        .unwrap()
        .unwrap();
    assert!(ran.load(Ordering::SeqCst));
}

// ---------------------------------------------------------------------------------

#[scanlock::synchronized("{f_name}-{scan_id}")]
async fn upload(scan_id: String, data: Vec<u8>) -> anyhow::Result<usize> {
    tokio::task::yield_now().await;
    let status = global().get_lock_status(&format!("upload-{scan_id}"))?;
    anyhow::ensure!(status.lock_type == Some(LockType::Exclusive));
    anyhow::ensure!(status.holders[0].user == concat!(module_path!(), "::upload"));
    Ok(data.len())
}

#[scanlock::synchronized("{f_name}-{scan_id}", blocking = false)]
async fn upload_nowait(scan_id: &str) -> anyhow::Result<()> {
    let _ = scan_id;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_manager_from_async() {
    let m = global();
    let fut = upload("scan-async-1".into(), vec![1, 2, 3]);
    assert_send(&fut);
    let n = timeout(DEADLINE, tokio::spawn(fut))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(n, 3);
    assert!(!held_elsewhere(m, "upload-scan-async-1"));

    let holder = m
        .acquire_lock(
            "upload_nowait-scan-async-2",
            LockType::Shared,
            "holder",
            None,
        )
        .unwrap();
    let e = timeout(DEADLINE, upload_nowait("scan-async-2"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            e.downcast_ref::<LockError>(),
            Some(LockError::WouldBlock { .. })
        ),
        "{e:?}"
    );
    drop(holder);
}
