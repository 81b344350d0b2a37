//! The file back end: `flock(2)` on files under `<root>/.locks/`.
//!
//! Per lock name (stem `S`, see [`crate::name`]):
//!
//! | file | role |
//! |---|---|
//! | `S.lock` | the lock itself: `flock` shared or exclusive. Never deleted or replaced by scanlock, never written: plantdb truncates it and `flock(1)` locks it too. |
//! | `S.gate` | writer preference across processes: a writer holds it exclusively while it waits for `S.lock`; readers pass through it (shared, released at once) before they take `S.lock`, so they queue behind a waiting writer. |
//! | `S.holders/` | one JSON record per holder, each kept `flock`ed shared by its holder: a record whose flock can be taken belongs to a holder that is gone. |
//! | `S.info` | plantdb's, for plain names only: read after every lock (see [`super::plantdb`]), never written; deleted only when its process is gone, under the lock. |
//!
//! `S.gate` (with the fencing token) and `S.holders/` do not end in `.lock`: plantdb
//! truncates and deletes `*.lock` files, and nothing scanlock needs is kept in one.
//!
//! Why not delete lock files on release (plantdb does): a waiter may already have the
//! old file open, lock it after the unlink and believe it holds the lock while a newcomer
//! creates and locks a fresh file at the same path. scanlock never unlinks `S.lock`, and
//! still checks after every lock that its file is the one at the path, for the sake of
//! other tools that do unlink.
//!
//! That check (`fstat` + `lstat`) and the look for plantdb's `.info` (a failed `open`)
//! are skipped while the lock directory's version (timestamps, link count, inode; one
//! `fstat` of the open directory) is the one at which they were last done: any unlink,
//! rename or creation in the directory changes it. A version is only kept once it is
//! settled (see [`plantdb::settled`]) and the open directory is the one at the path
//! ([`FileBackend::cacheable`]), so a steady acquisition costs the two `flock`s, their
//! unlocks and that `fstat`.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use super::plantdb::{self, DirVersion, Probe};
pub(crate) use super::records::decode as decode_record;
use super::records::{RecordSlot, read_records};
use super::{Backend, BackendLock, HolderRecord, WaitCtx};
use crate::info::{self, LockInfo, PlantdbInfo};
use crate::name::LockName;
use crate::{LockError, LockStatus, LockType, StaleRecord};

/// Name of the lock directory under the root.
pub(crate) const LOCK_DIR: &str = ".locks";
const LOCK_SUFFIX: &str = ".lock";
const GATE_SUFFIX: &str = ".gate";
const HOLDERS_SUFFIX: &str = ".holders";
/// plantdb's holder record (read; never written; deleted only when its process is gone,
/// under the lock it describes: see [`super::plantdb`]).
const INFO_SUFFIX: &str = ".info";
/// Attempts a one-shot acquisition makes when it finds its file replaced under it.
const TRY_RELINK_ATTEMPTS: usize = 8;

/// Idle names whose handles a process keeps open (3 descriptors each).
const CACHE_NAMES: usize = 64;

/// The file back end rooted at one lock directory.
#[derive(Debug)]
pub(crate) struct FileBackend {
    dir: PathBuf,
    file_mode: u32,
    dir_mode: u32,
    cache: Arc<HandleCache>,
    plantdb: plantdb::Watch,
    /// The lock directory, open: its version tells cheaply that no entry of it changed
    /// since the last look (see [`Handles::verified_at`], [`Handles::info_absent_at`]).
    dir_fd: Option<File>,
    /// The last version of `dir_fd` at which it was found to be the directory at `dir`.
    dir_confirmed: Mutex<Option<DirVersion>>,
}

/// Creates `<root>` (as `create_dir_all` does) and `<root>/.locks` with `dir_mode` (before
/// the umask), if they are missing; returns the lock directory's path.
pub(crate) fn create_lock_dir(root: &Path, dir_mode: u32) -> Result<PathBuf, LockError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = root.join(LOCK_DIR);
    fs::create_dir_all(root).map_err(|e| LockError::io(".locks", "create", root, e))?;
    match fs::DirBuilder::new().mode(dir_mode).create(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(dir),
        Err(e) => Err(LockError::io(".locks", "create", &dir, e)),
    }
}

