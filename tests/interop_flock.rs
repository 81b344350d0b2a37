//! Interoperation with util-linux `flock(1)`, which shell scripts use to guard scans:
//! `flock <root>/.locks/<scan_id>.lock ...` and a scanlock holder of `<scan_id>` exclude
//! each other in both directions, and shared holders of both coexist.
//!
//! Every wait has a deadline; the shell holders end themselves after 20 s at most.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use scanlock::{LockError, LockType, ScanLockManager};
use scanlock_testkit::{
    IntervalLog, ROLE_VAR, Rng, assert_exclusion, eventually, monotonic_ns, read_intervals, role,
    spawn_self, wait_deadline,
};

const LONG: Duration = Duration::from_secs(20);

/// `flock(1)` holding `lock` in `mode` (`-x` or `-s`) until `stop` exists.
struct ShellHolder {
    child: Child,
    ready: PathBuf,
    stop: PathBuf,
}

impl ShellHolder {
    fn start(root: &Path, mode: &str, lock: &Path) -> ShellHolder {
        let ready = root.join(format!("ready{mode}"));
        let stop = root.join(format!("stop{mode}"));
        // The script ends by itself after 20 s if the test never creates `stop`.
        let script = r#"touch "$1"; i=0; while [ ! -e "$2" ] && [ $i -lt 2000 ]; do sleep 0.01; i=$((i+1)); done"#;
        let child = Command::new("flock")
            .arg(mode)
            .arg(lock)
            .args(["sh", "-c", script, "sh"])
            .arg(&ready)
            .arg(&stop)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn flock(1) (util-linux)");
        let mut h = ShellHolder { child, ready, stop };
        let ready = h.ready.clone();
        let ok = eventually(LONG, || {
            ready.exists() || h.child.try_wait().expect("try_wait").is_some()
        });
        assert!(ok && ready.exists(), "flock(1) {mode} never got {lock:?}");
        h
    }

    /// flock(1) itself holds the lock (its command only inherits the descriptor).
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn finish(mut self) {
        std::fs::write(&self.stop, b"").unwrap();
        let st = wait_deadline(&mut self.child, LONG, "flock(1) holder");
        assert!(st.success(), "flock(1) holder: {st}");
    }
}

/// Runs `flock <args> <lock> true` with a deadline.
fn flock_run(args: &[&str], lock: &Path) -> ExitStatus {
    let mut child = Command::new("flock")
        .args(args)
        .arg(lock)
        .arg("true")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn flock(1) (util-linux)");
    wait_deadline(&mut child, LONG, "flock(1)")
}

fn manager(root: &Path) -> (ScanLockManager, PathBuf) {
    let m = ScanLockManager::new(root).unwrap();
    let lock = m.lock_dir().join("scan001.lock");
    (m, lock)
}

/// `flock -x` holds scan001 → scanlock cannot get it in either mode, `get_lock_status`
/// shows flock(1)'s pid, and a waiting scanlock acquisition gets in once it lets go.
#[test]
fn flock1_exclusive_holder_excludes_scanlock() {
    let dir = tempfile::tempdir().unwrap();
    let (m, lock) = manager(dir.path());
    assert!(!lock.exists(), "flock(1) creates the file here");
    let holder = ShellHolder::start(dir.path(), "-x", &lock);

    for mode in [LockType::Exclusive, LockType::Shared] {
        let e = m.try_acquire_lock("scan001", mode, "rust").unwrap_err();
        assert!(matches!(e, LockError::WouldBlock { .. }), "{mode:?}: {e:?}");
    }
    let t = Instant::now();
    let e = m
        .acquire_lock(
            "scan001",
            LockType::Shared,
            "rust",
            Some(Duration::from_millis(200)),
        )
        .unwrap_err();
    assert!(matches!(e, LockError::Timeout { .. }), "{e:?}");
    assert!(t.elapsed() >= Duration::from_millis(200));

    let st = m.get_lock_status("scan001").unwrap();
    assert_eq!(st.lock_type, Some(LockType::Exclusive), "{st:?}");
    assert_eq!(
        st.holders.iter().map(|h| h.pid).collect::<Vec<_>>(),
        vec![holder.pid()],
        "{st:?}"
    );
    assert_eq!(st.holders[0].lock_type, LockType::Exclusive);

    // A waiter gets in once flock(1) exits.
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            m.acquire_lock("scan001", LockType::Exclusive, "rust", Some(LONG))
                .map(|g| g.release())
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiter.is_finished(), "got the lock while flock(1) held it");
        holder.finish();
        waiter.join().unwrap().unwrap().unwrap();
    });
    assert!(m.get_lock_status("scan001").unwrap().is_free());
}

