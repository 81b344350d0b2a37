//! The worker role: `threads` threads doing random scanlock operations until told to
//! stop, logging every hold and every outcome; and the cleaner role.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scanlock::{LockError, LockGuard, LockType, ScanLockManager, Wait};

use crate::config::{Config, lock_names};
use crate::events::{Class, EventLog, now_ns, result_word};
use crate::rng::Rng;

/// Default timeout of the workers' managers (`acquire_lock(.., None)`).
pub(crate) const DEFAULT_MS: u64 = 700;
/// User string of the holders: operations never depend on it.
const USER: &str = "torture";
/// The user of the records the operator forges; a status that shows it trusted a record
/// that nobody holds.
pub(crate) const FORGED_USER: &str = "forged";

/// How a worker waits.
#[derive(Clone, Copy, Debug)]
enum HowLong {
    Try,
    Timed(u64),
    Default,
    Forever,
}

impl HowLong {
    fn wait(self) -> Wait {
        match self {
            HowLong::Try => Wait::NoWait,
            HowLong::Timed(ms) => Wait::Timeout(Duration::from_millis(ms)),
            HowLong::Default => Wait::Default,
            HowLong::Forever => Wait::Forever,
        }
    }

    fn class_and_deadline(self) -> (Class, u64) {
        match self {
            HowLong::Try => (Class::Try, 0),
            HowLong::Timed(ms) => (Class::Timed, ms),
            HowLong::Default => (Class::Timed, DEFAULT_MS),
            HowLong::Forever => (Class::Forever, u64::MAX),
        }
    }
}

/// Everything a working thread needs.
pub(crate) struct Cx<'a> {
    m: &'a ScanLockManager,
    names: &'a [String],
    log: EventLog,
    rng: Rng,
    who: String,
    pid: u32,
    /// This thread's outermost hold of each name it holds, innermost last.
    held: Vec<(usize, LockType)>,
    /// Whether the global manager (used by macros without `manager = ...`) is set.
    global: bool,
    /// When the body of the innermost pending locked-function call began, i.e. when its
    /// acquisition returned (see `macro_call`).
    entered: Option<u64>,
    /// Ask at the end of each hold whether it is still held (back ends that can lose a
    /// lock: PostgreSQL), and log the answer.
    check_held: bool,
    stop: &'a Stopper,
}

/// Tells the loops when to end: a `stop` file in the control directory, or the run's
/// hard limit (so that an orphaned process ends by itself).
pub(crate) struct Stopper {
    file: PathBuf,
    hard_end: Instant,
}

impl Stopper {
    pub(crate) fn new(dir: &Path, cfg: &Config) -> Stopper {
        Stopper {
            file: dir.join("ctl").join("stop"),
            hard_end: Instant::now() + cfg.hard_limit(),
        }
    }

    pub(crate) fn stopped(&self) -> bool {
        Instant::now() >= self.hard_end || self.file.exists()
    }
}