impl FileBackend {
    /// Opens (creating if needed) `<root>/.locks`.
    pub(crate) fn open(
        root: &Path,
        file_mode: u32,
        dir_mode: u32,
    ) -> Result<FileBackend, LockError> {
        let dir = create_lock_dir(root, dir_mode)?;
        let meta =
            fs::symlink_metadata(&dir).map_err(|e| LockError::io(".locks", "inspect", &dir, e))?;
        if !meta.is_dir() {
            return Err(LockError::io(
                ".locks",
                "use",
                &dir,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a directory (a symlink or file is in the way); remove it",
                ),
            ));
        }
        raise_fd_limit();
        let dir_fd = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&dir)
            .ok();
        Ok(FileBackend {
            dir,
            file_mode,
            dir_mode,
            cache: Arc::default(),
            plantdb: plantdb::Watch::default(),
            dir_fd,
            dir_confirmed: Mutex::new(None),
        })
    }

    fn path(&self, name: &LockName, suffix: &str) -> PathBuf {
        let mut s = String::with_capacity(name.stem().len() + suffix.len());
        s.push_str(name.stem());
        s.push_str(suffix);
        self.dir.join(s)
    }

    /// The lock directory's version now, if it can be read (see [`Handles::verified_at`]).
    fn dir_version(&self) -> Option<DirVersion> {
        self.dir_fd.as_ref().and_then(plantdb::dir_version)
    }

    /// `version` (read before the facts about the directory's entries it is to vouch
    /// for were checked), if it may be kept to vouch for them later: settled (see
    /// [`plantdb::settled`]), and of the directory that is at the lock directory's path.
    /// The open directory is not, once `.locks` was deleted or moved and recreated: its
    /// version would then never change again, whatever happens at the path. Confirmed
    /// with one `lstat` per version; moving or deleting the directory changes its
    /// version (its ctime).
    fn cacheable(&self, version: Option<DirVersion>) -> Option<DirVersion> {
        let v = version.filter(plantdb::settled)?;
        let mut confirmed = self
            .dir_confirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *confirmed == Some(v) {
            return Some(v);
        }
        let open = self.dir_fd.as_ref()?.metadata().ok()?;
        let there = fs::symlink_metadata(&self.dir).ok()?;
        if (there.dev(), there.ino()) != (open.dev(), open.ino()) {
            tracing::warn!(dir = %self.dir.display(), "the lock directory was replaced while in use; every acquisition now checks its file's path");
            return None;
        }
        *confirmed = Some(v);
        Some(v)
    }

    /// The plantdb `.info` at `path`, read after locking; `None` when there is none. With
    /// no plantdb around this costs nothing beyond the directory's `version`, read once
    /// per acquisition after locking: a version at which `path` was absent is kept in the
    /// name's handles.
    fn read_info(
        &self,
        h: &mut Handles,
        path: &Path,
        version: Option<DirVersion>,
    ) -> Option<plantdb::InfoFile> {
        if version.is_some() && version == h.info_absent_at {
            return None;
        }
        // The version is read before the probe: an `.info` created after it changes it.
        match plantdb::probe(path) {
            Probe::Absent => {
                h.info_absent_at = self.cacheable(version);
                None
            }
            Probe::File(f) => {
                h.info_absent_at = None;
                Some(f)
            }
            Probe::Other => {
                h.info_absent_at = None;
                None
            }
        }
    }

    /// The plantdb `.info` of `name` as a stale record, if it names a process that is gone
    /// or is not plantdb's format; with `remove`, deleted first, and only then reported.
    ///
    /// Deleted only while this process holds the name's lock exclusively, on the file at
    /// the path, and finds the same `.info` there: plantdb writes `.info` only once it
    /// holds that lock, so no live holder's `.info` can be deleted. The lock is tried,
    /// never waited for (a held lock keeps its `.info`).
    fn stale_info(&self, name: &LockName, remove: bool) -> Option<StaleRecord> {
        let path = self.path(name, INFO_SUFFIX);
        let Probe::File(info) = plantdb::probe(&path) else {
            return None;
        };
        if !info.abandoned() {
            return None;
        }
        let record = StaleRecord {
            location: path.display().to_string(),
            holder: (info.parsed.as_ref())
                .map(|p| foreign_holder(name, p.pid, p.lock_type, Some(p))),
        };
        if !remove {
            return Some(record);
        }
        let lock_path = self.path(name, LOCK_SUFFIX);
        let file = self.open_lock_file(name, &lock_path).ok()?;
        file.try_lock().ok()?;
        if !still_at_path(&file, &lock_path).unwrap_or(false) {
            return None;
        }
        match plantdb::probe(&path) {
            Probe::File(again) if again.id == info.id => {}
            _ => return None,
        }
        fs::remove_file(&path).ok()?;
        tracing::warn!(info = %path.display(), "removed a stale plantdb .info (its process is gone)");
        Some(record)
    }

    /// Opens (creating if needed) a lock or gate file: a regular file, or a typed error
    /// naming it at once. Opened with `O_NONBLOCK` (no effect on `flock`), so that a FIFO
    /// or device planted in its place cannot hang the open, whatever the timeout.
    fn open_lock_file(&self, name: &LockName, path: &Path) -> Result<File, LockError> {
        let file = self.open_lock_path(name, path)?;
        match file.metadata() {
            Ok(m) if m.is_file() => Ok(file),
            Ok(_) => Err(LockError::io(
                name.as_str(),
                "use",
                path,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a regular file (a FIFO, socket, device or directory is in the way); \
                     remove it",
                ),
            )),
            Err(e) => Err(LockError::io(name.as_str(), "inspect", path, e)),
        }
    }

    fn open_lock_path(&self, name: &LockName, path: &Path) -> Result<File, LockError> {
        let open_rw = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(self.file_mode)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(path)
        };
        let rw = match open_rw() {
            // Out of descriptors: idle names' cached handles must not make a new name
            // fail while nothing is held, so close them and try once more.
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                    && self.cache.close_idle() > 0 =>
            {
                open_rw()
            }
            other => other,
        };
        match rw {
            Ok(f) => Ok(f),
            // Another user's lock file, or a read-only file system: a read-only
            // descriptor can still be flocked (if the file exists).
            Err(e)
                if e.kind() == io::ErrorKind::PermissionDenied
                    || e.raw_os_error() == Some(libc::EROFS) =>
            {
                OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(path)
                    .map_err(|ro| {
                        // A missing file that cannot be created: the first error says
                        // why (read-only, permission), the fallback's ENOENT does not.
                        let why = if ro.kind() == io::ErrorKind::NotFound {
                            e
                        } else {
                            ro
                        };
                        LockError::io(name.as_str(), "open", path, why)
                    })
            }
            Err(e) => Err(LockError::io(name.as_str(), "open", path, e)),
        }
    }
}