/// A scanlock holder → `flock -n` fails (exit 1) for every conflicting mode, a blocking
/// `flock` waits until scanlock releases, and shared + shared coexist.
#[test]
fn scanlock_holder_excludes_flock1() {
    let dir = tempfile::tempdir().unwrap();
    let (m, lock) = manager(dir.path());

    let g = m
        .acquire_lock("scan001", LockType::Exclusive, "rust", None)
        .unwrap();
    assert_eq!(flock_run(&["-n", "-x"], &lock).code(), Some(1));
    assert_eq!(flock_run(&["-n", "-s"], &lock).code(), Some(1));
    assert_eq!(flock_run(&["-w", "0.2", "-x"], &lock).code(), Some(1));

    // A blocking flock(1) waits for the release.
    let marker = dir.path().join("got-it");
    let mut waiter = Command::new("flock")
        .args(["-w", "20", "-x"])
        .arg(&lock)
        .args(["touch"])
        .arg(&marker)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        waiter.try_wait().unwrap().is_none() && !marker.exists(),
        "flock(1) got in while scanlock held the lock"
    );
    g.release().unwrap();
    assert!(wait_deadline(&mut waiter, LONG, "blocking flock(1)").success());
    assert!(marker.exists());
    assert_eq!(flock_run(&["-n", "-x"], &lock).code(), Some(0));

    // Shared: flock -s coexists, flock -x does not.
    let r = m
        .acquire_lock("scan001", LockType::Shared, "rust", None)
        .unwrap();
    assert_eq!(flock_run(&["-n", "-s"], &lock).code(), Some(0));
    assert_eq!(flock_run(&["-n", "-x"], &lock).code(), Some(1));
    drop(r);
    assert_eq!(flock_run(&["-n", "-x"], &lock).code(), Some(0));
}

/// `flock -s` holds scan001 → scanlock readers get in beside it, writers do not; status
/// shows both holders.
#[test]
fn flock1_shared_holder_coexists_with_scanlock_readers() {
    let dir = tempfile::tempdir().unwrap();
    let (m, lock) = manager(dir.path());
    let holder = ShellHolder::start(dir.path(), "-s", &lock);

    let r = m
        .try_acquire_lock("scan001", LockType::Shared, "rust-reader")
        .expect("shared beside flock -s");
    let st = m.get_lock_status("scan001").unwrap();
    assert_eq!(st.lock_type, Some(LockType::Shared), "{st:?}");
    let mut pids: Vec<_> = st.holders.iter().map(|h| (h.pid, h.user.clone())).collect();
    pids.sort();
    let mut want = vec![
        (holder.pid(), String::new()),
        (std::process::id(), "rust-reader".to_owned()),
    ];
    want.sort();
    assert_eq!(pids, want, "{st:?}");
    drop(r);

    let e = m
        .try_acquire_lock("scan001", LockType::Exclusive, "rust-writer")
        .unwrap_err();
    assert!(matches!(e, LockError::WouldBlock { .. }), "{e:?}");
    holder.finish();
    let w = m
        .try_acquire_lock("scan001", LockType::Exclusive, "rust-writer")
        .expect("free after flock(1) exits");
    w.release().unwrap();
}

const RACE: &str = "flock1_and_scanlock_exclusive_holders_race";
const RACE_ITERS: usize = 30;
const SHELL_DRIVERS: usize = 2;
const RUST_WORKERS: usize = 2;

