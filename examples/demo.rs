//! The main demo: several processes share scans safely.
//!
//! `cargo run --example demo` starts one writer and three readers as separate processes
//! (this same binary, re-run with a role), all working on the scans `scan001` and
//! `scan002` under a temporary root. Each prints when it waits, holds and releases; at
//! the end the parent checks the enter/exit log and prints a timeline and a verdict.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scanlock::{LockType, ScanLockManager};
use scanlock_testkit::{
    IntervalLog, assert_exclusion, monotonic_ns, read_intervals, wait_deadline,
};

const SCANS: [&str; 2] = ["scan001", "scan002"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "--role" {
        return worker(&args[2], Path::new(&args[3]), args[4].parse()?);
    }
    let dir = tempfile_dir()?;
    let root = dir.as_path();
    std::fs::create_dir_all(root.join("logs"))?;
    println!(
        "scanlock demo: 1 writer and 3 readers (separate processes) on {}",
        root.display()
    );
    println!("locks live in {}\n", root.join(".locks").display());
    let t0 = monotonic_ns();
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for role in ["writer", "reader-1", "reader-2", "reader-3"] {
        let child = Command::new(&exe)
            .args(["--role", role, &root.display().to_string(), &t0.to_string()])
            .stdin(Stdio::null())
            .spawn()?;
        children.push((role, child));
    }
    for (role, child) in &mut children {
        let status = wait_deadline(child, Duration::from_secs(60), role);
        if !status.success() {
            return Err(format!("{role} failed: {status}").into());
        }
    }

    let mut intervals = read_intervals(&root.join("logs"));
    intervals.sort_by_key(|i| i.start);
    println!("\ntimeline (ms since start; X = exclusive, S = shared):");
    for i in &intervals {
        println!(
            "  {:>7.1} .. {:>7.1}  {}  {:<8} {}",
            (i.start - t0) as f64 / 1e6,
            (i.end - t0) as f64 / 1e6,
            if i.exclusive { "X" } else { "S" },
            i.name,
            i.who
        );
    }
    let n = assert_exclusion(&intervals);
    let writes = intervals.iter().filter(|i| i.exclusive).count();
    println!(
        "\nverdict: {n} holds ({writes} exclusive, {} shared) across 4 processes; \
         no exclusive hold overlapped any other holder of the same scan.",
        n - writes
    );
    let m = ScanLockManager::new(root)?;
    for scan in SCANS {
        let st = m.get_lock_status(scan)?;
        println!(
            "status {scan}: {}",
            if st.is_free() { "free" } else { "held" }
        );
    }
    std::fs::remove_dir_all(root)?;
    Ok(())
}

fn worker(role: &str, root: &Path, t0: u64) -> Result<(), Box<dyn std::error::Error>> {
    let m = ScanLockManager::new(root)?;
    let pid = std::process::id();
    let who = format!("{role}[{pid}]");
    let mut log = IntervalLog::create(&root.join("logs").join(format!("{role}.log")));
    let ms = |t: u64| (t - t0) as f64 / 1e6;
    let writer = role == "writer";
    let rounds = if writer { 4 } else { 6 };
    for round in 0..rounds {
        let scan = SCANS[round % SCANS.len()];
        let mode = if writer {
            LockType::Exclusive
        } else {
            LockType::Shared
        };
        let asked = monotonic_ns();
        let guard = m.acquire_lock(scan, mode, role, Some(Duration::from_secs(20)))?;
        let start = monotonic_ns();
        let others = m.get_lock_status(scan)?.holders.len() - 1;
        println!(
            "{:>7.1} ms  {who:<16} holds {mode:<9} {scan} (waited {:.1} ms, {others} other holder(s))",
            ms(start),
            (start - asked) as f64 / 1e6
        );
        // Readers "read" for 30 ms, the writer "writes" for 50 ms.
        std::thread::sleep(Duration::from_millis(if writer { 50 } else { 30 }));
        let end = monotonic_ns();
        log.record(scan, &who, writer, start, end);
        guard.release()?;
        println!("{:>7.1} ms  {who:<16} released {scan}", ms(monotonic_ns()));
        std::thread::sleep(Duration::from_millis(if writer { 25 } else { 5 }));
    }
    Ok(())
}

/// A fresh directory under the system temp dir (the demo removes it when done).
fn tempfile_dir() -> std::io::Result<PathBuf> {
    let nanos = Instant::now().elapsed().as_nanos() ^ u128::from(monotonic_ns());
    let dir = std::env::temp_dir().join(format!("scanlock-demo-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
