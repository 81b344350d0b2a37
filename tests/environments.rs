//! Status and holder records in odd environments: no `/proc`, forked children, a lock
//! directory recreated under running processes, a deleted gate. Each test fails on the
//! code before its fix (see RELIABILITY.md, "Hostile environments").

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use scanlock::{LockError, LockType, ScanLockManager};
use scanlock_testkit::{
    can_unshare_mounts, eventually, role, spawn_self, spawn_self_in_mount_namespace, wait_deadline,
};

const LONG: Duration = Duration::from_secs(20);

fn root_from_env() -> PathBuf {
    PathBuf::from(std::env::var("SCANLOCK_TEST_ROOT").expect("SCANLOCK_TEST_ROOT"))
}

fn env(root: &Path) -> Vec<(&'static str, String)> {
    vec![("SCANLOCK_TEST_ROOT", root.display().to_string())]
}

/// Holds `name` in `mode` as `user` until `<root>/stop` appears (bounded).
fn hold_until_stopped(name: &str, mode: LockType, user: &str) {
    let root = root_from_env();
    let m = ScanLockManager::new(&root).unwrap();
    let _g = m.acquire_lock(name, mode, user, Some(LONG)).unwrap();
    std::fs::write(root.join(format!("ready-{user}")), b"").unwrap();
    let end = Instant::now() + LONG;
    while !root.join("stop").exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn await_ready(root: &Path, user: &str) {
    assert!(
        eventually(LONG, || root.join(format!("ready-{user}")).exists()),
        "{user} never became ready"
    );
}

/// This test binary's `test` in role `role`, in a private mount namespace where `/proc`
/// is hidden under an empty tmpfs (as in a chroot or a minimal container).
fn without_proc(test: &str, role: &str, root: &Path) -> Child {
    spawn_self_in_mount_namespace(
        "mount -t tmpfs none /proc",
        test,
        role,
        &[("SCANLOCK_TEST_ROOT", root)],
    )
}

/// Without `/proc`, records are still published (the rename path), and another such
/// process's status shows the held lock with its holder, never as free.
#[test]
fn without_proc_a_held_lock_shows_its_holder() {
    const TEST: &str = "without_proc_a_held_lock_shows_its_holder";
    match role().as_deref() {
        Some("holder") => {
            assert!(!Path::new("/proc/self").exists(), "/proc is still mounted");
            return hold_until_stopped("scan1", LockType::Exclusive, "holder-noproc");
        }
        Some("status") => {
            let m = ScanLockManager::new(root_from_env()).unwrap();
            let s = m.get_lock_status("scan1").unwrap();
            assert_eq!(s.lock_type, Some(LockType::Exclusive), "{s:?}");
            assert!(s.holders.iter().any(|h| h.user == "holder-noproc"), "{s:?}");
            return;
        }
        Some(_) => return,
        None => {}
    }
    if !can_unshare_mounts() {
        println!("SKIPPED: no-/proc test needs root and unshare(1) (mount namespaces)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut holder = without_proc(TEST, "holder", root);
    await_ready(root, "holder-noproc");
    let mut status = without_proc(TEST, "status", root);
    let ok = wait_deadline(&mut status, LONG, "status without /proc").success();
    // Seen from a process with /proc too.
    let s = ScanLockManager::new(root)
        .unwrap()
        .get_lock_status("scan1")
        .unwrap();
    std::fs::write(root.join("stop"), b"").unwrap();
    assert!(wait_deadline(&mut holder, LONG, "holder").success());
    assert!(ok, "status without /proc missed the holder");
    assert!(s.holders.iter().any(|h| h.user == "holder-noproc"), "{s:?}");
}

/// A forked child that drops an inherited guard and manager leaves the parent's record
/// as it is: the parent still holds, and status still names it.
#[test]
fn a_forked_child_leaves_the_parents_record_alone() {
    const TEST: &str = "a_forked_child_leaves_the_parents_record_alone";
    if role().as_deref() == Some("forker") {
        // In a child of the test harness: one thread, so fork is safe.
        let root = root_from_env();
        let m = ScanLockManager::new(&root).unwrap();
        let g = m
            .acquire_lock("f", LockType::Exclusive, "parent", None)
            .unwrap();
        // SAFETY: this process has one thread; the child only drops and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            drop(g);
            drop(m);
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        let mut st = 0;
        // SAFETY: waits for the child just forked.
        assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
        let s = m.get_lock_status("f").unwrap();
        assert!(
            s.holders.iter().any(|h| h.user == "parent"),
            "the child's drop withdrew the parent's record: {s:?}"
        );
        drop(g);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = spawn_self(TEST, "forker", &env(dir.path()));
    assert!(wait_deadline(&mut c, LONG, "forker").success());
}

/// After `.locks` is deleted and recreated under a running manager, its next hold is
/// published in the new directory (before: into the deleted record file, so status
/// showed the holder without its record).
#[test]
fn records_follow_a_recreated_lock_directory() {
    let dir = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    m.acquire_lock("r", LockType::Exclusive, "before", None)
        .unwrap()
        .release()
        .unwrap();
    std::fs::remove_dir_all(m.lock_dir()).unwrap();
    std::fs::create_dir(m.lock_dir()).unwrap();
    let _g = m
        .acquire_lock("r", LockType::Exclusive, "after", None)
        .unwrap();
    let s = m.get_lock_status("r").unwrap();
    assert_eq!(s.holders.len(), 1, "{s:?}");
    assert_eq!(s.holders[0].user, "after", "{s:?}");
    assert!(m.lock_dir().join("r.holders").read_dir().unwrap().count() >= 1);
}

/// An operator deletes a name's gate while this process has it open: once another
/// process's writer waits at the new gate, a reader of this process must queue behind
/// it (before: it passed the deleted gate, so writer preference split in two).
#[test]
fn a_deleted_gate_is_noticed_and_writer_preference_holds() {
    const TEST: &str = "a_deleted_gate_is_noticed_and_writer_preference_holds";
    match role().as_deref() {
        Some("reader") => return hold_until_stopped("g", LockType::Shared, "reader"),
        Some("writer") => {
            let m = ScanLockManager::new(root_from_env()).unwrap();
            let g = m.acquire_lock("g", LockType::Exclusive, "writer", Some(LONG));
            assert!(g.is_ok(), "{g:?}");
            return;
        }
        Some(_) => return,
        None => {}
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let m = ScanLockManager::new(root).unwrap();
    let t1 = {
        let g = m
            .acquire_lock("g", LockType::Exclusive, "me", None)
            .unwrap();
        g.fencing_token()
    }; // handles (gate included) stay cached
    std::fs::remove_file(m.lock_dir().join("g.gate")).unwrap();
    let mut reader = spawn_self(TEST, "reader", &env(root));
    await_ready(root, "reader");
    let mut writer = spawn_self(TEST, "writer", &env(root));
    assert!(
        eventually(LONG, || m
            .get_lock_status("g")
            .unwrap()
            .waiting_writers
            .len()
            == 1),
        "the writer never queued"
    );
    let r = m.try_acquire_lock("g", LockType::Shared, "late-reader");
    let overtook = r.is_ok();
    drop(r);
    std::fs::write(root.join("stop"), b"").unwrap();
    assert!(wait_deadline(&mut reader, LONG, "reader").success());
    assert!(wait_deadline(&mut writer, LONG, "writer").success());
    assert!(
        !overtook,
        "a reader passed a deleted gate ahead of a waiting writer"
    );
    // Tokens stay monotonic across the new gate.
    let t2 = m
        .acquire_lock("g", LockType::Exclusive, "me", None)
        .unwrap()
        .fencing_token();
    assert!(t2 > t1, "{t2} <= {t1}");
    assert!(matches!(
        m.try_acquire_lock("", LockType::Shared, "x"),
        Err(LockError::InvalidName { .. })
    ));
}
