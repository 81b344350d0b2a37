//! `scanlock run`: run a command while holding a lock, like `flock(1)`.

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::time::{Instant, SystemTime};

use scanlock::{LockError, LockGuard, LockType, ScanLockManager, Wait};

use crate::cli::RunArgs;
use crate::error::{self, CliError, code};
use crate::signals::{self, Forwarding};
use crate::store::{Location, Purpose};
use crate::{duration, format};

/// Takes the lock, runs the command, releases the lock; the exit code is the command's.
pub fn run(location: &Location, args: &RunArgs) -> Result<u8, CliError> {
    let manager = location
        .open(Purpose::Lock)?
        .expect("Purpose::Lock always opens the store");
    let mode = if args.shared {
        LockType::Shared
    } else {
        LockType::Exclusive
    };
    // As flock(1): wait until the lock is free unless told otherwise.
    let wait = match (args.no_wait, args.timeout) {
        (true, _) => Wait::NoWait,
        (false, Some(d)) => Wait::Timeout(d),
        (false, None) => Wait::Forever,
    };
    let user = args.user.clone().unwrap_or_else(default_user);
    let notice = args.verbose || io::stderr().is_terminal();
    let started = Instant::now();
    let guard = acquire(&manager, &args.name, mode, &user, wait, notice)
        .map_err(|e| error::from_lock(e, args.conflict_exit_code))?;
    if args.verbose {
        eprintln!(
            "scanlock: acquired {mode} lock \"{}\" after {}",
            args.name,
            duration::human_precise(started.elapsed())
        );
    }
    // The command inherits the descriptor of the locked open file description (as
    // with flock(1)), so the lock stays held while anything the command started lives,
    // even if scanlock is SIGKILLed. Only the file back end has such a descriptor.
    let inherit = if args.close {
        None
    } else {
        match location {
            Location::Dir(_) => Some(lock_fd(&manager).ok_or_else(|| {
                CliError::new(
                    format!("cannot find the descriptor of lock \"{}\"", args.name),
                    "pass -o/--close to run the command without inheriting the lock",
                )
            })?),
            Location::Url(_) => None,
        }
    };
    let argv = match &args.shell_command {
        Some(script) => vec!["sh".into(), "-c".into(), script.clone()],
        None => args.command.clone(),
    };
    let (result, descendants_alive) = run_command(&argv, inherit);
    if descendants_alive {
        // Processes the command started still hold the inherited lock: unlocking now
        // would let them run unlocked. The kernel releases the lock when the last of
        // them closes it; scanlock's own holder record becomes stale (`clean`).
        if args.verbose {
            eprintln!(
                "scanlock: lock \"{}\" stays held by processes the command left running",
                args.name
            );
        }
        std::mem::forget(guard);
        return result;
    }
    release(guard, &args.name, args.verbose);
    result
}

/// The descriptor holding the lock: the one open `.lock` file directly in the lock
/// directory (this process holds exactly one name; the library keeps it open with
/// O_CLOEXEC while the guard lives).
fn lock_fd(manager: &ScanLockManager) -> Option<i32> {
    use std::os::unix::fs::MetadataExt;
    let dir = std::fs::metadata(manager.lock_dir()).ok()?;
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target.extension().is_none_or(|e| e != "lock") {
            continue;
        }
        let Some(parent) = target.parent().and_then(|p| std::fs::metadata(p).ok()) else {
            continue;
        };
        if parent.dev() == dir.dev() && parent.ino() == dir.ino() {
            found.push(fd);
        }
    }
    (found.len() == 1).then(|| found[0])
}

/// Takes the lock. When a person may be watching (`notice`), a first single attempt
/// finds out whether the lock is busy, so that they learn whom they are waiting for.
fn acquire(
    manager: &ScanLockManager,
    name: &str,
    mode: LockType,
    user: &str,
    wait: Wait,
    notice: bool,
) -> Result<LockGuard, LockError> {
    if wait == Wait::NoWait {
        return manager.try_acquire_lock(name, mode, user);
    }
    if notice {
        match manager.try_acquire_lock(name, mode, user) {
            Ok(guard) => return Ok(guard),
            Err(LockError::WouldBlock { holder, .. }) => {
                let who = holder.map_or("holder unknown".to_owned(), |h| {
                    format!("held {}", format::holder_sentence(&h, SystemTime::now()))
                });
                eprintln!("scanlock: waiting for {mode} lock \"{name}\": {who}");
            }
            Err(e) => return Err(e),
        }
    }
    manager.acquire_lock_with(name, mode, user, wait)
}

