//! The per-process event logs and their line format.
//!
//! Every process of a run appends lines to its own files under `<dir>/logs/`, one
//! `write(2)` per line, unbuffered: a process killed with SIGKILL loses at most the line
//! it was about to write, never a line already written (the kernel has it).
//!
//! | line | meaning |
//! |---|---|
//! | `B k mode start who` | `who` entered a hold of name `k` (`X`/`S`) at `start` (ns, CLOCK_MONOTONIC) |
//! | `H k mode start end who token [lost]` | that hold ended at `end` (fencing token, 0 if not asked; `lost`: the holder found it no longer held) |
//! | `O class k start end deadline_ms pid result` | one operation and its outcome |
//! | `V text` | a violation noticed by the process itself |
//! | `F kind start end` | a fault window (or a single fault: `start == end`) |
//! | `S pid start end` | a process was SIGSTOPped during `start..end` |
//! | `T tag pid start end` | `pg_terminate_backend` of a session of worker `tag` (`pid`) |
//!
//! Timestamps are taken just after an acquisition returns and just before the release
//! call, so a logged hold always lies inside the real one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Nanoseconds on CLOCK_MONOTONIC: one clock for every process of the host.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An append-only event file.
#[derive(Debug)]
pub struct EventLog {
    file: File,
}

impl EventLog {
    /// Creates or appends to `path`.
    pub fn open(path: &Path) -> std::io::Result<EventLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(EventLog { file })
    }

    /// Appends one line (the newline is added) in a single write.
    pub fn line(&mut self, text: &str) {
        let mut buf = String::with_capacity(text.len() + 1);
        buf.push_str(text);
        buf.push('\n');
        // The logs live outside the lock root, on a file system no fault touches; a
        // failed write would silently weaken the proof, so it is fatal.
        self.file
            .write_all(buf.as_bytes())
            .expect("write to the event log");
    }
}

/// What a class of operation may legitimately return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// One attempt (`try_acquire_lock`, `Wait::NoWait`, `blocking = false`).
    Try,
    /// A bounded wait (`Some(d)`, or the manager's default timeout).
    Timed,
    /// `Wait::Forever`.
    Forever,
    /// A re-entrant acquisition by a thread already holding the name compatibly.
    Reenter,
    /// Exclusive asked by a thread holding the name shared: must be `WouldDeadlock`.
    Upgrade,
    /// `get_lock_status`.
    Status,
    /// `cleanup_stale_locks`, `find_stale_records`, `lock_names`, building a manager.
    Admin,
    /// Releasing a guard.
    Release,
}

impl Class {
    /// The word used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Try => "try",
            Class::Timed => "timed",
            Class::Forever => "forever",
            Class::Reenter => "reenter",
            Class::Upgrade => "upgrade",
            Class::Status => "status",
            Class::Admin => "admin",
            Class::Release => "release",
        }
    }

    /// Parses the log word.
    pub fn parse(s: &str) -> Option<Class> {
        Some(match s {
            "try" => Class::Try,
            "timed" => Class::Timed,
            "forever" => Class::Forever,
            "reenter" => Class::Reenter,
            "upgrade" => Class::Upgrade,
            "status" => Class::Status,
            "admin" => Class::Admin,
            "release" => Class::Release,
            _ => return None,
        })
    }

    /// Whether `result` (a log result word, see [`result_word`]) is an allowed outcome.
    /// I/O errors are allowed where the file system can fail (faults make it fail);
    /// they are checked separately for their errno.
    pub fn allows(self, result: &str) -> bool {
        let io = result.starts_with("Io:");
        match self {
            Class::Try => result == "ok" || result == "WouldBlock" || io,
            Class::Timed => result == "ok" || result == "Timeout" || io,
            Class::Forever | Class::Status | Class::Admin | Class::Release => result == "ok" || io,
            Class::Reenter => result == "ok",
            Class::Upgrade => result == "WouldDeadlock",
        }
    }
}

/// The log word of an outcome: `ok`, the `LockError` variant, or `Io:<errno name>`;
/// prefixed with `!` when a per-lock error's message does not name the lock `name`.
pub fn result_word<T>(r: &Result<T, scanlock::LockError>, name: Option<&str>) -> String {
    use scanlock::LockError as E;
    let e = match r {
        Ok(_) => return "ok".to_owned(),
        Err(e) => e,
    };
    let word = match e {
        E::Timeout { .. } => "Timeout".to_owned(),
        E::WouldBlock { .. } => "WouldBlock".to_owned(),
        E::WouldDeadlock { .. } => "WouldDeadlock".to_owned(),
        E::InvalidName { .. } => "InvalidName".to_owned(),
        E::NotInitialized => "NotInitialized".to_owned(),
        E::InvalidUrl { .. } => "InvalidUrl".to_owned(),
        E::AlreadyInitialized { .. } => "AlreadyInitialized".to_owned(),
        E::Io(io) => format!("Io:{}", errno_name(io)),
        _ => "Unknown".to_owned(),
    };
    let named = match name {
        None => true,
        Some(n) => match e {
            E::Io(_) => e.to_string().contains(&format!("lock \"{n}\"")),
            _ => e.lock_name() == Some(n) && e.to_string().contains(n),
        },
    };
    if named { word } else { format!("!{word}") }
}

/// The errno inside a scanlock I/O error (scanlock wraps the OS error as the source of
/// a message naming the lock), as a name such as `EROFS`.
pub fn errno_name(io: &std::io::Error) -> String {
    let raw = io.raw_os_error().or_else(|| {
        io.get_ref()
            .and_then(|inner| inner.source())
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .and_then(|e| e.raw_os_error())
    });
    match raw {
        Some(n) => match n {
            libc::EROFS => "EROFS".into(),
            libc::ENOSPC => "ENOSPC".into(),
            libc::EDQUOT => "EDQUOT".into(),
            libc::EMFILE => "EMFILE".into(),
            libc::ENFILE => "ENFILE".into(),
            libc::ELOOP => "ELOOP".into(),
            libc::EACCES => "EACCES".into(),
            libc::EPERM => "EPERM".into(),
            libc::ENOENT => "ENOENT".into(),
            libc::EBADF => "EBADF".into(),
            libc::EINVAL => "EINVAL".into(),
            libc::EIO => "EIO".into(),
            libc::ENOTDIR => "ENOTDIR".into(),
            libc::EISDIR => "EISDIR".into(),
            other => format!("errno{other}"),
        },
        None => format!("{:?}", io.kind()),
    }
}

/// I/O failures that the injected faults cause, and therefore may be returned: a
/// read-only root, a full file system, no descriptors left, a planted symlink.
pub const EXPECTED_ERRNOS: &[&str] = &["EROFS", "ENOSPC", "EDQUOT", "EMFILE", "ENFILE", "ELOOP"];
