//! One acquire+release of each contender: the physical floors (raw system calls through
//! `libc`, no allocation), the Rust peers (`fs4`, `fd-lock`) and scanlock itself.
//!
//! Every function panics on an error: a benchmark that silently measures a failing
//! operation would report nonsense.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use scanlock::{LockType, ScanLockManager};

/// `flock` operation for a lock type.
fn flock_op(shared: bool) -> libc::c_int {
    if shared { libc::LOCK_SH } else { libc::LOCK_EX }
}

fn check(rc: libc::c_int, what: &str) {
    if rc != 0 {
        panic!("{what}: {}", std::io::Error::last_os_error());
    }
}

/// A path as the C string the raw floors pass to the kernel (made once, outside the
/// timed loop: the floor is the system calls, not Rust's path handling).
pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

/// Creates `path` if needed (the floors time opening an existing file, as scanlock's
/// repeated acquisitions do).
pub fn touch(path: &Path) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("create lock file");
}

/// F0: `flock` + unlock on a descriptor opened once.
#[derive(Debug)]
pub struct F0 {
    file: File,
}

impl F0 {
    /// Opens `path` (creating it) and keeps it open.
    pub fn open(path: &Path) -> F0 {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .expect("open F0 file");
        F0 { file }
    }

    /// One lock + unlock.
    #[inline]
    pub fn op(&self, shared: bool) {
        let fd = self.file.as_raw_fd();
        // SAFETY: fd is an open descriptor owned by self.file.
        unsafe {
            check(libc::flock(fd, flock_op(shared)), "flock");
            check(libc::flock(fd, libc::LOCK_UN), "unlock");
        }
    }

    /// The descriptor (for the contention peers, which block on it).
    pub fn file(&self) -> &File {
        &self.file
    }
}

fn open_rw(path: &CString) -> libc::c_int {
    // SAFETY: path is a valid NUL-terminated string.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        panic!("open: {}", std::io::Error::last_os_error());
    }
    fd
}

/// F1: open + `flock` + unlock + close of a named file.
#[inline]
pub fn f1(path: &CString, shared: bool) {
    let fd = open_rw(path);
    // SAFETY: fd was just opened and is closed exactly once here.
    unsafe {
        check(libc::flock(fd, flock_op(shared)), "flock");
        check(libc::flock(fd, libc::LOCK_UN), "unlock");
        libc::close(fd);
    }
}

/// The same-inode check every safe named lock needs after locking: is the file we
/// locked still the one at the path (same device and inode, not unlinked)? Another
/// program may have deleted or replaced it while we waited.
#[inline]
pub fn same_inode(fd: libc::c_int, path: &CString) -> bool {
    // SAFETY: stat is plain data; fd is open and path is NUL-terminated.
    unsafe {
        let mut mine: libc::stat = std::mem::zeroed();
        let mut there: libc::stat = std::mem::zeroed();
        check(libc::fstat(fd, &mut mine), "fstat");
        if mine.st_nlink == 0 {
            return false;
        }
        if libc::lstat(path.as_ptr(), &mut there) != 0 {
            return false;
        }
        mine.st_dev == there.st_dev && mine.st_ino == there.st_ino
    }
}

/// F1v: F1 plus the same-inode check after locking.
#[inline]
pub fn f1v(path: &CString, shared: bool) {
    let fd = open_rw(path);
    // SAFETY: fd was just opened and is closed exactly once here.
    unsafe {
        check(libc::flock(fd, flock_op(shared)), "flock");
        assert!(same_inode(fd, path), "lock file replaced during the bench");
        check(libc::flock(fd, libc::LOCK_UN), "unlock");
        libc::close(fd);
    }
}

fn open_std(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .expect("open lock file")
}

/// `fs4`, the way its documentation shows a named lock: open, lock, unlock, close.
#[inline]
pub fn fs4_op(path: &Path, shared: bool) {
    let f = open_std(path);
    if shared {
        fs4::FileExt::lock_shared(&f).expect("fs4 lock_shared");
    } else {
        fs4::FileExt::lock(&f).expect("fs4 lock");
    }
    fs4::FileExt::unlock(&f).expect("fs4 unlock");
}

/// `fd-lock`: open, take the guard, drop it (unlock), close.
#[inline]
pub fn fd_lock_op(path: &Path, shared: bool) {
    let mut l = fd_lock::RwLock::new(open_std(path));
    if shared {
        let g = l.read().expect("fd-lock read");
        drop(g);
    } else {
        let g = l.write().expect("fd-lock write");
        drop(g);
    }
}

/// The lock type for a `shared` flag.
pub fn lock_type(shared: bool) -> LockType {
    if shared {
        LockType::Shared
    } else {
        LockType::Exclusive
    }
}

