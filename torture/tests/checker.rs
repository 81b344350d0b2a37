//! The checker must catch what it claims to catch: synthetic logs with known faults.

use std::path::Path;

use scanlock_torture::check::{check, read_logs};
use scanlock_torture::config::lock_names;

fn verdict_of(lines: &[&str]) -> scanlock_torture::check::Verdict {
    let dir = tempfile_dir();
    std::fs::write(dir.join("a.log"), lines.join("\n") + "\n").unwrap();
    let logs = read_logs(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    check(&logs, &lock_names(2))
}

fn tempfile_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "scanlock-checker-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn valid_history_passes() {
    let v = verdict_of(&[
        "H 0 S 0 10 a 0",
        "H 0 S 5 15 b 0",
        "H 0 X 15 20 c 100",
        "H 0 X 21 30 d 101",
        "H 1 X 0 100 e 0", // another name
        "O timed 0 0 50 20 1 ok",
        "O try 0 0 1 0 1 WouldBlock",
        "O upgrade 0 0 1 0 1 WouldDeadlock",
        "O forever 0 0 99999999999 18446744073709551615 1 Io:EROFS",
    ]);
    assert!(v.violations.is_empty(), "{:?}", v.violations);
    assert_eq!((v.holds, v.ops, v.tokens), (5, 4, 2));
}

#[test]
fn overlaps_are_caught() {
    for lines in [
        &["H 0 S 0 100 a 0", "H 0 X 50 60 b 0"][..],
        &["H 0 X 0 100 a 0", "H 0 S 50 60 b 0"],
        &["H 0 X 0 100 a 0", "H 0 X 99 160 b 0"],
        // A hold cut short by SIGKILL: its entry lies inside another exclusive hold.
        &["H 0 X 0 100 a 0", "B 0 S 50 b"],
    ] {
        let v = verdict_of(lines);
        assert!(
            v.violations.iter().any(|x| x.contains("exclusion broken")),
            "{lines:?}: {:?}",
            v.violations
        );
    }
}

#[test]
fn bad_outcomes_are_caught() {
    let cases = [
        ("O upgrade 0 0 1 0 1 ok", "not allowed"),
        ("O try 0 0 1 0 1 Timeout", "not allowed"),
        (
            "O forever 0 0 1 18446744073709551615 1 Timeout",
            "not allowed",
        ),
        ("O reenter 0 0 1 0 1 WouldBlock", "not allowed"),
        ("O timed 0 0 1 10 1 !Timeout", "does not name"),
        ("O timed 0 0 1 10 1 Io:ENOENT", "unexpected I/O"),
        // 10 ms allowed, returned after 2 s.
        ("O timed 0 0 2000000000 10 1 Timeout", "after its deadline"),
        ("V status trusted a forged record", "self-reported"),
    ];
    for (line, want) in cases {
        let v = verdict_of(&[line]);
        assert!(
            v.violations.iter().any(|x| x.contains(want)),
            "{line}: {:?}",
            v.violations
        );
    }
}

#[test]
fn lateness_of_a_stopped_process_is_excused() {
    let v = verdict_of(&[
        "O timed 0 0 2000000000 10 42 Timeout",
        "S 42 100 1500000000",
    ]);
    assert!(v.violations.is_empty(), "{:?}", v.violations);
}

#[test]
fn tokens_must_increase() {
    let v = verdict_of(&["H 0 X 0 10 a 100", "H 0 X 20 30 b 100"]);
    assert!(
        v.violations.iter().any(|x| x.contains("fencing token")),
        "{:?}",
        v.violations
    );
}

#[test]
fn unparseable_lines_are_refused_unless_torn_at_the_end() {
    let dir = tempfile_dir();
    std::fs::write(
        dir.join("a.log"),
        "H 0 X 0 10 a 1\ngarbage\nH 0 X 20 30 b 2\n",
    )
    .unwrap();
    assert!(read_logs(Path::new(&dir)).is_err());
    std::fs::write(dir.join("a.log"), "H 0 X 0 10 a 1\nH 0 X 20").unwrap();
    let logs = read_logs(Path::new(&dir)).unwrap();
    assert_eq!(logs.holds.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// PostgreSQL runs: a hold its holder reported lost is judged up to the termination of
/// its process's session; a hold not reported lost is judged in full, so a guard that
/// says "held" after the server handed the lock on is caught.
#[test]
fn terminated_sessions_cut_lost_holds_only() {
    let lost = verdict_of(&[
        "T w1.0 42 50 51",
        "H 0 X 0 100 w1.0.t0 0 lost",
        "H 0 X 60 70 w2.0.t0 0",
        // Entered after the termination began: nothing left to judge.
        "H 0 S 55 80 w1.0.t1 0 lost",
        "O release 0 100 101 0 42 Io:ConnectionAborted",
    ]);
    assert!(lost.violations.is_empty(), "{:?}", lost.violations);
    assert_eq!((lost.holds_lost, lost.holds_lost_unchecked), (2, 1));

    let unnoticed = verdict_of(&[
        "T w1.0 42 50 51",
        "H 0 X 0 100 w1.0.t0 0",
        "H 0 X 60 70 w2.0.t0 0",
    ]);
    assert!(
        unnoticed
            .violations
            .iter()
            .any(|x| x.contains("exclusion broken")),
        "{:?}",
        unnoticed.violations
    );

    // Another worker's termination does not excuse this one.
    let wrong_process = verdict_of(&["T w1.0 42 50 51", "H 0 X 0 100 w1.1.t0 0 lost"]);
    assert!(
        wrong_process
            .violations
            .iter()
            .any(|x| x.contains("never terminated")),
        "{:?}",
        wrong_process.violations
    );

    // Terminated while the holder was asking `is_held` (just after the hold's logged
    // end): the lock was held up to that end, so the hold is judged in full.
    let during_check = verdict_of(&[
        "T w1.0 42 150 151",
        "H 0 X 0 100 w1.0.t0 0 lost",
        "H 0 X 90 120 w2.0.t0 0",
    ]);
    assert!(
        during_check
            .violations
            .iter()
            .any(|x| x.contains("exclusion broken")),
        "{:?}",
        during_check.violations
    );
    let during_check_ok = verdict_of(&["T w1.0 42 150 151", "H 0 X 0 100 w1.0.t0 0 lost"]);
    assert!(
        during_check_ok.violations.is_empty(),
        "{:?}",
        during_check_ok.violations
    );
    // ... but not a termination seconds later.
    let much_later = verdict_of(&[
        "T w1.0 42 3000000100 3000000101",
        "H 0 X 0 100 w1.0.t0 0 lost",
    ]);
    assert!(
        much_later
            .violations
            .iter()
            .any(|x| x.contains("never terminated")),
        "{:?}",
        much_later.violations
    );

    let aborted_without_cause = verdict_of(&[
        "T w1.0 42 50 51",
        "O release 0 100 101 0 43 Io:ConnectionAborted",
    ]);
    assert!(
        aborted_without_cause
            .violations
            .iter()
            .any(|x| x.contains("unexpected I/O")),
        "{:?}",
        aborted_without_cause.violations
    );
}
