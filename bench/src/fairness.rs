//! Case 5: writer fairness. Four reader processes hold one name shared for 1 ms each,
//! re-acquiring at once, each releasing on its own fixed phase a quarter of a hold after
//! the previous reader's, so that at every instant some reader holds it. One writer
//! process asks for it exclusively now and then.
//!
//! With plain `flock` the kernel grants every new shared request that is compatible with
//! the current holders, so the writer never gets in: it is measured with a cap (an
//! interval timer interrupts its blocking `flock`, as `flock -w` does) and reported as
//! "> cap". scanlock's writer holds the name's gate while it waits, so arriving readers
//! queue behind it and it gets in once the current holds end.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use scanlock::LockType;

use crate::child::{self, RoleArgs};
use crate::ops::{self, F0};
use crate::stats::Dist;
use crate::sys::{Rng, monotonic_ns, sleep_until, spin_for};

/// Readers.
pub const READERS: usize = 4;
/// Each reader's hold.
pub const READER_HOLD: Duration = Duration::from_millis(1);
/// The writer's hold: short, so readers are rarely held up by the writer itself.
const WRITER_HOLD_NS: u64 = 100_000;

/// What the writer saw.
#[derive(Clone, Debug)]
pub struct FairRow {
    /// `raw` or `scanlock`.
    pub who: &'static str,
    /// Waits of the attempts that got the lock.
    pub wait: Dist,
    /// Attempts that gave up at the cap.
    pub gave_up: usize,
    /// Attempts made.
    pub attempts: usize,
    /// The cap of one attempt.
    pub cap: Duration,
    /// Set when the readers did not overlap as planned (a harness problem).
    pub problem: Option<String>,
}

/// Runs readers and a writer; `attempts` writer requests, each capped at `cap`.
pub fn measure(dir: &Path, raw: bool, attempts: usize, cap: Duration) -> FairRow {
    let who = if raw { "raw" } else { "scanlock" };
    let root = dir.join(format!("fair-{who}"));
    let lock = ops::lock_file_of(&root, "shared-scan");
    fs::create_dir_all(lock.parent().unwrap()).expect("lock dir");
    ops::touch(&lock);
    let start = monotonic_ns() + 150_000_000;
    let hold = READER_HOLD.as_nanos() as u64;
    let mut readers: Vec<_> = (0..READERS)
        .map(|i| {
            child::spawn(
                "reader",
                &[
                    ("who", who.to_owned()),
                    ("root", root.display().to_string()),
                    (
                        "start",
                        (start + i as u64 * hold / READERS as u64).to_string(),
                    ),
                    ("hold", hold.to_string()),
                    // A safety stop in case the parent dies without killing them.
                    ("end", (start + 600_000_000_000).to_string()),
                ],
                false,
            )
        })
        .collect();
    let out = root.join("writer.out");
    let mut writer = vec![child::spawn(
        "writer",
        &[
            ("who", who.to_owned()),
            ("root", root.display().to_string()),
            // Let the readers settle into their overlapping rhythm first.
            ("start", (start + 100_000_000).to_string()),
            ("attempts", attempts.to_string()),
            ("cap", (cap.as_nanos() as u64).to_string()),
            ("out", out.display().to_string()),
        ],
        false,
    )];
    let limit = cap * attempts as u32 + Duration::from_millis(20) * attempts as u32;
    let st = child::wait_all(
        &mut writer,
        Instant::now() + limit + Duration::from_secs(30),
    );
    let readers_alive = readers.iter_mut().all(|r| matches!(r.try_wait(), Ok(None)));
    child::kill_all(&mut readers);
    let mut problem = (!readers_alive).then(|| "a reader exited early".to_owned());
    if !matches!(st.first(), Some(Some(s)) if s.success()) {
        problem = Some("the writer did not finish".to_owned());
    }
    let text = fs::read_to_string(&out).unwrap_or_default();
    let mut waits = Vec::new();
    let mut gave_up = 0;
    for l in text.lines() {
        match l.split_once(' ') {
            Some(("ok", v)) => waits.push(v.parse().unwrap_or(0)),
            Some(("gave-up", _)) => gave_up += 1,
            _ => {}
        }
    }
    FairRow {
        who,
        wait: Dist::of(&mut waits),
        gave_up,
        attempts,
        cap,
        problem,
    }
}

