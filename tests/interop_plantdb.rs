//! Interoperation with plantdb's lock manager (`plantdb-commons` 0.17,
//! `plantdb.commons.fsdb.lock.LockManager`) on the same scans directory.
//!
//! The tests that run Python need an interpreter that can
//! `import plantdb.commons.fsdb.lock`: `$SCANLOCK_TEST_PLANTDB_PYTHON`, else `python3`
//! (`.ci/run` makes a virtualenv and sets the variable). Without one they print a
//! `SKIPPED:` line and pass. The Python side is `tests/support/plantdb_worker.py`.
//!
//! The tests about plantdb's files (`.info` in every shape, a truncated or deleted
//! `.lock`) need no Python and always run.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use scanlock::{LockError, LockType, ScanLockManager, Wait};
use scanlock_testkit::{
    Interval, IntervalLog, Rng, assert_exclusion, eventually, monotonic_ns, read_intervals, role,
    spawn_self, wait_deadline,
};

const LONG: Duration = Duration::from_secs(20);
const WORKER_PY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/plantdb_worker.py"
);

/// The interpreter with plantdb, or `None` after printing why the test is skipped.
fn plantdb_python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let py =
            std::env::var_os("SCANLOCK_TEST_PLANTDB_PYTHON").unwrap_or_else(|| "python3".into());
        let probe = Command::new(&py)
            .args(["-c", "import plantdb.commons.fsdb.lock"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let ok = probe.is_ok_and(|mut c| wait_deadline(&mut c, LONG, "python probe").success());
        ok.then(|| PathBuf::from(py))
    });
    if found.is_none() {
        // Straight to the stderr descriptor: the harness captures print!/eprint! of
        // passing tests, and a skip must be visible.
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED: plantdb interop (no python with plantdb.commons.fsdb.lock; set SCANLOCK_TEST_PLANTDB_PYTHON or run .ci/run)"
        );
    }
    found.as_deref()
}

/// Exit codes of plantdb_worker.py.
const PY_OK: i32 = 0;
const PY_TIMEOUT: i32 = 2;