impl Cx<'_> {
    fn holds(&self, k: usize) -> Option<LockType> {
        // The outermost hold decides: inner holds of a name never change its mode.
        self.held.iter().find(|(h, _)| *h == k).map(|(_, m)| *m)
    }

    fn max_held(&self) -> Option<usize> {
        self.held.iter().map(|(k, _)| *k).max()
    }

    fn op(&mut self, class: Class, k: Option<usize>, start: u64, deadline_ms: u64, r: &str) {
        self.op_until(class, k, start, now_ns(), deadline_ms, r);
    }

    fn op_until(
        &mut self,
        class: Class,
        k: Option<usize>,
        start: u64,
        end: u64,
        deadline_ms: u64,
        r: &str,
    ) {
        let k = k.map_or("-".to_owned(), |k| k.to_string());
        self.log.line(&format!(
            "O {} {k} {start} {end} {deadline_ms} {} {r}",
            class.as_str(),
            self.pid
        ));
    }

    /// The class of an acquisition of `k` in `mode` by this thread, given what it holds.
    fn classify(&self, k: usize, mode: LockType, how: HowLong) -> (Class, u64) {
        match self.holds(k) {
            Some(LockType::Shared) if mode == LockType::Exclusive => (Class::Upgrade, 0),
            Some(_) => (Class::Reenter, 0),
            None => how.class_and_deadline(),
        }
    }

    fn random_mode(&mut self) -> LockType {
        if self.rng.chance(40) {
            LockType::Exclusive
        } else {
            LockType::Shared
        }
    }

    fn random_wait(&mut self, nested: bool) -> HowLong {
        let r = self.rng.below(100);
        if nested {
            match r {
                0..40 => HowLong::Try,
                40..80 => HowLong::Timed(*self.rng.pick(&[1, 5, 20, 100])),
                80..90 => HowLong::Default,
                _ => HowLong::Forever,
            }
        } else {
            match r {
                0..25 => HowLong::Try,
                25..70 => HowLong::Timed(*self.rng.pick(&[1, 5, 20, 100, 300])),
                70..85 => HowLong::Default,
                _ => HowLong::Forever,
            }
        }
    }

    /// One acquisition through the manager, and the hold if it succeeds.
    fn acquire(&mut self, k: usize, mode: LockType, how: HowLong, depth: u32) {
        let (class, deadline) = self.classify(k, mode, how);
        let name = &self.names[k];
        let start = now_ns();
        let r = self.m.acquire_lock_with(name, mode, USER, how.wait());
        let word = result_word(&r, Some(name));
        self.op(class, Some(k), start, deadline, &word);
        if let Ok(g) = r {
            self.inside(k, mode, depth);
            self.release(k, g);
        }
    }

    fn release(&mut self, k: usize, g: LockGuard) {
        let start = now_ns();
        let r = g.release();
        let word = result_word(&r, Some(&self.names[k]));
        self.op(Class::Release, Some(k), start, 0, &word);
    }

    /// The time inside a hold of `k` (by a guard or a locked function): logs the hold
    /// unless it is a re-entry, works a little, and sometimes nests another operation.
    pub(crate) fn inside(&mut self, k: usize, mode: LockType, depth: u32) {
        let outermost = self.holds(k).is_none();
        let start = now_ns();
        if self.entered.is_none() {
            self.entered = Some(start);
        }
        if outermost {
            self.log
                .line(&format!("B {k} {} {start} {}", mode_char(mode), self.who));
            self.held.push((k, mode));
        }
        // Mostly short holds (contention comes from their number), some longer ones.
        match self.rng.below(100) {
            0..60 => {}
            60..80 => {
                std::hint::black_box((0..2_000u64).sum::<u64>());
            }
            80..95 => std::thread::sleep(Duration::from_micros(200)),
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
        if depth < 2 && self.rng.chance(35) {
            self.nested(k, depth + 1);
        }
        let token = if outermost && mode == LockType::Exclusive && self.rng.chance(50) {
            self.token_of(k)
        } else {
            0
        };
        // `end` is taken before asking: `is_held` answers as of a moment after its call
        // began (a round trip on PostgreSQL), so a hold still held then was held up to
        // `end`; one that is lost is judged only up to its session's termination.
        let end = now_ns();
        let lost = outermost && self.check_held && !self.still_held(k);
        if outermost {
            self.held.pop();
            self.log.line(&format!(
                "H {k} {} {start} {end} {} {token}{}",
                mode_char(mode),
                self.who,
                if lost { " lost" } else { "" }
            ));
        }
    }

    /// The fencing token of this thread's hold of `k`: asked through a re-entrant
    /// shared guard, which sees the same token as the outer hold.
    fn token_of(&mut self, k: usize) -> u64 {
        self.through_reentrant_guard(k, "a token", LockGuard::fencing_token, 0)
    }

    /// `LockGuard::is_held` of this thread's hold of `k`, through a re-entrant guard
    /// (the hold may belong to a locked function, whose guard is out of reach).
    fn still_held(&mut self, k: usize) -> bool {
        self.through_reentrant_guard(k, "is_held", LockGuard::is_held, true)
    }

    /// `ask` of a re-entrant shared guard of this thread's hold of `k`; a refused guard
    /// is logged as a violation (re-entry must succeed) and gives `refused`.
    fn through_reentrant_guard<T>(
        &mut self,
        k: usize,
        what: &str,
        ask: impl FnOnce(&LockGuard) -> T,
        refused: T,
    ) -> T {
        match self
            .m
            .acquire_lock_with(&self.names[k], LockType::Shared, USER, Wait::NoWait)
        {
            Ok(g) => ask(&g),
            Err(e) => {
                self.log
                    .line(&format!("V re-entrant guard for {what} refused: {e}"));
                refused
            }
        }
    }

    fn nested(&mut self, k: usize, depth: u32) {
        // Other names only in increasing order of index, as an application must (any
        // lock library deadlocks on an inconsistent order).
        let above = self.max_held().map_or(0, |m| m + 1);
        let other = (above < self.names.len())
            .then(|| self.rng.range(above as u64, self.names.len() as u64 - 1) as usize);
        match self.rng.below(100) {
            0..30 => {
                let mode = self.random_mode();
                let how = self.random_wait(true);
                self.acquire(k, mode, how, depth);
            }
            30..60 => {
                if let Some(k2) = other {
                    let mode = self.random_mode();
                    let how = self.random_wait(true);
                    self.acquire(k2, mode, how, depth);
                }
            }
            60..85 => {
                let target = if self.rng.chance(50) { Some(k) } else { other };
                if let Some(t) = target {
                    self.macro_call(t, depth);
                }
            }
            _ => {
                let s = self.rng.below(self.names.len() as u64) as usize;
                self.status(s);
            }
        }
    }

    /// Calls one of the lock-annotated functions below on name `k`.
    fn macro_call(&mut self, k: usize, depth: u32) {
        let name = self.names[k].clone();
        let m = self.m;
        let choice = if self.global {
            self.rng.below(4)
        } else {
            2 + self.rng.below(2)
        };
        let (mode, how) = match choice {
            0 => (
                LockType::Exclusive,
                HowLong::Timed(*self.rng.pick(&[1, 20, 100])),
            ),
            1 => (
                LockType::Shared,
                HowLong::Timed(*self.rng.pick(&[1, 20, 100])),
            ),
            2 => (LockType::Exclusive, HowLong::Try),
            _ => (LockType::Shared, HowLong::Try),
        };
        let (class, deadline) = self.classify(k, mode, how);
        let wait = match how {
            HowLong::Timed(ms) => Duration::from_millis(ms),
            _ => Duration::ZERO,
        };
        let start = now_ns();
        let outer = self.entered.take();
        let r = match choice {
            0 => locked_exclusive(&name, wait, k, depth, self),
            1 => locked_shared(&name, wait, k, depth, self),
            2 => locked_try_exclusive(m, &name, k, depth, self),
            _ => locked_try_shared(m, &name, k, depth, self),
        };
        // The call returns after its body: the acquisition ended when the body began
        // (the deadline applies to that, not to the work inside).
        let end = self.entered.take().unwrap_or_else(now_ns);
        self.entered = outer;
        let word = result_word(&r, Some(&name));
        self.op_until(class, Some(k), start, end, deadline, &word);
    }

    fn status(&mut self, k: usize) {
        let start = now_ns();
        let r = self.m.get_lock_status(&self.names[k]);
        if let Ok(st) = &r
            && st.holders.iter().any(|h| h.user == FORGED_USER)
        {
            self.log.line(&format!(
                "V status of {:?} trusted a forged holder record: {st:?}",
                self.names[k]
            ));
        }
        let word = result_word(&r, Some(&self.names[k]));
        self.op(Class::Status, Some(k), start, u64::MAX, &word);
    }

    fn admin(&mut self, root: &Path, url: Option<&str>) {
        let start = now_ns();
        let r = match self.rng.below(4) {
            0 => self.m.cleanup_stale_locks().map(drop),
            1 => self.m.find_stale_records().map(drop),
            2 => self.m.lock_names().map(drop),
            _ => build_manager(root, url).map(drop),
        };
        let word = result_word(&r, None);
        self.op(Class::Admin, None, start, u64::MAX, &word);
    }

    fn run(&mut self, root: &Path, url: Option<&str>) {
        while !self.stop.stopped() {
            let k = self.rng.below(self.names.len() as u64) as usize;
            match self.rng.below(100) {
                0..60 => {
                    let mode = self.random_mode();
                    let how = self.random_wait(false);
                    self.acquire(k, mode, how, 0);
                }
                60..75 => self.macro_call(k, 0),
                75..92 => self.status(k),
                92..95 => self.admin(root, url),
                _ => {
                    let mode = self.random_mode();
                    self.acquire(k, mode, HowLong::Try, 0);
                }
            }
        }
    }
}

