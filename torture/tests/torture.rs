//! Runs the torture harness in its short mode: every fault kind, a few seconds, zero
//! violations required. The long modes run from .ci/run and by hand (RELIABILITY.md).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

fn figure(out: &str, key: &str) -> u64 {
    let result = out
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{out}"));
    result
        .split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {result}"))
}

/// Runs the harness with `args` (within its own deadlines: it stops its children within
/// 30 s of the end of the fault phase, or reports them as hung) and returns its stdout
/// after checking that it succeeded with zero violations.
fn run_torture(args: &[&str]) -> String {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_scanlock-torture"))
        .args(["--workers", "3", "--threads", "3", "--names", "4"])
        .args(["--seconds", "6", "--seed", "7"])
        .args(args)
        .output()
        .expect("run scanlock-torture");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "torture run failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert_eq!(figure(&stdout, "violations"), 0, "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(60), "{stdout}");
    stdout
}

/// A line on stderr that the test harness does not capture, so a skip is visible.
fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

#[test]
fn short_torture_run_has_no_violations() {
    let stdout = run_torture(&["--faults", "all"]);
    // The run really ran: operations, holds and faults in numbers.
    assert!(figure(&stdout, "ops") > 1_000, "{stdout}");
    assert!(figure(&stdout, "holds") > 500, "{stdout}");
    assert!(figure(&stdout, "faults") > 20, "{stdout}");
}

/// The same against PostgreSQL (`SCANLOCK_TEST_PG_URL`, feature `postgres`), with
/// `pg_terminate_backend` of holders' sessions as the fault that matters there: a holder
/// whose session ends must see `is_held() == false`, and no hold it still believes in
/// may overlap another.
#[test]
fn short_torture_run_against_postgres_has_no_violations() {
    let Ok(url) = std::env::var("SCANLOCK_TEST_PG_URL") else {
        skipped("PostgreSQL torture: SCANLOCK_TEST_PG_URL is not set");
        return;
    };
    if !cfg!(feature = "postgres") {
        skipped("PostgreSQL torture: built without the `postgres` feature (--all-features)");
        return;
    }
    let stdout = run_torture(&["--url", &url, "--faults", PG_FAULTS]);
    assert!(figure(&stdout, "ops") > 500, "{stdout}");
    assert!(figure(&stdout, "faults") > 10, "{stdout}");
    assert!(
        stdout.contains("pgterm"),
        "no session was terminated:\n{stdout}"
    );
}

/// Faults of the PostgreSQL run: every fault that applies to a back end reached by URL
/// (SIGSTOP of holders whose sessions are terminated meanwhile, descriptor exhaustion;
/// see RELIABILITY.md, "PostgreSQL back end", for what they found).
const PG_FAULTS: &str = "kill,stop,cleanup,fdlimit,pgterm";

#[test]
fn bad_arguments_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_scanlock-torture"))
        .args(["--faults", "kill,meteor"])
        .output()
        .expect("run scanlock-torture");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown fault `meteor`"));
}
