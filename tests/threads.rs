//! Semantics between threads of one process: shared/exclusive, `user` is not identity,
//! re-entrancy, upgrade refusal, writer preference, timeouts and single attempts.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use scanlock::{LockError, LockType, ScanLockManager, Wait};
use scanlock_testkit::eventually;

const LONG: Duration = Duration::from_secs(10);

fn manager() -> (tempfile::TempDir, ScanLockManager) {
    let dir = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    (dir, m)
}

#[test]
fn shared_holders_coexist_across_threads() {
    let (_d, m) = manager();
    let inside = Barrier::new(3);
    std::thread::scope(|s| {
        for i in 0..3 {
            let (m, inside) = (&m, &inside);
            s.spawn(move || {
                let _g = m
                    .acquire_lock("scan001", LockType::Shared, &format!("r{i}"), Some(LONG))
                    .unwrap();
                // All three must be inside at once, or this barrier never opens.
                inside.wait();
            });
        }
    });
    assert_eq!(m.get_lock_status("scan001").unwrap().lock_type, None);
}

#[test]
fn exclusive_excludes_other_threads_even_with_the_same_user() {
    let (_d, m) = manager();
    let g = m
        .acquire_lock("scan001", LockType::Exclusive, "same", None)
        .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for t in [LockType::Shared, LockType::Exclusive] {
                let e = m.try_acquire_lock("scan001", t, "same").unwrap_err();
                assert!(matches!(e, LockError::WouldBlock { .. }), "{e}");
                let e = m
                    .acquire_lock("scan001", t, "same", Some(Duration::from_millis(30)))
                    .unwrap_err();
                assert!(matches!(e, LockError::Timeout { .. }), "{e}");
            }
        });
    });
    drop(g);
    std::thread::scope(|s| {
        s.spawn(|| {
            drop(
                m.try_acquire_lock("scan001", LockType::Exclusive, "same")
                    .unwrap(),
            );
        });
    });
}

#[test]
fn exclusive_holders_never_overlap_between_threads() {
    let (_d, m) = manager();
    let inside = AtomicUsize::new(0);
    let entries = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for i in 0..4 {
            let (m, inside, entries) = (&m, &inside, &entries);
            s.spawn(move || {
                for _ in 0..200 {
                    let _g = m
                        .acquire_lock("hot", LockType::Exclusive, &format!("w{i}"), Some(LONG))
                        .unwrap();
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two writers inside"
                    );
                    std::thread::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    entries.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(entries.load(Ordering::SeqCst), 800);
}

#[test]
fn different_names_never_block_each_other() {
    let (_d, m) = manager();
    let _a = m
        .acquire_lock("scan1", LockType::Exclusive, "u", None)
        .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _a10 = m
                .try_acquire_lock("scan10", LockType::Exclusive, "u")
                .unwrap();
            let _a = m
                .try_acquire_lock("scan", LockType::Exclusive, "u")
                .unwrap();
        });
    });
}

#[test]
fn reentrancy_is_counted_per_thread() {
    let (_d, m) = manager();
    let x1 = m
        .acquire_lock("scan001", LockType::Exclusive, "u", None)
        .unwrap();
    let x2 = m
        .try_acquire_lock("scan001", LockType::Exclusive, "u")
        .unwrap();
    let s1 = m
        .try_acquire_lock("scan001", LockType::Shared, "u")
        .unwrap();
    drop(x1);
    drop(s1);
    // One hold is left: another thread still cannot get in.
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(
                m.try_acquire_lock("scan001", LockType::Shared, "v")
                    .is_err()
            )
        });
    });
    drop(x2);
    std::thread::scope(|s| {
        s.spawn(|| {
            drop(
                m.try_acquire_lock("scan001", LockType::Shared, "v")
                    .unwrap(),
            );
        });
    });

    let r1 = m
        .acquire_lock("scan002", LockType::Shared, "u", None)
        .unwrap();
    let r2 = m
        .acquire_lock("scan002", LockType::Shared, "u", None)
        .unwrap();
    drop(r1);
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(
                m.try_acquire_lock("scan002", LockType::Exclusive, "v")
                    .is_err()
            )
        });
    });
    drop(r2);
    std::thread::scope(|s| {
        s.spawn(|| {
            drop(
                m.try_acquire_lock("scan002", LockType::Exclusive, "v")
                    .unwrap(),
            );
        });
    });
}

