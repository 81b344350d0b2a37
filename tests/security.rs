//! Security properties of the file back end (issue 7, part 5): nothing planted in
//! `.locks/` makes scanlock create, open, lock, read as trusted, or delete a file outside
//! it; files and directories get the documented modes; metadata is plain data.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::Duration;

use scanlock::{LockError, LockType, ScanLockManager};

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Lists a directory's file names, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// `scan001.lock -> /victim`, `scan001.holders -> /victimdir` and friends, planted by
/// another user: acquisition fails with an error that names the lock, or succeeds
/// without touching the targets; status and cleanup never read, lock or delete them.
#[test]
fn planted_symlinks_are_never_followed() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let victim_dir = outside.path().join("victimdir");
    std::fs::create_dir(&victim_dir).unwrap();
    // Files that look like stale holder records (unlocked, valid or not) and a plain one.
    std::fs::write(victim_dir.join("host-1-1.json"), b"{\"not\":\"a record\"}").unwrap();
    std::fs::write(victim_dir.join("data.bin"), b"keep me").unwrap();

    let m = ScanLockManager::new(root.path()).unwrap();
    let locks = m.lock_dir().to_path_buf();
    symlink(&victim, locks.join("scan001.lock")).unwrap();
    symlink(&victim_dir, locks.join("scan001.holders")).unwrap();
    // Dangling: following it would create the target.
    symlink(outside.path().join("created"), locks.join("scan002.gate")).unwrap();
    // A holders symlink next to a normal lock: the lock works, the metadata is refused.
    symlink(&victim_dir, locks.join("scan003.holders")).unwrap();
    symlink(&victim, locks.join("scan003.info")).unwrap();

    for name in ["scan001", "scan002"] {
        let e = m
            .acquire_lock(
                name,
                LockType::Exclusive,
                "u",
                Some(Duration::from_millis(50)),
            )
            .unwrap_err();
        assert!(matches!(e, LockError::Io(_)), "{name}: {e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&format!("\"{name}\"")), "{msg}");
        assert!(msg.contains("symbolic link"), "{msg}");
    }
    {
        let g = m
            .acquire_lock("scan003", LockType::Exclusive, "u", None)
            .expect("a planted holders symlink must not stop the lock itself");
        let st = m.get_lock_status("scan003");
        // Either a clear error or a status without records from the victim directory.
        match st {
            Ok(st) => assert!(
                st.holders
                    .iter()
                    .all(|h| h.user == "u" || h.user.is_empty())
            ),
            Err(e) => assert!(e.to_string().contains("scan003"), "{e}"),
        }
        drop(g);
    }
    let st = m.get_lock_status("scan001");
    if let Ok(st) = st {
        assert_eq!(st.stale_records, 0, "read the victim directory: {st:?}");
    }
    m.cleanup_stale_locks().unwrap();
    let _fresh = ScanLockManager::new(root.path()).unwrap(); // cleanup on start
    assert!(m.find_stale_records().unwrap().is_empty());

    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(listing(&victim_dir), ["data.bin", "host-1-1.json"]);
    assert!(!outside.path().join("created").exists());
    assert_eq!(listing(outside.path()), ["victim", "victimdir"]);
    // Nobody was left holding a flock on the victim.
    let f = std::fs::File::open(&victim).unwrap();
    f.try_lock().expect("victim file left locked");
}

/// A `.locks` that is a symlink is refused outright.
#[test]
fn a_symlinked_lock_directory_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    symlink(elsewhere.path(), root.path().join(".locks")).unwrap();
    let e = ScanLockManager::new(root.path()).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
    assert!(listing(elsewhere.path()).is_empty());
}

/// Default modes: lock, gate and record files 0644, directories 0755 (both limited by
/// the umask); `file_mode` and `dir_mode` change them for what scanlock creates.
#[test]
fn files_and_directories_get_the_documented_modes() {
    // SAFETY: umask only reads and sets this process's mask; the value we set is the
    // common default, so parallel tests see what they would anyway.
    let old = unsafe { libc::umask(0o022) };
    let root = tempfile::tempdir().unwrap();
    {
        let m = ScanLockManager::new(root.path()).unwrap();
        let _g = m
            .acquire_lock("scan001", LockType::Exclusive, "u", None)
            .unwrap();
        let d = m.lock_dir();
        assert_eq!(mode_of(d), 0o755);
        assert_eq!(mode_of(&d.join("scan001.lock")), 0o644);
        assert_eq!(mode_of(&d.join("scan001.gate")), 0o644);
        assert_eq!(mode_of(&d.join("scan001.holders")), 0o755);
        for r in std::fs::read_dir(d.join("scan001.holders")).unwrap() {
            assert_eq!(mode_of(&r.unwrap().path()), 0o644);
        }
    }
    let private = tempfile::tempdir().unwrap();
    {
        let m = ScanLockManager::builder(private.path().join("root"))
            .file_mode(0o600)
            .dir_mode(0o700)
            .build()
            .unwrap();
        let _g = m
            .acquire_lock("scan001", LockType::Exclusive, "u", None)
            .unwrap();
        let d = m.lock_dir();
        assert_eq!(mode_of(d), 0o700);
        assert_eq!(mode_of(&d.join("scan001.lock")), 0o600);
        assert_eq!(mode_of(&d.join("scan001.gate")), 0o600);
        assert_eq!(mode_of(&d.join("scan001.holders")), 0o700);
        for r in std::fs::read_dir(d.join("scan001.holders")).unwrap() {
            assert_eq!(mode_of(&r.unwrap().path()), 0o600);
        }
    }
    // SAFETY: as above.
    unsafe { libc::umask(old) };
}

/// A holder record is plain JSON with a fixed set of fields (no environment, no URL, no
/// credentials). A forged record that nobody holds locked is never shown as a holder.
#[test]
fn metadata_is_plain_data_and_forged_records_are_not_trusted() {
    let root = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(root.path()).unwrap();
    let g = m
        .acquire_lock("scan001", LockType::Shared, "alice", None)
        .unwrap();
    let holders = m.lock_dir().join("scan001.holders");
    let records: Vec<_> = std::fs::read_dir(&holders).unwrap().collect();
    assert_eq!(records.len(), 1);
    let path = records[0].as_ref().unwrap().path();
    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    let mut top: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    top.sort();
    assert_eq!(top, ["end", "holder", "seq"]);
    let mut fields: Vec<_> = v["holder"].as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "acquired_at",
            "boot_id",
            "hostname",
            "lock_type",
            "name",
            "pid",
            "thread",
            "thread_id",
            "user"
        ]
    );
    // Forge a record naming a live process (this one) as an exclusive holder.
    let forged = text
        .replace("\"alice\"", "\"mallory\"")
        .replace("\"shared\"", "\"exclusive\"");
    std::fs::write(holders.join("forged-1-1.json"), forged).unwrap();
    let st = m.get_lock_status("scan001").unwrap();
    assert!(
        st.holders.iter().all(|h| h.user != "mallory"),
        "trusted a record nobody holds: {st:?}"
    );
    assert_eq!(st.lock_type, Some(LockType::Shared));
    assert_eq!(st.stale_records, 1);
    drop(g);
    let removed = m.cleanup_stale_locks().unwrap().removed;
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(!holders.join("forged-1-1.json").exists());
}
