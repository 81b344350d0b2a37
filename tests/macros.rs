//! `#[synchronized]`, `#[read_locked]` and `#[write_locked]` at run time: which lock
//! they take, that it is held for exactly the body, and what a failure returns.
//!
//! Tests that use the global manager share one lock root per test process (it is
//! process-global) and use lock names no other test uses; tests that pass
//! `manager = ..` get a fresh root each. Every wait is bounded: lock waits by their
//! timeouts, channels by `recv_timeout`, child processes by `wait_deadline`.

use std::collections::HashMap;
use std::fmt::Display;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use scanlock::{LockError, LockType, ScanLockManager};
use scanlock_testkit::{
    IntervalLog, assert_exclusion, monotonic_ns, read_intervals, role, spawn_self, wait_deadline,
};
use tempfile::TempDir;

const DEADLINE: Duration = Duration::from_secs(20);

/// The global manager, rooted in a directory that lives as long as the process.
fn global() -> &'static ScanLockManager {
    static ROOT: OnceLock<TempDir> = OnceLock::new();
    let root = ROOT.get_or_init(|| tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap());
    scanlock::init_lock_root(root.path()).unwrap();
    scanlock::global_manager().unwrap()
}

/// A manager on a fresh root; keep the `TempDir` alive as long as the manager.
fn fresh() -> (TempDir, ScanLockManager) {
    let dir = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    (dir, m)
}

/// Whether some other holder has `name`: a probe from another thread (the calling
/// thread would re-enter its own lock).
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

fn assert_free(m: &ScanLockManager, name: &str) {
    assert!(
        m.get_lock_status(name).unwrap().is_free(),
        "{name:?} should be free"
    );
    assert!(!held_elsewhere(m, name), "{name:?} should be free");
}

