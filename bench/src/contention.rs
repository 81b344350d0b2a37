//! Case 4: N threads or N processes take one name exclusively, each holding it for a
//! tiny critical section (a busy 10 µs), back to back for a fixed time.
//!
//! The peer is a raw `flock` loop doing the same: each worker opens its own descriptor
//! to the same file and blocks in `flock(LOCK_EX)`. Throughput is the total number of
//! holds per second; the wait of an operation is the time from asking to holding.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use scanlock::{LockType, ScanLockManager, Wait};

use crate::child::{self, RoleArgs};
use crate::ops::{self, F0};
use crate::stats::Dist;
use crate::sys::{monotonic_ns, sleep_until, spin_for};

/// The longest a scanlock worker waits for one hold (it never should come close).
const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// Who takes the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    /// `flock(LOCK_EX)` blocking on a per-worker descriptor.
    Raw,
    /// scanlock as configured by default: metadata on, timed wait (`acquire_lock(.., None)`).
    Scanlock,
    /// scanlock with metadata off.
    ScanlockNoMeta,
    /// scanlock, metadata on, `Wait::Forever` (blocks in the kernel instead of polling).
    ScanlockForever,
}

impl Contender {
    /// Command-line form.
    pub fn arg(self) -> &'static str {
        match self {
            Contender::Raw => "raw",
            Contender::Scanlock => "scanlock",
            Contender::ScanlockNoMeta => "scanlock-nometa",
            Contender::ScanlockForever => "scanlock-forever",
        }
    }

    /// Parses [`arg`](Self::arg).
    pub fn parse(s: &str) -> Contender {
        match s {
            "raw" => Contender::Raw,
            "scanlock" => Contender::Scanlock,
            "scanlock-nometa" => Contender::ScanlockNoMeta,
            "scanlock-forever" => Contender::ScanlockForever,
            other => panic!("unknown contender {other}"),
        }
    }

    /// For tables.
    pub fn label(self) -> &'static str {
        match self {
            Contender::Raw => "raw flock (blocking)",
            Contender::Scanlock => "scanlock (default: metadata, timed wait)",
            Contender::ScanlockNoMeta => "scanlock (metadata off, timed wait)",
            Contender::ScanlockForever => "scanlock (metadata, Wait::Forever)",
        }
    }

    fn manager(self, root: &Path) -> Option<ScanLockManager> {
        match self {
            Contender::Raw => None,
            Contender::ScanlockNoMeta => Some(ops::manager(root, false)),
            _ => Some(ops::manager(root, true)),
        }
    }
}

/// One worker's record.
#[derive(Debug, Default)]
pub struct WorkerOut {
    /// Wait of every hold, ns.
    pub waits: Vec<u64>,
    /// When its last hold ended (monotonic ns).
    pub finish_ns: u64,
    /// Acquisitions that failed (timeouts): should be 0.
    pub errors: u64,
}

/// Takes and releases the lock from `start_ns` until `end_ns` (no new request after it).
fn worker(
    who: Contender,
    m: Option<&ScanLockManager>,
    raw: Option<&F0>,
    name: &str,
    start_ns: u64,
    end_ns: u64,
    hold_ns: u64,
) -> WorkerOut {
    let mut out = WorkerOut {
        waits: Vec::with_capacity(1 << 16),
        ..WorkerOut::default()
    };
    sleep_until(start_ns);
    loop {
        let t0 = monotonic_ns();
        if t0 >= end_ns {
            break;
        }
        match (who, m, raw) {
            (Contender::Raw, _, Some(f)) => {
                use std::os::fd::AsRawFd;
                let fd = f.file().as_raw_fd();
                // SAFETY: fd is open for the worker's lifetime.
                while unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
                    assert_eq!(
                        std::io::Error::last_os_error().kind(),
                        std::io::ErrorKind::Interrupted
                    );
                }
                let t1 = monotonic_ns();
                spin_for(hold_ns);
                // SAFETY: as above.
                unsafe { libc::flock(fd, libc::LOCK_UN) };
                out.waits.push(t1 - t0);
            }
            (_, Some(m), _) => {
                let wait = if who == Contender::ScanlockForever {
                    Wait::Forever
                } else {
                    Wait::Timeout(OP_TIMEOUT)
                };
                match m.acquire_lock_with(name, LockType::Exclusive, "bench", wait) {
                    Ok(g) => {
                        let t1 = monotonic_ns();
                        spin_for(hold_ns);
                        drop(g);
                        out.waits.push(t1 - t0);
                    }
                    Err(_) => out.errors += 1,
                }
            }
            _ => unreachable!("a contender with nothing to lock"),
        }
    }
    out.finish_ns = monotonic_ns();
    out
}

/// Threads or processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Threads of this process.
    Threads,
    /// Processes (this binary re-executed).
    Processes,
}

