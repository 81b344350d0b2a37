//! Case 7: many names. A child process (so that its peak RSS and descriptor count are
//! its own) acquires and releases 100 000 distinct names once each, twice over (the
//! first pass creates their files, the second finds them), then holds 1 000 names at
//! once. Another child lowers its descriptor limit and holds names until scanlock
//! reports the limit, to show a clear error instead of a crash.
//!
//! Times are interleaved with the reference they are compared to: every chunk of 1 000
//! new names is followed by 1 000 operations of case 1's "no cached handles" loop (128
//! names in rotation) and, in the first pass, by 1 000 raw creations of a fresh file
//! with `flock` (the floor when a lock file has to be created).

use std::collections::HashMap;
use std::ffi::CString;
use std::path::Path;
use std::time::{Duration, Instant};

use scanlock::LockType;

use crate::child::{self, RoleArgs};
use crate::ops;
use crate::stats;
use crate::sys::{self, monotonic_ns};

const CHUNK: usize = 1_000;

/// What the scale child reports, by key.
pub type ScaleOut = HashMap<String, String>;

/// Runs the scale child with `names` names and `held` held at once.
pub fn measure(dir: &Path, names: usize, held: usize) -> Result<ScaleOut, String> {
    run_child(
        "scale",
        &[
            ("root", dir.join("scale").display().to_string()),
            ("names", names.to_string()),
            ("held", held.to_string()),
        ],
        Duration::from_secs(600),
    )
}

/// Runs the descriptor-limit child with `RLIMIT_NOFILE = limit`.
pub fn fd_limit(dir: &Path, limit: u64) -> Result<ScaleOut, String> {
    run_child(
        "fdlimit",
        &[
            ("root", dir.join("fdlimit").display().to_string()),
            ("limit", limit.to_string()),
        ],
        Duration::from_secs(60),
    )
}

fn run_child(role: &str, args: &[(&str, String)], limit: Duration) -> Result<ScaleOut, String> {
    use std::io::Read;
    let mut c = child::spawn(role, args, true);
    drop(c.stdin.take());
    let mut stdout = c.stdout.take().expect("child stdout");
    // Read on a thread so that the deadline below applies even if the child hangs.
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let st = child::wait_all(std::slice::from_mut(&mut c), Instant::now() + limit);
    let text = reader.join().unwrap_or_default();
    let out: ScaleOut = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    match st.first() {
        Some(Some(s)) if s.success() => Ok(out),
        Some(Some(s)) => Err(format!("{role} child failed: {s}; output: {text}")),
        _ => Err(format!("{role} child killed after {limit:?}")),
    }
}

fn emit(k: &str, v: impl std::fmt::Display) {
    println!("{k}={v}");
}

/// Times `f` over `n` operations, per operation.
fn per_op(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let t = monotonic_ns();
    for i in 0..n {
        f(i);
    }
    (monotonic_ns() - t) as f64 / n as f64
}

