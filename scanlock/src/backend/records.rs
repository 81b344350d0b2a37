//! Holder records of the file back end: `<stem>.holders/<host>-<pid>-<seq>.json`.
//!
//! A record file is created once per (process, name) and then reused for every hold of
//! that name by that process, because creating and unlinking a file costs tens of
//! microseconds on ext4 while rewriting a few hundred bytes costs well under one.
//!
//! - The owning process keeps the record `flock`ed shared for as long as the file exists.
//!   A record whose flock can be taken therefore belongs to a process that is gone:
//!   it is stale, whatever it says. No pid guessing, no clock.
//! - While a hold is active the record holds `{"seq":N,"holder":{..},"end":N}`, padded
//!   with spaces; between holds its first byte is `#` (inactive).
//! - Readers take the content only from a locked record whose `seq` equals its `end`:
//!   a read that overlaps a rewrite sees a mismatch or the `#` marker and is retried, so
//!   a torn record is never reported.
//! - A new record is written and flocked *before* it gets a name (`O_TMPFILE` + `linkat`,
//!   or a hidden temporary name + `rename` where `O_TMPFILE` is missing), so no reader
//!   ever sees it unlocked or empty.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::StaleRecord;
use crate::info::{self, LockInfo};

const TMP_PREFIX: &str = ".tmp-";
/// A fallback temporary record older than this whose flock is free was abandoned by a
/// crash between its creation and its rename.
const TMP_GRACE: Duration = Duration::from_secs(60);
/// Reads of one live record before giving up on it as unreadable (a rewrite takes
/// microseconds, so a second read almost always succeeds).
const READ_ATTEMPTS: usize = 3;
const INACTIVE: u8 = b'#';

static RECORD_SEQ: AtomicU64 = AtomicU64::new(0);

#[derive(Deserialize)]
struct Envelope {
    seq: u64,
    holder: LockInfo,
    end: u64,
}

/// [`Envelope`] as written: borrows the holder (this runs on every acquisition).
#[derive(Serialize)]
struct EnvelopeRef<'a> {
    seq: u64,
    holder: &'a LockInfo,
    end: u64,
}

/// One record file owned by this process, flocked shared while it exists.
#[derive(Debug)]
pub(crate) struct RecordSlot {
    file: File,
    path: PathBuf,
    /// Longest content written so far: shorter content is padded to it, so no bytes of
    /// an older record linger after the JSON.
    len: usize,
    seq: u64,
    pid: u32,
}

impl RecordSlot {
    /// Creates a record in `dir` (creating the directory with `dir_mode` if needed)
    /// showing `info`.
    pub(crate) fn create(
        dir: &Path,
        info: &LockInfo,
        mode: u32,
        dir_mode: u32,
    ) -> io::Result<RecordSlot> {
        let seq = 1;
        let content = encode(seq, info, 0);
        let (file, path) = create_locked(dir, &content, mode, dir_mode)?;
        Ok(RecordSlot {
            file,
            path,
            len: content.len(),
            seq,
            pid: crate::info::current_pid(),
        })
    }

    /// Shows `info` in this (inactive) record. `NotFound` when the record file was
    /// deleted (e.g. with the whole `.locks`): writing on would show nobody, so the
    /// caller makes a new record instead.
    pub(crate) fn publish(&mut self, info: &LockInfo) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        if self.file.metadata()?.nlink() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the holder record was deleted",
            ));
        }
        self.seq += 1;
        let content = encode(self.seq, info, self.len);
        self.file.write_all_at(&content, 0)?;
        self.len = content.len();
        Ok(())
    }

    /// Marks the record inactive (its holder left; the process lives on). A forked child
    /// shares the parent's open record and must not write it: the parent still holds.
    pub(crate) fn deactivate(&self) -> io::Result<()> {
        if self.pid != crate::info::current_pid() {
            return Ok(());
        }
        self.file.write_all_at(&[INACTIVE], 0)
    }
}

impl Drop for RecordSlot {
    fn drop(&mut self) {
        // Unlink first, then close (which drops the flock): a record that is visible and
        // unlocked therefore always belongs to a process that died. A forked child never
        // removes its parent's record.
        if self.pid == crate::info::current_pid() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn encode(seq: u64, info: &LockInfo, pad_to: usize) -> Vec<u8> {
    let mut v = serde_json::to_vec(&EnvelopeRef {
        seq,
        holder: info,
        end: seq,
    })
    .expect("a LockInfo always serialises");
    if v.len() < pad_to {
        v.resize(pad_to, b' ');
    }
    v
}

fn record_file_name(seq: u64) -> String {
    let host: String = info::this_host()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{host}-{}-{seq}.json", crate::info::current_pid())
}

/// Writes `content` to a new file that is flocked shared before it gets its name.
fn create_locked(
    dir: &Path,
    content: &[u8],
    mode: u32,
    dir_mode: u32,
) -> io::Result<(File, PathBuf)> {
    use std::os::unix::fs::DirBuilderExt;
    let file = match open_anonymous(dir, mode) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match fs::DirBuilder::new().mode(dir_mode).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            open_anonymous(dir, mode)
        }
        other => other,
    };
    match file {
        Ok(file) => {
            file.lock_shared()?;
            file.write_all_at(content, 0)?;
            let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
            loop {
                let path = dir.join(record_file_name(RECORD_SEQ.fetch_add(1, Ordering::Relaxed)));
                match link_follow(Path::new(&proc_path), &path) {
                    Ok(()) => return Ok((file, path)),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    // No /proc (chroot, minimal container): an anonymous file cannot be
                    // named, so take the rename path (before: no record was ever
                    // published there).
                    Err(e) if is_unsupported(&e) => return create_renamed(dir, content, mode),
                    Err(e) => return Err(e),
                }
            }
        }
        Err(e) if is_unsupported(&e) => create_renamed(dir, content, mode),
        Err(e) => Err(e),
    }
}

