//! plantdb's `<scan_id>.info` files, as the file back end must read them to share a
//! scans directory with plantdb 0.17 (`plantdb.commons.fsdb.lock.LockManager`).
//!
//! plantdb writes `.info` right after it gets the flock of `<scan_id>.lock`, and releases
//! by: unlock, close, unlink `.lock`, unlink `.info`. A waiter of another tool can lock
//! the old file between the unlock and the unlink, pass the same-inode check, and then
//! see the file unlinked under it while a plantdb process creates and locks a new one.
//! The `.info` closes that window: after locking, an `.info` naming another live process
//! as a conflicting holder means plantdb is still releasing, so the waiter lets go and
//! tries again. scanlock reads `.info` files and deletes only those of dead processes,
//! while holding the lock they describe (see [`super::file`]).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::records::read_to_vec;
use crate::LockType;
use crate::info::{self, PlantdbInfo};

/// How long one `.info` may keep naming a live conflicting holder of the very file we
/// locked (still at its path) before we conclude that its pid now belongs to some
/// other process. plantdb takes microseconds between its unlock and its unlinks; a
/// preempted or swapped-out plantdb may take much longer, hence a generous grace.
const RELEASE_GRACE: Duration = Duration::from_secs(2);

/// Sightings kept at most (one per name with a leftover `.info`; more means churn, and
/// forgetting them only makes the next acquisitions more careful).
const MAX_SIGHTINGS: usize = 1024;

/// How old the lock directory's timestamps must be before "no `.info` here" is cached
/// against them: a change within the file system's timestamp granularity (up to 2 s on
/// FAT; a clock tick on ext4 and tmpfs) could leave them as they were.
const DIR_SETTLE: Duration = Duration::from_secs(2);

/// A plantdb `.info` read from disk.
pub(super) struct InfoFile {
    /// Identity of this version (inode and content): a new plantdb acquisition writes a
    /// new timestamp, so it never looks like an old sighting.
    pub(super) id: u64,
    /// `None` when torn, empty or not plantdb's format.
    pub(super) parsed: Option<PlantdbInfo>,
}

/// What is at a `.info` path.
pub(super) enum Probe {
    /// Nothing (the usual case without plantdb).
    Absent,
    /// A regular file.
    File(InfoFile),
    /// Something unreadable, or not a regular file (ignored, never followed).
    Other,
}

/// Reads `path` without following a symlink and without blocking on a FIFO.
pub(super) fn probe(path: &Path) -> Probe {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Probe::Absent,
        Err(_) => return Probe::Other,
    };
    match read_file(&file) {
        Ok(Some(f)) => Probe::File(f),
        _ => Probe::Other,
    }
}

fn read_file(file: &File) -> io::Result<Option<InfoFile>> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    let bytes = read_to_vec(file)?;
    let mut h = std::hash::DefaultHasher::new();
    (meta.dev(), meta.ino(), &bytes).hash(&mut h);
    Ok(Some(InfoFile {
        id: h.finish(),
        parsed: PlantdbInfo::parse(&bytes),
    }))
}

impl InfoFile {
    /// The holder it names, if that is another live process holding in a mode that
    /// conflicts with `mode`.
    pub(super) fn conflicting(&self, mode: LockType) -> Option<&PlantdbInfo> {
        let p = self.parsed.as_ref()?;
        let conflicts = mode == LockType::Exclusive || p.lock_type == LockType::Exclusive;
        (conflicts && p.pid != info::current_pid() && info::pid_alive(p.pid)).then_some(p)
    }

    /// True when nothing could be relying on it: unreadable as plantdb's, or naming a
    /// process that is gone.
    pub(super) fn abandoned(&self) -> bool {
        self.parsed.as_ref().is_none_or(|p| !info::pid_alive(p.pid))
    }
}

/// Version of a directory: changes whenever an entry is created or removed in it.
pub(super) type DirVersion = (i64, i64, i64, i64, u64, u64);

/// The lock directory's version, through a descriptor (no path lookup: this runs on
/// every acquisition).
pub(super) fn dir_version(dir: &File) -> Option<DirVersion> {
    let m = dir.metadata().ok()?;
    Some((
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.nlink(),
        m.ino(),
    ))
}

/// True when `v` is old enough that any later change to the directory gives it a new
/// version (see [`DIR_SETTLE`]). A version from the future (clock skew with a file
/// server) never is.
pub(super) fn settled(v: &DirVersion) -> bool {
    let Ok(now) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) else {
        return false;
    };
    let limit = now.saturating_sub(DIR_SETTLE).as_secs() as i64;
    v.0 < limit && v.2 < limit
}