fn py(python: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Command {
    let mut c = Command::new(python);
    c.arg(WORKER_PY)
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(Stdio::null());
    c
}

/// A plantdb process holding `scan` in `mode` until [`PyHolder::finish`].
struct PyHolder {
    child: Child,
    stop: PathBuf,
}

impl PyHolder {
    fn start(python: &Path, root: &Path, scan: &str, mode: &str, user: &str) -> PyHolder {
        PyHolder::start_with(python, root, scan, mode, user, &[])
    }

    fn start_with(
        python: &Path,
        root: &Path,
        scan: &str,
        mode: &str,
        user: &str,
        env: &[(&str, &str)],
    ) -> PyHolder {
        let ready = root.join(format!("py-ready-{mode}-{user}"));
        let stop = root.join(format!("py-stop-{mode}-{user}"));
        let mut child = py(
            python,
            &[&"hold", &root, &scan, &mode, &user, &ready, &stop, &"20"],
        )
        .envs(env.iter().copied())
        .spawn()
        .expect("spawn python");
        let ok = eventually(LONG, || {
            ready.exists() || child.try_wait().expect("try_wait").is_some()
        });
        assert!(ok && ready.exists(), "plantdb never got {scan} {mode}");
        PyHolder { child, stop }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn finish(mut self) {
        std::fs::write(&self.stop, b"").unwrap();
        let st = wait_deadline(&mut self.child, LONG, "plantdb holder");
        assert_eq!(st.code(), Some(PY_OK), "plantdb holder: {st}");
    }
}

/// One plantdb acquisition with plantdb's own timeout; its exit status.
fn py_try(python: &Path, root: &Path, mode: &str, timeout_s: &str) -> ExitStatus {
    let mut c = py(
        python,
        &[&"try", &root, &"scan001", &mode, &"py-try", &timeout_s],
    )
    .spawn()
    .expect("spawn python");
    wait_deadline(&mut c, LONG, "plantdb try")
}

fn info_path(m: &ScanLockManager) -> PathBuf {
    m.lock_dir().join("scan001.info")
}

fn ino(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

/// plantdb holds scan001 exclusively → scanlock cannot get it; status shows plantdb's
/// pid and user; scanlock's start-up cleanup, cleanup and status leave plantdb's
/// `.info` alone; a waiting scanlock acquisition gets in after plantdb releases.
#[test]
fn plantdb_exclusive_holder_excludes_scanlock() {
    let Some(python) = plantdb_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let holder = PyHolder::start(python, root, "scan001", "exclusive", "web-ui");
    let m = ScanLockManager::new(root).unwrap(); // runs scanlock's stale cleanup
    let info = std::fs::read(info_path(&m)).expect("plantdb wrote scan001.info");

    for mode in [LockType::Exclusive, LockType::Shared] {
        let e = m.try_acquire_lock("scan001", mode, "worker").unwrap_err();
        assert!(matches!(e, LockError::WouldBlock { .. }), "{mode:?}: {e:?}");
    }
    let e = m
        .acquire_lock(
            "scan001",
            LockType::Exclusive,
            "worker",
            Some(Duration::from_millis(300)),
        )
        .unwrap_err();
    assert!(matches!(e, LockError::Timeout { .. }), "{e:?}");
    assert!(
        e.to_string().contains("web-ui"),
        "names plantdb's user: {e}"
    );

    let st = m.get_lock_status("scan001").unwrap();
    assert_eq!(st.lock_type, Some(LockType::Exclusive), "{st:?}");
    assert_eq!(st.holders.len(), 1, "{st:?}");
    assert_eq!(
        st.stale_records, 0,
        "a held lock's .info is not stale: {st:?}"
    );
    let h = &st.holders[0];
    assert_eq!(
        (h.pid, h.user.as_str(), h.lock_type),
        (holder.pid(), "web-ui", LockType::Exclusive),
        "{st:?}"
    );
    assert!(
        h.acquired_at > SystemTime::UNIX_EPOCH,
        "plantdb's timestamp"
    );

    m.cleanup_stale_locks().unwrap();
    assert!(m.find_stale_records().unwrap().is_empty());
    drop(ScanLockManager::new(root).unwrap());
    assert_eq!(
        std::fs::read(info_path(&m)).unwrap(),
        info,
        "scanlock touched the .info of a held lock"
    );

    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            m.acquire_lock("scan001", LockType::Exclusive, "worker", Some(LONG))
                .map(|g| g.release())
        });
        std::thread::sleep(Duration::from_millis(150));
        assert!(!waiter.is_finished(), "got in while plantdb held the lock");
        holder.finish();
        waiter.join().unwrap().unwrap().unwrap();
    });
}

/// scanlock holds scan001 exclusively → plantdb times out (`LockTimeoutError`) in either
/// mode, and neither its failed attempts nor its start-up sweep replace scanlock's file;
/// after the release plantdb gets in, and its deleting the `.lock` costs scanlock
/// nothing (the fencing token lives in the gate file).
#[test]
fn scanlock_exclusive_holder_excludes_plantdb() {
    let Some(python) = plantdb_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let m = ScanLockManager::new(root).unwrap();
    let lock = m.lock_dir().join("scan001.lock");
    let g = m
        .acquire_lock("scan001", LockType::Exclusive, "worker", None)
        .unwrap();
    let token = g.fencing_token();
    let inode = ino(&lock);
    for mode in ["exclusive", "shared"] {
        let st = py_try(python, root, mode, "0.5");
        assert_eq!(st.code(), Some(PY_TIMEOUT), "plantdb {mode}: {st}");
    }
    assert_eq!(ino(&lock), inode, "plantdb replaced a held lock file");
    let st = m.get_lock_status("scan001").unwrap();
    assert_eq!(st.holders.len(), 1, "{st:?}");
    assert_eq!(st.holders[0].user, "worker");
    g.release().unwrap();

    let st = py_try(python, root, "exclusive", "5");
    assert_eq!(st.code(), Some(PY_OK), "plantdb after release: {st}");
    assert!(
        !lock.exists(),
        "plantdb 0.17 deletes the lock file on release"
    );
    let g = m
        .try_acquire_lock("scan001", LockType::Exclusive, "worker")
        .unwrap();
    assert!(
        g.fencing_token() > token,
        "the fencing token survived plantdb"
    );
    drop(g);
}

