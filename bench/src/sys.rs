//! Small operating-system helpers: the monotonic clock, busy holds, process counters
//! (peak RSS, open descriptors) and a description of the machine for the report.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Nanoseconds on `CLOCK_MONOTONIC`. Unlike `Instant`, its values mean the same thing in
/// every process of the host, so a release timestamped in one process and an acquisition
/// timestamped in another can be subtracted.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for the kernel to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Busy-waits `ns` nanoseconds: a "tiny critical section" that keeps the CPU, so that a
/// holder is not descheduled while it holds (a sleep would measure the scheduler).
pub fn spin_for(ns: u64) {
    let end = monotonic_ns() + ns;
    while monotonic_ns() < end {
        std::hint::spin_loop();
    }
}

/// Sleeps until the monotonic clock reaches `t_ns` (returns at once if it has).
pub fn sleep_until(t_ns: u64) {
    loop {
        let now = monotonic_ns();
        if now >= t_ns {
            return;
        }
        let left = t_ns - now;
        // Sleep most of the way, then spin: process starts line up within microseconds.
        if left > 200_000 {
            std::thread::sleep(Duration::from_nanos(left - 100_000));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// A field of `/proc/self/status` in kB (`VmHWM` is the peak resident set size).
pub fn status_kb(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Open file descriptors of this process (entries of `/proc/self/fd`, less the one the
/// listing itself uses).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count().saturating_sub(1))
}

/// Open descriptors below `limit`, counted with `fcntl(F_GETFD)`: works when the
/// process is out of descriptors, where listing `/proc/self/fd` would need one more.
pub fn open_fds_below(limit: u64) -> usize {
    (0..limit as libc::c_int)
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .count()
}

/// Sets `RLIMIT_NOFILE` (soft and hard): lowering the hard limit too keeps a library
/// that raises its soft limit to the hard one (scanlock does) within the cap.
pub fn set_nofile(limit: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: lim is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The one-minute load average, to say how busy the machine was during a run.
pub fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".to_owned())
}

/// The CPU model from `/proc/cpuinfo`, and the number of online CPUs.
pub fn cpu_model() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cpus} CPUs")
}

/// `uname -srm`.
pub fn kernel() -> String {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".to_owned();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!(
        "{} {} {}",
        field(&u.sysname),
        field(&u.release),
        field(&u.machine)
    )
}

/// The file system holding `path`: type, device and mount point from `/proc/mounts`
/// (the longest mount point that is a prefix of the canonical path), else the
/// `statfs` magic number (what `stat -f` prints).
pub fn fs_type(path: &Path) -> String {
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Ok(mounts) = std::fs::read_to_string("/proc/mounts") {
        let best = mounts
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3).then(|| (f[0], unescape_mount(f[1]), f[2]))
            })
            .filter(|(_, mnt, _)| canon.starts_with(mnt))
            .max_by_key(|(_, mnt, _)| mnt.as_os_str().len());
        if let Some((dev, mnt, ty)) = best {
            return format!("{ty} ({dev} mounted on {})", mnt.display());
        }
    }
    let Ok(c) = CString::new(canon.as_os_str().as_bytes()) else {
        return "unknown".to_owned();
    };
    // SAFETY: statfs is plain data; c is a valid path.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } == 0 {
        format!("statfs magic {:#x}", s.f_type)
    } else {
        "unknown".to_owned()
    }
}

/// `/proc/mounts` escapes spaces and a few other bytes as `\ooo`.
fn unescape_mount(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(oct) = s.get(i + 1..i + 4)
            && let Ok(v) = u8::from_str_radix(oct, 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// A scratch directory for one run, removed when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates a fresh directory inside `parent`.
    pub fn new_in(parent: &Path) -> std::io::Result<ScratchDir> {
        let path = parent.join(format!(
            "scanlock-bench-{}-{}",
            std::process::id(),
            monotonic_ns()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(ScratchDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh sub-directory (a lock root of its own).
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p).expect("create scratch sub-directory");
        p
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A tiny deterministic pseudo-random generator (xorshift64*), for hold times and
/// gaps: good enough to avoid lock-step phases, and no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and the pid unless `seed` is non-zero.
    pub fn new(seed: u64) -> Rng {
        let s = if seed != 0 {
            seed
        } else {
            monotonic_ns() ^ (u64::from(std::process::id()) << 32)
        };
        Rng(s | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}
