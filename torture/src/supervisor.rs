//! The supervisor: starts the processes of a run, injects the faults, stops everything,
//! checks that every name can be acquired again, and judges the logs.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scanlock::{LockType, Wait};

use crate::check::{self, Verdict};
use crate::config::{Config, Faults, lock_names};
use crate::events::{EventLog, now_ns};
use crate::rng::Rng;
use crate::sys;
use crate::worker::{FORGED_USER, build_manager};

/// Size of the tmpfs that holds the lock root when mounts are possible: room for every
/// record of a run, small enough to fill in a few milliseconds.
const TMPFS_KIB: u64 = 8 * 1024;
const TMPFS_INODES: u64 = 4096;
/// How long the processes get to finish their current operation once told to stop.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Content of the files that planted symlinks point at; they must never change.
const VICTIM: &[u8] = b"precious: scanlock must never touch this file\n";

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct Report {
    /// One line describing the run's settings.
    pub settings: String,
    /// How each fault was injected or why it was skipped.
    pub notes: Vec<String>,
    /// Faults injected: kind → count.
    pub faults: BTreeMap<String, u64>,
    /// What the logs prove.
    pub verdict: Verdict,
    /// Worker processes started (restarts included).
    pub workers_started: usize,
    /// Wall-clock duration of the run.
    pub elapsed: Duration,
    /// Where the logs are, if they were kept.
    pub kept: Option<PathBuf>,
}

impl Report {
    /// Faults injected in all.
    pub fn faults_total(&self) -> u64 {
        self.faults.values().sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.verdict;
        writeln!(f, "scanlock torture: {}", self.settings)?;
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        writeln!(
            f,
            "  operations: {} in {:.1} s by {} worker processes (restarts included)",
            v.ops,
            self.elapsed.as_secs_f64(),
            self.workers_started
        )?;
        let mut outcomes: Vec<_> = v.outcomes.iter().collect();
        outcomes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> = outcomes.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        writeln!(f, "  outcomes: {}", shown.join(", "))?;
        writeln!(
            f,
            "  holds checked for exclusion: {} ({} cut short by SIGKILL); fencing tokens checked: {}",
            v.holds, v.holds_killed, v.tokens
        )?;
        if v.holds_lost > 0 {
            writeln!(
                f,
                "  holds reported lost by their holders (session terminated): {}, judged up to \
                 the termination; {} of them entered after it began",
                v.holds_lost, v.holds_lost_unchecked
            )?;
        }
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(
            f,
            "  faults injected: {} ({})",
            self.faults_total(),
            faults.join(", ")
        )?;
        writeln!(
            f,
            "  worst lateness past a deadline: {:.1} ms (limit {:.0} ms)",
            v.max_late_ms,
            check::LATE_SLACK_MS
        )?;
        writeln!(f, "  violations: {}", v.violations.len())?;
        for x in v.violations.iter().take(30) {
            writeln!(f, "    {x}")?;
        }
        if let Some(k) = &self.kept {
            writeln!(f, "  logs kept in {}", k.display())?;
        }
        write!(
            f,
            "RESULT ops={} holds={} faults={} violations={}",
            v.ops,
            v.holds,
            self.faults_total(),
            v.violations.len()
        )
    }
}

struct Slot {
    id: usize,
    generation: usize,
    child: Child,
    /// SIGSTOPped: when to continue it, and since when (ns).
    stopped: Option<(Instant, u64)>,
}

/// The supervisor's own PostgreSQL session, for the `pgterm` fault.
#[cfg(feature = "postgres")]
struct PgKiller {
    client: postgres::Client,
    /// Whether `pg_terminate_backend` can wait for the backend's exit (PostgreSQL 14+).
    waits: Option<bool>,
}

#[cfg(feature = "postgres")]
impl PgKiller {
    fn connect(url: &str) -> Result<PgKiller, String> {
        let mut config: postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
        // Not `scanlock/...`: this session is never a victim.
        config.application_name("scanlock-torture-supervisor");
        config.connect_timeout(Duration::from_secs(5));
        let client = config.connect(postgres::NoTls).map_err(|e| e.to_string())?;
        Ok(PgKiller {
            client,
            waits: None,
        })
    }