/// Raises the soft limit on open files to the hard limit (at most 65 536), once per
/// process: every held name costs up to three descriptors, and the traditional soft
/// limit of 1024 would cap a process at a few hundred held names. The Go runtime does
/// the same for every program.
fn raise_fd_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: lim is a valid rlimit to fill and then pass back.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                let want = lim.rlim_max.min(65_536);
                if lim.rlim_cur < want {
                    lim.rlim_cur = want;
                    let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                }
            }
        }
    });
}

/// Takes `mode` on `file` as the wait allows; `Ok(false)` when it gave up.
fn lock_file(file: &File, mode: LockType, wait: &WaitCtx) -> io::Result<bool> {
    if wait.may_block_in_kernel() {
        loop {
            let r = match mode {
                LockType::Shared => file.lock_shared(),
                LockType::Exclusive => file.lock(),
            };
            match r {
                Ok(()) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
    let attempt = || {
        let r = match mode {
            LockType::Shared => file.try_lock_shared(),
            LockType::Exclusive => file.try_lock(),
        };
        match r {
            Ok(()) => Ok(Some(())),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Interrupted => {
                Ok(None)
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    };
    match wait.poll(attempt) {
        Ok(()) => Ok(true),
        Err(None) => Ok(false),
        Err(Some(e)) => Err(e),
    }
}

/// After locking: is `file` still the file at `path`? Another tool may have unlinked
/// or replaced it while we waited, in which case our lock protects nothing.
fn still_at_path(file: &File, path: &Path) -> io::Result<bool> {
    let mine = file.metadata()?;
    if mine.nlink() == 0 {
        return Ok(false);
    }
    match fs::symlink_metadata(path) {
        Ok(there) => Ok(there.dev() == mine.dev() && there.ino() == mine.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl Backend for FileBackend {
    fn acquire(
        &self,
        name: &LockName,
        mode: LockType,
        wait: &WaitCtx,
    ) -> Result<Box<dyn BackendLock>, LockError> {
        let io_err = |op: &str, path: &Path, e| LockError::io(name.as_str(), op, path, e);
        let mut relinks = 0;
        let mut pause = WaitCtx::first_pause();
        let mut h = match self.cache.take(name.stem()) {
            Some(h) if h.paths.name == name.as_str() => h,
            _ => {
                let paths = Arc::new(NamePaths {
                    name: name.as_str().to_owned(),
                    stem: name.stem().into(),
                    lock: self.path(name, LOCK_SUFFIX),
                    gate: self.path(name, GATE_SUFFIX),
                    holders: self.path(name, HOLDERS_SUFFIX),
                    info: name.is_plain().then(|| self.path(name, INFO_SUFFIX)),
                });
                Handles {
                    gate: self.open_lock_file(name, &paths.gate)?,
                    main: self.open_lock_file(name, &paths.lock)?,
                    paths,
                    slot: None,
                    info_absent_at: None,
                    verified_at: None,
                }
            }
        };
        let paths = h.paths.clone();
        let give_up = |h: Handles| {
            self.cache.put(h);
            Err(wait.give_up(name, mode))
        };
        loop {
            // A writer holds the gate until it holds the lock, so readers arriving
            // meanwhile (who must pass the gate) queue behind it.
            if !lock_file(&h.gate, mode, wait).map_err(|e| io_err("lock", &paths.gate, e))? {
                return give_up(h);
            }
            if !lock_file(&h.main, mode, wait).map_err(|e| io_err("lock", &paths.lock, e))? {
                let _ = h.gate.unlock();
                return give_up(h);
            }
            // Read once, after locking, before anything it vouches for is looked at.
            let version = self.dir_version();
            // plantdb releases by unlock, unlink `.lock`, unlink `.info`: an `.info` naming
            // a live conflicting holder means we may have locked a file it is about to
            // unlink. Read it before the identity check: once its `.info` is gone, its
            // `.lock` is gone too, and the identity check sees that.
            let info = match &paths.info {
                Some(p) => self.read_info(&mut h, p, version),
                None => None,
            };
            // Unlinking, renaming or creating any entry of the lock directory changes its
            // version: while it is the settled one at which this descriptor was last
            // found at the path, it still is (the same reasoning as `info_absent_at`),
            // and the two `stat`s of the check are skipped.
            let verified = version.is_some() && version == h.verified_at;
            if !verified {
                // The gate is checked as the lock is: a deleted or replaced gate would
                // split writer preference in two and keep a stale fencing token.
                let gate_ok = still_at_path(&h.gate, &paths.gate)
                    .map_err(|e| io_err("inspect", &paths.gate, e))?;
                let main_ok = gate_ok
                    && still_at_path(&h.main, &paths.lock)
                        .map_err(|e| io_err("inspect", &paths.lock, e))?;
                if !main_ok {
                    tracing::debug!(
                        lock = name.as_str(),
                        gate_replaced = !gate_ok,
                        "lock or gate file was replaced while waiting; retrying"
                    );
                    let _ = (h.main.unlock(), h.gate.unlock());
                    if gate_ok {
                        h.main = self.open_lock_file(name, &paths.lock)?;
                    } else {
                        h.gate = self.open_lock_file(name, &paths.gate)?;
                    }
                    h.verified_at = None;
                    relinks += 1;
                    if wait.deadline == super::Deadline::Try && relinks >= TRY_RELINK_ATTEMPTS {
                        return give_up(h);
                    }
                    continue;
                }
                h.verified_at = self.cacheable(version);
            }
            if let (Some(info_path), Some(info)) = (&paths.info, &info)
                && let Some(holder) = info.conflicting(mode)
                && self.plantdb.keeps_out(info_path, &paths.lock, info, holder)
            {
                let _ = (h.main.unlock(), h.gate.unlock());
                if !wait.pause(&mut pause) {
                    return give_up(h);
                }
                continue;
            }
            h.gate
                .unlock()
                .map_err(|e| io_err("unlock", &paths.gate, e))?;
            return Ok(Box::new(FileLock {
                token: OnceLock::new(),
                mode,
                slot_home: Arc::new(Mutex::new(h.slot.take())),
                handles: Some(h),
                paths,
                cache: self.cache.clone(),
                file_mode: self.file_mode,
                dir_mode: self.dir_mode,
                pid: crate::info::current_pid(),
            }));
        }
    }

    fn status(&self, name: &LockName) -> Result<LockStatus, LockError> {
        let lock_path = self.path(name, LOCK_SUFFIX);
        let holders_path = self.path(name, HOLDERS_SUFFIX);
        let mut problems = Vec::new();
        let records = match read_records(&holders_path, false) {
            Ok(r) => r,
            // Damage to this name's records must not hide its state (nor, in a listing,
            // every other name's): report it, and show what the kernel knows.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                problems.push(format!("{}: {e}", holders_path.display()));
                super::records::Records::default()
            }
            Err(e) => return Err(LockError::io(name.as_str(), "read", &holders_path, e)),
        };
        let mut holders = records.live;
        let proc_locks = read_proc_locks();
        let kernel = proc_locks.as_deref().map(|t| kernel_holders(t, &lock_path));
        // Records and the kernel table are read at different moments (a holder's record
        // appears just after its lock, and goes just before it): a lock is held if
        // either says so.
        let recorded = strongest(holders.iter().map(|h| h.lock_type));
        // plantdb's `.info` names a holder while its process holds the lock; otherwise it
        // is stale (left by a plantdb that died, or one finishing its release).
        let info = match name
            .is_plain()
            .then(|| plantdb::probe(&self.path(name, INFO_SUFFIX)))
        {
            Some(Probe::File(f)) => Some(f),
            _ => None,
        };
        let plantdb = info.as_ref().and_then(|f| f.parsed.as_ref());
        let mut stale_info = info.is_some();
        let lock_type = match &kernel {
            Some(k) => {
                // Holders that keep no scanlock record (flock(1), plantdb): show what
                // the kernel knows about them.
                for (pid, mode) in k {
                    if plantdb.is_some_and(|p| p.pid == *pid) {
                        stale_info = false;
                    }
                    if !holders
                        .iter()
                        .any(|h| h.pid == *pid && h.hostname == info::this_host())
                    {
                        holders.push(foreign_holder(name, *pid, *mode, plantdb));
                    }
                }
                strongest(k.iter().map(|(_, m)| *m).chain(recorded))
            }
            None => match plantdb.filter(|p| info::pid_alive(p.pid)) {
                // Without the kernel's table, an `.info` of a live process is believed.
                Some(p) => {
                    stale_info = false;
                    if !holders.iter().any(|h| h.pid == p.pid) {
                        holders.push(foreign_holder(name, p.pid, p.lock_type, Some(p)));
                    }
                    strongest(holders.iter().map(|h| h.lock_type))
                }
                None => recorded.or_else(|| probe_exclusive(&lock_path)),
            },
        };
        // A writer waits while holding the gate exclusively (and lets go once it holds
        // the lock), so exclusive gate holders are exactly the waiting writers.
        let waiting_writers = proc_locks
            .as_deref()
            .map(|t| kernel_holders(t, &self.path(name, GATE_SUFFIX)))
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, m)| *m == LockType::Exclusive)
            .map(|(pid, _)| pid)
            .collect();
        Ok(LockStatus {
            name: name.as_str().to_owned(),
            lock_type,
            holders,
            stale_records: records.stale.len() + usize::from(stale_info),
            waiting_writers,
            problems,
        })
    }

    fn stale(&self, remove: bool) -> Result<Vec<StaleRecord>, LockError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => return Err(LockError::io(".locks", "list", &self.dir, e)),
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let fname = entry.file_name();
            if let Some(stem) = fname.to_str().and_then(|f| f.strip_suffix(INFO_SUFFIX))
                && let Some(name) = crate::name::name_for_stem(stem)
                && let Ok(name) = LockName::new(&name)
                && name.is_plain()
            {
                found.extend(self.stale_info(&name, remove));
                continue;
            }
            if !fname.as_bytes().ends_with(HOLDERS_SUFFIX.as_bytes()) {
                continue;
            }
            let path = entry.path();
            match read_records(&path, remove) {
                Ok(r) => found.extend(r.stale),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // A symlink or file planted where a holders directory belongs: skip it
                // (never follow it) rather than fail every manager's start-up.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    tracing::warn!(path = %path.display(), "skipping a holders entry that is not a directory (symlinks are never followed)");
                }
                Err(e) => return Err(LockError::io(".locks", "clean", &path, e)),
            }
        }
        Ok(found)
    }

    fn names(&self) -> Result<Vec<String>, LockError> {
        let entries =
            fs::read_dir(&self.dir).map_err(|e| LockError::io(".locks", "list", &self.dir, e))?;
        let mut names = Vec::new();
        for entry in entries.flatten() {
            let fname = entry.file_name();
            let Some(fname) = fname.to_str() else {
                continue;
            };
            if let Some(stem) = fname.strip_suffix(LOCK_SUFFIX) {
                if let Some(name) = crate::name::name_for_stem(stem) {
                    names.push(name);
                }
            } else if let Some(stem) = fname.strip_suffix(HOLDERS_SUFFIX)
                && stem.starts_with('#')
                && let Ok(r) = read_records(&entry.path(), false)
            {
                // Hashed stems cannot be decoded: take the name from a live record.
                names.extend(r.live.into_iter().map(|h| h.name).take(1));
            }
        }
        Ok(names)
    }
}

/// Without the kernel's lock table (no `/proc`) and without any record, the only way
/// to tell a held lock from a free one: a shared attempt, let go at once, fails exactly
/// while someone holds it exclusively (a record-less holder: `flock(1)`, another tool).
/// A lock held shared by record-less holders still looks free there (documented).
fn probe_exclusive(path: &Path) -> Option<LockType> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    match f.try_lock_shared() {
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => Some(LockType::Exclusive),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

fn strongest(modes: impl Iterator<Item = LockType>) -> Option<LockType> {
    modes.max_by_key(|m| *m == LockType::Exclusive)
}

/// A holder the kernel reports but that keeps no scanlock record: `flock(1)`, or plantdb
/// (whose `.info` supplies the user when its pid matches).
fn foreign_holder(
    name: &LockName,
    pid: u32,
    mode: LockType,
    plantdb: Option<&PlantdbInfo>,
) -> LockInfo {
    let mut h = LockInfo::for_current_thread(name.as_str(), "", mode, true);
    h.pid = pid;
    h.thread = String::new();
    h.acquired_at = SystemTime::UNIX_EPOCH;
    if let Some(p) = plantdb.filter(|p| p.pid == pid) {
        h.user = p.user.clone();
        h.thread = "plantdb".to_owned();
        h.thread_id = p.thread_id;
        h.acquired_at = p.timestamp.unwrap_or(SystemTime::UNIX_EPOCH);
    }
    h
}

/// The kernel's table of file locks, or `None` where `/proc/locks` is not available.
///
/// Read in one `read()` call where it fits: the file is generated as it is read, and a
/// table that changes between two reads can lose entries at the boundary (seen under
/// load as a held lock reported free).
pub(crate) fn read_proc_locks() -> Option<String> {
    use std::io::Read;
    let mut f = File::open("/proc/locks").ok()?;
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0;
    loop {
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

/// What the kernel's lock table says about flock holders of `path`: `(pid, mode)` per
/// lock. Read-only, unlike probing with a lock attempt.
fn kernel_holders(text: &str, path: &Path) -> Vec<(u32, LockType)> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    let dev = meta.dev();
    let want = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        meta.ino()
    );
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; waiters have "->" after "1:".
        if fields.len() < 6 || fields[1] != "FLOCK" || fields[5] != want {
            continue;
        }
        let mode = match fields[3] {
            "WRITE" => LockType::Exclusive,
            "READ" => LockType::Shared,
            _ => continue,
        };
        if let Ok(pid) = fields[4].parse() {
            out.push((pid, mode));
        }
    }
    out
}

/// Reads the fencing token kept in the gate file and, for an exclusive holder, advances
/// it. The caller holds `S.lock`, which serialises these reads and writes (the gate's
/// own flock is not needed: only holders of `S.lock` touch the token).
///
/// A new token is `max(stored + 1, microseconds since the epoch)`: strictly greater than
/// the stored one, and (unless the wall clock is far behind) greater than any token that
/// a power loss may have kept from reaching the disk (the token is not fsynced: that
/// would cost milliseconds per acquisition).
fn fencing_token(gate: &File, mode: LockType) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 32];
    let n = gate.read_at(&mut buf, 0)?;
    let stored = std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if mode == LockType::Shared {
        return Ok(stored);
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let next = stored.saturating_add(1).max(now);
    match gate.write_all_at(format!("{next:020}\n").as_bytes(), 0) {
        Ok(()) => Ok(next),
        // Another user's gate file opened read-only: the lock itself works, the token
        // cannot be persisted (document: tokens need write access to the lock files).
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
            tracing::warn!("fencing token not persisted: the gate file is read-only for this user");
            Ok(next)
        }
        Err(e) => Err(e),
    }
}

