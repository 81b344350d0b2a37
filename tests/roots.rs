//! What a lock root means: fixed when the manager is built, and identified by the
//! directory itself, whatever the spelling (relative path, symlink, bind mount).

use std::path::PathBuf;
use std::time::Duration;

use scanlock::{LockError, LockType, ScanLockManager};
use scanlock_testkit::{
    can_unshare_mounts, role, shell_quote as q, spawn_self, spawn_self_in_mount_namespace,
    wait_deadline,
};

const LONG: Duration = Duration::from_secs(20);

#[test]
fn the_empty_root_is_a_typed_error_not_the_working_directory() {
    let e = ScanLockManager::new("").unwrap_err();
    assert!(matches!(e, LockError::InvalidRoot { .. }), "{e:?}");
    assert!(e.to_string().contains("empty path"), "{e}");
}

/// A relative root is resolved once: after `chdir` the manager still locks the files of
/// the directory it was built for, and a manager on the absolute path shares its state
/// (the same thread re-enters instead of timing out against itself). Runs in a child
/// process, since `chdir` changes every thread's working directory.
#[test]
fn a_relative_root_is_resolved_once_when_the_manager_is_built() {
    const TEST: &str = "a_relative_root_is_resolved_once_when_the_manager_is_built";
    if role().as_deref() == Some("chdir") {
        let a = PathBuf::from(std::env::var("SCANLOCK_TEST_A").unwrap());
        let b = PathBuf::from(std::env::var("SCANLOCK_TEST_B").unwrap());
        std::env::set_current_dir(&a).unwrap();
        let m = ScanLockManager::new("scans").unwrap();
        assert_eq!(m.root(), a.join("scans"));
        std::env::set_current_dir(&b).unwrap();
        let g = m
            .acquire_lock("s1", LockType::Exclusive, "w", Some(Duration::ZERO))
            .unwrap();
        assert!(
            a.join("scans/.locks/s1.lock").exists(),
            "locked under the new cwd"
        );
        assert!(
            !b.join("scans").exists(),
            "created a root under the new cwd"
        );
        // The absolute spelling is the same lock store: re-entrant, not a self-deadlock.
        let abs = ScanLockManager::new(a.join("scans")).unwrap();
        let again = abs.acquire_lock("s1", LockType::Exclusive, "w", Some(Duration::ZERO));
        assert!(again.is_ok(), "{again:?}");
        drop((again, g));
        return;
    }
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let env = [
        ("SCANLOCK_TEST_A", a.path().display().to_string()),
        ("SCANLOCK_TEST_B", b.path().display().to_string()),
    ];
    let mut child = spawn_self(TEST, "chdir", &env);
    assert!(wait_deadline(&mut child, LONG, "chdir child").success());
}

fn assert_one_store(m1: &ScanLockManager, m2: &ScanLockManager) {
    let g = m1
        .acquire_lock("scan001", LockType::Exclusive, "w", Some(Duration::ZERO))
        .unwrap();
    // Same thread through the alias: re-enters (one in-process layer), where two layers
    // would make it wait for itself.
    let r = m2.acquire_lock(
        "scan001",
        LockType::Exclusive,
        "w",
        Some(Duration::from_millis(200)),
    );
    assert!(r.is_ok(), "the alias is a second lock store: {r:?}");
    drop((r, g));
    // And another thread is excluded through either spelling.
    let _g = m2
        .acquire_lock("scan001", LockType::Exclusive, "w", Some(Duration::ZERO))
        .unwrap();
    std::thread::scope(|s| {
        let e = s
            .spawn(|| {
                m1.try_acquire_lock("scan001", LockType::Shared, "r")
                    .unwrap_err()
            })
            .join()
            .unwrap();
        assert!(matches!(e, LockError::WouldBlock { .. }), "{e:?}");
    });
}

#[test]
fn managers_on_a_symlinked_root_share_one_in_process_layer() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("alias")).unwrap();
    let m1 = ScanLockManager::new(&real).unwrap();
    let m2 = ScanLockManager::new(dir.path().join("alias")).unwrap();
    assert_one_store(&m1, &m2);
}

/// A bind mount of the root is another path to the same directory. Needs root (to
/// mount) and runs in a private mount namespace (`unshare -m`), so nothing leaks.
#[test]
fn managers_on_a_bind_mounted_root_share_one_in_process_layer() {
    const TEST: &str = "managers_on_a_bind_mounted_root_share_one_in_process_layer";
    if role().as_deref() == Some("bind") {
        let real = PathBuf::from(std::env::var("SCANLOCK_TEST_A").unwrap());
        let alias = PathBuf::from(std::env::var("SCANLOCK_TEST_B").unwrap());
        let m1 = ScanLockManager::new(&real).unwrap();
        let m2 = ScanLockManager::new(&alias).unwrap();
        assert_one_store(&m1, &m2);
        return;
    }
    if !can_unshare_mounts() {
        println!("SKIPPED: bind-mount alias test needs root and unshare(1) (mount namespaces)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (real, alias) = (dir.path().join("real"), dir.path().join("alias"));
    std::fs::create_dir(&real).unwrap();
    std::fs::create_dir(&alias).unwrap();
    let mut child = spawn_self_in_mount_namespace(
        &format!("mount --bind {} {}", q(&real), q(&alias)),
        TEST,
        "bind",
        &[("SCANLOCK_TEST_A", &real), ("SCANLOCK_TEST_B", &alias)],
    );
    assert!(wait_deadline(&mut child, LONG, "bind-mount child").success());
}