    /// Sessions of scanlock clients holding an advisory lock: `(backend pid, client
    /// pid)`, the client pid read from the `scanlock/<pid>@<host>` application name.
    fn holders(&mut self) -> Result<Vec<(i32, u32)>, String> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT a.pid, a.application_name FROM pg_locks l \
                 JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted \
                   AND a.application_name LIKE 'scanlock/%'",
                &[],
            )
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let backend: i32 = r.get(0);
                let app: String = r.get(1);
                let client = app.strip_prefix("scanlock/")?.split('@').next()?;
                Some((backend, client.parse().ok()?))
            })
            .collect())
    }

    /// Ends a session. On PostgreSQL 14+ the call waits (up to 5 s) until the backend
    /// has exited, i.e. released its locks, so that the `T` line's end is a moment when
    /// the victim's locks were certainly gone; before 14 it returns once the signal is
    /// sent, and the backend exits a little later.
    fn terminate(&mut self, backend: i32) -> Result<bool, String> {
        let sql = if self.wait_for_exit()? {
            "SELECT pg_terminate_backend($1, 5000)"
        } else {
            "SELECT pg_terminate_backend($1)"
        };
        self.client
            .query_one(sql, &[&backend])
            .map(|r| r.get(0))
            .map_err(|e| e.to_string())
    }

    fn wait_for_exit(&mut self) -> Result<bool, String> {
        if let Some(w) = self.waits {
            return Ok(w);
        }
        let version: i32 = self
            .client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .map_err(|e| e.to_string())?
            .get(0);
        self.waits = Some(version >= 140_000);
        Ok(version >= 140_000)
    }
}

/// Without the `postgres` feature there is no PostgreSQL back end to attack.
#[cfg(not(feature = "postgres"))]
struct PgKiller;

#[cfg(not(feature = "postgres"))]
impl PgKiller {
    fn connect(_url: &str) -> Result<PgKiller, String> {
        Err("this build has no `postgres` feature".to_owned())
    }

    fn holders(&mut self) -> Result<Vec<(i32, u32)>, String> {
        Ok(Vec::new())
    }

    fn terminate(&mut self, _backend: i32) -> Result<bool, String> {
        Ok(false)
    }
}

/// A fault that lasts a while.
enum Window {
    ReadOnlyMount,
    ReadOnlyChmod,
    DiskFull(Vec<PathBuf>),
}

struct Run<'a> {
    cfg: &'a Config,
    dir: PathBuf,
    root: PathBuf,
    log: EventLog,
    rng: Rng,
    exe: PathBuf,
    slots: Vec<Slot>,
    helpers: Vec<(String, Child)>,
    window: Option<(Window, Instant, u64)>,
    mounted: bool,
    pg: Option<PgKiller>,
    violations: Vec<String>,
    notes: Vec<String>,
    workers_started: usize,
}

