//! The attribute macros end to end: `cargo run --example macros`.
//!
//! Locks a few functions by templates built from their arguments, shows who holds a
//! lock from inside the body, and what a caller gets when the lock is taken.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use scanlock::{LockError, LockType, ScanLockManager};

#[derive(Debug)]
enum MyError {
    Lock(LockError),
    Empty,
}

impl From<LockError> for MyError {
    fn from(e: LockError) -> Self {
        MyError::Lock(e)
    }
}

impl std::error::Error for MyError {}

impl fmt::Display for MyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MyError::Lock(e) => write!(f, "lock: {e}"),
            MyError::Empty => f.write_str("no data"),
        }
    }
}

/// Exclusive lock "process-<scan_id>", on the global manager.
#[scanlock::synchronized("{f_name}-{scan_id}")]
fn process(scan_id: &str, data: &[u8]) -> Result<usize, MyError> {
    if data.is_empty() {
        return Err(MyError::Empty); // the lock is released on this path too
    }
    let status = scanlock::global_manager()?.get_lock_status(&format!("process-{scan_id}"))?;
    println!(
        "  inside process({scan_id:?}): {:?} held by {}",
        status.lock_type, status.holders[0].user
    );
    Ok(data.len())
}

/// Shared lock on the name `scan_id` itself.
#[scanlock::read_locked]
fn read_scan(scan_id: &str) -> std::io::Result<Vec<u8>> {
    Ok(scan_id.as_bytes().to_vec())
}

struct Scan {
    id: String,
}

#[scanlock::write_locked("{scan.id}", timeout = Duration::from_secs(10), user = "ingest")]
fn write_scan(scan: &Scan) -> anyhow::Result<()> {
    let status = scanlock::global_manager()?.get_lock_status(&scan.id)?;
    println!("  inside write_scan: held by {:?}", status.holders[0].user);
    Ok(())
}

/// A service with its own manager instead of the global one.
struct Snapshots {
    id: u32,
    locks: ScanLockManager,
}

impl Snapshots {
    #[scanlock::synchronized("{f_name}-{self.id}-{snap[name]}", blocking = false, manager = self.locks)]
    fn snapshot(&self, snap: &HashMap<String, String>) -> Result<(), LockError> {
        let _ = snap;
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    scanlock::init_lock_root(dir.path())?;

    println!("process: {:?}", process("scan001", b"data")?);
    println!(
        "process with no data: {}",
        process("scan001", b"").unwrap_err()
    );
    println!("read_scan: {:?}", read_scan("scan001")?);
    write_scan(&Scan {
        id: "scan002".into(),
    })?;

    let service = Snapshots {
        id: 7,
        locks: ScanLockManager::new(dir.path())?,
    };
    let snap = HashMap::from([("name".to_owned(), "daily".to_owned())]);
    service.snapshot(&snap)?;

    // While another thread holds "snapshot-7-daily", `blocking = false` fails at once
    // and the body does not run.
    std::thread::scope(|s| -> anyhow::Result<()> {
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let locks = &service.locks;
        s.spawn(move || {
            let _guard = locks
                .acquire_lock("snapshot-7-daily", LockType::Exclusive, "backup-job", None)
                .expect("take the lock");
            held_tx.send(()).unwrap();
            let _ = done_rx.recv_timeout(Duration::from_secs(10));
        });
        held_rx.recv_timeout(Duration::from_secs(10))?;
        println!(
            "snapshot while held: {}",
            service.snapshot(&snap).unwrap_err()
        );
        drop(done_tx);
        Ok(())
    })?;
    Ok(())
}