/// `--role scale`.
pub fn scale_role(a: &RoleArgs) {
    let root = Path::new(a.str("root"));
    let n = a.u64("names") as usize;
    let held = a.u64("held") as usize;
    let fds_start = sys::open_fds();
    let m = ops::manager(root, false);
    let rot = ops::rotation_names("base-");
    for name in rot.iter().chain(rot.iter()) {
        ops::scanlock_op(&m, name, false);
    }
    // The floor's files go into scanlock's own lock directory: ext4 places a new inode
    // near its directory's, and right after a mass deletion (the previous run's scratch
    // directory) finding a free inode costs far more in some block groups than in
    // others, so a floor in a directory of its own would not do the same work.
    let floor_dir = root.join(".locks");
    std::fs::create_dir_all(&floor_dir).expect("lock dir");
    let floor_paths: Vec<CString> = (0..n)
        .map(|i| ops::cpath(&floor_dir.join(format!("f-{i}.floor"))))
        .collect();
    let names: Vec<String> = (0..n).map(|i| format!("n-{i}")).collect();
    let hwm0 = sys::status_kb("VmHWM").unwrap_or(0);
    let fds0 = sys::open_fds();
    let mut max_fds = fds0;
    let mut r = 0usize;
    let mut base = |count: usize| {
        per_op(count, |_| {
            r = (r + 1) % rot.len();
            ops::scanlock_op(&m, &rot[r], false)
        })
    };

    // Pass 1: every name new (its files are created), interleaved with the references.
    let (mut p1, mut b1, mut fl) = (Vec::new(), Vec::new(), Vec::new());
    let t_all = monotonic_ns();
    for c in 0..n.div_ceil(CHUNK) {
        let range = c * CHUNK..((c + 1) * CHUNK).min(n);
        let len = range.len();
        let t = monotonic_ns();
        for name in &names[range.clone()] {
            ops::scanlock_op(&m, name, false);
        }
        p1.push((monotonic_ns() - t) as f64 / len as f64);
        max_fds = max_fds.max(sys::open_fds());
        b1.push(base(len));
        fl.push(per_op(len, |i| {
            ops::f1v(&floor_paths[range.start + i], false)
        }));
    }
    let pass1_total = monotonic_ns() - t_all;
    // Pass 2: the same names again; their files exist.
    let (mut p2, mut b2) = (Vec::new(), Vec::new());
    for c in 0..n.div_ceil(CHUNK) {
        let range = c * CHUNK..((c + 1) * CHUNK).min(n);
        let len = range.len();
        let t = monotonic_ns();
        for name in &names[range] {
            ops::scanlock_op(&m, name, false);
        }
        p2.push((monotonic_ns() - t) as f64 / len as f64);
        max_fds = max_fds.max(sys::open_fds());
        b2.push(base(len));
    }
    emit("names", n);
    emit("pass1_ns", stats::median(&mut p1));
    emit("pass1_base_ns", stats::median(&mut b1));
    emit("pass1_floor_create_ns", stats::median(&mut fl));
    emit("pass1_total_ms", pass1_total / 1_000_000);
    emit("pass2_ns", stats::median(&mut p2));
    emit("pass2_base_ns", stats::median(&mut b2));
    emit("fds_start", fds_start);
    emit("fds_before", fds0);
    emit("fds_max", max_fds);
    emit("hwm_before_kb", hwm0);
    emit("hwm_after_kb", sys::status_kb("VmHWM").unwrap_or(0));
    emit("rss_after_kb", sys::status_kb("VmRSS").unwrap_or(0));

    // Metadata on (the default), new names: a record file per name as well.
    let mon = ops::manager(root, true);
    let mut pm = Vec::new();
    for c in 0..n.div_ceil(CHUNK) {
        let range = c * CHUNK..((c + 1) * CHUNK).min(n);
        let len = range.len();
        let t = monotonic_ns();
        for i in range {
            ops::scanlock_op(&mon, &format!("m-{i}"), false);
        }
        pm.push((monotonic_ns() - t) as f64 / len as f64);
        max_fds = max_fds.max(sys::open_fds());
    }
    emit("meta_pass_ns", stats::median(&mut pm));
    emit("fds_max_meta", max_fds);
    emit("hwm_after_meta_kb", sys::status_kb("VmHWM").unwrap_or(0));

    // Many names held at once.
    let t = monotonic_ns();
    let guards: Vec<_> = (0..held)
        .map(|i| {
            m.acquire_lock(&format!("held-{i}"), LockType::Exclusive, "bench", None)
                .expect("hold many names")
        })
        .collect();
    let took = monotonic_ns() - t;
    emit("held", guards.len());
    emit("held_ns_per_name", took as f64 / held.max(1) as f64);
    emit("fds_holding", sys::open_fds());
    drop(guards);
    emit("fds_after_release", sys::open_fds());
}

/// `--role fdlimit`: caps descriptors, then holds names until scanlock says no.
pub fn fd_limit_role(a: &RoleArgs) {
    let limit = a.u64("limit");
    sys::set_nofile(limit).expect("setrlimit");
    let m = scanlock::ScanLockManager::new(a.str("root")).expect("manager");
    let mut guards = Vec::new();
    let mut error = None;
    for i in 0..limit as usize {
        match m.try_acquire_lock(&format!("scan{i:04}"), LockType::Exclusive, "bench") {
            Ok(g) => guards.push(g),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    emit("limit", limit);
    emit("held", guards.len());
    emit("fds", sys::open_fds_below(limit));
    match &error {
        Some(e) => {
            emit("error", e.to_string().replace('\n', " "));
            let kind = match e {
                scanlock::LockError::Io(io) => format!("Io({:?})", io.kind()),
                other => format!("{other:?}").chars().take(40).collect(),
            };
            emit("error_kind", kind);
        }
        None => emit("error", "none"),
    }
    // After releasing everything, can the process take a new name again?
    drop(guards);
    emit("fds_after_release", sys::open_fds_below(limit));
    match m.try_acquire_lock("after-release", LockType::Exclusive, "bench") {
        Ok(_) => emit("works_after_release", true),
        Err(e) => {
            emit("works_after_release", false);
            emit("error_after_release", e.to_string().replace('\n', " "));
        }
    }
}