fn mode_char(m: LockType) -> char {
    match m {
        LockType::Exclusive => 'X',
        LockType::Shared => 'S',
    }
}

// The lock-annotated functions (scanlock-macros). The body runs while the lock is held;
// its `inside` logs the hold exactly as for a guard.

#[scanlock::synchronized("{name}", timeout = wait, user = "torture-macro")]
fn locked_exclusive(
    name: &str,
    wait: Duration,
    k: usize,
    depth: u32,
    cx: &mut Cx<'_>,
) -> Result<(), LockError> {
    cx.inside(k, LockType::Exclusive, depth);
    Ok(())
}

#[scanlock::read_locked("{name}", timeout = wait)]
fn locked_shared(
    name: &str,
    wait: Duration,
    k: usize,
    depth: u32,
    cx: &mut Cx<'_>,
) -> Result<(), LockError> {
    cx.inside(k, LockType::Shared, depth);
    Ok(())
}

#[scanlock::write_locked("{name}", blocking = false, manager = m)]
fn locked_try_exclusive(
    m: &ScanLockManager,
    name: &str,
    k: usize,
    depth: u32,
    cx: &mut Cx<'_>,
) -> Result<(), LockError> {
    cx.inside(k, LockType::Exclusive, depth);
    Ok(())
}