#[test]
fn upgrade_is_refused_at_once() {
    let (_d, m) = manager();
    let _r = m
        .acquire_lock("scan001", LockType::Shared, "u", None)
        .unwrap();
    let start = Instant::now();
    let e = m
        .acquire_lock_with("scan001", LockType::Exclusive, "u", Wait::Forever)
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "upgrade waited instead of failing"
    );
    match &e {
        LockError::WouldDeadlock {
            name,
            requested,
            held,
        } => {
            assert_eq!(
                (name.as_str(), *requested, *held),
                ("scan001", LockType::Exclusive, LockType::Shared)
            );
        }
        other => panic!("expected WouldDeadlock, got {other:?}"),
    }
    assert!(e.to_string().contains("\"scan001\""), "{e}");
}

#[test]
fn new_readers_queue_behind_a_waiting_writer() {
    let (_d, m) = manager();
    let r1 = m
        .acquire_lock("scan001", LockType::Shared, "r1", None)
        .unwrap();
    let writer_in = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let _w = m
                .acquire_lock("scan001", LockType::Exclusive, "w", Some(LONG))
                .unwrap();
            writer_in.store(true, Ordering::SeqCst);
        });
        // Wait until the writer is queued: then a new reader must not get in.
        assert!(eventually(LONG, || {
            s.spawn(|| {
                m.try_acquire_lock("scan001", LockType::Shared, "probe")
                    .is_err()
            })
            .join()
            .unwrap()
        }));
        // The reader that already holds may still re-enter (else it would deadlock).
        let again = m
            .try_acquire_lock("scan001", LockType::Shared, "r1")
            .unwrap();
        drop(again);
        assert!(!writer_in.load(Ordering::SeqCst));
        drop(r1);
        writer.join().unwrap();
    });
    assert!(writer_in.load(Ordering::SeqCst));
}

#[test]
fn timeouts_end_near_the_deadline_and_name_the_holder() {
    let (_d, m) = manager();
    let _g = m
        .acquire_lock("scan001", LockType::Exclusive, "writer1", None)
        .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            let e = m
                .acquire_lock(
                    "scan001",
                    LockType::Shared,
                    "reader",
                    Some(Duration::from_millis(200)),
                )
                .unwrap_err();
            let waited = start.elapsed();
            assert!(
                waited >= Duration::from_millis(200),
                "gave up early: {waited:?}"
            );
            assert!(
                waited < Duration::from_secs(3),
                "gave up far too late: {waited:?}"
            );
            let LockError::Timeout { holder, .. } = &e else {
                panic!("{e:?}")
            };
            let holder = holder.as_ref().expect("holder known");
            assert_eq!(
                (holder.user.as_str(), holder.pid),
                ("writer1", std::process::id())
            );
            let msg = e.to_string();
            assert!(
                msg.contains("\"scan001\"") && msg.contains("writer1"),
                "{msg}"
            );
        });
    });
}

#[test]
fn zero_timeout_is_one_attempt() {
    let (_d, m) = manager();
    let _g = m
        .acquire_lock("scan001", LockType::Exclusive, "w", None)
        .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let e = m
                .acquire_lock("scan001", LockType::Exclusive, "x", Some(Duration::ZERO))
                .unwrap_err();
            assert!(matches!(e, LockError::WouldBlock { .. }), "{e:?}");
        });
    });
}

#[test]
fn a_release_hands_over_to_a_forever_waiter() {
    let (_d, m) = manager();
    let g = m
        .acquire_lock("scan001", LockType::Exclusive, "w", None)
        .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _g = m
                .acquire_lock_with("scan001", LockType::Exclusive, "v", Wait::Forever)
                .unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "got in while held"
        );
        drop(g);
        rx.recv_timeout(LONG).expect("waiter never got the lock");
    });
}

#[test]
fn guards_release_from_other_threads() {
    let (_d, m) = manager();
    let g = m
        .acquire_lock_send("scan001", LockType::Exclusive, "w", scanlock::Wait::Default)
        .unwrap();
    std::thread::spawn(move || drop(g)).join().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            drop(
                m.try_acquire_lock("scan001", LockType::Exclusive, "v")
                    .unwrap(),
            );
        });
    });
}

#[test]
fn clones_share_one_registry() {
    let (_d, m) = manager();
    let m2 = m.clone();
    let _g = m
        .acquire_lock("scan001", LockType::Exclusive, "w", None)
        .unwrap();
    // Same thread through a clone: re-entrant, not a self-deadlock.
    let _g2 = m2
        .try_acquire_lock("scan001", LockType::Exclusive, "w")
        .unwrap();
    let m3 = Arc::new(m2);
    std::thread::spawn(move || {
        assert!(
            m3.try_acquire_lock("scan001", LockType::Shared, "v")
                .is_err()
        )
    })
    .join()
    .unwrap();
}