/// [`create_locked`] where `O_TMPFILE` + `linkat` is not available: a hidden temporary
/// name, locked and written before it is renamed to its record name.
fn create_renamed(dir: &Path, content: &[u8], mode: u32) -> io::Result<(File, PathBuf)> {
    let seq = RECORD_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{TMP_PREFIX}{}", record_file_name(seq)));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    file.lock_shared()?;
    file.write_all_at(content, 0)?;
    let path = dir.join(record_file_name(seq));
    fs::rename(&tmp, &path)?;
    Ok((file, path))
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
    )
}

#[cfg(target_os = "linux")]
fn open_anonymous(dir: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .mode(mode)
        .custom_flags(libc::O_TMPFILE | libc::O_NOFOLLOW)
        .open(dir)
}

#[cfg(not(target_os = "linux"))]
fn open_anonymous(_dir: &Path, _mode: u32) -> io::Result<File> {
    Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}

fn link_follow(from: &Path, to: &Path) -> io::Result<()> {
    let from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both paths are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    // ENOENT on the /proc path means no /proc: use the rename fallback instead.
    if e.raw_os_error() == Some(libc::ENOENT) && !Path::new("/proc/self/fd").exists() {
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    } else {
        Err(e)
    }
}

/// Reads at most 64 KiB: records are small, and a planted huge file must not cost more.
pub(crate) fn read_to_vec(file: &File) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    file.take(64 * 1024).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The holder in a record's bytes, if they are a complete active record.
pub(crate) fn decode(bytes: &[u8]) -> Option<LockInfo> {
    if bytes.first() == Some(&INACTIVE) {
        return None;
    }
    let e: Envelope = serde_json::from_slice(bytes).ok()?;
    (e.seq == e.end).then_some(e.holder)
}

/// What a `.holders` directory says.
#[derive(Default)]
pub(crate) struct Records {
    /// Holders of live processes.
    pub(crate) live: Vec<LockInfo>,
    /// Records of processes that are gone (removed, with `remove`).
    pub(crate) stale: Vec<StaleRecord>,
}

/// Opens a `.holders` directory without following a symlink in its place, and returns
/// the path through which to reach its entries: `/proc/self/fd/N`, which stays bound to
/// the directory opened even if the name is swapped for a symlink afterwards, or (without
/// `/proc`) the path itself.
///
/// Why: a `.holders` symlink planted by another user must never make scanlock read,
/// lock or delete files elsewhere (cleanup deletes every unlocked file it finds there).
fn open_holders_dir(dir: &Path) -> io::Result<(File, PathBuf)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory (a symlink or file is in the way; scanlock never follows \
                 symlinks in the lock directory): remove it",
            ),
            _ => e,
        })?;
    let pinned = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let base = if pinned.is_dir() {
        pinned
    } else {
        dir.to_path_buf()
    };
    Ok((file, base))
}