/// Shared holders of both tools coexist, in both orders; a writer of the other tool
/// is kept out meanwhile.
#[test]
fn plantdb_and_scanlock_shared_holders_coexist() {
    let Some(python) = plantdb_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let m = ScanLockManager::new(root).unwrap();

    // plantdb first.
    let holder = PyHolder::start(python, root, "scan001", "shared", "viewer");
    let r = m
        .try_acquire_lock("scan001", LockType::Shared, "reader")
        .expect("scanlock shared beside plantdb shared");
    let st = m.get_lock_status("scan001").unwrap();
    assert_eq!(st.lock_type, Some(LockType::Shared), "{st:?}");
    let mut seen: Vec<_> = st.holders.iter().map(|h| (h.pid, h.user.clone())).collect();
    seen.sort();
    let mut want = vec![
        (holder.pid(), "viewer".to_owned()),
        (std::process::id(), "reader".to_owned()),
    ];
    want.sort();
    assert_eq!(seen, want, "{st:?}");
    drop(r);
    let e = m
        .try_acquire_lock("scan001", LockType::Exclusive, "writer")
        .unwrap_err();
    assert!(matches!(e, LockError::WouldBlock { .. }), "{e:?}");
    holder.finish();

    // scanlock first. (plantdb's exclusive attempt first: the shared plantdb holder's
    // release below deletes the lock file under our reader, the limit that
    // docs-migrating-from-plantdb.md documents.)
    let r = m
        .acquire_lock("scan001", LockType::Shared, "reader", None)
        .unwrap();
    let st = py_try(python, root, "exclusive", "0.5");
    assert_eq!(
        st.code(),
        Some(PY_TIMEOUT),
        "plantdb exclusive beside a reader: {st}"
    );
    let st = py_try(python, root, "shared", "5");
    assert_eq!(
        st.code(),
        Some(PY_OK),
        "plantdb shared beside a reader: {st}"
    );
    drop(r);
}

const RACE: &str = "plantdb_and_scanlock_exclusive_holders_race";
const RACE_PY: usize = 3;
const RACE_RS: usize = 3;
/// Holds per plantdb racer (`RACE_ITERS` in the environment for a longer run); the
/// scanlock racers go on until the plantdb racers are done.
const RACE_ITERS: usize = 15;
/// plantdb holds are longer than scanlock's, so a scanlock worker is often waiting
/// when plantdb releases (the dangerous hand-over).
const RACE_PY_HOLD_MS: u64 = 8;
const RACE_RS_HOLD_MS: u64 = 2;
/// scanlock racers that wait with `Wait::Forever` (the others poll with a timeout).
const RACE_RS_FOREVER: usize = 2;
/// A scanlock racer pauses up to this long between holds, leaving plantdb (which
/// polls every 100 ms) moments to get in.
const RACE_RS_THINK_US: u64 = 40_000;
/// plantdb racers whose unlink of the `.lock` after unlocking is delayed (by up to
/// [`RACE_PREEMPT_MS`]), as a preemption would: the window the `.info` rule closes,
/// widened from microseconds so every run meets it, whatever the number of CPUs. The
/// other plantdb racers run at plantdb's natural speed.
const RACE_PY_PREEMPTED: usize = 2;
const RACE_PREEMPT_MS: u64 = 2;
/// The same for the plantdb racers, in ms.
const RACE_PY_THINK_MS: u64 = 40;