/// Releases the lock; a failure is reported but does not replace the command's exit
/// code (the kernel drops the lock when scanlock exits anyway).
fn release(guard: LockGuard, name: &str, verbose: bool) {
    match guard.release() {
        Ok(()) if verbose => eprintln!("scanlock: released lock \"{name}\""),
        Ok(()) => {}
        Err(e) => eprintln!("scanlock: warning: releasing lock \"{name}\": {e}"),
    }
}

/// Runs `argv` to its end with signals forwarded; its exit code, shell style.
/// With `inherit`, that descriptor is passed to the command and scanlock becomes a
/// child subreaper; the second value then tells whether any process the command started
/// is still alive after the command exited.
fn run_command(argv: &[OsString], inherit: Option<i32>) -> (Result<u8, CliError>, bool) {
    if let Some(fd) = inherit {
        // SAFETY: prctl with these arguments only changes this process's attributes.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
        let r = run_command_inner(argv, Some(fd));
        let alive = r.is_ok() && reap_descendants();
        (r, alive)
    } else {
        (run_command_inner(argv, None), false)
    }
}

/// Reaps exited orphans (re-parented to scanlock, the subreaper); true if any
/// descendant is still alive.
fn reap_descendants() -> bool {
    loop {
        let mut status = 0;
        // SAFETY: waits for any child without blocking.
        let rc = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match rc {
            0 => return true,
            r if r > 0 => continue,
            _ => return false,
        }
    }
}

fn run_command_inner(argv: &[OsString], inherit: Option<i32>) -> Result<u8, CliError> {
    let forwarding = Forwarding::install().map_err(|e| {
        CliError::new(
            format!("cannot set up signal forwarding: {e}"),
            "this should not happen; please report it",
        )
    })?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    signals::die_with_parent(&mut cmd);
    if let Some(fd) = inherit {
        use std::os::unix::process::CommandExt;
        // SAFETY: fcntl is async-signal-safe; it clears FD_CLOEXEC in the child only.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    // Told to stop before the command even started: do not start it.
    if let Some(sig) = forwarding.take_pending() {
        return Ok(signal_code(sig));
    }
    let child = cmd.spawn().map_err(|e| spawn_error(&argv[0], e))?;
    forwarding.started(&child);
    let status = forwarding.wait(child).map_err(|e| {
        CliError::new(
            format!("lost track of the command: {e}"),
            "this should not happen; please report it",
        )
    })?;
    Ok(exit_code(status))
}

/// The exit code a shell would report for `status`.
fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => signal_code(sig),
        (None, None) => code::ERROR,
    }
}

/// 128 + the signal number, as shells report a command killed by a signal.
fn signal_code(sig: i32) -> u8 {
    u8::try_from(128 + sig).unwrap_or(u8::MAX)
}

/// Why the command did not start, with the shell's exit codes (127 not found, 126 not
/// executable).
fn spawn_error(program: &OsString, e: io::Error) -> CliError {
    let program = program.to_string_lossy();
    if e.kind() == io::ErrorKind::NotFound {
        CliError::new(
            format!("command not found: {program}"),
            "check the spelling and $PATH; the lock was released",
        )
        .with_code(code::NOT_FOUND)
    } else {
        CliError::new(
            format!("cannot run {program}: {e}"),
            "check that it is an executable file; the lock was released",
        )
        .with_code(code::CANNOT_EXECUTE)
    }
}

/// The user recorded in the metadata when `--user` is not given: the login name, as
/// an operator would look for it (`$USER`, `$LOGNAME`, else the password database).
fn default_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .or_else(user_name_of_uid)
        // SAFETY: getuid cannot fail.
        .unwrap_or_else(|| format!("uid {}", unsafe { libc::getuid() }))
}

/// The name of this process's real user in the password database, if it has one.
fn user_name_of_uid() -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: a zeroed passwd is a valid value to be overwritten.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf` for its length; on success
    // `pw_name` points into `buf`, which outlives its use below.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::getuid(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name is a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
}