impl Run<'_> {
    fn spawn(&self, role: &[String], tag: &str) -> Child {
        let err = File::create(self.dir.join("logs").join(format!("{tag}.err")))
            .expect("create stderr file");
        Command::new(&self.exe)
            .args(self.cfg.child_args(&self.dir))
            .args(role)
            .stdin(Stdio::null())
            .stdout(err.try_clone().expect("dup"))
            .stderr(err)
            .spawn()
            .expect("spawn a child of the harness")
    }

    fn fd_limit_for(&mut self, id: usize, generation: usize) -> Option<u64> {
        if !self.cfg.faults.fdlimit || !(id == 0 && generation == 0 || self.rng.chance(40)) {
            return None;
        }
        // Enough for stdio, the logs and every name's descriptors, and little more: the
        // worker's own pressure thread then takes what is left now and then.
        Some((3 + self.cfg.threads + 2 + 3 * self.cfg.names + 12) as u64)
    }

    fn start_worker(&mut self, id: usize, generation: usize) -> Slot {
        let mut role = vec![
            "--role".to_owned(),
            "worker".to_owned(),
            "--id".to_owned(),
            id.to_string(),
            "--gen".to_owned(),
            generation.to_string(),
        ];
        if let Some(n) = self.fd_limit_for(id, generation) {
            role.push("--fd-limit".to_owned());
            role.push(n.to_string());
        }
        self.workers_started += 1;
        let child = self.spawn(&role, &format!("w{id}.{generation}"));
        Slot {
            id,
            generation,
            child,
            stopped: None,
        }
    }

    fn fault(&mut self, kind: &str, start: u64) {
        self.log.line(&format!("F {kind} {start} {}", now_ns()));
    }

    fn cont(&mut self, i: usize) {
        if let Some((_, since)) = self.slots[i].stopped.take() {
            let pid = self.slots[i].child.id();
            let _ = sys::signal(pid, libc::SIGCONT);
            self.log.line(&format!("S {pid} {since} {}", now_ns()));
        }
    }

    fn stderr_tail(&self, tag: &str) -> String {
        let text = fs::read_to_string(self.dir.join("logs").join(format!("{tag}.err")))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(6)..].join(" | ")
    }

    /// Restarts workers that ended by themselves: only a crash ends a worker early.
    fn reap(&mut self) {
        for i in 0..self.slots.len() {
            if let Ok(Some(status)) = self.slots[i].child.try_wait() {
                let (id, generation) = (self.slots[i].id, self.slots[i].generation);
                let tag = format!("w{id}.{generation}");
                self.violations.push(format!(
                    "worker {tag} ended by itself ({status}): {}",
                    self.stderr_tail(&tag)
                ));
                self.slots[i] = self.start_worker(id, generation + 1);
            }
        }
    }

    fn kill_one(&mut self) {
        let i = self.rng.below(self.slots.len() as u64) as usize;
        self.cont(i);
        let start = now_ns();
        let _ = self.slots[i].child.kill(); // SIGKILL
        let _ = self.slots[i].child.wait();
        self.fault("kill", start);
        let (id, generation) = (self.slots[i].id, self.slots[i].generation);
        self.slots[i] = self.start_worker(id, generation + 1);
    }

    fn stop_one(&mut self) {
        let i = self.rng.below(self.slots.len() as u64) as usize;
        if self.slots[i].stopped.is_some() {
            return;
        }
        let start = now_ns();
        if sys::signal(self.slots[i].child.id(), libc::SIGSTOP).is_ok() {
            let until = Instant::now() + Duration::from_millis(self.rng.range(50, 500));
            self.slots[i].stopped = Some((until, start));
            self.fault("stop", start);
        }
    }

    /// Ends the session of a random worker that holds a lock, and logs which process it
    /// belonged to and when: from then on that process's holds are lost (the checker
    /// requires the worker to notice, and judges its holds only up to `start`).
    fn terminate_one(&mut self) {
        let Some(pg) = self.pg.as_mut() else {
            return;
        };
        let holders = match pg.holders() {
            Ok(h) => h,
            Err(e) => {
                self.violations
                    .push(format!("pgterm: cannot list the holders' sessions: {e}"));
                return;
            }
        };
        // Workers only: their holds are what the logs judge.
        let victims: Vec<(i32, u32, String)> = holders
            .into_iter()
            .filter_map(|(backend, client)| {
                let s = self.slots.iter().find(|s| s.child.id() == client)?;
                Some((backend, client, format!("w{}.{}", s.id, s.generation)))
            })
            .collect();
        if victims.is_empty() {
            return;
        }
        let (backend, client, tag) = self.rng.pick(&victims).clone();
        let start = now_ns();
        let r = pg.terminate(backend);
        let end = now_ns();
        match r {
            Ok(_) => self.log.line(&format!("T {tag} {client} {start} {end}")),
            Err(e) => self.violations.push(format!(
                "pgterm: pg_terminate_backend({backend}) failed: {e}"
            )),
        }
    }

    fn begin_read_only(&mut self) {
        let until = Instant::now() + Duration::from_millis(self.rng.range(100, 500));
        let start = now_ns();
        if self.mounted {
            match sys::bind_read_only(&self.root) {
                Ok(()) => self.window = Some((Window::ReadOnlyMount, until, start)),
                Err(e) => self.notes.push(format!("read-only bind mount failed: {e}")),
            }
        } else if !sys::is_root() {
            for d in holder_dirs(&self.root)
                .into_iter()
                .chain([self.root.join(".locks")])
            {
                let _ = set_mode(&d, 0o555);
            }
            self.window = Some((Window::ReadOnlyChmod, until, start));
        }
    }

    fn begin_disk_full(&mut self) {
        let until = Instant::now() + Duration::from_millis(self.rng.range(100, 600));
        let start = now_ns();
        let mut made = Vec::new();
        // Blocks first, then inodes: both are how a file system fills up.
        let big = self.root.join("filler");
        if let Ok(mut f) = File::create(&big) {
            made.push(big);
            let chunk = vec![0xa5u8; 64 * 1024];
            while f.write_all(&chunk).is_ok() {}
        }
        for n in 0..2 * TMPFS_INODES {
            let p = self.root.join(format!("filler-{n}"));
            if File::create(&p).is_err() {
                break;
            }
            made.push(p);
        }
        self.window = Some((Window::DiskFull(made), until, start));
    }

    fn end_window(&mut self) {
        let Some((w, _, start)) = self.window.take() else {
            return;
        };
        let kind = match w {
            Window::ReadOnlyMount => {
                if let Err(e) = sys::unmount(&self.root) {
                    self.violations
                        .push(format!("harness: cannot undo the read-only mount: {e}"));
                }
                "readonly"
            }
            Window::ReadOnlyChmod => {
                for d in holder_dirs(&self.root)
                    .into_iter()
                    .chain([self.root.join(".locks")])
                {
                    let _ = set_mode(&d, 0o755);
                }
                "readonly"
            }
            Window::DiskFull(files) => {
                for p in files {
                    let _ = fs::remove_file(p);
                }
                "diskfull"
            }
        };
        self.fault(kind, start);
    }

    fn tick(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].stopped.is_some_and(|(until, _)| until <= now) {
                self.cont(i);
            }
        }
        if self
            .window
            .as_ref()
            .is_some_and(|(_, until, _)| *until <= now)
        {
            self.end_window();
        }
        self.reap();
    }

    fn inject(&mut self) {
        let f = self.cfg.faults;
        let file = self.cfg.url.is_none();
        let read_only = f.readonly && file && (self.mounted || !sys::is_root());
        let disk_full = f.diskfull && file && self.mounted;
        let mut choices = Vec::new();
        if self.pg.is_some() {
            // Twice the weight: the fault the PostgreSQL run is about.
            choices.extend([4, 4]);
        }
        if f.kill {
            choices.push(0);
        }
        if f.stop {
            choices.push(1);
        }
        if read_only && self.window.is_none() {
            choices.push(2);
        }
        if disk_full && self.window.is_none() {
            choices.push(3);
        }
        if choices.is_empty() {
            return;
        }
        match *self.rng.pick(&choices) {
            0 => self.kill_one(),
            1 => self.stop_one(),
            2 => self.begin_read_only(),
            3 => self.begin_disk_full(),
            _ => self.terminate_one(),
        }
    }

    /// Ends the fault phase and every process; a process that does not stop in time is
    /// a hang.
    fn shutdown(&mut self) {
        for i in 0..self.slots.len() {
            self.cont(i);
        }
        self.end_window();
        File::create(self.dir.join("ctl").join("stop")).expect("create the stop file");
        let end = Instant::now() + STOP_GRACE;
        let mut all: Vec<(String, Child)> = self
            .slots
            .drain(..)
            .map(|s| (format!("w{}.{}", s.id, s.generation), s.child))
            .collect();
        all.append(&mut self.helpers);
        for (tag, mut child) in all {
            let status = loop {
                if let Ok(Some(s)) = child.try_wait() {
                    break Some(s);
                }
                if Instant::now() >= end {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            match status {
                Some(s) if s.success() => {}
                Some(s) => self
                    .violations
                    .push(format!("{tag} failed ({s}): {}", self.stderr_tail(&tag))),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.violations.push(format!(
                        "{tag} hung: still running {STOP_GRACE:?} after the stop request"
                    ));
                }
            }
        }
    }

    /// After the faults: a fresh manager can take every name, exclusively and shared,
    /// within 10 s; cleanup leaves no stale record; nothing forged is shown.
    fn recover(&mut self, names: &[String]) {
        let mut log = EventLog::open(&self.dir.join("logs").join("recovery.log")).expect("log");
        let m = match build_manager(&self.root, self.cfg.url.as_deref()) {
            Ok(m) => m,
            Err(e) => {
                self.violations
                    .push(format!("recovery: cannot build a manager: {e}"));
                return;
            }
        };
        let limit = Wait::Timeout(Duration::from_secs(10));
        for (k, name) in names.iter().enumerate() {
            for mode in [LockType::Exclusive, LockType::Shared] {
                match m.acquire_lock_with(name, mode, "recovery", limit) {
                    Ok(g) => {
                        let start = now_ns();
                        let c = if mode == LockType::Exclusive {
                            'X'
                        } else {
                            'S'
                        };
                        log.line(&format!("B {k} {c} {start} rec"));
                        let end = now_ns();
                        log.line(&format!("H {k} {c} {start} {end} rec 0"));
                        if let Err(e) = g.release() {
                            self.violations
                                .push(format!("recovery: release of {name:?}: {e}"));
                        }
                    }
                    Err(e) => self
                        .violations
                        .push(format!("recovery: {name:?} cannot be acquired {mode}: {e}")),
                }
            }
        }
        if let Err(e) = m.cleanup_stale_locks() {
            self.violations.push(format!("recovery: cleanup: {e}"));
        }
        match m.find_stale_records() {
            Ok(left) if left.is_empty() => {}
            Ok(left) => self.violations.push(format!(
                "recovery: stale records left after cleanup: {left:?}"
            )),
            Err(e) => self
                .violations
                .push(format!("recovery: stale listing: {e}")),
        }
        for name in names {
            match m.get_lock_status(name) {
                Ok(st) if st.is_free() && st.holders.iter().all(|h| h.user != FORGED_USER) => {}
                Ok(st) => self
                    .violations
                    .push(format!("recovery: {name:?} not free or forged: {st:?}")),
                Err(e) => self
                    .violations
                    .push(format!("recovery: status {name:?}: {e}")),
            }
        }
    }

    fn check_victims(&mut self) {
        if fs::read(self.dir.join("victim")).ok().as_deref() != Some(VICTIM) {
            self.violations
                .push("the symlink victim file was changed".to_owned());
        }
        for n in ["host-1-1.json", "data.bin"] {
            if fs::read(self.dir.join("victimdir").join(n)).ok().as_deref() != Some(VICTIM) {
                self.violations
                    .push(format!("the symlink victim directory lost or changed {n}"));
            }
        }
    }
}

