//! Semantics between processes: each test re-runs this test binary as child processes
//! (see `scanlock_testkit::spawn_self`), with deadlines on every wait.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scanlock::{LockError, LockType, ScanLockManager, Wait};
use scanlock_testkit::{
    IntervalLog, Rng, assert_exclusion, eventually, monotonic_ns, read_intervals, role, spawn_self,
    wait_deadline,
};

const LONG: Duration = Duration::from_secs(20);

fn root_from_env() -> PathBuf {
    PathBuf::from(std::env::var("SCANLOCK_TEST_ROOT").expect("SCANLOCK_TEST_ROOT"))
}

fn env(root: &Path) -> Vec<(&'static str, String)> {
    vec![("SCANLOCK_TEST_ROOT", root.display().to_string())]
}

fn ready_file(root: &Path, pid: u32) -> PathBuf {
    root.join(format!("ready-{pid}"))
}

fn signal_ready(root: &Path) {
    std::fs::write(ready_file(root, std::process::id()), b"").unwrap();
}

fn await_ready(root: &Path, pid: u32) {
    assert!(
        eventually(LONG, || ready_file(root, pid).exists()),
        "child {pid} never became ready"
    );
}

/// N processes × 2 threads × random shared/exclusive holds on two names, while another
/// process runs cleanup and starts new managers in a loop. The enter/exit log proves that
/// no exclusive interval overlapped any other holder.
#[test]
fn stress_exclusion_across_processes_with_concurrent_cleanup() {
    match role().as_deref() {
        Some("worker") => return stress_worker(),
        Some("cleaner") => return stress_cleaner(),
        Some(_) => return,
        None => {}
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("logs")).unwrap();
    let mut cleaner = spawn_self(
        "stress_exclusion_across_processes_with_concurrent_cleanup",
        "cleaner",
        &env(root),
    );
    let workers: Vec<_> = (0..4)
        .map(|_| {
            spawn_self(
                "stress_exclusion_across_processes_with_concurrent_cleanup",
                "worker",
                &env(root),
            )
        })
        .collect();
    for mut w in workers {
        assert!(wait_deadline(&mut w, Duration::from_secs(120), "stress worker").success());
    }
    std::fs::write(root.join("stop"), b"").unwrap();
    assert!(wait_deadline(&mut cleaner, LONG, "cleaner").success());
    let intervals = read_intervals(&root.join("logs"));
    assert_eq!(intervals.len(), 4 * 2 * 150, "every hold was logged");
    assert!(intervals.iter().any(|i| i.exclusive) && intervals.iter().any(|i| !i.exclusive));
    assert_exclusion(&intervals);
}

fn stress_worker() {
    let root = root_from_env();
    let m = ScanLockManager::new(&root).unwrap();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (m, root) = (&m, &root);
            s.spawn(move || {
                let pid = std::process::id();
                let who = format!("{pid}/{t}");
                let mut log =
                    IntervalLog::create(&root.join("logs").join(format!("{pid}-{t}.log")));
                let mut rng = Rng::new(u64::from(pid) * 31 + t);
                for _ in 0..150 {
                    let name = ["scanA", "scanB"][rng.below(2) as usize];
                    let mode = if rng.below(3) == 0 {
                        LockType::Exclusive
                    } else {
                        LockType::Shared
                    };
                    let g = m.acquire_lock(name, mode, "stress", Some(LONG)).unwrap();
                    let start = monotonic_ns();
                    if rng.below(4) == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    let end = monotonic_ns();
                    log.record(name, &who, mode == LockType::Exclusive, start, end);
                    g.release().unwrap();
                }
            });
        }
    });
}

fn stress_cleaner() {
    let root = root_from_env();
    let end = Instant::now() + Duration::from_secs(120);
    let mut rounds = 0;
    while !root.join("stop").exists() && Instant::now() < end {
        let m = ScanLockManager::new(&root).unwrap(); // runs cleanup on start
        m.cleanup_stale_locks().unwrap();
        let _ = m.get_lock_status("scanA").unwrap();
        rounds += 1;
    }
    assert!(rounds > 0);
}