/// One configuration's result.
#[derive(Clone, Debug)]
pub struct ContRow {
    /// Threads or processes.
    pub scope: Scope,
    /// Workers.
    pub workers: usize,
    /// Who.
    pub who: Contender,
    /// Holds per second, all workers together.
    pub ops_per_s: f64,
    /// Wait distribution over all holds.
    pub wait: Dist,
    /// Fewest and most holds of one worker (how fair the sharing was).
    pub per_worker: (usize, usize),
    /// Failed acquisitions, or workers that did not finish.
    pub errors: u64,
}

/// Measures one configuration for `dur`.
pub fn measure(
    dir: &Path,
    scope: Scope,
    workers: usize,
    who: Contender,
    dur: Duration,
    hold_ns: u64,
) -> ContRow {
    let root = dir.join(format!("cont-{}-{workers}-{}", scope_arg(scope), who.arg()));
    fs::create_dir_all(&root).expect("contention root");
    let name = "hot";
    let raw_path = ops::lock_file_of(&root, name);
    fs::create_dir_all(raw_path.parent().unwrap()).expect("lock dir");
    ops::touch(&raw_path);
    // Children need time to exec and open their files before the common start.
    let start = monotonic_ns() + 150_000_000;
    let end = start + dur.as_nanos() as u64;
    let outs: Vec<WorkerOut> = match scope {
        Scope::Threads => {
            let m = who.manager(&root);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..workers)
                    .map(|_| {
                        let m = m.clone();
                        let raw = (who == Contender::Raw).then(|| F0::open(&raw_path));
                        s.spawn(move || {
                            worker(who, m.as_ref(), raw.as_ref(), name, start, end, hold_ns)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("worker thread"))
                    .collect()
            })
        }
        Scope::Processes => {
            let outs: Vec<_> = (0..workers)
                .map(|i| root.join(format!("worker-{i}.out")))
                .collect();
            let mut children: Vec<_> = outs
                .iter()
                .map(|o| {
                    child::spawn(
                        "contend",
                        &[
                            ("who", who.arg().to_owned()),
                            ("root", root.display().to_string()),
                            ("name", name.to_owned()),
                            ("start", start.to_string()),
                            ("end", end.to_string()),
                            ("hold", hold_ns.to_string()),
                            ("out", o.display().to_string()),
                        ],
                        false,
                    )
                })
                .collect();
            let deadline = Instant::now() + dur + Duration::from_secs(40);
            let st = child::wait_all(&mut children, deadline);
            outs.iter()
                .zip(st)
                .map(|(o, s)| match s {
                    Some(s) if s.success() => read_out(o),
                    _ => WorkerOut {
                        errors: 1,
                        ..WorkerOut::default()
                    },
                })
                .collect()
        }
    };
    summarize(scope, workers, who, start, outs)
}

fn scope_arg(s: Scope) -> &'static str {
    match s {
        Scope::Threads => "threads",
        Scope::Processes => "processes",
    }
}

fn summarize(
    scope: Scope,
    workers: usize,
    who: Contender,
    start: u64,
    outs: Vec<WorkerOut>,
) -> ContRow {
    let finish = outs.iter().map(|o| o.finish_ns).max().unwrap_or(start);
    let total: usize = outs.iter().map(|o| o.waits.len()).sum();
    let per_worker = (
        outs.iter().map(|o| o.waits.len()).min().unwrap_or(0),
        outs.iter().map(|o| o.waits.len()).max().unwrap_or(0),
    );
    let errors = outs.iter().map(|o| o.errors).sum();
    let mut all: Vec<u64> = outs.into_iter().flat_map(|o| o.waits).collect();
    ContRow {
        scope,
        workers,
        who,
        ops_per_s: total as f64 / (finish.saturating_sub(start).max(1) as f64 / 1e9),
        wait: Dist::of(&mut all),
        per_worker,
        errors,
    }
}

fn read_out(path: &Path) -> WorkerOut {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines();
    let mut head = lines
        .next()
        .unwrap_or("0 1")
        .split_whitespace()
        .map(|v| v.parse::<u64>().unwrap_or(0));
    let finish_ns = head.next().unwrap_or(0);
    let errors = head.next().unwrap_or(1);
    WorkerOut {
        finish_ns,
        errors,
        waits: lines.filter_map(|l| l.parse().ok()).collect(),
    }
}

/// The child side of a process configuration (`--role contend`).
pub fn role(a: &RoleArgs) {
    let who = Contender::parse(a.str("who"));
    let root = Path::new(a.str("root"));
    let name = a.str("name");
    let m = who.manager(root);
    let raw = (who == Contender::Raw).then(|| F0::open(&ops::lock_file_of(root, name)));
    let out = worker(
        who,
        m.as_ref(),
        raw.as_ref(),
        name,
        a.u64("start"),
        a.u64("end"),
        a.u64("hold"),
    );
    let mut text = String::with_capacity(out.waits.len() * 8 + 32);
    text.push_str(&format!("{} {}\n", out.finish_ns, out.errors));
    for w in &out.waits {
        text.push_str(&w.to_string());
        text.push('\n');
    }
    fs::write(a.str("out"), text).expect("write worker output");
}