/// The paths of one name's files, built once per cached handle.
#[derive(Debug)]
struct NamePaths {
    name: String,
    stem: Arc<str>,
    lock: PathBuf,
    gate: PathBuf,
    holders: PathBuf,
    /// plantdb's `.info`, for plain names only.
    info: Option<PathBuf>,
}

/// Open handles of one name, kept between acquisitions (see [`HandleCache`]).
#[derive(Debug)]
struct Handles {
    gate: File,
    main: File,
    paths: Arc<NamePaths>,
    /// This process's reusable holder record for the name, if it made one.
    slot: Option<RecordSlot>,
    /// A version of the lock directory at which the name had no plantdb `.info`: while
    /// the directory keeps it, there still is none (creating a file changes it).
    info_absent_at: Option<DirVersion>,
    /// A settled version of the lock directory at which `main` was found to be the file
    /// at its path (`None`: check again after the next lock).
    verified_at: Option<DirVersion>,
}

/// Idle names' open handles, so that a repeated acquisition costs flock calls rather
/// than opens, closes and file creations. Bounded: the least recently used name is
/// closed (and its record removed) beyond [`CACHE_NAMES`].
#[derive(Debug, Default)]
pub(crate) struct HandleCache {
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    /// The process the handles belong to: a forked child starts afresh.
    pid: u32,
    clock: u64,
    map: HashMap<Arc<str>, (u64, Handles)>,
}

