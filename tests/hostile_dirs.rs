//! Hostile lock directories: files planted by other users or tools never panic, hang or
//! hide other locks. Each test fails on the code before its fix.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use scanlock::{LockError, LockType, ScanLockManager};
use scanlock_testkit::{ROLE_VAR, role, wait_deadline};

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {path:?}"
    );
}

/// File names that decode to no valid lock name (what plantdb writes for a scan id `%`,
/// an encoded NUL, bad escapes) are skipped by every listing, never a panic.
#[test]
fn planted_undecodable_names_are_skipped_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let locks = dir.path().join(".locks");
    std::fs::create_dir(&locks).unwrap();
    for f in [
        "%.info",
        "%.lock",
        "%%00.lock",
        "%%.lock",
        "%%zz.lock",
        "%%.holders",
    ] {
        std::fs::write(locks.join(f), b"").unwrap();
    }
    std::fs::write(locks.join("ok.lock"), b"").unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    m.cleanup_stale_locks().unwrap();
    m.find_stale_records().unwrap();
    let names = m.lock_names().unwrap();
    assert_eq!(names, vec!["ok".to_owned()], "{names:?}");
}

/// A FIFO where a lock or gate file belongs is a typed error naming it, at once.
#[test]
fn a_fifo_in_place_of_a_lock_or_gate_is_an_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    for suffix in ["lock", "gate"] {
        let name = format!("fifo-{suffix}");
        let path = m.lock_dir().join(format!("{name}.{suffix}"));
        mkfifo(&path);
        let t = Instant::now();
        let e = m
            .acquire_lock(&name, LockType::Shared, "u", Some(Duration::from_secs(5)))
            .unwrap_err();
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
        assert!(matches!(e, LockError::Io(_)), "{e:?}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
}

/// Another user's FIFO: the read-only fallback used to open it without `O_NONBLOCK`
/// and hang for ever, whatever the timeout. Needs root (to run a child as `nobody`).
#[test]
fn another_users_fifo_never_hangs_the_read_only_fallback() {
    const TEST: &str = "another_users_fifo_never_hangs_the_read_only_fallback";
    if role().as_deref() == Some("nobody") {
        let root = PathBuf::from(std::env::var("SCANLOCK_TEST_ROOT").unwrap());
        let m = ScanLockManager::builder(&root)
            .cleanup_on_start(false)
            .build()
            .unwrap();
        let t = Instant::now();
        let e = m
            .acquire_lock("scan1", LockType::Shared, "u", Some(Duration::from_secs(1)))
            .unwrap_err();
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
        assert!(e.to_string().contains("scan1.lock"), "{e}");
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED: another user's FIFO: needs root to run a child as nobody");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    std::fs::set_permissions(m.lock_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(m.lock_dir().join("scan1.gate"), b"").unwrap();
    mkfifo(&m.lock_dir().join("scan1.lock"));
    let exe = std::env::current_exe().unwrap();
    let mut child = std::os::unix::process::CommandExt::uid(
        Command::new(exe)
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, "nobody")
            .env("SCANLOCK_TEST_ROOT", dir.path())
            .env_remove("SCANLOCK_URL"),
        65534,
    )
    .spawn()
    .unwrap();
    assert!(wait_deadline(&mut child, Duration::from_secs(20), "nobody").success());
}

/// A regular file where a name's `.holders/` belongs: that name's status reports the
/// damage and still shows the lock's state; other names are unaffected.
#[test]
fn a_damaged_holders_entry_is_reported_and_hides_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    std::fs::write(m.lock_dir().join("bad.holders"), b"not a directory").unwrap();
    let _g = m
        .acquire_lock("bad", LockType::Exclusive, "w", None)
        .unwrap();
    let _o = m
        .acquire_lock("other", LockType::Shared, "r", None)
        .unwrap();
    let s = m.get_lock_status("bad").unwrap();
    assert_eq!(s.lock_type, Some(LockType::Exclusive), "{s:?}");
    assert!(
        s.problems.iter().any(|p| p.contains("bad.holders")),
        "{s:?}"
    );
    let o = m.get_lock_status("other").unwrap();
    assert!(
        o.problems.is_empty() && o.holders.iter().any(|h| h.user == "r"),
        "{o:?}"
    );
}