/// A holder killed with SIGKILL loses its lock at once; its record is then stale:
/// ignored by status and removed by `new()`.
#[test]
fn sigkill_releases_and_leaves_only_a_stale_record() {
    if role().as_deref() == Some("holder") {
        let root = root_from_env();
        let m = ScanLockManager::new(&root).unwrap();
        let _g = m
            .acquire_lock("scan001", LockType::Exclusive, "doomed", None)
            .unwrap();
        signal_ready(&root);
        std::thread::sleep(LONG);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut child = spawn_self(
        "sigkill_releases_and_leaves_only_a_stale_record",
        "holder",
        &env(root),
    );
    await_ready(root, child.id());
    let m = ScanLockManager::builder(root)
        .cleanup_on_start(false)
        .build()
        .unwrap();
    let st = m.get_lock_status("scan001").unwrap();
    assert_eq!(st.lock_type, Some(LockType::Exclusive));
    assert_eq!(
        (st.holders[0].user.as_str(), st.holders[0].pid),
        ("doomed", child.id())
    );
    let e = m
        .try_acquire_lock("scan001", LockType::Shared, "me")
        .unwrap_err();
    assert!(e.to_string().contains("doomed"), "{e}");

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let g = m
        .acquire_lock(
            "scan001",
            LockType::Exclusive,
            "me",
            Some(Duration::from_secs(5)),
        )
        .expect("a killed holder's lock is free at once");
    let st = m.get_lock_status("scan001").unwrap();
    assert_eq!(st.stale_records, 1, "{st:?}");
    assert!(st.holders.iter().all(|h| h.user == "me"), "{st:?}");
    drop(g);
    let found = m.find_stale_records().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].holder.as_ref().map(|h| h.user.as_str()),
        Some("doomed")
    );
    assert_eq!(
        m.find_stale_records().unwrap().len(),
        1,
        "a dry run removes nothing"
    );
    let removed = ScanLockManager::new(root).unwrap(); // cleanup on start
    let st = removed.get_lock_status("scan001").unwrap();
    assert_eq!((st.stale_records, st.lock_type), (0, None), "{st:?}");
}

/// Linux flock starves writers (measured: 10 of 10 writers waited > 5 s against 4
/// overlapping readers). With the gate, a writer gets in while readers keep coming.
#[test]
fn writer_is_not_starved_by_reader_processes() {
    if role().as_deref() == Some("reader") {
        let root = root_from_env();
        let m = ScanLockManager::new(&root).unwrap();
        signal_ready(&root);
        let end = Instant::now() + LONG;
        while !root.join("stop").exists() && Instant::now() < end {
            let _g = m
                .acquire_lock("scan001", LockType::Shared, "reader", Some(LONG))
                .unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut readers: Vec<_> = (0..4)
        .map(|_| {
            spawn_self(
                "writer_is_not_starved_by_reader_processes",
                "reader",
                &env(root),
            )
        })
        .collect();
    for r in &readers {
        await_ready(root, r.id());
    }
    let m = ScanLockManager::new(root).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..3 {
        let g = m
            .acquire_lock(
                "scan001",
                LockType::Exclusive,
                "writer",
                Some(Duration::from_secs(5)),
            )
            .expect("writer starved by readers");
        drop(g);
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(root.join("stop"), b"").unwrap();
    for r in &mut readers {
        assert!(wait_deadline(r, LONG, "reader").success());
    }
}

/// Reader *threads* of one process whose holds overlap (a web UI) must not keep a writer
/// of another process out: new reader threads stop joining the process's shared hold
/// once a writer waits at the gate, so the hold ends within about one reader hold.
#[test]
fn writer_is_not_starved_by_overlapping_reader_threads_of_another_process() {
    const TEST: &str = "writer_is_not_starved_by_overlapping_reader_threads_of_another_process";
    const HOLD: Duration = Duration::from_millis(50);
    if role().as_deref() == Some("ui") {
        let root = root_from_env();
        let m = ScanLockManager::new(&root).unwrap();
        let end = Instant::now() + LONG;
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (m, root) = (m.clone(), root.clone());
                s.spawn(move || {
                    // Staggered by a quarter hold, so that some thread always holds.
                    std::thread::sleep(HOLD / 4 * t as u32);
                    while !root.join("stop").exists() && Instant::now() < end {
                        let _g = m
                            .acquire_lock("ui", LockType::Shared, "web-ui", Some(LONG))
                            .unwrap();
                        std::thread::sleep(HOLD);
                    }
                });
            }
            std::thread::sleep(HOLD);
            signal_ready(&root);
        });
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut ui = spawn_self(TEST, "ui", &env(root));
    await_ready(root, ui.id());
    let m = ScanLockManager::new(root).unwrap();
    let mut waits = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let g = m.acquire_lock(
            "ui",
            LockType::Exclusive,
            "worker",
            Some(Duration::from_secs(2)),
        );
        waits.push(t.elapsed());
        assert!(
            g.is_ok(),
            "writer starved by reader threads: {g:?} after {waits:?}"
        );
        drop(g);
        std::thread::sleep(HOLD);
    }
    std::fs::write(root.join("stop"), b"").unwrap();
    assert!(wait_deadline(&mut ui, LONG, "ui").success());
    // About one reader hold (the longest overlapping hold ends), with room for a busy CI.
    assert!(
        waits.iter().all(|w| *w < HOLD * 10),
        "writer waits {waits:?}"
    );
}

