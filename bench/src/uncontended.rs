//! Cases 1–3 and the Rust peers: single-threaded acquire+release loops, measured
//! *interleaved*.
//!
//! On a shared two-core machine the speed of a system call changes from second to
//! second (another build starts, the page cache fills). Timing one case for ten seconds
//! and then the next would turn that drift into a false ratio. Instead every round runs
//! a short batch of *every* case, the start case rotating from round to round, and a
//! case's figure is the median over rounds of its per-operation time: each ratio
//! compares batches that ran within milliseconds of each other.

use std::ffi::CString;
use std::hint::black_box;
use std::path::Path;

use crate::ops::{self, F0};
use crate::stats;
use crate::sys::monotonic_ns;

/// One contender: `run(n)` performs `n` acquire+release operations.
pub struct Case<'a> {
    /// Stable key the report refers to.
    pub key: &'static str,
    /// What the table shows.
    pub label: &'static str,
    /// The key of the floor this case is compared with (itself for a floor).
    pub floor: &'static str,
    run: Box<dyn FnMut(u64) + 'a>,
}

impl<'a> Case<'a> {
    /// A case from a single-operation closure.
    pub fn new(
        key: &'static str,
        label: &'static str,
        floor: &'static str,
        mut op: impl FnMut() + 'a,
    ) -> Case<'a> {
        Case {
            key,
            label,
            floor,
            run: Box::new(move |n| {
                for _ in 0..n {
                    op();
                }
            }),
        }
    }

    /// A case whose every batch first runs `before` (timed with the batch: it should be
    /// cheap next to a batch).
    pub fn batched(
        key: &'static str,
        label: &'static str,
        floor: &'static str,
        mut before: impl FnMut() + 'a,
        mut op: impl FnMut() + 'a,
    ) -> Case<'a> {
        Case {
            key,
            label,
            floor,
            run: Box::new(move |n| {
                before();
                for _ in 0..n {
                    op();
                }
            }),
        }
    }
}

/// A case's result.
#[derive(Clone, Debug)]
pub struct Measured {
    /// See [`Case::key`].
    pub key: &'static str,
    /// See [`Case::label`].
    pub label: &'static str,
    /// See [`Case::floor`].
    pub floor: &'static str,
    /// Median over rounds of the per-operation time, ns.
    pub median_ns: f64,
    /// Per-operation time of each round's batch, ns (sorted).
    pub rounds: Vec<f64>,
}

/// How long to measure.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Rounds (each runs one batch of every case).
    pub rounds: usize,
    /// Target duration of one batch.
    pub batch_ns: u64,
}

/// Longer than scanlock's settling time for a lock directory's timestamps (2 s, whole
/// seconds).
const SETTLE: std::time::Duration = std::time::Duration::from_millis(3100);

/// Runs `cases` interleaved (see the module docs).
pub fn run(mut cases: Vec<Case<'_>>, plan: Plan) -> Vec<Measured> {
    // Warm up (creates files, fills caches) and size each case's batch so that it lasts
    // about `batch_ns`: fast cases get many operations, slow ones few.
    let mut batch = Vec::with_capacity(cases.len());
    for c in &mut cases {
        (c.run)(ops::ROTATION as u64 * 2);
        let t = monotonic_ns();
        (c.run)(200);
        let per_op = ((monotonic_ns() - t) / 200).max(1);
        batch.push((plan.batch_ns / per_op).clamp(20, 1_000_000));
    }
    // scanlock skips re-checking a kept file's path while its lock directory has not
    // changed for 2 s (its timestamps are then "settled"); a long-running process lives
    // in that state. The warm-up just created files: let the directories settle, as they
    // would in a service. The case with a changing directory measures the other state.
    std::thread::sleep(SETTLE);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(plan.rounds); cases.len()];
    for round in 0..plan.rounds {
        for k in 0..cases.len() {
            let i = (round + k) % cases.len();
            let n = batch[i];
            let t = monotonic_ns();
            (cases[i].run)(n);
            samples[i].push((monotonic_ns() - t) as f64 / n as f64);
        }
    }
    cases
        .iter()
        .zip(samples)
        .map(|(c, mut s)| Measured {
            key: c.key,
            label: c.label,
            floor: c.floor,
            median_ns: stats::median(&mut s),
            rounds: s,
        })
        .collect()
}