/// scanlock: `acquire_lock` with the default wait, then release the guard.
#[inline]
pub fn scanlock_op(m: &ScanLockManager, name: &str, shared: bool) {
    let g = m
        .acquire_lock(name, lock_type(shared), "bench", None)
        .expect("scanlock acquire");
    g.release().expect("scanlock release");
}

/// More names than scanlock's handle cache keeps (64), so that cycling through them
/// makes every acquisition open its files afresh: the "handles not kept" case.
pub const ROTATION: usize = 128;

/// The names of the rotation, and their `.lock` paths under `root`.
pub fn rotation_names(prefix: &str) -> Vec<String> {
    (0..ROTATION).map(|i| format!("{prefix}{i:03}")).collect()
}

/// `<root>/.locks/<name>.lock`: where scanlock keeps a plain name's lock.
pub fn lock_file_of(root: &Path, name: &str) -> PathBuf {
    root.join(".locks").join(format!("{name}.lock"))
}

/// A manager for the benchmarks: `metadata` on or off; cleanup on start off, since the
/// root is fresh.
pub fn manager(root: &Path, metadata: bool) -> ScanLockManager {
    ScanLockManager::builder(root)
        .metadata(metadata)
        .cleanup_on_start(false)
        .build()
        .expect("scanlock manager")
}

/// The files of one name as scanlock lays them out, for the raw replays below.
#[derive(Debug)]
pub struct ReplayPaths {
    gate: CString,
    lock: CString,
    info: CString,
}

impl ReplayPaths {
    /// `<dir>/<stem>.gate`, `.lock` (both created) and `.info` (absent, as without plantdb).
    pub fn new(dir: &Path, stem: &str) -> ReplayPaths {
        let p = |suffix: &str| dir.join(format!("{stem}{suffix}"));
        touch(&p(".gate"));
        touch(&p(".lock"));
        ReplayPaths {
            gate: cpath(&p(".gate")),
            lock: cpath(&p(".lock")),
            info: cpath(&p(".info")),
        }
    }
}

/// `fstat` of the open lock directory: scanlock reads its version once per acquisition.
fn dir_version(dir: libc::c_int) {
    // SAFETY: stat is plain data; dir is an open descriptor.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        check(libc::fstat(dir, &mut st), "fstat dir");
        std::hint::black_box(st.st_mtime);
    }
}

/// The system calls scanlock's file back end makes for one uncontended acquire+release
/// of a name whose handles it keeps, in the steady state (seen with strace): lock the
/// gate, lock the lock, `fstat` the open lock directory (unchanged since the file was
/// last found at its path and no plantdb `.info` was there: neither needs looking at
/// again), unlock the gate, and at release unlock the lock. Issued raw, this is what
/// scanlock would cost with no library overhead at all: the difference to scanlock's
/// figure is the library's own.
#[inline]
pub fn replay_cached(gate: libc::c_int, lock: libc::c_int, dir: libc::c_int, shared: bool) {
    let op = flock_op(shared) | libc::LOCK_NB;
    // SAFETY: plain system calls on open descriptors.
    unsafe {
        check(libc::flock(gate, op), "flock gate");
        check(libc::flock(lock, op), "flock lock");
        dir_version(dir);
        check(libc::flock(gate, libc::LOCK_UN), "unlock gate");
        check(libc::flock(lock, libc::LOCK_UN), "unlock lock");
    }
}

/// What scanlock does for a name that is not in its handle cache: open both files, lock
/// them, read the directory's version, probe plantdb's `.info` (absent: ENOENT) and check
/// the same inode at the path in full (a fresh handle has been checked at no version
/// yet), unlock, and close both when the name is evicted.
#[inline]
pub fn replay_uncached(p: &ReplayPaths, dir: libc::c_int, shared: bool) {
    let gate = open_rw(&p.gate);
    let lock = open_rw(&p.lock);
    let op = flock_op(shared) | libc::LOCK_NB;
    // SAFETY: plain system calls on open descriptors and NUL-terminated paths; both
    // descriptors were opened above and are closed once.
    unsafe {
        check(libc::flock(gate, op), "flock gate");
        check(libc::flock(lock, op), "flock lock");
        dir_version(dir);
        let info = libc::open(
            p.info.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        );
        if info >= 0 {
            libc::close(info);
        }
        assert!(same_inode(lock, &p.lock), "lock file replaced");
        check(libc::flock(gate, libc::LOCK_UN), "unlock gate");
        check(libc::flock(lock, libc::LOCK_UN), "unlock lock");
        libc::close(gate);
        libc::close(lock);
    }
}
