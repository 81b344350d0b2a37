//! Holder metadata: who holds a lock, from where, since when.
//!
//! Metadata is for people and tools (`get_lock_status`, error messages, the CLI); it is
//! never needed for exclusion, which rests on the kernel's locks alone. A record that
//! cannot be read or parsed is reported, never trusted.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::LockType;

/// One holder of a lock, as recorded in its metadata.
///
/// Serialises to JSON with serde; this is the format of the records under
/// `<root>/.locks/<name>.holders/`.
///
/// ```
/// # use scanlock::{LockType, ScanLockManager};
/// # let dir = tempfile::tempdir().unwrap();
/// let m = ScanLockManager::new(dir.path())?;
/// let _g = m.acquire_lock("scan001", LockType::Shared, "reader1", None)?;
/// let status = m.get_lock_status("scan001")?;
/// let info = &status.holders[0];
/// assert_eq!(info.user, "reader1");
/// assert_eq!(info.pid, std::process::id());
/// let json = serde_json::to_string(info).unwrap();
/// assert!(json.contains("\"user\":\"reader1\""));
/// # Ok::<(), scanlock::LockError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LockInfo {
    /// The lock's name.
    pub name: String,
    /// The `user` string given at acquisition (metadata only: it never grants access).
    pub user: String,
    /// The holding process.
    pub pid: u32,
    /// The holding host.
    pub hostname: String,
    /// The holding thread: its name, or `ThreadId(N)`, or `task` for async holders.
    pub thread: String,
    /// The holding thread's kernel thread id (0 when unknown).
    #[serde(default)]
    pub thread_id: u64,
    /// The mode held.
    pub lock_type: LockType,
    /// When the holder got the lock (wall clock, for display only).
    pub acquired_at: SystemTime,
    /// The kernel boot id of the holding host, to tell records from before a reboot.
    #[serde(default)]
    pub boot_id: String,
}

impl LockInfo {
    /// A record for the calling thread.
    pub(crate) fn for_current_thread(
        name: &str,
        user: &str,
        lock_type: LockType,
        task: bool,
    ) -> LockInfo {
        let thread = if task {
            "task".to_owned()
        } else {
            let t = std::thread::current();
            match t.name() {
                Some(n) => n.to_owned(),
                None => format!("{:?}", t.id()),
            }
        };
        LockInfo {
            name: name.to_owned(),
            user: user.to_owned(),
            pid: current_pid(),
            hostname: HOST.hostname.clone(),
            thread,
            thread_id: if task { 0 } else { current_tid() },
            lock_type,
            acquired_at: SystemTime::now(),
            boot_id: HOST.boot_id.clone(),
        }
    }
}

/// A plantdb `<scan_id>.info` record, read leniently: plantdb 0.17 writes
/// `resource_id, level, lock_type, user, timestamp, pid, thread_id`, older versions
/// `scan_id` instead of `resource_id, level`; any field may be missing or odd.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlantdbInfo {
    pub(crate) pid: u32,
    pub(crate) lock_type: LockType,
    pub(crate) user: String,
    pub(crate) thread_id: u64,
    pub(crate) timestamp: Option<SystemTime>,
}

impl PlantdbInfo {
    /// `None` for anything without a usable pid and lock type (torn, empty, garbage).
    pub(crate) fn parse(bytes: &[u8]) -> Option<PlantdbInfo> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let pid = match &v["pid"] {
            serde_json::Value::Number(n) => u32::try_from(n.as_u64()?).ok()?,
            serde_json::Value::String(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        let lock_type = match v["lock_type"].as_str()?.to_ascii_lowercase().as_str() {
            "exclusive" | "lock_ex" | "write" => LockType::Exclusive,
            "shared" | "lock_sh" | "read" => LockType::Shared,
            _ => return None,
        };
        let user = match &v["user"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        let timestamp = v["timestamp"]
            .as_f64()
            .filter(|t| t.is_finite() && *t >= 0.0 && *t < 1e12)
            .map(|t| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs_f64(t));
        Some(PlantdbInfo {
            pid,
            lock_type,
            user,
            thread_id: v["thread_id"].as_u64().unwrap_or(0),
            timestamp,
        })
    }
}

static PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn forget_pid_in_child() {
    PID.store(0, Ordering::Relaxed);
}

/// This process's id, cached: std asks the kernel every time, and scanlock checks the
/// pid on every acquisition and release (to recognise a forked child). A fork handler
/// clears the cache in the child.
pub(crate) fn current_pid() -> u32 {
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic (async-signal-safe).
        unsafe { libc::pthread_atfork(None, None, Some(forget_pid_in_child)) };
    });
    let p = std::process::id();
    PID.store(p, Ordering::Relaxed);
    p
}

/// Whether a process with this pid exists on this host.
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

struct Host {
    hostname: String,
    boot_id: String,
}

static HOST: LazyLock<Host> = LazyLock::new(|| Host {
    hostname: hostname(),
    boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default(),
});

/// This host's name as the kernel reports it.
pub(crate) fn this_host() -> &'static str {
    &HOST.hostname
}

/// This host's boot id (empty where unknown).
pub(crate) fn this_boot() -> &'static str {
    &HOST.boot_id
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
    // (and we stop at the buffer's end if it does not).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(target_os = "linux")]
fn current_tid() -> u64 {
    use std::cell::Cell;
    // Cached per thread (a system call per acquisition otherwise), with the pid it was
    // read in: the thread that forks lives on in the child under a new tid.
    thread_local! {
        static TID: Cell<(u32, u64)> = const { Cell::new((0, 0)) };
    }
    let pid = current_pid();
    TID.with(|c| {
        let (cached_pid, tid) = c.get();
        if cached_pid == pid {
            return tid;
        }
        // SAFETY: gettid has no preconditions and cannot fail.
        let tid = unsafe { libc::gettid() as u64 };
        c.set((pid, tid));
        tid
    })
}

#[cfg(not(target_os = "linux"))]
fn current_tid() -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plantdb_info_both_formats_and_garbage() {
        let new = br#"{"resource_id": "scan001", "level": "scan", "lock_type": "exclusive", "user": "tester",
            "timestamp": 1795426635.2117302, "pid": 2844, "thread_id": 140570059979648}"#;
        let p = PlantdbInfo::parse(new).unwrap();
        assert_eq!(
            (p.pid, p.lock_type, p.user.as_str()),
            (2844, LockType::Exclusive, "tester")
        );
        assert!(p.timestamp.is_some());
        let old = br#"{"scan_id": "scan001", "lock_type": "shared", "user": 7, "timestamp": "x", "pid": "12", "thread_id": 1}"#;
        let p = PlantdbInfo::parse(old).unwrap();
        assert_eq!(
            (p.pid, p.lock_type, p.user.as_str()),
            (12, LockType::Shared, "7")
        );
        assert_eq!(p.timestamp, None);
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"pid\": -1, \"lock_type\": \"shared\"}",
            b"{\"pid\": 1}",
            b"\xff\xfe",
        ] {
            assert_eq!(
                PlantdbInfo::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn pid_liveness() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let info = LockInfo::for_current_thread("scan1", "u", LockType::Exclusive, false);
        let from = |b: &[u8]| serde_json::from_slice::<LockInfo>(b).ok();
        let json = serde_json::to_vec(&info).unwrap();
        assert_eq!(from(&json), Some(info));
        assert_eq!(from(&json[..json.len() - 1]), None);
        assert_eq!(from(b""), None);
        assert_eq!(from(b"{\"user\": 5}"), None);
        assert_eq!(from(&[0xff, 0xfe, 0x00]), None);
    }
}
