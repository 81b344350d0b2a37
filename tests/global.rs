//! The global manager: `init_lock_root`, `init_lock_url`, `SCANLOCK_URL`. Global state is
//! per process, so every case runs in a fresh child process.

use std::time::Duration;

use scanlock::{LockError, LockType};
use scanlock_testkit::{role, spawn_self, wait_deadline};

fn run_child(test: &str, role: &str, env: &[(&str, String)]) {
    let mut child = spawn_self(test, role, env);
    let status = wait_deadline(&mut child, Duration::from_secs(30), role);
    assert!(status.success(), "{role}: {status}");
}

#[test]
fn not_initialized_says_how_to_fix_it() {
    if role().is_some() {
        let e = scanlock::global_manager().unwrap_err();
        assert!(matches!(e, LockError::NotInitialized));
        assert!(e.to_string().contains("init_lock_root"), "{e}");
        return;
    }
    run_child("not_initialized_says_how_to_fix_it", "child", &[]);
}

#[test]
fn scanlock_url_sets_the_global_manager() {
    if role().is_some() {
        let m = scanlock::global_manager().unwrap();
        let want = std::env::var("EXPECT_ROOT").unwrap();
        assert_eq!(m.root(), std::path::Path::new(&want));
        let _g = m
            .acquire_lock("scan001", LockType::Exclusive, "u", None)
            .unwrap();
        // Initialising with the same URL again is fine, another root is not.
        scanlock::init_lock_url(&std::env::var(scanlock::URL_ENV).unwrap()).unwrap();
        let e = scanlock::init_lock_root("/tmp").unwrap_err();
        assert!(matches!(e, LockError::AlreadyInitialized { .. }), "{e:?}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    run_child(
        "scanlock_url_sets_the_global_manager",
        "child",
        &[
            (scanlock::URL_ENV, format!("file://{root}")),
            ("EXPECT_ROOT", root.clone()),
        ],
    );
    assert!(dir.path().join(".locks/scan001.lock").exists());
}

#[test]
fn init_lock_url_rejects_bad_urls_and_missing_features() {
    if role().is_some() {
        for bad in ["redis://localhost", "file://relative/path"] {
            let e = scanlock::init_lock_url(bad).unwrap_err();
            assert!(matches!(e, LockError::InvalidUrl { .. }), "{e:?}");
        }
        if !cfg!(feature = "postgres") {
            let e = scanlock::init_lock_url("postgres://u:pw@localhost/db").unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("`postgres` feature") && !msg.contains("pw@"),
                "{msg}"
            );
        }
        assert!(matches!(
            scanlock::global_manager(),
            Err(LockError::NotInitialized)
        ));
        return;
    }
    run_child(
        "init_lock_url_rejects_bad_urls_and_missing_features",
        "child",
        &[],
    );
}