/// The issue's race: 3 plantdb and 3 scanlock processes take scan001 exclusively in a
/// loop. The enter/exit log (CLOCK_MONOTONIC ns from both languages) must show no two
/// holds overlapping, and enough hand-overs between the tools to mean something:
/// plantdb unlocks before it deletes its `.lock` and `.info`, and a scanlock waiter
/// that locked the old file in between must notice through the `.info` rule.
///
/// All managers are created before the first hold (a barrier file): a plantdb manager
/// starting while others work is the unsafe case the migration notes forbid.
#[test]
fn plantdb_and_scanlock_exclusive_holders_race() {
    match role().as_deref() {
        Some("rs-racer") => return rs_racer(),
        Some(_) => return,
        None => {}
    }
    let Some(python) = plantdb_python() else {
        return;
    };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let logs = root.join("logs");
    std::fs::create_dir(&logs).unwrap();
    let go = root.join("go");
    let iters = env_num("RACE_ITERS", RACE_ITERS as u64) as usize;
    let iters_s = iters.to_string();
    let hold_ms = env_num("RACE_PY_HOLD_MS", RACE_PY_HOLD_MS).to_string();
    let think_ms = env_num("RACE_PY_THINK_MS", RACE_PY_THINK_MS).to_string();

    let mut children: Vec<(&str, Child)> = Vec::new();
    let await_ready = |c: &mut Child, ready: &Path, what: &str| {
        let ok = eventually(LONG, || {
            ready.exists() || c.try_wait().expect("try_wait").is_some()
        });
        assert!(ok && ready.exists(), "{what} {} never became ready", c.id());
    };
    // One plantdb manager at a time: concurrent constructors on one root race on
    // `<root>/.write_test.tmp` (plantdb 0.17 then raises FileNotFoundError), and each
    // one's start-up sweep must find every lock free.
    for i in 0..RACE_PY {
        let ready = root.join(format!("ready-py-{i}"));
        let log = logs.join(format!("py-{i}.log"));
        let who = format!("py-{i}");
        let seed = i.to_string();
        let preempt = if i < RACE_PY_PREEMPTED {
            env_num("RACE_PREEMPT_MS", RACE_PREEMPT_MS)
        } else {
            0
        }
        .to_string();
        let mut c = py(
            python,
            &[
                &"race", &root, &"scan001", &log, &who, &iters_s, &hold_ms, &think_ms, &preempt,
                &ready, &go, &"30", &seed,
            ],
        )
        .spawn()
        .expect("spawn python");
        await_ready(&mut c, &ready, "plantdb racer");
        children.push(("plantdb racer", c));
    }
    for i in 0..RACE_RS {
        let ready = root.join(format!("ready-rs-{i}"));
        let env = [
            ("SCANLOCK_TEST_ROOT", root.display().to_string()),
            ("RACE_READY", ready.display().to_string()),
            ("RACE_FOREVER", u8::from(i < RACE_RS_FOREVER).to_string()),
        ];
        let mut c = spawn_self(RACE, "rs-racer", &env);
        await_ready(&mut c, &ready, "scanlock racer");
        children.push(("scanlock racer", c));
    }
    std::fs::write(&go, b"").unwrap();
    // The scanlock racers go on until the plantdb racers (slower: they poll every
    // 100 ms) are done, so the two overlap all along.
    for (i, (what, c)) in children.iter_mut().enumerate() {
        if i == RACE_PY {
            std::fs::write(root.join("stop"), b"").unwrap();
        }
        let st = wait_deadline(c, Duration::from_secs(60), what);
        assert!(st.success(), "{what}: {st}");
    }

    let mut intervals = read_intervals(&logs);
    let count = |prefix: &str| {
        intervals
            .iter()
            .filter(|i| i.who.starts_with(prefix))
            .count()
    };
    assert_eq!(
        count("py-"),
        RACE_PY * iters,
        "every plantdb hold was logged"
    );
    assert!(count("rs-") >= RACE_RS, "every scanlock hold was logged");
    let mut orphans = String::new();
    for e in std::fs::read_dir(&logs).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "orphans") {
            orphans.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
    let (handovers, tight) = handovers(&mut intervals);
    println!("ORPHANS {}", orphans.lines().count());
    if std::env::var_os("RACE_DEBUG").is_some() {
        let t = intervals[0].start;
        for i in &intervals {
            println!(
                "DBG {} {} {}",
                i.who,
                (i.start - t) / 1000,
                (i.end - t) / 1000
            );
        }
    }
    println!(
        "{} holds in {:.1?}: {handovers} hand-overs between plantdb and scanlock, {tight} from plantdb to a waiting scanlock worker (< 5 ms)",
        intervals.len(),
        t0.elapsed()
    );
    assert_exclusion(&intervals);
    assert!(
        orphans.is_empty(),
        "scanlock workers held a lock file that was deleted under them:\n{orphans}"
    );
    assert!(
        handovers >= 20 && tight >= 5,
        "the race hardly interleaved the tools ({handovers} hand-overs, {tight} tight): it proves nothing"
    );
}

/// Hand-overs between the tools in start order, and those from plantdb to scanlock
/// within 5 ms (a scanlock worker was waiting when plantdb released: the window the
/// `.info` rule closes).
fn handovers(intervals: &mut [Interval]) -> (usize, usize) {
    intervals.sort_by_key(|i| i.start);
    let py = |i: &Interval| i.who.starts_with("py-");
    let all = intervals
        .windows(2)
        .filter(|w| py(&w[0]) != py(&w[1]))
        .count();
    let tight = intervals
        .windows(2)
        .filter(|w| py(&w[0]) && !py(&w[1]) && w[1].start.saturating_sub(w[0].end) < 5_000_000)
        .count();
    (all, tight)
}