/// `.info` files seen naming a live conflicting holder of a lock file this process had
/// locked and found still at its path, with when each was first seen. Kept by the back
/// end, not per call: the grace must run once per `.info`, or a leftover one (its pid
/// reused) would fail every `try_acquire_lock`, and every wait shorter than the grace,
/// for as long as that pid lives.
#[derive(Debug, Default)]
pub(super) struct Watch {
    seen: Mutex<HashMap<PathBuf, Sighting>>,
}

#[derive(Debug)]
struct Sighting {
    id: u64,
    since: Instant,
    warned: bool,
}

impl Watch {
    /// Called with the lock held and the lock file still at `lock_path`, when the
    /// `.info` at `info_path` names `holder`, a live process holding in a conflicting
    /// mode: true when we must let go and retry (plantdb is releasing, or holds an
    /// unlinked copy of the file), false when the `.info` is a leftover to ignore.
    pub(super) fn keeps_out(
        &self,
        info_path: &Path,
        lock_path: &Path,
        info: &InfoFile,
        holder: &PlantdbInfo,
    ) -> bool {
        let now = Instant::now();
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if seen.len() >= MAX_SIGHTINGS && !seen.contains_key(info_path) {
                seen.clear();
            }
            let s = seen.entry(info_path.to_path_buf()).or_insert(Sighting {
                id: info.id,
                since: now,
                warned: false,
            });
            if s.id != info.id {
                *s = Sighting {
                    id: info.id,
                    since: now,
                    warned: false,
                };
            }
            if now.duration_since(s.since) <= RELEASE_GRACE {
                return true;
            }
        }
        // Past the grace. A plantdb process that locked the file another plantdb was
        // about to unlink (plantdb processes racing each other) holds it unlinked while
        // its `.info` is real: keep out as long as it does, where /proc lets us see.
        if holds_unlinked(holder.pid, lock_path) {
            return true;
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = seen.get_mut(info_path).filter(|s| !s.warned) {
            s.warned = true;
            tracing::warn!(info = %info_path.display(), pid = holder.pid, "ignoring a plantdb .info whose process does not hold the lock (pid reused?)");
        }
        false
    }
}

/// True when process `pid` has `lock_path` open after it was unlinked (an open
/// descriptor whose /proc link reads `<lock_path> (deleted)`). False when it has not,
/// or when /proc does not say (another user's process without privileges).
fn holds_unlinked(pid: u32, lock_path: &Path) -> bool {
    let (Some(dir), Some(file)) = (lock_path.parent(), lock_path.file_name()) else {
        return false;
    };
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut want = dir.join(file).into_os_string();
    want.push(" (deleted)");
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == want))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leftover_info_is_ignored_after_the_grace_and_a_new_one_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let info_path = dir.path().join("scan001.info");
        let lock_path = dir.path().join("scan001.lock");
        let mut live = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let write = |ts: &str| {
            std::fs::write(
                &info_path,
                format!(
                    r#"{{"pid": {}, "lock_type": "exclusive", "timestamp": {ts}}}"#,
                    live.id()
                ),
            )
            .unwrap();
            match probe(&info_path) {
                Probe::File(f) => f,
                _ => panic!("not read"),
            }
        };
        let w = Watch::default();
        let f = write("1.5");
        let h = f.conflicting(LockType::Shared).expect("conflicts").clone();
        assert!(w.keeps_out(&info_path, &lock_path, &f, &h));
        // Pretend the sighting is older than the grace.
        w.seen.lock().unwrap().get_mut(&info_path).unwrap().since -=
            RELEASE_GRACE + Duration::from_millis(1);
        assert!(!w.keeps_out(&info_path, &lock_path, &f, &h), "leftover");
        // A new acquisition by plantdb (new timestamp): a new grace.
        let f = write("2.5");
        assert!(w.keeps_out(&info_path, &lock_path, &f, &h));
        let _ = live.kill();
        let _ = live.wait();
    }

    #[test]
    fn a_process_holding_the_unlinked_file_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let lock_path = dir.path().join("scan001.lock");
        let f = File::create(&lock_path).unwrap();
        assert!(!holds_unlinked(std::process::id(), &lock_path));
        std::fs::remove_file(&lock_path).unwrap();
        assert!(holds_unlinked(std::process::id(), &lock_path));
        drop(f);
        assert!(!holds_unlinked(std::process::id(), &lock_path));
    }

    #[test]
    fn settled_versions() {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(settled(&(now - 10, 0, now - 10, 0, 1, 1)));
        assert!(!settled(&(now, 0, now - 10, 0, 1, 1)));
        assert!(!settled(&(now - 10, 0, now + 100, 0, 1, 1)));
    }
}
