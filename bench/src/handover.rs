//! Case 6: hand-over latency. This process holds a name; a child process waits for it
//! (a timed wait, `acquire_lock(.., Some(10 s))`); this process releases it. The latency
//! is from just before the release call (CLOCK_MONOTONIC here) to the waiter's return
//! with the lock (CLOCK_MONOTONIC there).
//!
//! A timed wait cannot block in `flock` (it could not be cancelled at the deadline), so
//! scanlock polls with a back-off capped at 1 ms: the latency is bounded by the cap. The
//! floor is a raw blocking `flock`, woken by the kernel at the release.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use scanlock::{LockType, Wait};

use crate::child::{self, RoleArgs};
use crate::ops::{self, F0};
use crate::stats::Dist;
use crate::sys::{Rng, monotonic_ns};

/// Who waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiter {
    /// scanlock, `acquire_lock(.., Some(10 s))`: the case.
    ScanlockTimed,
    /// scanlock, `Wait::Forever`.
    ScanlockForever,
    /// Raw blocking `flock`: the floor.
    Raw,
}

impl Waiter {
    fn arg(self) -> &'static str {
        match self {
            Waiter::ScanlockTimed => "timed",
            Waiter::ScanlockForever => "forever",
            Waiter::Raw => "raw",
        }
    }

    /// For tables.
    pub fn label(self) -> &'static str {
        match self {
            Waiter::ScanlockTimed => "scanlock timed wait (acquire_lock(.., Some(10 s)))",
            Waiter::ScanlockForever => "scanlock Wait::Forever",
            Waiter::Raw => "raw blocking flock (floor)",
        }
    }
}

/// One waiter kind's latencies.
#[derive(Clone, Debug)]
pub struct HandRow {
    /// Who waited.
    pub waiter: Waiter,
    /// Release → acquisition latency.
    pub latency: Dist,
    /// Set when the exchange broke down.
    pub problem: Option<String>,
}

/// `iterations` hand-overs to a waiter of kind `waiter`.
pub fn measure(dir: &Path, waiter: Waiter, iterations: usize) -> HandRow {
    let root = dir.join(format!("handover-{}", waiter.arg()));
    let name = "handed";
    let lock = ops::lock_file_of(&root, name);
    std::fs::create_dir_all(lock.parent().unwrap()).expect("lock dir");
    ops::touch(&lock);
    let raw = (waiter == Waiter::Raw).then(|| F0::open(&lock));
    let m = (waiter != Waiter::Raw).then(|| ops::manager(&root, true));
    let mut c = child::spawn(
        "waiter",
        &[
            ("who", waiter.arg().to_owned()),
            ("root", root.display().to_string()),
            ("name", name.to_owned()),
        ],
        true,
    );
    let mut to_child = c.stdin.take().expect("child stdin");
    let from_child = c.stdout.take().expect("child stdout");
    // Lines from the child arrive on a channel, so every read has a deadline.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(from_child).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let recv = || rx.recv_timeout(Duration::from_secs(15)).ok();
    let mut rng = Rng::new(0);
    let mut lat = Vec::with_capacity(iterations);
    let mut problem = None;
    if recv().as_deref() != Some("ready") {
        problem = Some("the waiter did not start".to_owned());
    }
    for _ in 0..iterations {
        if problem.is_some() {
            break;
        }
        let guard = m.as_ref().map(|m| {
            m.acquire_lock(
                name,
                LockType::Exclusive,
                "holder",
                Some(Duration::from_secs(10)),
            )
            .expect("holder acquires")
        });
        if let Some(f) = &raw {
            // SAFETY: the descriptor is open.
            assert_eq!(
                unsafe { libc::flock(f.file().as_raw_fd(), libc::LOCK_EX) },
                0
            );
        }
        if writeln!(to_child, "go")
            .and_then(|()| to_child.flush())
            .is_err()
            || recv().as_deref() != Some("waiting")
        {
            problem = Some("the waiter stopped answering".to_owned());
            break;
        }
        // Hold a random 2–6 ms after the waiter started waiting: long enough for its
        // back-off to reach the cap, and releases land at every phase of its polling.
        std::thread::sleep(Duration::from_micros(rng.range(2_000, 6_000)));
        let t_rel = monotonic_ns();
        if let Some(g) = guard {
            g.release().expect("holder releases");
        }
        if let Some(f) = &raw {
            // SAFETY: the descriptor is open.
            unsafe { libc::flock(f.file().as_raw_fd(), libc::LOCK_UN) };
        }
        match recv().and_then(|l| l.parse::<u64>().ok()) {
            Some(t_acq) => lat.push(t_acq.saturating_sub(t_rel)),
            None => {
                problem = Some("the waiter did not report an acquisition".to_owned());
                break;
            }
        }
    }
    drop(to_child);
    let _ = child::wait_all(
        std::slice::from_mut(&mut c),
        std::time::Instant::now() + Duration::from_secs(10),
    );
    HandRow {
        waiter,
        latency: Dist::of(&mut lat),
        problem,
    }
}

/// `--role waiter`: for every `go` line, say `waiting`, wait for the lock, print the
/// acquisition time, release.
pub fn waiter_role(a: &RoleArgs) {
    let root = Path::new(a.str("root"));
    let name = a.str("name");
    let who = a.str("who");
    let raw = (who == "raw").then(|| F0::open(&ops::lock_file_of(root, name)));
    let m = (who != "raw").then(|| ops::manager(root, true));
    let wait = if who == "forever" {
        Wait::Forever
    } else {
        Wait::Timeout(Duration::from_secs(10))
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "ready").and_then(|()| out.flush()).ok();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line != "go" {
            continue;
        }
        writeln!(out, "waiting").and_then(|()| out.flush()).ok();
        let t_acq = if let Some(f) = &raw {
            let fd = f.file().as_raw_fd();
            // SAFETY: the descriptor is open.
            while unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {}
            let t = monotonic_ns();
            // SAFETY: as above.
            unsafe { libc::flock(fd, libc::LOCK_UN) };
            t
        } else {
            let g = m
                .as_ref()
                .unwrap()
                .acquire_lock_with(name, LockType::Exclusive, "waiter", wait)
                .expect("waiter acquires");
            let t = monotonic_ns();
            drop(g);
            t
        };
        writeln!(out, "{t_acq}").and_then(|()| out.flush()).ok();
    }
}