#[test]
fn status_reports_waiting_writers_and_names() {
    let (_d, m) = manager();
    let r = m
        .acquire_lock("scan001", LockType::Shared, "r", None)
        .unwrap();
    std::thread::scope(|s| {
        let w = s.spawn(|| {
            m.acquire_lock("scan001", LockType::Exclusive, "w", Some(LONG))
                .unwrap()
                .release()
        });
        assert!(
            eventually(LONG, || m
                .get_lock_status("scan001")
                .unwrap()
                .waiting_writers
                == vec![std::process::id()]),
            "the waiting writer never showed in status"
        );
        drop(r);
        w.join().unwrap().unwrap();
    });
    assert!(
        m.get_lock_status("scan001")
            .unwrap()
            .waiting_writers
            .is_empty()
    );
    let _odd = m.acquire_lock("a/b", LockType::Shared, "r", None).unwrap();
    assert_eq!(
        m.lock_names().unwrap(),
        vec!["a/b".to_owned(), "scan001".to_owned()]
    );
}

#[test]
fn a_process_reuses_one_record_per_name_and_hides_it_between_holds() {
    let (_d, m) = manager();
    let records = || {
        std::fs::read_dir(m.lock_dir().join("scan001.holders"))
            .unwrap()
            .count()
    };
    for user in ["first-user-with-a-long-name", "second"] {
        let g = m
            .acquire_lock("scan001", LockType::Exclusive, user, None)
            .unwrap();
        let st = m.get_lock_status("scan001").unwrap();
        assert_eq!(st.holders.len(), 1);
        assert_eq!(st.holders[0].user, user);
        drop(g);
        let st = m.get_lock_status("scan001").unwrap();
        assert!(st.holders.is_empty() && st.stale_records == 0, "{st:?}");
        assert_eq!(records(), 1, "the record file is reused, not recreated");
    }
    assert!(m.find_stale_records().unwrap().is_empty());
    // Two threads sharing at once need two records; the extra one goes away after.
    let a = m
        .acquire_lock("scan001", LockType::Shared, "a", None)
        .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _b = m
                .acquire_lock("scan001", LockType::Shared, "b", None)
                .unwrap();
            assert_eq!(m.get_lock_status("scan001").unwrap().holders.len(), 2);
            assert_eq!(records(), 2);
        });
    });
    drop(a);
    assert_eq!(records(), 1);
}

#[test]
fn managers_on_the_same_root_share_lock_state() {
    let dir = tempfile::tempdir().unwrap();
    let a = ScanLockManager::new(dir.path()).unwrap();
    let b = ScanLockManager::builder(dir.path().join("."))
        .default_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let _x = a
        .acquire_lock("scan001", LockType::Exclusive, "a", None)
        .unwrap();
    // The same thread through another manager re-enters instead of deadlocking...
    let _again = b
        .try_acquire_lock("scan001", LockType::Exclusive, "b")
        .unwrap();
    // ...while other threads are still excluded, and b keeps its own default timeout.
    std::thread::scope(|s| {
        s.spawn(|| {
            let e = b
                .acquire_lock("scan001", LockType::Shared, "c", None)
                .unwrap_err();
            let LockError::Timeout { waited, .. } = e else {
                panic!("{e:?}")
            };
            assert!(waited < Duration::from_secs(5), "{waited:?}");
        });
    });
}

/// `/proc/locks` is generated as it is read; read in pieces while other locks come and
/// go, it can skip entries. Status must never call a held lock free. Metadata is off,
/// so the kernel's table is all status has to go on (with metadata, the holder records
/// would cover a skipped entry).
#[test]
fn status_never_reports_a_held_lock_free_while_other_locks_churn() {
    let d = tempfile::tempdir().unwrap();
    let m = ScanLockManager::builder(d.path())
        .metadata(false)
        .build()
        .unwrap();
    // Enough held locks that the kernel's table spans many pages...
    let _many: Vec<_> = (0..300)
        .map(|i| {
            m.acquire_lock(&format!("bulk{i}"), LockType::Shared, "bulk", None)
                .unwrap()
        })
        .collect();
    let held = m
        .acquire_lock("target", LockType::Exclusive, "holder", None)
        .unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // ...and changes all the time.
        for t in 0..2 {
            let (m, stop) = (&m, &stop);
            s.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _g = m
                        .acquire_lock(
                            &format!("churn{t}-{}", i % 50),
                            LockType::Exclusive,
                            "c",
                            None,
                        )
                        .unwrap();
                    i += 1;
                }
            });
        }
        // Set on the way out, also when an assertion fails: the scope joins the churning
        // threads before it lets the panic through.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);
        for _ in 0..150 {
            let st = m.get_lock_status("target").unwrap();
            assert_eq!(st.lock_type, Some(LockType::Exclusive), "{st:?}");
        }
    });
    drop(held);
}