impl HandleCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let pid = crate::info::current_pid();
        if c.pid != pid {
            // Inherited handles are idle (not locked); dropping them closes descriptors
            // and never removes the parent's records (see RecordSlot's Drop).
            c.map.clear();
            c.pid = pid;
        }
        c
    }

    /// Closes every idle name's handles; returns how many names it closed.
    fn close_idle(&self) -> usize {
        // Dropped after the mutex: closing removes record files (system calls).
        let idle = std::mem::take(&mut self.lock().map);
        idle.len()
    }

    fn take(&self, stem: &str) -> Option<Handles> {
        self.lock().map.remove(stem).map(|(_, h)| h)
    }

    fn put(&self, h: Handles) {
        let mut c = self.lock();
        c.clock += 1;
        let now = c.clock;
        c.map.insert(h.paths.stem.clone(), (now, h));
        if c.map.len() > CACHE_NAMES {
            let oldest = c
                .map
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                c.map.remove(&k);
            }
        }
    }
}

/// A held `S.lock`.
#[derive(Debug)]
struct FileLock {
    /// Assigned on first request (see [`fencing_token`]).
    token: OnceLock<u64>,
    mode: LockType,
    handles: Option<Handles>,
    /// The reusable record, shared with the holder records made from it.
    slot_home: Arc<Mutex<Option<RecordSlot>>>,
    paths: Arc<NamePaths>,
    cache: Arc<HandleCache>,
    file_mode: u32,
    dir_mode: u32,
    /// The process that took the lock: a forked child shares the open file description
    /// and must never unlock it (that would release the parent's lock).
    pid: u32,
}

