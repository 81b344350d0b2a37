//! The `scanlock` binary, run as an operator would: real processes, real signals, real
//! lock files. Every wait has a deadline; every spawned process is killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use scanlock::{LockType, ScanLockManager};
use serde_json::Value;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_scanlock");
/// Longest any single step may take before the test fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(20);

/// `scanlock` with a clean environment: no `SCANLOCK_URL` from the caller, and SIGINT
/// at its default even if the test runner was started with it ignored.
fn scanlock() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("SCANLOCK_URL").stdin(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        });
    }
    cmd
}

/// `scanlock --root ROOT ARGS...`.
fn at(root: &Path, args: &[&str]) -> Command {
    let mut cmd = scanlock();
    cmd.arg("--root").arg(root).args(args);
    cmd
}

/// What a finished command did.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// Stdout parsed as JSON (failing with both outputs shown).
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

/// Runs `cmd` to completion within [`DEADLINE`] (killing it and failing otherwise).
fn output(mut cmd: Command) -> Outcome {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn scanlock");
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let status = wait_within(&mut child, DEADLINE, &format!("{cmd:?}"));
    Outcome {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Waits for `child` at most `limit`, killing it and failing when the time is up.
fn wait_within(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `cond` until true; fails with `what` after [`DEADLINE`].
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A background process, killed (SIGKILL) and reaped when dropped.
struct Bg {
    child: Child,
    lines: Option<Receiver<String>>,
}

impl Bg {
    /// Starts `cmd`, with its stdout lines readable through [`Bg::line`] if asked.
    fn spawn(mut cmd: Command, read_stdout: bool) -> Bg {
        if read_stdout {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(Stdio::null());
        }
        let mut child = cmd.stderr(Stdio::null()).spawn().expect("spawn");
        let lines = read_stdout.then(|| {
            let (tx, rx) = mpsc::channel();
            let out = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        });
        Bg { child, lines }
    }

    /// The process id.
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line, within [`DEADLINE`].
    fn line(&self) -> String {
        self.lines
            .as_ref()
            .expect("stdout not captured")
            .recv_timeout(DEADLINE)
            .expect("no output line within the deadline")
    }

    /// Reads lines until one satisfies `pred`; returns every line read.
    fn lines_until(&self, what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let rx = self.lines.as_ref().expect("stdout not captured");
        let end = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    let done = pred(&l);
                    seen.push(l);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!(
                    "no line with {what} within {DEADLINE:?}; got:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    /// Sends `sig` to the process.
    fn signal(&self, sig: i32) {
        // SAFETY: our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, sig) }, 0);
    }

    /// Its exit code, within [`DEADLINE`].
    fn wait(&mut self) -> Option<i32> {
        wait_within(&mut self.child, DEADLINE, "background scanlock").code()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh lock root (existing, empty).
fn root() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// `status --json NAME` of the lock, through the binary.
fn status_json(root: &Path, name: &str) -> (Option<i32>, Value) {
    let out = output(at(root, &["status", "--json", name]));
    let json = out.json();
    (out.code, json["locks"][0].clone())
}

/// Starts `scanlock run ARGS... NAME -- sleep 60` and waits until it holds the lock.
fn holder(root: &Path, name: &str, args: &[&str]) -> Bg {
    let mut cmd = at(root, &["run"]);
    cmd.args(args).args([name, "--", "sleep", "60"]);
    let bg = Bg::spawn(cmd, false);
    wait_held_by(root, name, bg.pid());
    bg
}

/// Waits until `pid` is among the holders of `name` with its metadata record published
/// (the kernel shows the lock a moment before the record), read with the library.
fn wait_held_by(root: &Path, name: &str, pid: u32) {
    let m = ScanLockManager::builder(root)
        .cleanup_on_start(false)
        .build()
        .unwrap();
    eventually(&format!("pid {pid} holds {name}"), || {
        m.get_lock_status(name)
            .unwrap()
            .holders
            .iter()
            .any(|h| h.pid == pid && !h.user.is_empty())
    });
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The files in `dir` (none if it does not exist).
fn records(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn run_times_out_against_a_holder_in_another_process_and_names_it() {
    let dir = root();
    let r = dir.path();
    let h = holder(r, "scan1", &["--user", "alice"]);

    let started = Instant::now();
    let out = output(at(r, &["run", "--timeout", "300ms", "scan1", "--", "true"]));
    let waited = started.elapsed();
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        waited >= Duration::from_millis(300),
        "gave up after {waited:?}"
    );
    let first = out.stderr.lines().next().unwrap();
    assert!(
        first.contains("timed out") && first.contains("\"scan1\""),
        "{first}"
    );
    assert!(
        first.contains("alice") && first.contains(&format!("pid {}", h.pid())),
        "holder not named: {first}"
    );
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    assert!(out.stdout.is_empty());

    // One attempt only; a shared request conflicts too; the code is configurable.
    let out = output(at(
        r,
        &["run", "--no-wait", "--shared", "scan1", "--", "true"],
    ));
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr.contains("is busy") && out.stderr.contains("alice"),
        "{out:?}"
    );
    let out = output(at(r, &["run", "-n", "-E", "75", "scan1", "--", "true"]));
    assert_eq!(out.code, Some(75), "{out:?}");

    // Another name is not blocked.
    let out = output(at(r, &["run", "-n", "scan2", "--", "true"]));
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn run_passes_exit_codes_through_and_always_releases() {
    let dir = root();
    let r = dir.path();
    let cases: [(&[&str], i32); 5] = [
        (&["true"], 0),
        (&["sh", "-c", "exit 7"], 7),
        (&["sh", "-c", "exit 255"], 255),
        (&["sh", "-c", "kill -TERM $$"], 128 + libc::SIGTERM),
        (&["sh", "-c", "kill -KILL $$"], 128 + libc::SIGKILL),
    ];
    for (command, want) in cases {
        let mut cmd = at(r, &["run", "scan1", "--"]);
        cmd.args(command);
        let out = output(cmd);
        assert_eq!(out.code, Some(want), "{command:?}: {out:?}");
        let (code, lock) = status_json(r, "scan1");
        assert_eq!(
            (code, lock["state"].as_str()),
            (Some(0), Some("free")),
            "{command:?}"
        );
    }

    // The command's arguments, options included, reach it untouched; stdout is its own.
    let out = output(at(r, &["run", "scan1", "echo", "-n", "--timeout", "x"]));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "--timeout x"),
        "{out:?}"
    );

    let out = output(at(r, &["run", "scan1", "--", "no-such-command-hopefully"]));
    assert_eq!(out.code, Some(127), "{out:?}");
    assert!(
        out.stderr
            .contains("command not found: no-such-command-hopefully"),
        "{out:?}"
    );
    let out = output(at(r, &["run", "scan1", "--", r.to_str().unwrap()]));
    assert_eq!(out.code, Some(126), "{out:?}");
    assert_eq!(status_json(r, "scan1").0, Some(0));
}

/// `cmd` started with the default disposition of the signals the test sends. The CLI
/// leaves ignored signals ignored for its command (as under `nohup`), and a test run
/// started in the background by a non-interactive shell inherits SIGINT ignored: then
/// `sleep` would ignore it too, and the test would wait out its deadline.
fn with_default_signals(mut cmd: Command) -> Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec; signal() is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGHUP, libc::SIGTERM] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    cmd
}

#[test]
fn run_forwards_signals_and_holds_the_lock_until_the_command_exits() {
    let dir = root();
    let r = dir.path();
    // The command traps SIGTERM and takes a moment to finish; the lock must stay held
    // meanwhile, and scanlock must exit with the command's own code.
    let script = "trap 'echo got-term; sleep 1; exit 5' TERM; echo ready; \
                  while :; do sleep 0.05; done";
    let mut cmd = at(
        r,
        &["run", "--user", "sig", "scan1", "--", "sh", "-c", script],
    );
    cmd.stdin(Stdio::null());
    let mut run = Bg::spawn(with_default_signals(cmd), true);
    assert_eq!(run.line(), "ready");
    run.signal(libc::SIGTERM);
    assert_eq!(run.line(), "got-term");
    let (code, lock) = status_json(r, "scan1");
    assert_eq!(code, Some(1), "released before the command ended: {lock}");
    assert_eq!(run.wait(), Some(5));
    assert_eq!(status_json(r, "scan1").0, Some(0));

    // SIGINT and SIGHUP reach a command that does not catch them: 128 + signal.
    for sig in [libc::SIGINT, libc::SIGHUP] {
        let mut run = Bg::spawn(
            with_default_signals(at(
                r,
                &[
                    "run",
                    "scan1",
                    "--",
                    "sh",
                    "-c",
                    "echo ready; exec sleep 60",
                ],
            )),
            true,
        );
        assert_eq!(run.line(), "ready");
        run.signal(sig);
        assert_eq!(run.wait(), Some(128 + sig), "signal {sig}");
    }
}

#[test]
fn status_json_shows_holders_pid_user_and_waiting_writers() {
    let dir = root();
    let r = dir.path();
    let reader1 = holder(r, "scan1", &["--shared", "--user", "alice"]);
    let reader2 = holder(r, "scan1", &["--shared", "--user", "bob"]);

    let (code, lock) = status_json(r, "scan1");
    assert_eq!(code, Some(1), "held means exit 1");
    assert_eq!(lock["name"], "scan1");
    assert_eq!(lock["state"], "shared");
    let holders = lock["holders"].as_array().unwrap();
    let find = |pid: u32| {
        holders
            .iter()
            .find(|h| h["pid"] == pid)
            .unwrap_or_else(|| panic!("pid {pid} not among {holders:?}"))
    };
    assert_eq!(find(reader1.pid())["user"], "alice");
    assert_eq!(find(reader2.pid())["user"], "bob");
    let h = find(reader1.pid());
    assert_eq!(h["lock_type"], "shared");
    assert!(h["acquired_at"].as_str().unwrap().ends_with('Z'), "{h}");
    assert!(h["held_for_ms"].as_u64().is_some(), "{h}");
    assert!(h["hostname"].as_str().is_some_and(|s| !s.is_empty()), "{h}");

    // A writer waiting behind the readers is reported.
    let writer = Bg::spawn(at(r, &["run", "scan1", "--", "true"]), false);
    eventually("the writer shows as waiting", || {
        status_json(r, "scan1").1["waiting_writers"]
            .as_array()
            .unwrap()
            .contains(&Value::from(writer.pid()))
    });

    // The table says the same, within 80 columns.
    let out = output(at(r, &["status"]));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("shared ×2"), "{}", out.stdout);
    assert!(
        out.stdout.contains("alice") && out.stdout.contains("bob"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("waiting writers: pid {}", writer.pid()))
    );
    assert!(
        out.stdout.lines().all(|l| l.chars().count() <= 80),
        "{}",
        out.stdout
    );

    // Exit 0 once every named lock is free; a never-used name is free.
    drop((reader1, reader2));
    let mut writer = writer;
    assert_eq!(writer.wait(), Some(0));
    let out = output(at(r, &["status", "scan1", "never-used"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = output(at(r, &["status", "--json"]));
    let json = out.json();
    let names: Vec<&str> = json["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["scan1"]);
}

#[test]
fn clean_removes_a_sigkilled_holders_record_and_nothing_else() {
    let dir = root();
    let r = dir.path();
    let locks = r.join(".locks");
    // The dead holder's command prints its pid, so we can see it die with scanlock.
    let mut cmd = at(r, &["run", "--user", "doomed", "scanA", "--"]);
    cmd.args(["sh", "-c", "echo $$; exec sleep 60"]);
    let doomed = Bg::spawn(cmd, true);
    let command_pid: u32 = doomed.line().parse().unwrap();
    wait_held_by(r, "scanA", doomed.pid());
    let live = holder(r, "scanB", &["--shared", "--user", "alive"]);
    let live_records = records(&locks.join("scanB.holders"));
    assert_eq!(live_records.len(), 1);

    let doomed_pid = doomed.pid();
    doomed.signal(libc::SIGKILL);
    drop(doomed);
    // Its command must not go on unlocked.
    eventually("the killed holder's command dies too", || {
        !alive(command_pid)
    });

    let (code, lock) = status_json(r, "scanA");
    assert_eq!(code, Some(0), "the kernel released the lock: {lock}");
    assert_eq!(lock["stale_records"], 1, "{lock}");
    let out = output(at(r, &["status", "scanA"]));
    assert!(out.stdout.contains("stale records: 1"), "{}", out.stdout);
    let stale = records(&locks.join("scanA.holders"));
    assert_eq!(stale.len(), 1);

    // --dry-run says what would go and removes nothing.
    let out = output(at(r, &["clean", "--dry-run", "--json"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let json = out.json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["removed"].as_array().unwrap().len(), 1, "{json}");
    assert!(stale[0].exists());

    let out = output(at(r, &["clean", "--json"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let json = out.json();
    let removed = json["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{json}");
    assert_eq!(removed[0]["name"], "scanA");
    assert_eq!(removed[0]["holder"]["pid"], doomed_pid);
    assert_eq!(removed[0]["holder"]["user"], "doomed");
    assert_eq!(removed[0]["location"], stale[0].to_str().unwrap());
    assert!(!stale[0].exists());

    // Nothing else: both lock files, the live holder's record and its lock remain.
    assert!(locks.join("scanA.lock").exists() && locks.join("scanB.lock").exists());
    assert_eq!(records(&locks.join("scanB.holders")), live_records);
    let (code, lock) = status_json(r, "scanB");
    assert_eq!(code, Some(1));
    assert_eq!(lock["holders"][0]["pid"], live.pid());
    assert_eq!(lock["holders"][0]["user"], "alive");
    assert_eq!(status_json(r, "scanA").1["stale_records"], 0);

    let out = output(at(r, &["clean"]));
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.starts_with("no stale records"), "{}", out.stdout);
}

#[test]
fn clean_text_output_names_what_it_removed() {
    let dir = root();
    let r = dir.path();
    let doomed = holder(r, "scan9", &["--user", "zed"]);
    doomed.signal(libc::SIGKILL);
    drop(doomed);
    let out = output(at(r, &["clean", "--dry-run"]));
    assert!(
        out.stdout.starts_with("would remove 1 stale record"),
        "{}",
        out.stdout
    );
    let out = output(at(r, &["clean"]));
    assert_eq!(out.code, Some(0));
    assert!(
        out.stdout.starts_with("removed 1 stale record"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\"scan9\"") && out.stdout.contains("zed"),
        "{}",
        out.stdout
    );
}

#[test]
fn watch_prints_a_new_frame_when_a_lock_changes() {
    let dir = root();
    let r = dir.path();
    // A root without .locks/ yet: watch shows no locks, creates nothing, and picks up
    // the lock once it appears.
    let watch = Bg::spawn(at(r, &["watch", "--interval", "50ms"]), true);
    let first = watch.lines_until("an empty frame", |l| l.starts_with("no locks under"));
    assert!(first[0].starts_with("--- scanlock watch "), "{first:?}");
    assert!(!r.join(".locks").exists(), "watch created .locks/");

    let m = ScanLockManager::new(r).unwrap();
    let guard = m
        .acquire_lock("scanW", LockType::Exclusive, "tester", None)
        .unwrap();
    let frame = watch.lines_until("the lock held", |l| {
        l.starts_with("scanW") && l.contains("exclusive") && l.contains("tester")
    });
    assert!(
        frame.iter().any(|l| l.starts_with("--- scanlock watch ")),
        "no new frame header: {frame:?}"
    );
    guard.release().unwrap();
    watch.lines_until("the lock free again", |l| {
        l.starts_with("scanW") && l.ends_with("free")
    });
    // A pipe gets plain text, never terminal escapes.
    assert!(frame.iter().all(|l| !l.contains('\x1b')), "{frame:?}");
}

#[test]
fn a_missing_root_is_an_error_and_is_not_created() {
    let dir = root();
    let missing = dir.path().join("no-such-root");
    let commands: [&[&str]; 5] = [
        &["status"],
        &["status", "--json", "scan1"],
        &["clean"],
        &["watch", "--interval", "50ms"],
        &["run", "scan1", "--", "true"],
    ];
    for args in commands {
        let out = output(at(&missing, args));
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        let mut lines = out.stderr.lines();
        let first = lines.next().unwrap();
        assert!(
            first.contains("does not exist") && first.contains("no-such-root"),
            "{first}"
        );
        assert!(
            lines.next().unwrap().trim_start().starts_with("hint:"),
            "{out:?}"
        );
        assert!(!missing.exists(), "{args:?} created the root");
    }
    // The same through a URL.
    let url = format!("file://{}", missing.display());
    let out = output({
        let mut c = scanlock();
        c.args(["--url", &url, "status"]);
        c
    });
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("does not exist"), "{out:?}");
    assert!(!missing.exists());
}

#[test]
fn an_existing_root_without_locks_is_inspected_without_creating_anything() {
    let dir = root();
    let r = dir.path();
    let out = output(at(r, &["status"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.starts_with("no locks under file://"),
        "{}",
        out.stdout
    );
    let (code, lock) = status_json(r, "scan1");
    assert_eq!((code, lock["state"].as_str()), (Some(0), Some("free")));
    assert_eq!(output(at(r, &["clean"])).code, Some(0));
    assert!(!r.join(".locks").exists());
}

#[test]
fn the_store_comes_from_root_url_or_environment() {
    let dir = root();
    let r = dir.path();
    let h = holder(r, "scan1", &[]);
    let url = format!("file://{}", r.display());

    let mut cmd = scanlock();
    cmd.env("SCANLOCK_URL", &url)
        .args(["status", "--json", "scan1"]);
    let out = output(cmd);
    assert_eq!(
        out.code,
        Some(1),
        "{out:?} holder alive: {}",
        alive(h.pid())
    );
    let mut cmd = scanlock();
    cmd.args(["status", "--url", &url, "--json", "scan1"]);
    let out = output(cmd);
    assert_eq!(
        out.code,
        Some(1),
        "{out:?} holder alive: {}",
        alive(h.pid())
    );
    // --root wins over the environment.
    let other = root();
    let mut cmd = at(other.path(), &["status", "scan1"]);
    cmd.env("SCANLOCK_URL", &url);
    assert_eq!(output(cmd).code, Some(0));
}

#[test]
fn bad_arguments_get_one_clear_line_and_exit_2() {
    let dir = root();
    let r = dir.path();
    let root_s = r.to_str().unwrap();
    let cases: [(&[&str], &str); 13] = [
        (&["status"], "no lock root given"),
        (
            &["--url", "postgres://u:pw@db/locks", "status"],
            if cfg!(feature = "postgres") {
                // Built with the back end: nothing answers at `db`.
                "check that the server of postgres://u:***@db/locks is up"
            } else {
                "back end `postgres://` is not available in this build"
            },
        ),
        (
            &["--url", "redis://localhost", "status"],
            "back end `redis://` is not available",
        ),
        (
            &["--url", "file://relative/path", "status"],
            "needs an absolute path",
        ),
        (&["--url", "/plain/path", "status"], "not a back-end URL"),
        (
            &["--root", root_s, "--url", "file:///x", "status"],
            "cannot be used with",
        ),
        (
            &[
                "--root",
                root_s,
                "run",
                "--timeout",
                "soon",
                "scan1",
                "--",
                "true",
            ],
            "invalid duration `soon`",
        ),
        (&["--root", root_s, "run", "scan1"], "required"),
        (
            &["--root", root_s, "run", "-s", "-x", "scan1", "--", "true"],
            "cannot be used with",
        ),
        (
            &[
                "--root", root_s, "run", "-n", "-w", "1s", "scan1", "--", "true",
            ],
            "cannot be used with",
        ),
        (
            &["--root", root_s, "watch", "--interval", "1ms"],
            "too short",
        ),
        (
            &["--root", root_s, "status", ""],
            "lock name cannot be empty",
        ),
        (&["--root", root_s, "frobnicate"], "unrecognized subcommand"),
    ];
    for (args, want) in cases {
        let mut cmd = scanlock();
        cmd.args(args);
        let out = output(cmd);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(want),
            "{args:?}: expected {want:?} in\n{}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("pw@"),
            "password shown: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    // Nothing was created by the failed commands.
    assert!(!r.join(".locks").exists());
}

#[test]
fn help_documents_exit_codes_and_json_schemas() {
    let help = |args: &[&str]| {
        let mut cmd = scanlock();
        cmd.args(args);
        let out = output(cmd);
        assert_eq!(out.code, Some(0), "{out:?}");
        out.stdout
    };
    let top = help(&["--help"]);
    assert!(
        top.contains("Exit codes:") && top.contains("128+S"),
        "{top}"
    );
    let status = help(&["status", "--help"]);
    assert!(status.contains("\"waiting_writers\"") && status.contains("\"held_for_ms\""));
    let clean = help(&["clean", "--help"]);
    assert!(clean.contains("\"dry_run\"") && clean.contains("\"location\""));
    for text in [
        &top,
        &status,
        &clean,
        &help(&["run", "--help"]),
        &help(&["watch", "--help"]),
    ] {
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "help line over 80 columns: {line}"
            );
        }
    }
}

/// The commands work on any back end: against PostgreSQL (built with the `postgres`
/// feature, with `SCANLOCK_TEST_PG_URL`), `run` holds, `status --json` shows the holder
/// and `run --no-wait` is refused with the busy code while it holds.
#[test]
fn commands_work_against_postgresql() {
    let url = match std::env::var("SCANLOCK_TEST_PG_URL") {
        Ok(url) if cfg!(feature = "postgres") => url,
        _ => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: scanlock CLI on PostgreSQL (needs --features postgres and SCANLOCK_TEST_PG_URL)"
            );
            return;
        }
    };
    // A name no other test run uses: the database outlives the test.
    let name = format!("cli-pg-{}-{}", std::process::id(), unique_suffix());
    let with_url = |args: &[&str]| {
        let mut cmd = scanlock();
        cmd.arg("--url").arg(&url).args(args);
        cmd
    };
    let mut cmd = with_url(&["run", "--user", "pg-operator", &name, "--", "sleep", "60"]);
    cmd.stdout(Stdio::null());
    let bg = Bg::spawn(cmd, false);
    let pid = bg.pid();
    let mut last = Value::Null;
    eventually(&format!("pid {pid} holds {name} on PostgreSQL"), || {
        let out = output(with_url(&["status", "--json", &name]));
        last = out.json()["locks"][0].clone();
        out.code == Some(1)
            && last["holders"].as_array().is_some_and(|h| {
                h.iter()
                    .any(|h| h["pid"] == pid && h["user"] == "pg-operator")
            })
    });
    assert_eq!(last["state"], "exclusive", "{last}");
    let busy = output(with_url(&["run", "--no-wait", &name, "--", "true"]));
    assert_eq!(busy.code, Some(3), "{busy:?}");
    assert!(busy.stderr.contains("pg-operator"), "{busy:?}");
    drop(bg); // kills the holder: its session ends and the lock with it
    eventually(&format!("{name} free again"), || {
        output(with_url(&["status", "--json", &name])).code == Some(0)
    });
}

/// Nanoseconds since the epoch, to make names unique across runs.
fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Planted files never crash `status`, `watch`-style listings or `clean`: names that
/// decode to nothing are skipped, and one name's damaged records are reported in its
/// own row while every other lock is shown.
#[test]
fn status_and_clean_survive_planted_files_and_report_damage_per_name() {
    let dir = root();
    let locks = dir.path().join(".locks");
    std::fs::create_dir(&locks).unwrap();
    for f in ["%.lock", "%.info", "%%00.lock"] {
        std::fs::write(locks.join(f), b"").unwrap();
    }
    std::fs::write(locks.join("good.lock"), b"").unwrap();
    std::fs::write(locks.join("bad.lock"), b"").unwrap();
    std::fs::write(locks.join("bad.holders"), b"not a directory").unwrap();
    let out = output(at(dir.path(), &["status"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("good") && out.stdout.contains("bad"),
        "{out:?}"
    );
    assert!(out.stdout.contains("damaged:"), "{out:?}");
    let json = output(at(dir.path(), &["status", "--json"])).json();
    let bad = json["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "bad")
        .unwrap()
        .clone();
    assert!(!bad["problems"].as_array().unwrap().is_empty(), "{json}");
    assert_eq!(json["locks"].as_array().unwrap().len(), 2, "{json}");
    let clean = output(at(dir.path(), &["clean"]));
    assert_ne!(clean.code, Some(101), "{clean:?}");
}

/// Issue #16 item 5: the command inherits the lock, so a background process it started
/// keeps the lock held after scanlock is SIGKILLed, until that process ends.
#[test]
fn run_lock_outlives_a_sigkilled_scanlock_while_the_commands_children_live() {
    let dir = root();
    let pidfile = dir.path().join("pid");
    let script = format!(
        "sleep 30 >/dev/null 2>&1 & echo $! > {}; wait",
        pidfile.display()
    );
    let cmd = at(dir.path(), &["run", "inherit", "--", "sh", "-c", &script]);
    let bg = Bg::spawn(cmd, false);
    wait_held_by(dir.path(), "inherit", bg.pid());
    eventually("the grandchild wrote its pid", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.trim().parse::<u32>().is_ok())
    });
    let grandchild: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill on our own child.
    unsafe { libc::kill(bg.pid() as i32, libc::SIGKILL) };
    eventually("scanlock is gone", || !alive(bg.pid()));
    let m = ScanLockManager::builder(dir.path())
        .cleanup_on_start(false)
        .build()
        .unwrap();
    assert!(alive(grandchild));
    assert!(matches!(
        m.try_acquire_lock("inherit", scanlock::LockType::Exclusive, "t"),
        Err(scanlock::LockError::WouldBlock { .. })
    ));
    // SAFETY: the grandchild is a sleep we started.
    unsafe { libc::kill(grandchild as i32, libc::SIGKILL) };
    eventually("the lock is free once the grandchild is gone", || {
        m.try_acquire_lock("inherit", scanlock::LockType::Exclusive, "t")
            .is_ok()
    });
    // -o/--close: today's behaviour, the background process does not keep the lock.
    let script = format!("sleep 30 >/dev/null 2>&1 & echo $! > {}", pidfile.display());
    let out = output(at(
        dir.path(),
        &["run", "-o", "closed", "--", "sh", "-c", &script],
    ));
    assert_eq!(out.code, Some(0), "{out:?}");
    let bgpid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        m.try_acquire_lock("closed", scanlock::LockType::Exclusive, "t")
            .is_ok()
    );
    // SAFETY: a sleep we started.
    unsafe { libc::kill(bgpid as i32, libc::SIGKILL) };
}

/// Issue #19: flock(1)'s spellings are accepted; `-u` (unlock in flock(1)) is not `--user`.
#[test]
fn run_accepts_flock_spellings_and_has_no_u_short() {
    let dir = root();
    for args in [
        &["run", "-e", "--nb", "a", "--", "true"][..],
        &["run", "--nonblock", "a", "--", "true"],
        &["run", "--wait", "1", "a", "--", "true"],
    ] {
        let out = output(at(dir.path(), args));
        assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
    }
    let out = output(at(dir.path(), &["run", "-u", "me", "a", "--", "true"]));
    assert_eq!(out.code, Some(2), "{out:?}");
}

/// Issue #19: `-c STRING` runs the string with `sh -c`.
#[test]
fn run_c_runs_a_command_string_with_sh() {
    let dir = root();
    let out = output(at(dir.path(), &["run", "-c", "echo one; exit 7", "a"]));
    assert_eq!(out.code, Some(7), "{out:?}");
    assert_eq!(out.stdout, "one\n");
}

/// Issue #19: a NAME that is a path is refused with a pointer to locking by path.
#[test]
fn run_refuses_a_path_as_name() {
    let dir = root();
    for name in ["/tmp/x", "scan001.lock"] {
        let out = output(at(dir.path(), &["run", name, "--", "true"]));
        assert_eq!(out.code, Some(2), "{out:?}");
        assert!(out.stderr.contains("looks like a file path"), "{out:?}");
    }
}
