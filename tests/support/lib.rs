//! Helpers shared by the workspace's tests and examples: re-spawning the current test
//! binary as a child process, waiting with deadlines, and enter/exit interval logs with a
//! checker that proves no exclusive interval overlapped another holder.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Environment variable that tells a re-spawned test binary which role to play.
pub const ROLE_VAR: &str = "SCANLOCK_TEST_ROLE";

/// The role this process was spawned for, if it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// Re-runs the current test binary, running only `test` (which must check [`role`]
/// first and act as the child), with `ROLE_VAR=role` and the extra environment.
pub fn spawn_self(test: &str, role: &str, env: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        // A child's global manager comes only from what the test passes explicitly.
        .env_remove("SCANLOCK_URL")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn test binary")
}

/// Waits for `child` at most `limit`; kills it and panics when the deadline passes, so a
/// regression fails instead of hanging CI.
pub fn wait_deadline(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: child {} did not finish within {limit:?}",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `p` quoted for `sh -c`.
pub fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// Whether this process may make a private mount namespace (root, with unshare(1)).
pub fn can_unshare_mounts() -> bool {
    // SAFETY: geteuid has no preconditions.
    (unsafe { libc::geteuid() } == 0)
        && Command::new("unshare")
            .args(["-m", "true"])
            .status()
            .is_ok_and(|s| s.success())
}

/// Runs `setup` (a shell command) and then this test binary's `test` in role `role`,
/// inside a new private mount namespace (see [`can_unshare_mounts`]).
pub fn spawn_self_in_mount_namespace(
    setup: &str,
    test: &str,
    role: &str,
    env: &[(&str, &Path)],
) -> Child {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "{setup} && exec {} {test} --exact --nocapture --test-threads=1",
            shell_quote(&exe)
        ))
        .env(ROLE_VAR, role)
        .env_remove("SCANLOCK_URL")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn unshare")
}

/// Polls `cond` until it is true or `limit` passes; returns whether it became true.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Nanoseconds on CLOCK_MONOTONIC, comparable between processes of one host.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One holder's time inside a lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Lock name.
    pub name: String,
    /// Who (pid/thread) held it.
    pub who: String,
    /// True for exclusive holds.
    pub exclusive: bool,
    /// Entered, monotonic ns.
    pub start: u64,
    /// Left, monotonic ns.
    pub end: u64,
}

/// Appends intervals to a per-worker file, one line each.
pub struct IntervalLog {
    file: File,
}

impl IntervalLog {
    /// Creates (or appends to) the log at `path`.
    pub fn create(path: &Path) -> IntervalLog {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open interval log");
        IntervalLog { file }
    }

    /// Records one interval. Take `start` just after acquiring and `end` just before
    /// releasing, so a recorded interval always lies inside the real hold.
    pub fn record(&mut self, name: &str, who: &str, exclusive: bool, start: u64, end: u64) {
        writeln!(
            self.file,
            "{name} {who} {} {start} {end}",
            if exclusive { "X" } else { "S" }
        )
        .expect("write interval log");
    }
}

/// Reads every `*.log` interval file in `dir`.
pub fn read_intervals(dir: &Path) -> Vec<Interval> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read log dir").flatten() {
        if entry.path().extension().is_none_or(|e| e != "log") {
            continue;
        }
        for line in BufReader::new(File::open(entry.path()).unwrap()).lines() {
            let line = line.unwrap();
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 5, "bad log line {line:?}");
            out.push(Interval {
                name: f[0].to_owned(),
                who: f[1].to_owned(),
                exclusive: f[2] == "X",
                start: f[3].parse().unwrap(),
                end: f[4].parse().unwrap(),
            });
        }
    }
    out
}

/// Panics with the first pair where an exclusive interval overlaps another interval of
/// the same name. Returns the number of intervals checked.
pub fn assert_exclusion(intervals: &[Interval]) -> usize {
    let mut by_name: HashMap<&str, Vec<&Interval>> = HashMap::new();
    for i in intervals {
        assert!(i.start <= i.end, "interval ends before it starts: {i:?}");
        by_name.entry(&i.name).or_default().push(i);
    }
    for list in by_name.values_mut() {
        list.sort_by_key(|i| i.start);
        // Sweep: track the latest-ending exclusive and shared intervals seen so far.
        let mut last_x: Option<&Interval> = None;
        let mut last_any: Option<&Interval> = None;
        for i in list.iter() {
            if let Some(x) = last_x {
                assert!(x.end <= i.start, "exclusion broken: {x:?} overlaps {i:?}");
            }
            if i.exclusive
                && let Some(a) = last_any
            {
                assert!(a.end <= i.start, "exclusion broken: {a:?} overlaps {i:?}");
            }
            if i.exclusive && last_x.is_none_or(|x| x.end < i.end) {
                last_x = Some(i);
            }
            if last_any.is_none_or(|a| a.end < i.end) {
                last_any = Some(i);
            }
        }
    }
    intervals.len()
}

/// A small deterministic generator (xorshift64*) for randomised workloads.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(x: bool, s: u64, e: u64) -> Interval {
        Interval {
            name: "n".into(),
            who: "w".into(),
            exclusive: x,
            start: s,
            end: e,
        }
    }

    #[test]
    fn checker_accepts_valid_histories() {
        assert_exclusion(&[
            iv(false, 0, 10),
            iv(false, 5, 15),
            iv(true, 15, 20),
            iv(false, 21, 30),
        ]);
    }

    #[test]
    #[should_panic(expected = "exclusion broken")]
    fn checker_catches_writer_inside_reader() {
        assert_exclusion(&[iv(false, 0, 100), iv(false, 5, 10), iv(true, 20, 30)]);
    }

    #[test]
    #[should_panic(expected = "exclusion broken")]
    fn checker_catches_reader_inside_writer() {
        assert_exclusion(&[iv(true, 0, 100), iv(false, 50, 60)]);
    }
}