// A forked child that drops an inherited guard never releases the parent's lock: pinned
// for both back ends by `a_forked_child_never_releases_the_parents_lock` in semantics.rs.

/// Status sees holders in other processes, matches names exactly and changes nothing.
#[test]
fn status_sees_other_processes_exactly_and_changes_nothing() {
    if role().as_deref() == Some("holder") {
        let root = root_from_env();
        let m = ScanLockManager::new(&root).unwrap();
        let _a = m
            .acquire_lock("scan1", LockType::Shared, "remote-reader", None)
            .unwrap();
        signal_ready(&root);
        assert!(eventually(LONG, || root.join("stop").exists()));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut child = spawn_self(
        "status_sees_other_processes_exactly_and_changes_nothing",
        "holder",
        &env(root),
    );
    await_ready(root, child.id());
    let m = ScanLockManager::new(root).unwrap();
    let _mine = m
        .acquire_lock("scan1", LockType::Shared, "local-reader", None)
        .unwrap();
    let st = m.get_lock_status("scan1").unwrap();
    assert_eq!(st.lock_type, Some(LockType::Shared));
    let mut users: Vec<_> = st.holders.iter().map(|h| (h.user.clone(), h.pid)).collect();
    users.sort();
    assert_eq!(
        users,
        vec![
            ("local-reader".into(), std::process::id()),
            ("remote-reader".into(), child.id())
        ]
    );
    let listing = || {
        let mut v: Vec<_> = std::fs::read_dir(m.lock_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = listing();
    for other in ["scan10", "scan", "scan1.lock", "never-used"] {
        let st = m.get_lock_status(other).unwrap();
        assert!(st.is_free() && st.holders.is_empty(), "{other}: {st:?}");
    }
    assert_eq!(listing(), before, "status created or removed files");
    std::fs::write(root.join("stop"), b"").unwrap();
    assert!(wait_deadline(&mut child, LONG, "holder").success());
}

/// Another tool unlinks and recreates the lock file while we wait on the old one: the
/// identity check after locking must notice, or two holders would be inside.
#[test]
fn a_replaced_lock_file_is_detected_after_locking() {
    if role().as_deref() == Some("waiter") {
        let root = root_from_env();
        let m = ScanLockManager::new(&root).unwrap();
        signal_ready(&root);
        let r = m.acquire_lock(
            "scan001",
            LockType::Exclusive,
            "waiter",
            Some(Duration::from_secs(2)),
        );
        std::process::exit(match r {
            Err(LockError::Timeout { .. }) => 0,
            Ok(_) => 2,
            Err(_) => 3,
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let m = ScanLockManager::new(root).unwrap();
    let path = m.lock_dir().join("scan001.lock");
    let old = std::fs::File::create(&path).unwrap();
    old.lock().unwrap();
    let mut child = spawn_self(
        "a_replaced_lock_file_is_detected_after_locking",
        "waiter",
        &env(root),
    );
    await_ready(root, child.id());
    std::thread::sleep(Duration::from_millis(300)); // the waiter now polls the old file
    // Replace the file the way plantdb's release does, and hold the new one.
    std::fs::remove_file(&path).unwrap();
    let new = std::fs::File::create(&path).unwrap();
    new.lock().unwrap();
    old.unlock().unwrap();
    let status = wait_deadline(&mut child, LONG, "waiter");
    assert_eq!(
        status.code(),
        Some(0),
        "the waiter took the unlinked file's lock"
    );
    drop(new);
}

/// Past the lock directory's settling time (2 s, in whole seconds): the next
/// acquisitions find it settled and stop checking their file's path (`file.rs`,
/// `Handles::verified_at`) while it stays unchanged.
const SETTLE: Duration = Duration::from_millis(3100);

/// Replaces `scan001.lock` the way plantdb's release does and locks the new file; the
/// manager must then see the name as taken, and take the new file once it is free.
fn assert_replacement_detected(m: &ScanLockManager) {
    let path = m.lock_dir().join("scan001.lock");
    std::fs::remove_file(&path).unwrap();
    let new = std::fs::File::create(&path).unwrap();
    new.lock().unwrap();
    match m.try_acquire_lock("scan001", LockType::Exclusive, "w") {
        Err(LockError::WouldBlock { .. }) => {}
        Ok(_) => panic!("took the unlinked file's lock beside the new file's holder"),
        Err(e) => panic!("unexpected error: {e}"),
    }
    new.unlock().unwrap();
    let g = m
        .try_acquire_lock("scan001", LockType::Exclusive, "w")
        .unwrap();
    assert!(
        new.try_lock().is_err(),
        "the guard does not hold the file at the path"
    );
    drop(g);
}

/// One exclusive acquire+release of `scan001`.
fn take_once(m: &ScanLockManager) {
    drop(
        m.try_acquire_lock("scan001", LockType::Exclusive, "w")
            .unwrap(),
    );
}

/// Lets the lock directory settle, then takes `scan001` a few times: its kept
/// descriptor is then found at its path at a settled version and no longer checked.
fn settle(m: &ScanLockManager) {
    std::thread::sleep(SETTLE);
    for _ in 0..3 {
        take_once(m);
    }
}

fn quiet_manager(root: &Path) -> ScanLockManager {
    let m = ScanLockManager::builder(root)
        .metadata(false)
        .build()
        .unwrap();
    take_once(&m);
    settle(&m);
    m
}

/// The identity check is skipped while the lock directory is unchanged since the cached
/// descriptor was last found at its path: unlinking and recreating the file changes the
/// directory, so the check runs again and finds the replacement.
#[test]
fn a_lock_file_replaced_after_a_quiet_spell_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let m = quiet_manager(dir.path());
    assert_replacement_detected(&m);
}

/// `.locks` deleted and recreated under a running manager: its open directory is now a
/// dead one whose version never changes again, so it must no longer vouch for anything.
#[test]
fn a_lock_directory_recreated_under_a_manager_never_vouches_for_files() {
    let dir = tempfile::tempdir().unwrap();
    let m = quiet_manager(dir.path());
    std::fs::remove_dir_all(m.lock_dir()).unwrap();
    std::fs::create_dir(m.lock_dir()).unwrap();
    // Finds its file gone and opens the new one, then lets the dead directory settle.
    take_once(&m);
    settle(&m);
    assert_replacement_detected(&m);
}

#[test]
fn every_name_stays_inside_the_lock_directory() {
    let dir = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    let long = "x/".repeat(5_000);
    let names = [
        "../../escape",
        "/abs/path",
        "..",
        ".",
        "sub/dir",
        "ünïcödé",
        "sp ace",
        long.as_str(),
    ];
    for n in names {
        let g = m
            .acquire_lock_with(n, LockType::Exclusive, "u", Wait::NoWait)
            .unwrap();
        assert_eq!(
            m.get_lock_status(n).unwrap().lock_type,
            Some(LockType::Exclusive),
            "{n}"
        );
        drop(g);
    }
    // Nothing was created outside .locks, and .locks has no subdirectories but the
    // holders directories.
    let top: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, vec![std::ffi::OsString::from(".locks")]);
    for e in std::fs::read_dir(m.lock_dir()).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().into_string().unwrap();
        assert!(!n.starts_with('.'), "{n}");
        if e.file_type().unwrap().is_dir() {
            assert!(n.ends_with(".holders"), "{n}");
        }
    }
    for bad in ["", "a\0b"] {
        let e = m.try_acquire_lock(bad, LockType::Shared, "u").unwrap_err();
        assert!(matches!(e, LockError::InvalidName { .. }), "{e:?}");
    }
}