/// Reads the records in a `.holders` directory. A record whose flock we can take has no
/// living owner: it is stale and, with `remove`, deleted while we hold its flock.
pub(crate) fn read_records(dir: &Path, remove: bool) -> io::Result<Records> {
    let mut out = Records {
        live: Vec::new(),
        stale: Vec::new(),
    };
    let (_dir_fd, base) = match open_holders_dir(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    let entries = match fs::read_dir(&base) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    let mut kernel = KernelLocks::default();
    for entry in entries.flatten() {
        let is_tmp = entry
            .file_name()
            .as_bytes()
            .starts_with(TMP_PREFIX.as_bytes());
        // Operate through `base` (the pinned directory); report the ordinary path.
        let via = entry.path();
        let path = dir.join(entry.file_name());
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&via)
        else {
            continue; // vanished (its process ended cleanly) or not ours to read
        };
        let Ok(meta) = file.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        match file.try_lock() {
            Ok(()) => {
                let old_enough = !is_tmp
                    || meta
                        .modified()
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > TMP_GRACE);
                if !old_enough {
                    continue;
                }
                let holder = read_to_vec(&file).ok().and_then(|b| decode(&b));
                if remove {
                    if fs::remove_file(&via).is_err() {
                        continue;
                    }
                    tracing::warn!(record = %path.display(), "removed stale holder record (its process is gone)");
                }
                out.stale.push(StaleRecord {
                    location: path.display().to_string(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::WouldBlock) if !is_tmp => {
                for _ in 0..READ_ATTEMPTS {
                    let Ok(bytes) = read_at_start(&file) else {
                        break;
                    };
                    if bytes.first() == Some(&INACTIVE) {
                        break;
                    }
                    if let Some(holder) = decode(&bytes) {
                        if is_dead_here(&holder) {
                            // Another reader probing the same dead record blocks our
                            // probe; a same-host record whose pid is gone is stale.
                            out.stale.push(StaleRecord {
                                location: path.display().to_string(),
                                holder: Some(holder),
                            });
                        } else if kernel.shows_holder(&meta, &holder) {
                            out.live.push(holder);
                        }
                        break;
                    }
                    std::thread::yield_now();
                }
            }
            Err(_) => {}
        }
    }
    Ok(out)
}

fn read_at_start(file: &File) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = file.read_at(&mut buf, 0)?;
    buf.truncate(n);
    Ok(buf)
}

/// The kernel's flock table (`/proc/locks`), read when first needed and at most once
/// more, to tell a holder's record from a copy of it.
///
/// Why: a record's flock is held shared by its holder, but also, briefly and
/// exclusively, by any process probing it for staleness. A forged record (a copy of a
/// live one, naming a live pid) probed by one reader would look held to another reader
/// at that moment (found by the torture harness). A same-host record is therefore
/// trusted only if the kernel shows a shared flock on that very file by the pid it names.
#[derive(Default)]
struct KernelLocks {
    text: Option<Option<String>>,
    reread: bool,
}

impl KernelLocks {
    fn shows_holder(&mut self, meta: &fs::Metadata, h: &LockInfo) -> bool {
        use std::os::unix::fs::MetadataExt;
        // Other hosts' (or pid namespaces') pids mean nothing in our table.
        if h.hostname != info::this_host() || h.boot_id != info::this_boot() {
            return true;
        }
        let want = format!(
            "{:02x}:{:02x}:{}",
            libc::major(meta.dev()),
            libc::minor(meta.dev()),
            meta.ino()
        );
        let pid = h.pid.to_string();
        let found = |text: &str| {
            text.lines().any(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                // "1: FLOCK  ADVISORY  READ 1234 fd:01:5678 0 EOF"; waiters have "->".
                f.len() >= 6 && f[1] == "FLOCK" && f[3] == "READ" && f[4] == pid && f[5] == want
            })
        };
        loop {
            let text = self.text.get_or_insert_with(super::file::read_proc_locks);
            let Some(text) = text else {
                return true; // no /proc/locks: the flock probe is all there is
            };
            if found(text) {
                return true;
            }
            // The record may have been locked after the table was read: look once more.
            if self.reread {
                return false;
            }
            self.reread = true;
            self.text = None;
        }
    }
}

fn is_dead_here(h: &LockInfo) -> bool {
    h.hostname == info::this_host() && h.boot_id == info::this_boot() && !info::pid_alive(h.pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LockType;

    fn info(user: &str) -> LockInfo {
        LockInfo::for_current_thread("scan1", user, LockType::Shared, false)
    }

    #[test]
    fn records_are_reused_padded_and_never_torn() {
        let dir = tempfile::tempdir().unwrap();
        let holders = dir.path().join("scan1.holders");
        let mut slot =
            RecordSlot::create(&holders, &info("a-rather-long-user-name"), 0o644, 0o777).unwrap();
        let live = read_records(&holders, false).unwrap().live;
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].user, "a-rather-long-user-name");

        slot.deactivate().unwrap();
        let r = read_records(&holders, false).unwrap();
        assert!(
            r.live.is_empty() && r.stale.is_empty(),
            "an inactive record is neither"
        );

        slot.publish(&info("b")).unwrap();
        let live = read_records(&holders, false).unwrap().live;
        assert_eq!(
            live[0].user, "b",
            "shorter content must not leave old bytes behind"
        );

        let path = slot.path.clone();
        drop(slot);
        assert!(!path.exists());
    }

    #[test]
    fn decode_rejects_mismatched_and_inactive() {
        let i = info("u");
        let good = encode(7, &i, 0);
        assert_eq!(decode(&good).map(|h| h.user), Some("u".to_owned()));
        let mut torn = encode(7, &i, 0);
        let tail = String::from_utf8(torn.clone())
            .unwrap()
            .replace("\"end\":7", "\"end\":6");
        torn = tail.into_bytes();
        assert_eq!(decode(&torn), None);
        let mut inactive = good.clone();
        inactive[0] = INACTIVE;
        assert_eq!(decode(&inactive), None);
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"garbage"), None);
    }
}