impl FileLock {
    fn unlock(&mut self) -> io::Result<()> {
        let Some(mut h) = self.handles.take() else {
            return Ok(());
        };
        if self.pid != crate::info::current_pid() {
            return Ok(());
        }
        let r = h.main.unlock();
        h.slot = self
            .slot_home
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if r.is_ok() {
            self.cache.put(h);
        }
        r
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.unlock();
    }
}

impl BackendLock for FileLock {
    fn add_holder(&self, info: &LockInfo) -> Result<Box<dyn HolderRecord>, LockError> {
        let reusable = self
            .slot_home
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let create =
            || RecordSlot::create(&self.paths.holders, info, self.file_mode, self.dir_mode);
        let slot = match reusable {
            // A deleted record (NotFound) is replaced by a new one at the path.
            Some(mut slot) => match slot.publish(info) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => create(),
                other => other.map(|()| slot),
            },
            None => create(),
        }
        .map_err(|e| {
            LockError::io(
                &self.paths.name,
                "write holder record in",
                &self.paths.holders,
                e,
            )
        })?;
        Ok(Box::new(ActiveRecord {
            slot: Some(slot),
            home: self.slot_home.clone(),
        }))
    }

    fn hands_over_in_process(&self) -> bool {
        true
    }

    fn writer_waits_elsewhere(&self) -> bool {
        // A waiting writer holds the gate exclusively (see `acquire`): a shared attempt
        // on it fails exactly then. Held only for an instant, as every reader does.
        let Some(h) = &self.handles else { return false };
        match h.gate.try_lock_shared() {
            Ok(()) => {
                let _ = h.gate.unlock();
                false
            }
            Err(std::fs::TryLockError::WouldBlock) => true,
            Err(std::fs::TryLockError::Error(_)) => false,
        }
    }

    fn renew_hold(&mut self) {
        self.token = OnceLock::new();
    }

    fn fencing_token(&self) -> u64 {
        *self.token.get_or_init(|| match &self.handles {
            Some(h) => fencing_token(&h.gate, self.mode).unwrap_or_else(|e| {
                tracing::warn!(lock = %self.paths.name, error = %e, "cannot read or advance the fencing token");
                0
            }),
            None => 0,
        })
    }

    fn release(mut self: Box<Self>) -> Result<(), LockError> {
        self.unlock()
            .map_err(|e| LockError::io(&self.paths.name, "unlock", &self.paths.lock, e))
    }
}

/// One holder's published record; on drop the record is marked inactive and goes back
/// to be reused (or, if another holder's record already went back, is removed).
#[derive(Debug)]
struct ActiveRecord {
    slot: Option<RecordSlot>,
    home: Arc<Mutex<Option<RecordSlot>>>,
}

impl HolderRecord for ActiveRecord {}

impl Drop for ActiveRecord {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        if slot.deactivate().is_err() {
            return; // dropping the slot removes the record
        }
        let mut home = self.home.lock().unwrap_or_else(PoisonError::into_inner);
        if home.is_none() {
            *home = Some(slot);
        }
    }
}
