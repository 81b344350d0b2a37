//! The few system calls the faults need: mount namespaces and mounts, resource limits,
//! signals.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Moves the calling thread (the process, while it has one thread) into a private mount
/// namespace: mounts made afterwards are seen by it and its children only, and vanish
/// with the last of them, even after a SIGKILL (nothing to clean up on the host).
pub fn private_mount_namespace() -> io::Result<()> {
    // SAFETY: plain system calls with valid, NUL-terminated arguments.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        let root = cstr(Path::new("/"))?;
        check(libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))
    }
}

/// Mounts a tmpfs of `size_kib` KiB and at most `inodes` inodes on `dir`.
pub fn mount_tmpfs(dir: &Path, size_kib: u64, inodes: u64) -> io::Result<()> {
    let target = cstr(dir)?;
    let fstype = CString::new("tmpfs").unwrap();
    let opts = CString::new(format!("size={size_kib}k,nr_inodes={inodes},mode=0755")).unwrap();
    // SAFETY: valid, NUL-terminated arguments.
    check(unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    })
}

/// Makes `dir` read-only by bind-mounting it onto itself read-only. Unlike a remount of
/// the file system (which fails while files are open for writing, and every holder
/// keeps its record open), this affects every path lookup below `dir` at once; open
/// descriptors keep working, as they would on a file system that turned read-only
/// under a live process.
pub fn bind_read_only(dir: &Path) -> io::Result<()> {
    let target = cstr(dir)?;
    // SAFETY: valid, NUL-terminated arguments.
    unsafe {
        check(libc::mount(
            target.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ))?;
        let r = check(libc::mount(
            std::ptr::null(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
            std::ptr::null(),
        ));
        if r.is_err() {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
        r
    }
}

/// Detaches the topmost mount on `dir`.
pub fn unmount(dir: &Path) -> io::Result<()> {
    let target = cstr(dir)?;
    // SAFETY: valid, NUL-terminated argument.
    check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) })
}

/// Sets both the soft and the hard `RLIMIT_NOFILE` to `n`. scanlock raises the soft
/// limit to the hard one once per process, so a low limit must be a hard limit to stay.
pub fn limit_fds(n: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: n as libc::rlim_t,
        rlim_max: n as libc::rlim_t,
    };
    // SAFETY: lim is a valid rlimit.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    check(unsafe { libc::kill(pid as libc::pid_t, sig) })
}

/// Whether this process runs with an effective uid of 0 (root ignores permission bits,
/// so `chmod` cannot make anything read-only for it).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}