fn holder_dirs(root: &Path) -> Vec<PathBuf> {
    fs::read_dir(root.join(".locks"))
        .map(|e| {
            e.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn set_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
}

/// Runs the whole harness as configured and returns the report.
pub fn run(cfg: &Config) -> Result<Report, String> {
    let fresh = cfg.dir.is_none();
    let dir = match &cfg.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "scanlock-torture-{}-{}",
            std::process::id(),
            cfg.seed
        )),
    };
    let dir = std::path::absolute(&dir).map_err(|e| e.to_string())?;
    let r = run_in(cfg, dir.clone(), fresh);
    if r.is_err() && fresh {
        // Nothing ran: no logs worth keeping.
        let _ = fs::remove_dir_all(&dir);
    }
    r
}

fn run_in(cfg: &Config, dir: PathBuf, fresh: bool) -> Result<Report, String> {
    let started = Instant::now();
    let root = dir.join("root");
    for d in [
        &root,
        &dir.join("logs"),
        &dir.join("ctl"),
        &dir.join("victimdir"),
    ] {
        fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
    }
    let _ = fs::remove_file(dir.join("ctl").join("stop"));
    fs::write(dir.join("victim"), VICTIM).map_err(|e| e.to_string())?;
    for n in ["host-1-1.json", "data.bin"] {
        fs::write(dir.join("victimdir").join(n), VICTIM).map_err(|e| e.to_string())?;
    }
    let names = lock_names(cfg.names);
    let mut notes = Vec::new();
    let file = cfg.url.is_none();
    let mut mounted = false;
    if file && (cfg.faults.readonly || cfg.faults.diskfull) {
        if sys::is_root() {
            match sys::private_mount_namespace()
                .and_then(|()| sys::mount_tmpfs(&root, TMPFS_KIB, TMPFS_INODES))
            {
                Ok(()) => {
                    mounted = true;
                    notes.push(format!(
                        "lock root on a private tmpfs ({} KiB, {TMPFS_INODES} inodes): \
                         disk full = filled to ENOSPC (blocks, then inodes); read-only = \
                         a read-only bind mount over the root",
                        TMPFS_KIB
                    ));
                }
                Err(e) => notes.push(format!(
                    "mount unavailable ({e}): readonly and diskfull skipped (root bypasses \
                     chmod, and there is no file system to fill)"
                )),
            }
        } else {
            notes.push(
                "not root: read-only = chmod 0555 of .locks and the holders directories; \
                 diskfull skipped (needs a tmpfs mount)"
                    .to_owned(),
            );
        }
    }
    let mut pg = None;
    if let Some(url) = cfg.url.as_deref() {
        notes.push(
            "back end by URL: file faults (operator, readonly, diskfull) do not apply".to_owned(),
        );
        if cfg.faults.pgterm {
            match PgKiller::connect(url) {
                Ok(k) => {
                    pg = Some(k);
                    notes.push(
                        "pgterm: pg_terminate_backend of a random worker session holding a lock"
                            .to_owned(),
                    );
                }
                // The URL is not repeated: it may hold a password.
                Err(e) => return Err(format!("pgterm: cannot connect to the --url server: {e}")),
            }
        }
    } else if cfg.faults.pgterm && cfg.faults != Faults::all() {
        notes.push("pgterm skipped: it needs --url postgres://...".to_owned());
    }
    let log =
        EventLog::open(&dir.join("logs").join("supervisor.log")).map_err(|e| e.to_string())?;
    let mut run = Run {
        cfg,
        dir: dir.clone(),
        root: root.clone(),
        log,
        rng: Rng::new(cfg.seed ^ 0x5eed),
        exe: std::env::current_exe().map_err(|e| e.to_string())?,
        slots: Vec::new(),
        helpers: Vec::new(),
        window: None,
        mounted,
        pg,
        violations: Vec::new(),
        notes,
        workers_started: 0,
    };
    // Create the lock directory (and every name's files) before the operator starts.
    if let Err(e) = build_manager(&root, cfg.url.as_deref()) {
        return Err(format!("cannot create a manager at all: {e}"));
    }
    if cfg.faults.cleanup {
        let c = run.spawn(&["--role".into(), "cleaner".into()], "cleaner");
        run.helpers.push(("cleaner".into(), c));
    }
    if cfg.faults.operator && file {
        let c = run.spawn(&["--role".into(), "operator".into()], "operator");
        run.helpers.push(("operator".into(), c));
    }
    for id in 0..cfg.workers {
        let s = run.start_worker(id, 0);
        run.slots.push(s);
    }
    let end = Instant::now() + Duration::from_secs_f64(cfg.seconds);
    let mut next = Instant::now() + Duration::from_millis(100);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
        run.tick();
        if Instant::now() >= next {
            run.inject();
            next = Instant::now() + Duration::from_millis(run.rng.range(50, 250));
            if cfg.verbose {
                eprintln!(
                    "[{:5.1}s] workers started {}",
                    started.elapsed().as_secs_f64(),
                    run.workers_started
                );
            }
        }
    }
    run.shutdown();
    run.recover(&names);
    if file {
        run.check_victims();
    }
    let logs = check::read_logs(&dir.join("logs"))?;
    let mut verdict = check::check(&logs, &names);
    verdict.violations.splice(0..0, run.violations.drain(..));
    let mut faults = logs.faults.clone();
    faults.retain(|k, _| !k.starts_with("fd-limit"));
    let fd_limited = logs
        .faults
        .keys()
        .filter(|k| k.starts_with("fd-limit"))
        .count();
    if fd_limited > 0 {
        let n: u64 = logs
            .faults
            .iter()
            .filter(|(k, _)| k.starts_with("fd-limit"))
            .map(|(_, n)| n)
            .sum();
        faults.insert("fd-limited-worker".to_owned(), n);
    }
    if mounted {
        let _ = sys::unmount(&root);
    }
    let kept = if cfg.keep || !verdict.violations.is_empty() || !fresh {
        Some(dir.clone())
    } else {
        let _ = fs::remove_dir_all(&dir);
        None
    };
    Ok(Report {
        settings: format!(
            "{} workers x {} threads, {} names, {} s, seed {}, faults {}{}",
            cfg.workers,
            cfg.threads,
            cfg.names,
            cfg.seconds,
            cfg.seed,
            cfg.faults.to_arg(),
            cfg.url
                .as_deref()
                .map(|_| ", back end by URL".to_owned())
                .unwrap_or_default()
        ),
        notes: run.notes,
        faults,
        verdict,
        workers_started: run.workers_started,
        elapsed: started.elapsed(),
        kept,
    })
}