/// Two scanlock worker processes and two loops of `flock -x scan001.lock <inside>` hold
/// scan001 exclusively, interleaved; the enter/exit log (CLOCK_MONOTONIC) proves that no
/// two holds overlapped and that the lock really changed hands between the two tools.
#[test]
fn flock1_and_scanlock_exclusive_holders_race() {
    match role().as_deref() {
        Some("rust-worker") => return race_rust_worker(),
        Some("inside-flock") => return race_inside_flock(),
        Some(_) => return,
        None => {}
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let logs = root.join("logs");
    std::fs::create_dir(&logs).unwrap();
    let (_m, lock) = manager(root);
    let env = vec![("SCANLOCK_TEST_ROOT", root.display().to_string())];

    let mut workers: Vec<_> = (0..RUST_WORKERS)
        .map(|_| spawn_self(RACE, "rust-worker", &env))
        .collect();
    std::thread::scope(|s| {
        for _ in 0..SHELL_DRIVERS {
            let (lock, env) = (&lock, &env);
            s.spawn(move || {
                let exe = std::env::current_exe().unwrap();
                for _ in 0..RACE_ITERS {
                    let mut c = Command::new("flock");
                    c.args(["-w", "20", "-x"])
                        .arg(lock)
                        .arg(&exe)
                        .args([RACE, "--exact", "--nocapture", "--test-threads=1"])
                        .env(ROLE_VAR, "inside-flock")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null());
                    for (k, v) in env {
                        c.env(k, v);
                    }
                    let st = wait_deadline(&mut c.spawn().unwrap(), LONG, "flock(1) hold");
                    assert!(st.success(), "flock(1) hold: {st}");
                }
            });
        }
    });
    for w in &mut workers {
        assert!(wait_deadline(w, Duration::from_secs(60), "rust worker").success());
    }

    let mut intervals = read_intervals(&logs);
    assert_eq!(
        intervals.len(),
        (SHELL_DRIVERS + RUST_WORKERS) * RACE_ITERS,
        "every hold was logged"
    );
    assert_exclusion(&intervals);
    intervals.sort_by_key(|i| i.start);
    let tool = |who: &str| who.starts_with("flock");
    let handovers = intervals
        .windows(2)
        .filter(|w| tool(&w[0].who) != tool(&w[1].who))
        .count();
    println!(
        "{} holds, {handovers} hand-overs between flock(1) and scanlock",
        intervals.len()
    );
    assert!(
        handovers >= 10,
        "only {handovers} hand-overs: the race did not interleave the tools"
    );
}

fn race_root() -> PathBuf {
    PathBuf::from(std::env::var("SCANLOCK_TEST_ROOT").expect("SCANLOCK_TEST_ROOT"))
}

fn race_rust_worker() {
    let root = race_root();
    let pid = std::process::id();
    let m = ScanLockManager::new(&root).unwrap();
    let mut log = IntervalLog::create(&root.join("logs").join(format!("rust-{pid}.log")));
    let mut rng = Rng::new(u64::from(pid));
    for _ in 0..RACE_ITERS {
        let g = m
            .acquire_lock("scan001", LockType::Exclusive, "racer", Some(LONG))
            .unwrap();
        let start = monotonic_ns();
        std::thread::sleep(Duration::from_micros(500 + rng.below(1500)));
        let end = monotonic_ns();
        g.release().unwrap();
        log.record("scan001", &format!("rust-{pid}"), true, start, end);
        std::thread::sleep(Duration::from_micros(rng.below(10_000)));
    }
}

/// Runs while flock(1) holds the lock (this process is its command).
fn race_inside_flock() {
    let root = race_root();
    let pid = std::process::id();
    let start = monotonic_ns();
    std::thread::sleep(Duration::from_micros(500 + u64::from(pid % 1500)));
    let end = monotonic_ns();
    IntervalLog::create(&root.join("logs").join(format!("flock-{pid}.log"))).record(
        "scan001",
        &format!("flock-{pid}"),
        true,
        start,
        end,
    );
}