/// Holds `name` on its own thread until dropped.
struct Holder {
    release: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Holder {
    fn new(m: &ScanLockManager, name: &str, lock_type: LockType) -> Holder {
        let (acquired_tx, acquired_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (m, name) = (m.clone(), name.to_owned());
        let thread = std::thread::spawn(move || {
            match m.acquire_lock(&name, lock_type, "holder", Some(DEADLINE)) {
                Ok(_guard) => {
                    acquired_tx.send(Ok(())).unwrap();
                    // Held until the sender is dropped or the deadline passes.
                    let _ = release_rx.recv_timeout(DEADLINE);
                }
                Err(e) => acquired_tx.send(Err(e.to_string())).unwrap(),
            }
        });
        acquired_rx
            .recv_timeout(DEADLINE)
            .expect("holder thread did not report")
            .expect("holder could not take the lock");
        Holder {
            release: Some(release_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `std::sync::Barrier` without the risk of waiting forever.
struct TimedBarrier {
    count: Mutex<usize>,
    all_in: Condvar,
    n: usize,
}

impl TimedBarrier {
    fn new(n: usize) -> TimedBarrier {
        TimedBarrier {
            count: Mutex::new(0),
            all_in: Condvar::new(),
            n,
        }
    }

    /// True if all `n` parties arrived before `timeout`.
    fn wait(&self, timeout: Duration) -> bool {
        let mut count = self.count.lock().unwrap();
        *count += 1;
        self.all_in.notify_all();
        let (count, _) = self
            .all_in
            .wait_timeout_while(count, timeout, |c| *c < self.n)
            .unwrap();
        *count >= self.n
    }
}

#[derive(Debug)]
enum MyError {
    Lock(LockError),
    Parse(std::num::ParseIntError),
}

impl From<LockError> for MyError {
    fn from(e: LockError) -> Self {
        MyError::Lock(e)
    }
}

impl From<std::num::ParseIntError> for MyError {
    fn from(e: std::num::ParseIntError) -> Self {
        MyError::Parse(e)
    }
}

// ---------------------------------------------------------------------------------
// The manila port: the same template, the same arguments, the same lock name.

struct Foo {
    val: i32,
}

// `foo` and `bar` as in manila's test of the decorator.
#[allow(clippy::disallowed_names)]
#[scanlock::synchronized("lock-{f_name}-{foo.val}-{bar[val]}")]
fn func(foo: &Foo, bar: &HashMap<String, i32>) -> Result<scanlock::LockStatus, LockError> {
    let _ = (foo, bar);
    assert!(held_elsewhere(global(), "lock-func-7-8"));
    global().get_lock_status("lock-func-7-8")
}

#[test]
fn manila_template_locks_the_formatted_name() {
    let m = global();
    let bar = HashMap::from([("val".to_owned(), 8)]);
    let status = func(&Foo { val: 7 }, &bar).unwrap();
    assert_eq!(status.lock_type, Some(LockType::Exclusive));
    assert_eq!(status.holders.len(), 1);
    assert_eq!(status.holders[0].user, concat!(module_path!(), "::func"));
    assert_eq!(status.holders[0].lock_type, LockType::Exclusive);
    assert_eq!(status.holders[0].pid, std::process::id());
    assert_free(m, "lock-func-7-8");
}

// ---------------------------------------------------------------------------------
// Held for the body, released on every exit.

#[scanlock::synchronized("exits-{case}")]
fn exits(case: &str, entered: &AtomicBool) -> Result<u32, MyError> {
    entered.store(true, Ordering::SeqCst);
    assert!(held_elsewhere(global(), &format!("exits-{case}")));
    match case {
        "early" => return Ok(2),
        "question" => {
            let n: u32 = "not a number".parse()?;
            return Ok(n);
        }
        "panic" => panic!("body panicked"),
        _ => {}
    }
    Ok(1)
}

#[test]
fn released_after_return_early_return_question_mark_and_panic() {
    let m = global();
    for case in ["normal", "early", "question", "panic"] {
        let entered = AtomicBool::new(false);
        let result = std::panic::catch_unwind(|| exits(case, &entered));
        assert!(entered.load(Ordering::SeqCst), "{case}: the body ran");
        match (case, result) {
            ("normal", Ok(Ok(1))) | ("early", Ok(Ok(2))) => {}
            ("question", Ok(Err(MyError::Parse(e)))) => assert!(!e.to_string().is_empty()),
            ("panic", Err(_)) => {}
            (case, other) => panic!("{case}: unexpected {other:?}"),
        }
        assert_free(m, &format!("exits-{case}"));
    }
}

// ---------------------------------------------------------------------------------
// When the lock cannot be taken, the body does not run and the error converts.

#[scanlock::synchronized("busy-{id}", blocking = false)]
fn busy_nowait(id: u32, ran: &AtomicBool) -> Result<(), MyError> {
    let _ = id;
    ran.store(true, Ordering::SeqCst);
    Ok(())
}

#[scanlock::synchronized("busy-{id}", timeout = Duration::from_millis(50))]
fn busy_timeout(id: u32, ran: &AtomicBool) -> std::io::Result<()> {
    let _ = id;
    ran.store(true, Ordering::SeqCst);
    Ok(())
}

#[test]
fn body_does_not_run_when_the_lock_is_held() {
    let m = global();
    let holder = Holder::new(m, "busy-1", LockType::Exclusive);
    let ran = AtomicBool::new(false);

    match busy_nowait(1, &ran) {
        Err(MyError::Lock(e @ LockError::WouldBlock { .. })) => {
            assert!(e.to_string().contains("busy-1"), "{e}");
        }
        other => panic!("expected WouldBlock, got {other:?}"),
    }
    // Through `From<LockError> for io::Error`; the message names the lock.
    let e = busy_timeout(1, &ran).unwrap_err();
    assert!(e.to_string().contains("busy-1"), "{e}");
    let inner = e.get_ref().and_then(|e| e.downcast_ref::<LockError>());
    assert!(
        matches!(inner, Some(LockError::Timeout { .. }))
            || e.kind() == std::io::ErrorKind::TimedOut,
        "{e:?}"
    );
    assert!(!ran.load(Ordering::SeqCst), "the body must not run");

    drop(holder);
    busy_nowait(1, &ran).unwrap();
    assert!(ran.load(Ordering::SeqCst));
}

// ---------------------------------------------------------------------------------
// The spec's examples: the default lock on `scan_id`, `anyhow::Result`, `user`.

#[scanlock::read_locked]
fn read_scan(scan_id: &str) -> std::io::Result<Vec<u8>> {
    let status = global().get_lock_status(scan_id)?;
    assert_eq!(status.lock_type, Some(LockType::Shared));
    Ok(scan_id.as_bytes().to_vec())
}

#[scanlock::read_locked(blocking = false)]
fn read_scan_nowait(scan_id: &str) -> std::io::Result<()> {
    let _ = scan_id;
    Ok(())
}

struct Scan {
    id: String,
}

#[scanlock::write_locked("{scan.id}", timeout = Duration::from_secs(10), user = "ingest")]
fn write_scan(scan: &Scan) -> anyhow::Result<()> {
    let status = global().get_lock_status(&scan.id)?;
    assert_eq!(status.lock_type, Some(LockType::Exclusive));
    assert_eq!(status.holders[0].user, "ingest");
    Ok(())
}

#[scanlock::write_locked("{scan.id}", blocking = false)]
fn write_scan_nowait(scan: &Scan) -> anyhow::Result<()> {
    let _ = scan;
    Ok(())
}

#[test]
fn default_name_is_the_scan_id_value() {
    let m = global();
    assert_eq!(read_scan("scan-default-1").unwrap(), b"scan-default-1");
    assert_free(m, "scan-default-1");

    // The same lock as acquire_lock(scan_id, ..).
    let holder = Holder::new(m, "scan-default-1", LockType::Exclusive);
    let e = read_scan_nowait("scan-default-1").unwrap_err();
    assert!(e.to_string().contains("scan-default-1"), "{e}");
    drop(holder);
    read_scan_nowait("scan-default-1").unwrap();
}

#[test]
fn anyhow_result_and_user() {
    let m = global();
    let scan = Scan {
        id: "scan-anyhow-1".into(),
    };
    write_scan(&scan).unwrap();
    assert_free(m, "scan-anyhow-1");

    let holder = Holder::new(m, "scan-anyhow-1", LockType::Shared);
    let e = write_scan_nowait(&scan).unwrap_err();
    assert!(
        matches!(
            e.downcast_ref::<LockError>(),
            Some(LockError::WouldBlock { .. })
        ),
        "{e:?}"
    );
    drop(holder);
}

// ---------------------------------------------------------------------------------
// No global manager: a fresh process, since `init_lock_root` is process-global.

#[scanlock::synchronized("{f_name}-{scan_id}")]
fn needs_global(scan_id: &str, ran: &AtomicBool) -> Result<(), LockError> {
    let _ = scan_id;
    ran.store(true, Ordering::SeqCst);
    Ok(())
}

#[test]
fn not_initialized_without_a_global_manager() {
    match role().as_deref() {
        Some("uninitialized") => {
            let ran = AtomicBool::new(false);
            let e = needs_global("scan001", &ran).unwrap_err();
            assert!(matches!(e, LockError::NotInitialized), "{e:?}");
            assert!(!ran.load(Ordering::SeqCst));
            return;
        }
        Some(_) => return,
        None => {}
    }
    // An empty SCANLOCK_URL keeps the child from initialising from its environment.
    let mut child = spawn_self(
        "not_initialized_without_a_global_manager",
        "uninitialized",
        &[(scanlock::URL_ENV, String::new())],
    );
    let status = wait_deadline(&mut child, Duration::from_secs(60), "uninitialized child");
    assert!(status.success(), "the child's assertions failed: {status}");
}

// ---------------------------------------------------------------------------------
// `on_error = panic`.

#[scanlock::synchronized("panicky-{id}", manager = m, blocking = false, on_error = panic)]
fn panicky(m: &ScanLockManager, id: u32) -> u32 {
    id
}

#[test]
fn on_error_panic_panics_with_the_lock_error() {
    let (_dir, m) = fresh();
    assert_eq!(panicky(&m, 1), 1);
    let holder = Holder::new(&m, "panicky-1", LockType::Exclusive);
    let payload = std::panic::catch_unwind(AssertUnwindSafe(|| panicky(&m, 1))).unwrap_err();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(message.contains("panicky-1"), "{message:?}");
    drop(holder);
}

// ---------------------------------------------------------------------------------
// Methods with their own manager, the spec's `snapshot`, and a trait impl.

struct Store {
    id: u32,
    locks: ScanLockManager,
    data: Vec<u8>,
}

impl Store {
    #[scanlock::write_locked("store-{self.id}", manager = self.locks)]
    fn push(&mut self, byte: u8) -> Result<LockType, LockError> {
        self.data.push(byte);
        Ok(self.status())
    }

    #[scanlock::read_locked("store-{self.id}", manager = &self.locks, user = "reader")]
    fn len(&self) -> Result<(usize, LockType, String), LockError> {
        let status = self.locks.get_lock_status("store-1")?;
        Ok((
            self.data.len(),
            status.lock_type.unwrap(),
            status.holders[0].user.clone(),
        ))
    }

    #[scanlock::synchronized("{f_name}-{self.id}-{snap[name]}", blocking = false, manager = self.locks)]
    fn snapshot(&self, snap: &HashMap<String, String>) -> Result<LockType, LockError> {
        let _ = snap;
        Ok(self
            .locks
            .get_lock_status("snapshot-1-daily")?
            .lock_type
            .unwrap())
    }

    fn status(&self) -> LockType {
        self.locks
            .get_lock_status(&format!("store-{}", self.id))
            .unwrap()
            .lock_type
            .unwrap()
    }
}

trait Scans {
    fn scan_len(&self, scan_id: &str) -> Result<LockType, LockError>;
}

impl Scans for Store {
    #[scanlock::read_locked(manager = self.locks)]
    fn scan_len(&self, scan_id: &str) -> Result<LockType, LockError> {
        Ok(self.locks.get_lock_status(scan_id)?.lock_type.unwrap())
    }
}

#[test]
fn methods_with_their_own_manager() {
    let (_dir, locks) = fresh();
    let mut store = Store {
        id: 1,
        locks,
        data: vec![],
    };
    assert_eq!(store.push(1).unwrap(), LockType::Exclusive);
    assert_eq!(
        store.len().unwrap(),
        (1, LockType::Shared, "reader".to_owned())
    );
    let snap = HashMap::from([("name".to_owned(), "daily".to_owned())]);
    assert_eq!(store.snapshot(&snap).unwrap(), LockType::Exclusive);
    assert_eq!(store.scan_len("scan001").unwrap(), LockType::Shared);
    for name in ["store-1", "snapshot-1-daily", "scan001"] {
        assert_free(&store.locks, name);
    }

    let holder = Holder::new(&store.locks, "snapshot-1-daily", LockType::Shared);
    assert!(matches!(
        store.snapshot(&snap),
        Err(LockError::WouldBlock { .. })
    ));
    drop(holder);
}

// ---------------------------------------------------------------------------------
// Generic functions.

#[scanlock::synchronized("gen-{key}-{extra}-{items[0]}", manager = m)]
fn generic<K, T>(
    m: &ScanLockManager,
    key: K,
    extra: impl Display,
    items: &[T],
) -> Result<usize, LockError>
where
    K: Display + Clone,
    T: Display,
{
    let _ = (key.clone(), extra);
    assert_eq!(
        m.get_lock_status("gen-k-x-9")?.lock_type,
        Some(LockType::Exclusive)
    );
    Ok(items.len())
}

#[test]
fn generic_functions() {
    let (_dir, m) = fresh();
    assert_eq!(generic(&m, "k", 'x', &[9, 10]).unwrap(), 2);
    assert_free(&m, "gen-k-x-9");
}

// ---------------------------------------------------------------------------------
// Nesting: the same name again on the same thread re-enters.

#[scanlock::write_locked("nest-{id}", manager = m)]
fn outer(m: &ScanLockManager, id: u32) -> Result<u32, LockError> {
    Ok(inner_exclusive(m, id)? + inner_shared(m, id)?)
}

#[scanlock::synchronized("nest-{id}", manager = m, timeout = Duration::from_secs(5))]
fn inner_exclusive(m: &ScanLockManager, id: u32) -> Result<u32, LockError> {
    Ok(id)
}

#[scanlock::read_locked("nest-{id}", manager = m, timeout = Duration::from_secs(5))]
fn inner_shared(m: &ScanLockManager, id: u32) -> Result<u32, LockError> {
    assert_eq!(
        m.get_lock_status("nest-3")?.lock_type,
        Some(LockType::Exclusive)
    );
    Ok(id)
}

#[test]
fn nested_locked_functions_reenter() {
    let (_dir, m) = fresh();
    assert_eq!(outer(&m, 3).unwrap(), 6);
    assert_free(&m, "nest-3");
}

// ---------------------------------------------------------------------------------
// Exclusion between functions and between arguments.

struct Inside {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Inside {
    fn enter_and_leave(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        // Long enough for another thread to get in if exclusion were broken.
        std::thread::sleep(Duration::from_millis(2));
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[scanlock::write_locked("same-{id}", manager = m, timeout = DEADLINE)]
fn first(m: &ScanLockManager, id: u32, inside: &Inside) -> Result<(), LockError> {
    inside.enter_and_leave();
    Ok(())
}

#[scanlock::synchronized("same-{id}", manager = m, timeout = DEADLINE)]
fn second(m: &ScanLockManager, id: u32, inside: &Inside) -> Result<(), LockError> {
    inside.enter_and_leave();
    Ok(())
}

#[test]
fn two_functions_with_the_same_template_exclude_each_other() {
    let (_dir, m) = fresh();
    let inside = Inside {
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
    };
    std::thread::scope(|s| {
        for t in 0..4 {
            let (m, inside) = (&m, &inside);
            s.spawn(move || {
                for i in 0..15 {
                    if (t + i) % 2 == 0 {
                        first(m, 1, inside).unwrap();
                    } else {
                        second(m, 1, inside).unwrap();
                    }
                }
            });
        }
    });
    assert_eq!(
        inside.max.load(Ordering::SeqCst),
        1,
        "two bodies overlapped"
    );
    assert_free(&m, "same-1");
}

#[scanlock::write_locked("par-{id}", manager = m, timeout = DEADLINE)]
fn parallel(m: &ScanLockManager, id: u32, barrier: &TimedBarrier) -> Result<bool, LockError> {
    Ok(barrier.wait(DEADLINE))
}

#[test]
fn different_arguments_run_in_parallel() {
    let (_dir, m) = fresh();
    let barrier = TimedBarrier::new(2);
    // Both bodies must be inside at once for the barrier to open.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| parallel(&m, 1, &barrier).unwrap());
        let b = s.spawn(|| parallel(&m, 2, &barrier).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a && b, "the two bodies were never inside at the same time");
}

// ---------------------------------------------------------------------------------
// Two processes calling the same locked function.

const PROCESS_CALLS: usize = 25;

#[scanlock::synchronized("{f_name}-{scan_id}", timeout = DEADLINE)]
fn process_scan(scan_id: &str, log: &mut IntervalLog) -> Result<(), LockError> {
    let start = monotonic_ns();
    std::thread::sleep(Duration::from_millis(2));
    log.record(
        &format!("process_scan-{scan_id}"),
        &std::process::id().to_string(),
        true,
        start,
        monotonic_ns(),
    );
    Ok(())
}

fn logs_root() -> PathBuf {
    PathBuf::from(std::env::var("SCANLOCK_MACROS_ROOT").expect("SCANLOCK_MACROS_ROOT"))
}

fn process_worker(root: &Path) {
    scanlock::init_lock_root(root.join("locks")).unwrap();
    let mut log = IntervalLog::create(
        &root
            .join("logs")
            .join(format!("{}.log", std::process::id())),
    );
    for _ in 0..PROCESS_CALLS {
        process_scan("scan001", &mut log).unwrap();
    }
}

#[test]
fn two_processes_exclude_each_other() {
    match role().as_deref() {
        Some("process-worker") => return process_worker(&logs_root()),
        Some(_) => return,
        None => {}
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("locks")).unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let env = [("SCANLOCK_MACROS_ROOT", dir.path().display().to_string())];
    let mut children: Vec<_> = (0..2)
        .map(|_| spawn_self("two_processes_exclude_each_other", "process-worker", &env))
        .collect();
    let end = Instant::now() + Duration::from_secs(120);
    for child in &mut children {
        let left = end.saturating_duration_since(Instant::now());
        assert!(wait_deadline(child, left, "process worker").success());
    }
    let intervals = read_intervals(&dir.path().join("logs"));
    assert_eq!(intervals.len(), 2 * PROCESS_CALLS, "every call was logged");
    assert!(intervals.iter().all(|i| i.name == "process_scan-scan001"));
    assert_exclusion(&intervals);
}