/// Sleeps until `t_ns` on CLOCK_MONOTONIC (an absolute deadline: no drift from one
/// hold to the next).
fn sleep_abs(t_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (t_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (t_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: ts is valid; EINTR just ends the sleep early, and callers loop on time.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    };
}

/// The end of the hold that is under way at `now`: reader `i` releases at
/// `start + k × hold` for its own phase `start`, so the four readers release a quarter
/// hold apart, always, and the name is never free of readers. (Relative sleeps would
/// let the phases drift together, and the kernel's timer slack even pulls them
/// together, which opens gaps.)
fn next_release(start: u64, hold: u64, now: u64) -> u64 {
    start + ((now.saturating_sub(start)) / hold + 1) * hold
}

/// `--role reader`: hold shared until the next release time of this reader's phase,
/// release, re-acquire at once, until `end`.
pub fn reader_role(a: &RoleArgs) {
    let root = Path::new(a.str("root"));
    let hold = a.u64("hold");
    let end = a.u64("end");
    let start = a.u64("start");
    // Precise wake-ups: the default 50 µs timer slack would blur the phases.
    // SAFETY: prctl with an integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    if a.str("who") == "raw" {
        let f = F0::open(&ops::lock_file_of(root, "shared-scan"));
        let fd = f.file().as_raw_fd();
        sleep_until(start);
        while monotonic_ns() < end {
            // SAFETY: fd stays open while f lives.
            if unsafe { libc::flock(fd, libc::LOCK_SH) } == 0 {
                sleep_abs(next_release(start, hold, monotonic_ns()));
                // SAFETY: as above.
                unsafe { libc::flock(fd, libc::LOCK_UN) };
            }
        }
    } else {
        let m = ops::manager(root, true);
        sleep_until(start);
        while monotonic_ns() < end {
            if let Ok(g) = m.acquire_lock(
                "shared-scan",
                LockType::Shared,
                "reader",
                Some(Duration::from_secs(30)),
            ) {
                sleep_abs(next_release(start, hold, monotonic_ns()));
                drop(g);
            }
        }
    }
}

extern "C" fn on_alarm(_: libc::c_int) {}

/// A blocking `flock(LOCK_EX)` that gives up after `cap`, the way `flock -w` does: an
/// interval timer's signal interrupts the call (the handler is installed without
/// `SA_RESTART`, so the kernel does not restart it).
fn raw_flock_capped(fd: libc::c_int, cap: Duration) -> bool {
    // SAFETY: plain libc calls with valid arguments; the handler does nothing.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as *const () as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
        let mut it: libc::itimerval = std::mem::zeroed();
        it.it_value.tv_sec = cap.as_secs() as libc::time_t;
        it.it_value.tv_usec = cap.subsec_micros() as libc::suseconds_t;
        libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut());
        let ok = libc::flock(fd, libc::LOCK_EX) == 0;
        let zero: libc::itimerval = std::mem::zeroed();
        libc::setitimer(libc::ITIMER_REAL, &zero, std::ptr::null_mut());
        ok
    }
}

/// `--role writer`: `attempts` exclusive requests a few milliseconds apart.
pub fn writer_role(a: &RoleArgs) {
    let root = Path::new(a.str("root"));
    let cap = Duration::from_nanos(a.u64("cap"));
    let raw = a.str("who") == "raw";
    let f = raw.then(|| F0::open(&ops::lock_file_of(root, "shared-scan")));
    let m = (!raw).then(|| ops::manager(root, true));
    let mut rng = Rng::new(0);
    let mut log = String::new();
    sleep_until(a.u64("start"));
    for _ in 0..a.u64("attempts") {
        // Random gaps, so requests land at every phase of the readers' rhythm.
        std::thread::sleep(Duration::from_micros(rng.range(2_000, 8_000)));
        let t0 = monotonic_ns();
        let got = match (&f, &m) {
            (Some(f), _) => {
                let fd = f.file().as_raw_fd();
                let ok = raw_flock_capped(fd, cap);
                if ok {
                    let t1 = monotonic_ns();
                    spin_for(WRITER_HOLD_NS);
                    // SAFETY: fd is open.
                    unsafe { libc::flock(fd, libc::LOCK_UN) };
                    Some(t1 - t0)
                } else {
                    None
                }
            }
            (_, Some(m)) => {
                match m.acquire_lock("shared-scan", LockType::Exclusive, "writer", Some(cap)) {
                    Ok(g) => {
                        let t1 = monotonic_ns();
                        spin_for(WRITER_HOLD_NS);
                        drop(g);
                        Some(t1 - t0)
                    }
                    Err(_) => None,
                }
            }
            _ => unreachable!(),
        };
        match got {
            Some(w) => log.push_str(&format!("ok {w}\n")),
            None => log.push_str(&format!("gave-up {}\n", monotonic_ns() - t0)),
        }
    }
    fs::write(a.str("out"), log).expect("write writer output");
}
