//! Every option, and every accepted shape of `manager` and `user`.
#![deny(warnings)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use scanlock::ScanLockManager;

struct Service {
    id: u32,
    locks: ScanLockManager,
    shared_locks: Arc<ScanLockManager>,
    name: String,
}

static LOCKS: OnceLock<ScanLockManager> = OnceLock::new();

fn locks() -> &'static ScanLockManager {
    LOCKS.get().expect("set in main")
}

const WAIT: Duration = Duration::from_millis(10);

impl Service {
    #[scanlock::synchronized("{self.id}", manager = self.locks)]
    fn by_field(&self) -> std::io::Result<()> {
        Ok(())
    }

    #[scanlock::synchronized("{self.id}", manager = &self.locks, shared)]
    fn by_ref(&mut self) -> std::io::Result<()> {
        self.id += 1;
        Ok(())
    }

    #[scanlock::read_locked("{self.id}", manager = self.shared_locks, user = self.name.clone())]
    fn by_arc(&self) -> std::io::Result<()> {
        Ok(())
    }

    #[scanlock::write_locked("{self.id}", manager = locks(), user = &self.name, blocking = false)]
    fn by_static(&self) -> std::io::Result<()> {
        Ok(())
    }
}

#[scanlock::write_locked("{scan_id}", timeout = WAIT, blocking = true, user = format!("job-{scan_id}"))]
fn timed(scan_id: &str) -> std::io::Result<()> {
    let _ = scan_id;
    Ok(())
}

#[scanlock::read_locked(manager = m, timeout = Duration::from_secs(1) * 2, on_error = panic)]
fn explicit(m: &ScanLockManager, scan_id: &str) -> usize {
    scan_id.len()
}

fn main() {
    let dir = std::env::temp_dir().join(format!("scanlock-ui-options-{}", std::process::id()));
    let locks = ScanLockManager::new(&dir).unwrap();
    let _ = LOCKS.set(locks.clone());
    let mut s = Service {
        id: 1,
        shared_locks: Arc::new(locks.clone()),
        locks: locks.clone(),
        name: "svc".into(),
    };
    s.by_field().unwrap();
    s.by_ref().unwrap();
    s.by_arc().unwrap();
    s.by_static().unwrap();
    assert_eq!(explicit(&locks, "abc"), 3);
    let _ = timed; // uses the global manager, which this test does not set
    drop(locks);
    let _ = std::fs::remove_dir_all(&dir);
}