#[scanlock::synchronized("{name}", shared, blocking = false, manager = m)]
fn locked_try_shared(
    m: &ScanLockManager,
    name: &str,
    k: usize,
    depth: u32,
    cx: &mut Cx<'_>,
) -> Result<(), LockError> {
    cx.inside(k, LockType::Shared, depth);
    Ok(())
}

pub(crate) fn build_manager(root: &Path, url: Option<&str>) -> Result<ScanLockManager, LockError> {
    let b = match url {
        Some(u) => ScanLockManager::builder_from_url(u)?,
        None => ScanLockManager::builder(root),
    };
    b.default_timeout(Duration::from_millis(DEFAULT_MS)).build()
}

/// Builds the worker's manager, retrying while faults make that fail (logged).
fn manager_with_retries(
    root: &Path,
    url: Option<&str>,
    log: &mut EventLog,
    stop: &Stopper,
) -> Option<ScanLockManager> {
    loop {
        let start = now_ns();
        let r = build_manager(root, url);
        let word = result_word(&r, None);
        log.line(&format!(
            "O admin - {start} {} {} {} {word}",
            now_ns(),
            u64::MAX,
            std::process::id()
        ));
        match r {
            Ok(m) => return Some(m),
            Err(_) if stop.stopped() => return None,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The worker process. Returns its exit code.
pub(crate) fn worker_main(
    cfg: &Config,
    dir: &Path,
    id: usize,
    generation: usize,
    fd_limit: Option<u64>,
) -> i32 {
    let logs = dir.join("logs");
    let tag = format!("w{id}.{generation}");
    let stop = Stopper::new(dir, cfg);
    let names = lock_names(cfg.names);
    let root = dir.join("root");
    // Every log file is opened before the descriptor limit is lowered.
    let mut main_log = EventLog::open(&logs.join(format!("{tag}.log"))).expect("log");
    let mut thread_logs: Vec<EventLog> = (0..cfg.threads)
        .map(|t| EventLog::open(&logs.join(format!("{tag}.t{t}.log"))).expect("log"))
        .collect();
    if let Some(n) = fd_limit {
        crate::sys::limit_fds(n).expect("setrlimit(RLIMIT_NOFILE)");
        let t = now_ns();
        main_log.line(&format!("F fd-limit-{n} {t} {t}"));
    }
    let Some(m) = manager_with_retries(&root, cfg.url.as_deref(), &mut main_log, &stop) else {
        return 0;
    };
    // The macros without `manager = ...` use the global manager; it shares this
    // manager's lock state (same root), so re-entry works across the two.
    let global = (0..50).any(|_| {
        let r = match &cfg.url {
            Some(u) => scanlock::init_lock_url(u),
            None => scanlock::init_lock_root(&root),
        };
        r.is_ok() || {
            std::thread::sleep(Duration::from_millis(10));
            false
        }
    });
    let pid = std::process::id();
    let url = cfg.url.as_deref();
    let ok = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (t, log) in thread_logs.drain(..).enumerate() {
            let (m, names, stop, root) = (&m, &names, &stop, &root);
            let seed = cfg.seed ^ ((id as u64) << 40) ^ ((generation as u64) << 20) ^ t as u64;
            handles.push(s.spawn(move || {
                let mut cx = Cx {
                    m,
                    names,
                    log,
                    rng: Rng::new(seed),
                    who: format!("w{id}.{generation}.t{t}"),
                    pid,
                    held: Vec::new(),
                    global,
                    entered: None,
                    check_held: url.is_some(),
                    stop,
                };
                cx.run(root, url);
            }));
        }
        if fd_limit.is_some() {
            let stop = &stop;
            let seed = cfg.seed ^ ((id as u64) << 40) ^ ((generation as u64) << 20) ^ 0xfd;
            handles.push(s.spawn(move || fd_pressure(&mut main_log, stop, seed)));
        }
        handles.into_iter().all(|h| h.join().is_ok())
    });
    if ok { 0 } else { 101 }
}

/// Every now and then, takes every descriptor this process has left, holds them a
/// while, and gives them back: operations meanwhile must fail cleanly with EMFILE.
fn fd_pressure(log: &mut EventLog, stop: &Stopper, seed: u64) {
    let mut rng = Rng::new(seed);
    while !stop.stopped() {
        std::thread::sleep(Duration::from_millis(rng.range(100, 400)));
        let start = now_ns();
        let mut taken = Vec::new();
        while taken.len() < 100_000 {
            match std::fs::File::open("/dev/null") {
                Ok(f) => taken.push(f),
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_millis(rng.range(50, 200)));
        drop(taken);
        log.line(&format!("F fd-exhausted {start} {}", now_ns()));
    }
}

/// The cleaner process: new managers, cleanups and status calls in a loop, as tools and
/// freshly started services do while workers run.
pub(crate) fn cleaner_main(cfg: &Config, dir: &Path) -> i32 {
    let stop = Stopper::new(dir, cfg);
    let names = lock_names(cfg.names);
    let root = dir.join("root");
    let url = cfg.url.as_deref();
    let mut log = EventLog::open(&dir.join("logs").join("cleaner.log")).expect("log");
    let mut rng = Rng::new(cfg.seed ^ 0xc1ea);
    let pid = std::process::id();
    let op = |log: &mut EventLog, k: Option<usize>, class: Class, start: u64, word: String| {
        let k = k.map_or("-".to_owned(), |k| k.to_string());
        log.line(&format!(
            "O {} {k} {start} {} {} {pid} {word}",
            class.as_str(),
            now_ns(),
            u64::MAX
        ));
    };
    while !stop.stopped() {
        let start = now_ns();
        // A new manager (new back end, new handles) each round: managers of one root in
        // one process share state only while one of them is alive.
        let m = match url {
            Some(u) => {
                ScanLockManager::builder_from_url(u).and_then(|b| b.cleanup_on_start(true).build())
            }
            None => ScanLockManager::builder(&root)
                .cleanup_on_start(rng.chance(50))
                .build(),
        };
        let word = result_word(&m, None);
        op(&mut log, None, Class::Admin, start, word);
        let Ok(m) = m else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        for _ in 0..5 {
            let start = now_ns();
            let r = m.cleanup_stale_locks();
            op(&mut log, None, Class::Admin, start, result_word(&r, None));
            let k = rng.below(names.len() as u64) as usize;
            let start = now_ns();
            let r = m.get_lock_status(&names[k]);
            if let Ok(st) = &r
                && st.holders.iter().any(|h| h.user == FORGED_USER)
            {
                log.line(&format!(
                    "V status of {:?} trusted a forged holder record: {st:?}",
                    names[k]
                ));
            }
            let word = result_word(&r, Some(&names[k]));
            op(&mut log, Some(k), Class::Status, start, word);
            std::thread::sleep(Duration::from_millis(rng.range(1, 10)));
        }
    }
    0
}