fn rs_racer() {
    let root = PathBuf::from(std::env::var("SCANLOCK_TEST_ROOT").unwrap());
    let forever = std::env::var("RACE_FOREVER").is_ok_and(|v| v == "1");
    let pid = std::process::id();
    let m = ScanLockManager::new(&root).unwrap();
    std::fs::write(std::env::var("RACE_READY").unwrap(), b"").unwrap();
    assert!(eventually(LONG, || root.join("go").exists()), "no go");
    let who = format!("rs-{pid}");
    let mut log = IntervalLog::create(&root.join("logs").join(format!("{who}.log")));
    let mut rng = Rng::new(u64::from(pid));
    let think: u64 = env_num("RACE_RS_THINK_US", RACE_RS_THINK_US);
    let lock = m.lock_dir().join("scan001.lock");
    let mut orphans = String::new();
    let hold_ms = env_num("RACE_RS_HOLD_MS", RACE_RS_HOLD_MS);
    let mut n = 0;
    while n == 0 || !root.join("stop").exists() {
        assert!(n < 100_000, "no stop");
        n += 1;
        // Blocking in the kernel wakes the moment plantdb unlocks: the most exposed
        // waiter (the parent's deadline bounds the wait).
        let wait = if forever {
            Wait::Forever
        } else {
            Wait::Timeout(LONG)
        };
        let g = m
            .acquire_lock_with("scan001", LockType::Exclusive, "racer", wait)
            .unwrap();
        let start = monotonic_ns();
        let held = held_inode(&lock);
        std::thread::sleep(Duration::from_millis(hold_ms));
        let at_path = std::fs::metadata(&lock).map(|md| md.ino()).ok();
        let end = monotonic_ns();
        g.release().unwrap();
        log.record("scan001", &who, true, start, end);
        if held != at_path {
            orphans.push_str(&format!(
                "{who} held inode {held:?} from {start} to {end}, the path had {at_path:?}\n"
            ));
        }
        std::thread::sleep(Duration::from_micros(rng.below(think)));
    }
    if !orphans.is_empty() {
        std::fs::write(root.join("logs").join(format!("{who}.orphans")), orphans).unwrap();
    }
}

/// The inode of the file this process holds exclusively at `lock` (or held there
/// before it was deleted), from the lock lines of `/proc/self/fdinfo` (exact, unlike
/// `/proc/locks`, whose reads in page-sized pieces can skip entries while other locks
/// come and go).
fn held_inode(lock: &Path) -> Option<u64> {
    let dir = std::fs::canonicalize(lock.parent()?).ok()?;
    let want = dir.join(lock.file_name()?).into_os_string();
    let mut deleted = want.clone();
    deleted.push(" (deleted)");
    for fd in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        if target.as_os_str() != want && target.as_os_str() != deleted {
            continue;
        }
        let info = format!("/proc/self/fdinfo/{}", fd.file_name().to_string_lossy());
        let Ok(text) = std::fs::read_to_string(info) else {
            continue;
        };
        // "lock:\t1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"
        for l in text.lines().filter(|l| l.starts_with("lock:")) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() > 6 && f[2] == "FLOCK" && f[4] == "WRITE" {
                return f[6].rsplit(':').next()?.parse().ok();
            }
        }
    }
    None
}

fn env_num(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A pid that belonged to a process that has exited.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    wait_deadline(&mut c, LONG, "true");
    pid
}

