//! Passing the signals `scanlock run` receives on to its command, so that scanlock
//! outlives the command and holds the lock until the command has really exited.
//!
//! Plain libc (`sigaction`, `kill`, `waitid`) rather than a signal crate: the handler
//! only reads an atomic and calls `kill`, both async-signal-safe, and that is all that
//! is needed.

use std::io;
use std::os::raw::{c_int, c_void};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};

/// The signals passed on: the ones that end a process by default and that an operator
/// or a supervisor sends to stop or poke a job. Left at their default, any of them would
/// kill scanlock and release the lock while the command kept running.
pub const FORWARDED: [c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The running command's pid, or 0 while there is none (before it starts, and once it
/// has exited: its pid may then be reused by an unrelated process).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// A signal received while no command was running.
static PENDING: AtomicI32 = AtomicI32::new(0);

/// The handler: passes the signal to the command, or remembers it if none runs.
extern "C" fn on_signal(sig: c_int, info: *mut libc::siginfo_t, _context: *mut c_void) {
    let child = CHILD.load(Ordering::SeqCst);
    if child <= 0 {
        PENDING.store(sig, Ordering::SeqCst);
        return;
    }
    if sent_by_terminal(info) {
        // The terminal signals its whole foreground process group, which includes the
        // command: sending it again would make one Ctrl-C look like two (many programs
        // take a second Ctrl-C as "quit without cleaning up").
        return;
    }
    // errno is saved because the interrupted code may be about to read it.
    let saved = errno();
    // SAFETY: kill is async-signal-safe; `child` is our unreaped child, so the pid cannot
    // have been reused.
    unsafe { libc::kill(child, sig) };
    set_errno(saved);
}

/// Whether the kernel's terminal driver sent the signal (Ctrl-C, Ctrl-\, hang-up).
#[cfg(target_os = "linux")]
fn sent_by_terminal(info: *const libc::siginfo_t) -> bool {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t.
    !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL
}

/// Elsewhere the sender is not told apart: every signal is passed on.
#[cfg(not(target_os = "linux"))]
fn sent_by_terminal(_info: *const libc::siginfo_t) -> bool {
    false
}

/// This thread's `errno`.
#[cfg(target_os = "linux")]
fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno, always valid.
    unsafe { *libc::__errno_location() }
}

/// Sets this thread's `errno`.
#[cfg(target_os = "linux")]
fn set_errno(v: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = v }
}

/// Elsewhere `errno` is not saved (kill fails only for a pid that is gone, and ours
/// is not reaped yet).
#[cfg(not(target_os = "linux"))]
fn errno() -> c_int {
    0
}

/// See the other `errno`.
#[cfg(not(target_os = "linux"))]
fn set_errno(_v: c_int) {}

/// Signal forwarding while it lives; the previous dispositions come back on drop.
///
/// Assumes the signals are handled on the thread that calls [`Forwarding::started`]
/// (scanlock run has one thread), so the handler and the main code never interleave.
pub struct Forwarding {
    /// Each signal handled, with the disposition it had before.
    previous: Vec<(c_int, libc::sigaction)>,
}

impl Forwarding {
    /// Installs the handler for each of [`FORWARDED`], except those ignored when
    /// scanlock started (e.g. SIGHUP under `nohup`, SIGINT in a background job of a
    /// script): the command inherits those ignored, as it would without scanlock.
    pub fn install() -> io::Result<Forwarding> {
        CHILD.store(0, Ordering::SeqCst);
        PENDING.store(0, Ordering::SeqCst);
        let mut previous = Vec::new();
        for sig in FORWARDED {
            // SAFETY: zeroed sigaction structs are valid; the calls only read and write
            // them, and `on_signal` has the SA_SIGINFO handler signature.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if old.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut new.sa_mask);
                if libc::sigaction(sig, &new, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
                previous.push((sig, old));
            }
        }
        Ok(Forwarding { previous })
    }

    /// A signal that arrived while no command was running, if any (consumed).
    pub fn take_pending(&self) -> Option<c_int> {
        match PENDING.swap(0, Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// From now on, signals go to `child`; one that arrived while it was being started
    /// is passed on now.
    pub fn started(&self, child: &Child) {
        CHILD.store(child.id() as i32, Ordering::SeqCst);
        if let Some(sig) = self.take_pending() {
            // SAFETY: `child` is our unreaped child.
            unsafe { libc::kill(child.id() as i32, sig) };
        }
    }

    /// Waits until `child` exits, stops forwarding, then reaps it. The child is reaped
    /// only after forwarding stopped, so a late signal can never reach a process that
    /// reused its pid.
    pub fn wait(&self, mut child: Child) -> io::Result<ExitStatus> {
        loop {
            // SAFETY: a zeroed siginfo_t is valid to be written by waitid.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: waits for our own child without reaping it (WNOWAIT).
            let rc = unsafe {
                libc::waitid(
                    libc::P_PID,
                    child.id() as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if rc == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        CHILD.store(0, Ordering::SeqCst);
        child.wait()
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        CHILD.store(0, Ordering::SeqCst);
        for (sig, old) in &self.previous {
            // SAFETY: restores a disposition read by sigaction earlier.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
    }
}

/// On Linux, makes the kernel kill the command (SIGKILL) if scanlock dies first, e.g.
/// killed with SIGKILL: the kernel then releases the lock, and the command must not go
/// on unprotected. Elsewhere a no-op.
pub fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: getpid is async-signal-safe.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the closure runs in the forked child before exec and calls only
        // async-signal-safe functions (prctl, getppid, _exit).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // scanlock died between fork and prctl: the death signal was missed.
                if libc::getppid() != parent {
                    libc::_exit(128 + libc::SIGKILL);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}