/// The directories the suite works in: one lock root per manager configuration, so
/// that their handle caches do not evict each other's names.
pub struct Roots<'p> {
    /// Raw files of the floors and the Rust peers.
    pub raw: &'p Path,
    /// scanlock, metadata off, one name.
    pub off: &'p Path,
    /// scanlock, metadata off, the rotation of 128 names.
    pub off_rot: &'p Path,
    /// scanlock, metadata on (the default), one name.
    pub on: &'p Path,
    /// scanlock, metadata on, the rotation.
    pub on_rot: &'p Path,
    /// The macro case (metadata off, so the comparison is as sharp as it gets).
    pub macros: &'p Path,
}

/// Cases 1, 2, 3 and the Rust peers, all in one interleaved run.
pub fn suite(roots: &Roots<'_>, plan: Plan) -> Vec<Measured> {
    // The raw files sit as deep as scanlock's (`<root>/.locks/<name>.lock`), so that
    // path lookups cost the same.
    let raw_dir = roots.raw.join(".locks");
    std::fs::create_dir_all(&raw_dir).expect("raw lock dir");
    let raw_path = raw_dir.join("floor.lock");
    ops::touch(&raw_path);
    let craw: CString = ops::cpath(&raw_path);
    let f0 = F0::open(&raw_path);
    let peer_path = raw_dir.join("peer.lock");
    ops::touch(&peer_path);
    ops::ReplayPaths::new(&raw_dir, "replay"); // the files of the cached replay
    let replay_rot: Vec<_> = (0..ops::ROTATION)
        .map(|i| ops::ReplayPaths::new(&raw_dir, &format!("replay-{i:03}")))
        .collect();
    let (mut i_rep_ex, mut i_rep_sh) = (0usize, 0usize);
    let gate_fd = std::fs::File::open(raw_dir.join("replay.gate")).expect("replay gate");
    let lock_fd = std::fs::File::open(raw_dir.join("replay.lock")).expect("replay lock");
    let dir_fd = std::fs::File::open(&raw_dir).expect("replay lock directory");
    let (gfd, lfd, dfd) = {
        use std::os::fd::AsRawFd;
        (gate_fd.as_raw_fd(), lock_fd.as_raw_fd(), dir_fd.as_raw_fd())
    };

    let off = ops::manager(roots.off, false);
    // Its lock directory is touched before every batch: a name's kept file is then
    // checked at its path on every acquisition, as right after any change to `.locks/`.
    let busy_root = roots.off.join("changing");
    let busy = ops::manager(&busy_root, false);
    let busy_dir = std::fs::File::open(busy.lock_dir()).expect("lock directory");
    let off_rot = ops::manager(roots.off_rot, false);
    let on = ops::manager(roots.on, true);
    let on_rot = ops::manager(roots.on_rot, true);
    let mac = ops::manager(roots.macros, false);
    // Disjoint names per rotating case: with shared names, one case's batch could find
    // the names another case just used still in the handle cache.
    let rot_ex = ops::rotation_names("rot-ex-");
    let rot_sh = ops::rotation_names("rot-sh-");
    let (mut i_off_ex, mut i_off_sh, mut i_on_ex, mut i_on_sh) = (0usize, 0usize, 0usize, 0usize);
    let next = |i: &mut usize| {
        *i = (*i + 1) % ops::ROTATION;
        *i
    };

    let cases = vec![
        Case::new("f0_ex", "F0 flock EX+UN, open fd", "f0_ex", || f0.op(false)),
        Case::new("f0_sh", "F0 flock SH+UN, open fd", "f0_sh", || f0.op(true)),
        Case::new("f1_ex", "F1 open+flock EX+UN+close", "f0_ex", || {
            ops::f1(&craw, false)
        }),
        Case::new("f1v_ex", "F1v F1 + same-inode check", "f1_ex", || {
            ops::f1v(&craw, false)
        }),
        Case::new("f1v_sh", "F1v shared", "f1v_sh", || ops::f1v(&craw, true)),
        Case::new(
            "replay_ex",
            "raw replay of scanlock's 5 syscalls EX (cached handles)",
            "f0_ex",
            || ops::replay_cached(gfd, lfd, dfd, false),
        ),
        Case::new(
            "replay_sh",
            "raw replay of scanlock's 5 syscalls SH (cached handles)",
            "f0_sh",
            || ops::replay_cached(gfd, lfd, dfd, true),
        ),
        Case::new(
            "replay_ex_rot",
            "raw replay EX of a name not in the cache (opens, full checks, closes)",
            "f1v_ex",
            || ops::replay_uncached(&replay_rot[next(&mut i_rep_ex)], dfd, false),
        ),
        Case::new(
            "replay_sh_rot",
            "raw replay SH of a name not in the cache (opens, full checks, closes)",
            "f1v_sh",
            || ops::replay_uncached(&replay_rot[next(&mut i_rep_sh)], dfd, true),
        ),
        Case::new("fs4_ex", "fs4 open+lock+unlock+close", "f1_ex", || {
            ops::fs4_op(&peer_path, false)
        }),
        Case::new(
            "fdlock_ex",
            "fd-lock open+write()+drop+close",
            "f1_ex",
            || ops::fd_lock_op(&peer_path, false),
        ),
        Case::new(
            "sl_ex_off",
            "scanlock EX, metadata off, same name",
            "f0_ex",
            || ops::scanlock_op(&off, "scan001", false),
        ),
        Case::new(
            "sl_sh_off",
            "scanlock SH, metadata off, same name",
            "f0_sh",
            || ops::scanlock_op(&off, "scan001", true),
        ),
        Case::batched(
            "sl_ex_off_changing",
            "scanlock EX, metadata off, same name, lock directory just changed",
            "sl_ex_off",
            || {
                use std::os::fd::AsRawFd;
                // SAFETY: sets the open directory's times to now (a null times array).
                let rc = unsafe { libc::futimens(busy_dir.as_raw_fd(), std::ptr::null()) };
                assert_eq!(rc, 0, "futimens: {}", std::io::Error::last_os_error());
            },
            || ops::scanlock_op(&busy, "scan001", false),
        ),
        Case::new(
            "sl_ex_off_rot",
            "scanlock EX, metadata off, 128 names (no cached handles)",
            "f1v_ex",
            || ops::scanlock_op(&off_rot, &rot_ex[next(&mut i_off_ex)], false),
        ),
        Case::new(
            "sl_sh_off_rot",
            "scanlock SH, metadata off, 128 names (no cached handles)",
            "f1v_sh",
            || ops::scanlock_op(&off_rot, &rot_sh[next(&mut i_off_sh)], true),
        ),
        Case::new(
            "sl_ex_on",
            "scanlock EX, metadata on (default), same name",
            "sl_ex_off",
            || ops::scanlock_op(&on, "scan001", false),
        ),
        Case::new(
            "sl_sh_on",
            "scanlock SH, metadata on (default), same name",
            "sl_sh_off",
            || ops::scanlock_op(&on, "scan001", true),
        ),
        Case::new(
            "sl_ex_on_rot",
            "scanlock EX, metadata on, 128 names",
            "sl_ex_off_rot",
            || ops::scanlock_op(&on_rot, &rot_ex[next(&mut i_on_ex)], false),
        ),
        Case::new(
            "sl_sh_on_rot",
            "scanlock SH, metadata on, 128 names",
            "sl_sh_off_rot",
            || ops::scanlock_op(&on_rot, &rot_sh[next(&mut i_on_sh)], true),
        ),
        Case::new(
            "manual",
            "manual format!+acquire_lock (metadata off)",
            "sl_ex_off",
            || {
                black_box(crate::macro_case::process_manual(&mac, black_box("scan001")).unwrap());
            },
        ),
        Case::new(
            "macro",
            "#[synchronized(\"{f_name}-{scan_id}\")] call",
            "manual",
            || {
                black_box(crate::macro_case::process(&mac, black_box("scan001")).unwrap());
            },
        ),
    ];
    run(cases, plan)
}

/// The result for `key`.
pub fn get<'m>(all: &'m [Measured], key: &str) -> Option<&'m Measured> {
    all.iter().find(|m| m.key == key)
}

/// `a / b` by keys (NaN when either is missing).
pub fn ratio(all: &[Measured], a: &str, b: &str) -> f64 {
    match (get(all, a), get(all, b)) {
        (Some(a), Some(b)) => a.median_ns / b.median_ns,
        _ => f64::NAN,
    }
}