/// plantdb `.info` files left behind, in both formats and every broken shape, never
/// block an acquisition and never show up as holders: `get_lock_status` counts them as
/// stale records, `find_stale_records` lists them, and cleanup deletes them (they name
/// a dead process, or are not plantdb's format). Things that are not regular files
/// are ignored, never followed, never deleted.
#[test]
fn stale_or_broken_plantdb_info_never_blocks_and_is_shown_stale() {
    let dir = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    let info = info_path(&m);
    let dead = dead_pid();
    let mut live = Command::new("sleep").arg("30").spawn().unwrap();
    let live_pid = live.id();
    let torn_live = new_format(live_pid, "exclusive");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("0.17 exclusive, dead pid", new_format(dead, "exclusive").into()),
        ("0.17 shared, dead pid", new_format(dead, "shared").into()),
        (
            "old format, dead pid",
            format!(r#"{{"scan_id": "scan001", "lock_type": "exclusive", "user": "old", "timestamp": 1.5e9, "pid": {dead}, "thread_id": 1}}"#).into(),
        ),
        ("torn, live pid", torn_live.as_bytes()[..torn_live.len() - 30].to_vec()),
        ("empty", Vec::new()),
        ("garbage", b"\xff\xfe\x00garbage\n".to_vec()),
        ("json array", b"[1, 2, 3]".to_vec()),
        ("json null", b"null".to_vec()),
        (
            "odd field types, dead pid as string",
            format!(r#"{{"pid": "{dead}", "lock_type": "EXCLUSIVE", "user": {{"a": 1}}, "timestamp": "yesterday", "thread_id": -3}}"#).into(),
        ),
        (
            "odd field types, live pid as float",
            format!(r#"{{"pid": {live_pid}.5, "lock_type": "exclusive", "user": 5}}"#).into(),
        ),
        (
            "no lock type, live pid",
            format!(r#"{{"pid": {live_pid}, "user": "x"}}"#).into(),
        ),
        (
            "unknown lock type, live pid",
            format!(r#"{{"pid": {live_pid}, "lock_type": "upgrade"}}"#).into(),
        ),
        ("negative pid", br#"{"pid": -1, "lock_type": "exclusive"}"#.to_vec()),
        ("huge pid", br#"{"pid": 99999999999, "lock_type": "exclusive"}"#.to_vec()),
        ("big file", vec![b' '; 1 << 20]),
    ];
    for (what, bytes) in &cases {
        std::fs::write(&info, bytes).unwrap();
        let removed = check_stale_info(&m, &info, what, true).expect("removed");
        if what.starts_with("0.17 exclusive") {
            let h = removed.holder.as_ref().expect("parsed");
            assert_eq!(
                (h.pid, h.user.as_str(), h.lock_type),
                (dead, "web-ui", LockType::Exclusive)
            );
        }
    }

    // Not a regular file: a directory, a FIFO (must not hang a reader), a symlink to a
    // record naming a live holder (never followed).
    std::fs::create_dir(&info).unwrap();
    check_stale_info(&m, &info, "directory", false);
    std::fs::remove_dir(&info).unwrap();
    let c = std::ffi::CString::new(info.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    check_stale_info(&m, &info, "fifo", false);
    std::fs::remove_file(&info).unwrap();
    let target = dir.path().join("elsewhere.info");
    std::fs::write(&target, new_format(live_pid, "exclusive")).unwrap();
    symlink(&target, &info).unwrap();
    check_stale_info(&m, &info, "symlink", false);
    assert!(target.exists(), "followed the symlink");

    let _ = live.kill();
    let _ = live.wait();
}

/// plantdb 0.17's `.info` for `scan001`.
fn new_format(pid: u32, mode: &str) -> String {
    format!(
        "{{\n  \"resource_id\": \"scan001\",\n  \"level\": \"scan\",\n  \"lock_type\": \"{mode}\",\n  \"user\": \"web-ui\",\n  \"timestamp\": 1795426635.2117302,\n  \"pid\": {pid},\n  \"thread_id\": 140570059979648\n}}"
    )
}

/// Checks that the thing at `info` never blocks scanlock nor shows as a holder; for a
/// regular file, that it is counted and listed as stale, and that cleanup removes it
/// (returning its record); otherwise that it is left alone.
fn check_stale_info(
    m: &ScanLockManager,
    info: &Path,
    what: &str,
    regular: bool,
) -> Option<scanlock::StaleRecord> {
    let before = std::fs::symlink_metadata(info).unwrap();
    let st = m.get_lock_status("scan001").unwrap();
    assert!(st.is_free() && st.holders.is_empty(), "{what}: {st:?}");
    assert_eq!(st.stale_records, usize::from(regular), "{what}: {st:?}");
    for mode in [LockType::Exclusive, LockType::Shared] {
        let t = Instant::now();
        let g = m
            .acquire_lock("scan001", mode, "worker", Some(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("{what}: {mode:?}: {e}"));
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{what}: {mode:?} waited {:?}",
            t.elapsed()
        );
        let st = m.get_lock_status("scan001").unwrap();
        assert_eq!(st.lock_type, Some(mode), "{what}: {st:?}");
        assert!(
            st.holders.iter().all(|h| h.user == "worker"),
            "{what}: a stale .info shown as a holder: {st:?}"
        );
        drop(g);
        let g = m
            .try_acquire_lock("scan001", mode, "worker")
            .unwrap_or_else(|e| panic!("{what}: try {mode:?}: {e}"));
        drop(g);
    }
    let location = info.display().to_string();
    let listed: Vec<_> = m
        .find_stale_records()
        .unwrap()
        .into_iter()
        .filter(|r| r.location == location)
        .collect();
    assert_eq!(listed.len(), usize::from(regular), "{what}: {listed:?}");
    let removed: Vec<_> = m
        .cleanup_stale_locks()
        .unwrap()
        .removed
        .into_iter()
        .filter(|r| r.location == location)
        .collect();
    assert_eq!(removed, listed, "{what}");
    match std::fs::symlink_metadata(info) {
        Ok(after) => {
            assert!(!regular, "{what}: not removed");
            assert_eq!(
                (before.ino(), before.len()),
                (after.ino(), after.len()),
                "{what}: scanlock changed it"
            );
        }
        Err(e) => assert!(regular, "{what}: removed: {e}"),
    }
    let st = m.get_lock_status("scan001").unwrap();
    assert_eq!(st.stale_records, 0, "{what}: after cleanup: {st:?}");
    removed.into_iter().next()
}

/// A leftover `.info` naming a live process that does not hold the lock (its pid was
/// reused): shown as stale, never shown as a holder, never deleted (it could be a
/// plantdb finishing its release), and it delays acquisitions of a manager process
/// once, by the grace (2 s), not each time.
#[test]
fn a_leftover_plantdb_info_naming_a_live_process_costs_one_grace() {
    let dir = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    let info = info_path(&m);
    let mut live = Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(&info, new_format(live.id(), "exclusive")).unwrap();
    let before = std::fs::read(&info).unwrap();

    let st = m.get_lock_status("scan001").unwrap();
    assert!(st.is_free() && st.holders.is_empty(), "{st:?}");
    assert_eq!(st.stale_records, 1, "{st:?}");
    let t = Instant::now();
    let g = m
        .acquire_lock("scan001", LockType::Exclusive, "worker", Some(LONG))
        .unwrap();
    let first = t.elapsed();
    drop(g);
    assert!(
        first < Duration::from_secs(5),
        "the grace is 2 s, waited {first:?}"
    );
    for mode in [LockType::Exclusive, LockType::Shared] {
        let g = m
            .try_acquire_lock("scan001", mode, "worker")
            .unwrap_or_else(|e| panic!("{mode:?} after the grace: {e}"));
        drop(g);
    }
    assert!(m.find_stale_records().unwrap().is_empty());
    assert!(m.cleanup_stale_locks().unwrap().removed.is_empty());
    assert_eq!(std::fs::read(&info).unwrap(), before, "changed or deleted");
    let _ = live.kill();
    let _ = live.wait();
}

/// Without plantdb, scanlock does not look for `.info` on every acquisition: it keeps
/// a version of the (settled) lock directory at which there was none. An `.info` that
/// appears later changes the directory, and the next acquisition sees it (here one
/// naming a live exclusive holder, as during plantdb's release: the lock is refused).
#[test]
fn an_info_appearing_in_a_settled_lock_directory_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    drop(
        m.try_acquire_lock("scan001", LockType::Exclusive, "worker")
            .unwrap(),
    );
    // The directory's timestamps must be 2 s old (whole seconds) to be trusted.
    std::thread::sleep(Duration::from_millis(3100));
    for _ in 0..2 {
        drop(
            m.try_acquire_lock("scan001", LockType::Exclusive, "worker")
                .unwrap(),
        );
    }
    let mut live = Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(info_path(&m), new_format(live.id(), "exclusive")).unwrap();
    let e = m
        .try_acquire_lock("scan001", LockType::Shared, "worker")
        .unwrap_err();
    assert!(matches!(e, LockError::WouldBlock { .. }), "{e:?}");
    let _ = live.kill();
    let _ = live.wait();
}

/// A scanlock waiter whose cached descriptor is of a `.lock` plantdb already deleted,
/// while another plantdb holder (of the new file) takes longer than the grace: the
/// waiter's brushes with that holder's `.info` while it held the deleted file must not
/// use up the grace, or the holder's release (unlock, then a slow unlink) would let the
/// waiter in on a file about to be deleted. The waiter must end up holding the file at
/// the path.
#[test]
fn a_slow_plantdb_release_after_a_long_hold_keeps_a_waiter_out() {
    let Some(python) = plantdb_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let m = ScanLockManager::new(root).unwrap();
    let lock = m.lock_dir().join("scan001.lock");
    // Cache a descriptor of scan001.lock, then let plantdb delete that file.
    m.acquire_lock("scan001", LockType::Exclusive, "worker", None)
        .unwrap()
        .release()
        .unwrap();
    PyHolder::start(python, root, "scan001", "exclusive", "first").finish();
    assert!(!lock.exists());
    let holder = PyHolder::start_with(
        python,
        root,
        "scan001",
        "exclusive",
        "second",
        &[("PLANTDB_WORKER_UNLINK_DELAY_MS", "400")],
    );
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            // Handed back to the main thread: a movable guard.
            let g = m
                .acquire_lock_send("scan001", LockType::Exclusive, "worker", Wait::Forever)
                .unwrap();
            let held = held_inode(&lock);
            (g, held)
        });
        // Longer than the grace (2 s), as a real hold would be.
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!waiter.is_finished(), "got in while plantdb held the lock");
        let t = Instant::now();
        holder.finish();
        let (g, held) = waiter.join().unwrap();
        let at_path = std::fs::metadata(&lock).map(|md| md.ino()).ok();
        assert!(held.is_some(), "holds no scan001.lock");
        assert_eq!(
            held,
            at_path,
            "the waiter got a lock file plantdb deleted ({:?} after the release began)",
            t.elapsed()
        );
        drop(g);
    });
}

/// Nothing scanlock needs lives in `<name>.lock`: plantdb truncates it when it opens
/// it and deletes it (its release, its start-up sweep). Simulate both between holds:
/// locks keep working, fencing tokens keep increasing, scanlock's other files survive,
/// and no file of scanlock's but the lock file itself ends in `.lock`.
#[test]
fn nothing_scanlock_needs_lives_in_the_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = ScanLockManager::new(dir.path()).unwrap();
    let names = ["scan001", "sub/dir scan"];
    let mut tokens = Vec::new();
    for round in 0..4 {
        let garbage_left = round == 1;
        for name in names {
            let g = m
                .acquire_lock(name, LockType::Exclusive, "worker", None)
                .unwrap();
            tokens.push((name, round, g.fencing_token()));
            let r = m
                .acquire_lock(name, LockType::Shared, "worker", None)
                .unwrap();
            assert_eq!(r.fencing_token(), g.fencing_token());
        }
        // Every `*.lock` in .locks is an empty regular file (scanlock never writes it).
        let mut locks = 0;
        for e in std::fs::read_dir(m.lock_dir()).unwrap() {
            let e = e.unwrap();
            if e.file_name().as_encoded_bytes().ends_with(b".lock") {
                let md = e.metadata().unwrap();
                assert!(md.is_file(), "{:?}: {md:?}", e.file_name());
                assert!(
                    garbage_left || md.len() == 0,
                    "scanlock wrote {:?}",
                    e.file_name()
                );
                locks += 1;
            }
        }
        assert!(locks <= names.len(), "an internal file ends in .lock");
        // What plantdb does to `.lock` files: truncate-open, or its sweep (open 'w',
        // LOCK_EX|LOCK_NB, LOCK_UN, close, unlink), or garbage from another tool.
        for e in std::fs::read_dir(m.lock_dir()).unwrap() {
            let e = e.unwrap();
            if e.file_name().as_encoded_bytes().ends_with(b".lock") {
                match round {
                    0 => std::fs::write(e.path(), b"garbage written by another tool").unwrap(),
                    1 => {
                        let f = std::fs::File::create(e.path()).unwrap();
                        f.try_lock().unwrap();
                        f.unlock().unwrap();
                        drop(f);
                        std::fs::remove_file(e.path()).unwrap();
                    }
                    _ => std::fs::remove_file(e.path()).unwrap(),
                }
            }
        }
    }
    for name in names {
        let seq: Vec<u64> = tokens.iter().filter(|t| t.0 == name).map(|t| t.2).collect();
        assert!(
            seq.windows(2).all(|w| w[1] > w[0]),
            "{name}: fencing tokens did not increase: {seq:?}"
        );
    }
    let st = m.get_lock_status("scan001").unwrap();
    assert!(st.is_free(), "{st:?}");
}
