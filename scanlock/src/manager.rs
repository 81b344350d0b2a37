//! `ScanLockManager`: the public entry point, its builder, and the name → entry registry.

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backend::file::FileBackend;
use crate::backend::{Backend, Deadline, PgOptions, Target, WaitCtx};
use crate::guard::{LockGuard, SendLockGuard};
use crate::info::LockInfo;
use crate::local::{Entry, HolderKey};
use crate::name::LockName;
use crate::{LockError, LockType};

/// Default wait of [`ScanLockManager::acquire_lock`] when no timeout is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// A wait longer than this is logged as a warning once the lock is obtained.
const SLOW_WAIT: Duration = Duration::from_secs(5);

static TASK_SEQ: AtomicU64 = AtomicU64::new(0);

/// The holder of a blocking acquisition: the calling thread or, with the `tokio`
/// feature inside a tokio task, the task, so that two tasks sharing a runtime thread are
/// two holders. Without the feature such tasks cannot be told apart (see the crate
/// docs): they should use the async API or [`ScanLockManager::acquire_lock_send`].
fn thread_key() -> HolderKey {
    #[cfg(feature = "tokio")]
    if let Some(id) = tokio::task::try_id() {
        return HolderKey::TokioTask(id);
    }
    HolderKey::Thread(std::thread::current().id())
}

/// How long an acquisition may wait.
///
/// [`ScanLockManager::acquire_lock`] takes an `Option<Duration>` (`None` is the
/// manager's default timeout); [`ScanLockManager::acquire_lock_with`] takes a `Wait`,
/// which can also say "forever".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Wait {
    /// The manager's default timeout (30 s unless the builder set another).
    #[default]
    Default,
    /// Exactly one attempt; never sleeps.
    NoWait,
    /// Up to this long (`Duration::ZERO` is one attempt).
    Timeout(Duration),
    /// Until the lock is free, blocking in the kernel.
    Forever,
}

/// A lock's state as seen by every process sharing the lock root.
///
/// Returned by [`ScanLockManager::get_lock_status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LockStatus {
    /// The lock's name.
    pub name: String,
    /// `None` when free, else the mode it is held in.
    pub lock_type: Option<LockType>,
    /// The holders, one per holding thread or task (holders without scanlock metadata,
    /// such as `flock(1)`, appear with only their pid and mode).
    pub holders: Vec<LockInfo>,
    /// Records left by holders that died; ignored, and removed by
    /// [`ScanLockManager::cleanup_stale_locks`]. Includes a plantdb `<scan_id>.info`
    /// whose process does not hold the lock (removed by cleanup only once that process
    /// is gone).
    pub stale_records: usize,
    /// Pids of processes waiting for the lock exclusively, where the back end can tell:
    /// with the file back end, processes on this host (a waiting writer holds the
    /// name's gate); with PostgreSQL, scanlock client processes on any host (known by
    /// their connections' `application_name`).
    #[serde(default)]
    pub waiting_writers: Vec<u32>,
    /// Damage found in this name's files that status worked around, one message each
    /// (e.g. a regular file where its holder records' directory belongs). Empty when
    /// everything is in order.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// Metadata of a holder that is gone, found by
/// [`ScanLockManager::find_stale_records`] or removed by
/// [`ScanLockManager::cleanup_stale_locks`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StaleRecord {
    /// Where the record is (a file path for the file back end).
    pub location: String,
    /// The record's content, when it could be read (`None` for a torn or foreign file).
    pub holder: Option<LockInfo>,
}

/// What [`ScanLockManager::cleanup_stale_locks`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CleanupReport {
    /// The records removed.
    pub removed: Vec<StaleRecord>,
}

impl LockStatus {
    /// True when nobody holds the lock.
    pub fn is_free(&self) -> bool {
        self.lock_type.is_none()
    }
}

/// Named shared/exclusive locks under `<root>/.locks/`, across threads and processes.
///
/// Cheap to clone (the clones share one registry), `Send` and `Sync`. See the crate docs
/// for the semantics.
///
/// ```
/// use std::time::Duration;
/// use scanlock::{LockType, ScanLockManager};
/// # let dir = tempfile::tempdir().unwrap();
/// let m = ScanLockManager::new(dir.path())?;
/// {
///     let _r1 = m.acquire_lock("scan001", LockType::Shared, "reader1", None)?;
///     let _r2 = m.acquire_lock("scan001", LockType::Shared, "reader2", None)?; // same thread: re-entrant
///     assert_eq!(m.get_lock_status("scan001")?.lock_type, Some(LockType::Shared));
/// } // both released here
/// let w = m.acquire_lock("scan001", LockType::Exclusive, "writer1", Some(Duration::from_secs(10)))?;
/// w.release()?;
/// assert!(m.get_lock_status("scan001")?.is_free());
/// # Ok::<(), scanlock::LockError>(())
/// ```
#[derive(Clone)]
pub struct ScanLockManager {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    target: Target,
    root: PathBuf,
    lock_dir: PathBuf,
    default_timeout: Duration,
    metadata: bool,
    shared: Arc<Shared>,
}

/// What every manager of one lock store in this process shares: the back end (with its
/// open handles) and the registry of names. Two managers built for the same root are
/// then one lock manager with two sets of defaults: a thread holding a lock through one
/// re-enters it through the other instead of deadlocking against itself.
struct Shared {
    backend: Box<dyn Backend>,
    registry: Mutex<Registry>,
}

/// Live `Shared` per lock store (canonical lock directory, or URL).
static SHARED: LazyLock<Mutex<HashMap<String, Weak<Shared>>>> = LazyLock::new(Default::default);

fn shared_for(
    target: &Target,
    file_mode: u32,
    dir_mode: u32,
    pg: &PgOptions,
) -> Result<(PathBuf, Arc<Shared>), LockError> {
    let (key, lock_dir) = match target {
        Target::File(root) => {
            let dir = crate::backend::file::create_lock_dir(root, dir_mode)?;
            // The directory's identity, not its path: managers on two spellings of one
            // directory (a symlink, a bind mount) must share one in-process layer, or a
            // thread deadlocks against itself through the alias.
            let meta =
                std::fs::metadata(&dir).map_err(|e| LockError::io(".locks", "inspect", &dir, e))?;
            (format!("file\0{}:{}", meta.dev(), meta.ino()), dir)
        }
        // Two namespaces in one database are two independent lock stores.
        Target::Postgres(url) => (format!("{url}\0{}", pg.namespace), PathBuf::new()),
    };
    let mut all = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(shared) = all.get(&key).and_then(Weak::upgrade) {
        return Ok((lock_dir, shared));
    }
    let backend: Box<dyn Backend> = match target {
        Target::File(root) => Box::new(FileBackend::open(root, file_mode, dir_mode)?),
        Target::Postgres(url) => open_postgres(url, pg)?,
    };
    let shared = Arc::new(Shared {
        backend,
        registry: Mutex::new(Registry {
            pid: crate::info::current_pid(),
            entries: HashMap::new(),
        }),
    });
    all.retain(|_, w| w.strong_count() > 0);
    all.insert(key, Arc::downgrade(&shared));
    Ok((lock_dir, shared))
}

struct Registry {
    /// The process the entries belong to: after `fork`, the child starts afresh.
    pid: u32,
    entries: HashMap<String, Arc<Entry>>,
}

impl fmt::Debug for ScanLockManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScanLockManager")
            .field("root", &self.inner.root)
            .field("default_timeout", &self.inner.default_timeout)
            .field("metadata", &self.inner.metadata)
            .finish_non_exhaustive()
    }
}

/// Configures a [`ScanLockManager`]; made by [`ScanLockManager::builder`].
///
/// ```
/// use std::time::Duration;
/// # let dir = tempfile::tempdir().unwrap();
/// let m = scanlock::ScanLockManager::builder(dir.path())
///     .default_timeout(Duration::from_secs(5))
///     .metadata(false)
///     .build()?;
/// # Ok::<(), scanlock::LockError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ScanLockManagerBuilder {
    target: Target,
    default_timeout: Duration,
    metadata: bool,
    cleanup_on_start: bool,
    file_mode: u32,
    dir_mode: u32,
    pg: PgOptions,
}

impl ScanLockManagerBuilder {
    /// The wait used when `acquire_lock` gets `None` (default 30 s).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// Whether holders publish metadata records (default on). Off saves a few file
    /// operations per acquisition; `get_lock_status` then shows only pids and modes.
    pub fn metadata(mut self, on: bool) -> Self {
        self.metadata = on;
        self
    }

    /// Whether `build` removes stale holder records (default on).
    pub fn cleanup_on_start(mut self, on: bool) -> Self {
        self.cleanup_on_start = on;
        self
    }

    /// Permission bits for the lock, gate and record files scanlock creates
    /// (default `0o644`, further limited by the umask).
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = mode;
        self
    }

    /// Permission bits for the directories scanlock creates: `<root>/.locks` and each
    /// name's `<name>.holders/` (default `0o777`, limited by the umask: usually `0o755`).
    /// `0o700` keeps the lock names and holder records private to this user (then only
    /// this user's processes can share the locks). Existing directories are left as
    /// they are.
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let m = scanlock::ScanLockManager::builder(dir.path())
    ///     .dir_mode(0o700)
    ///     .file_mode(0o600)
    ///     .build()?;
    /// let mode = std::fs::metadata(m.lock_dir()).unwrap().permissions().mode();
    /// assert_eq!(mode & 0o777, 0o700);
    /// # Ok::<(), scanlock::LockError>(())
    /// ```
    pub fn dir_mode(mut self, mode: u32) -> Self {
        self.dir_mode = mode;
        self
    }

    /// PostgreSQL back end: the most connections this process opens for locks, one per
    /// name it holds or waits for at the same time (default 16; one connection for
    /// status queries comes on top). An acquisition that would need more fails at once
    /// with a [`LockError::Io`] of kind `ResourceBusy` that says so. Managers of one URL
    /// and namespace in a process share one pool: the first one's size applies. Ignored
    /// by the file back end.
    pub fn pg_pool_size(mut self, connections: usize) -> Self {
        self.pg.pool_size = connections.max(1);
        self
    }

    /// PostgreSQL back end: the namespace mixed into every advisory-lock key and stored
    /// with every row (default `"scanlock"`), so that scanlock's locks cannot collide
    /// with other applications' advisory locks in the same database, and two
    /// deployments can share a database without sharing locks. Processes that must
    /// exclude each other have to use the same namespace. Ignored by the file back end.
    pub fn pg_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.pg.namespace = namespace.into();
        self
    }

    /// Creates `<root>/.locks` if needed and, unless disabled, removes stale records.
    ///
    /// Managers built for the same root in one process share their lock state (see the
    /// crate docs); the first one's `file_mode` and `dir_mode` apply to what they create.
    pub fn build(mut self) -> Result<ScanLockManager, LockError> {
        if let Target::File(root) = &self.target {
            self.target = Target::File(resolve_root(root)?);
        }
        let (lock_dir, shared) = shared_for(&self.target, self.file_mode, self.dir_mode, &self.pg)?;
        let root = match &self.target {
            Target::File(root) => root.clone(),
            Target::Postgres(_) => PathBuf::new(),
        };
        let m = ScanLockManager {
            inner: Arc::new(Inner {
                target: self.target,
                root,
                lock_dir,
                default_timeout: self.default_timeout,
                metadata: self.metadata,
                shared,
            }),
        };
        if self.cleanup_on_start {
            m.cleanup_stale_locks()?;
        }
        Ok(m)
    }
}

/// The root as an absolute path, fixed once when the manager is built: a relative root
/// resolved again on every open would follow the process's `chdir`s to other
/// directories' files. No symlink is resolved (the lock directory's identity is what
/// tells two spellings apart, see `shared_for`).
fn resolve_root(root: &Path) -> Result<PathBuf, LockError> {
    if root.as_os_str().is_empty() {
        return Err(LockError::InvalidRoot {
            root: String::new(),
            reason: "the empty path is not a lock root; give the scans directory, \
                     e.g. \"/var/lib/scans\" (use \".\" for the working directory)",
        });
    }
    std::path::absolute(root).map_err(|_| LockError::InvalidRoot {
        root: root.display().to_string(),
        reason: "a relative root needs a working directory, and there is none; \
                 give an absolute path",
    })
}

#[cfg(feature = "postgres")]
fn open_postgres(url: &str, options: &PgOptions) -> Result<Box<dyn Backend>, LockError> {
    Ok(Box::new(crate::backend::postgres::PgBackend::connect(
        url, options,
    )?))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(url: &str, _options: &PgOptions) -> Result<Box<dyn Backend>, LockError> {
    Err(LockError::InvalidUrl {
        url: crate::backend::redact(url),
        reason: "this build of scanlock has no PostgreSQL back end; enable the `postgres` \
                 feature of the scanlock crate (scanlock = { features = [\"postgres\"] })"
            .to_owned(),
    })
}

impl ScanLockManager {
    /// A manager for `root` with the defaults: creates `<root>/.locks`, removes stale
    /// holder records, waits 30 s by default, publishes metadata.
    pub fn new(root: impl AsRef<Path>) -> Result<ScanLockManager, LockError> {
        Self::builder(root).build()
    }

    /// A builder for a manager with other settings.
    pub fn builder(root: impl AsRef<Path>) -> ScanLockManagerBuilder {
        Self::builder_for(Target::File(root.as_ref().to_path_buf()))
    }

    /// A manager for a back-end URL with the defaults: `file:///var/lib/scans` (the same
    /// as [`new`](Self::new)`("/var/lib/scans")`) or, with the `postgres` feature,
    /// `postgres://user@host:5432/db`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let url = format!("file://{}", dir.path().display());
    /// let m = scanlock::ScanLockManager::from_url(&url)?;
    /// assert_eq!(m.root(), dir.path());
    /// assert!(matches!(
    ///     scanlock::ScanLockManager::from_url("redis://localhost"),
    ///     Err(scanlock::LockError::InvalidUrl { .. })
    /// ));
    /// # Ok::<(), scanlock::LockError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<ScanLockManager, LockError> {
        Self::builder_from_url(url)?.build()
    }

    /// A builder for a back-end URL (see [`from_url`](Self::from_url)).
    pub fn builder_from_url(url: &str) -> Result<ScanLockManagerBuilder, LockError> {
        Ok(Self::builder_for(Target::parse_url(url)?))
    }

    fn builder_for(target: Target) -> ScanLockManagerBuilder {
        ScanLockManagerBuilder {
            target,
            default_timeout: DEFAULT_TIMEOUT,
            metadata: true,
            cleanup_on_start: true,
            file_mode: 0o644,
            dir_mode: 0o777,
            pg: PgOptions::default(),
        }
    }

    /// The back end, as a URL with any password hidden (`file:///var/lib/scans`).
    pub fn url(&self) -> String {
        self.inner.target.describe()
    }

    pub(crate) fn target(&self) -> &Target {
        &self.inner.target
    }

    /// The root, made absolute when the manager was built (empty for a non-file back
    /// end).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The lock directory, `<root>/.locks` (empty for a non-file back end).
    pub fn lock_dir(&self) -> &Path {
        &self.inner.lock_dir
    }

    /// The wait used when `acquire_lock` gets `None`.
    pub fn default_timeout(&self) -> Duration {
        self.inner.default_timeout
    }

    /// Takes `name` in `lock_type`, waiting up to `timeout` (`None`: the default timeout;
    /// `Some(Duration::ZERO)`: one attempt). `user` is recorded in the metadata only.
    ///
    /// Errors: `Timeout`, `WouldBlock` (zero timeout), `WouldDeadlock` (this thread holds
    /// the lock shared and asks for exclusive), `InvalidName`, `Io`.
    pub fn acquire_lock(
        &self,
        name: &str,
        lock_type: LockType,
        user: &str,
        timeout: Option<Duration>,
    ) -> Result<LockGuard, LockError> {
        let wait = match timeout {
            None => Wait::Default,
            Some(d) => Wait::Timeout(d),
        };
        self.acquire_lock_with(name, lock_type, user, wait)
    }

    /// Makes exactly one attempt to take `name`; never sleeps.
    pub fn try_acquire_lock(
        &self,
        name: &str,
        lock_type: LockType,
        user: &str,
    ) -> Result<LockGuard, LockError> {
        self.acquire_lock_with(name, lock_type, user, Wait::NoWait)
    }

    /// Takes `name` with any [`Wait`] policy, including [`Wait::Forever`].
    pub fn acquire_lock_with(
        &self,
        name: &str,
        lock_type: LockType,
        user: &str,
        wait: Wait,
    ) -> Result<LockGuard, LockError> {
        let key = thread_key();
        let entry = self.take(name, lock_type, user, self.wait_ctx(wait), key)?;
        Ok(LockGuard::new(self.clone(), entry, key, lock_type))
    }

    /// Takes `name` for a guard that may move to another thread (a [`SendLockGuard`]),
    /// with any [`Wait`] policy. Never re-entrant: the holder is the guard, so asking
    /// again for the same name from any thread waits for it (or times out).
    ///
    /// ```
    /// # use scanlock::{LockType, ScanLockManager, Wait};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let m = ScanLockManager::new(dir.path())?;
    /// let g = m.acquire_lock_send("scan001", LockType::Exclusive, "mover", Wait::Default)?;
    /// // Not re-entrant: the same thread cannot get in again while `g` lives.
    /// assert!(m.try_acquire_lock("scan001", LockType::Exclusive, "mover").is_err());
    /// std::thread::spawn(move || drop(g)).join().unwrap();
    /// # Ok::<(), scanlock::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`acquire_lock`](Self::acquire_lock), except `WouldDeadlock` (a guard never
    /// re-enters).
    pub fn acquire_lock_send(
        &self,
        name: &str,
        lock_type: LockType,
        user: &str,
        wait: Wait,
    ) -> Result<SendLockGuard, LockError> {
        self.take_send(name, lock_type, user, self.wait_ctx(wait), Self::task_key())
    }

    /// [`take`](Self::take) for a movable guard (`key` is a fresh task key).
    pub(crate) fn take_send(
        &self,
        name: &str,
        lock_type: LockType,
        user: &str,
        wait: WaitCtx,
        key: HolderKey,
    ) -> Result<SendLockGuard, LockError> {
        let entry = self.take(name, lock_type, user, wait, key)?;
        Ok(SendLockGuard::new(self.clone(), entry, key, lock_type))
    }

    pub(crate) fn wait_ctx(&self, wait: Wait) -> WaitCtx {
        let now = Instant::now();
        let deadline = match wait {
            Wait::NoWait | Wait::Timeout(Duration::ZERO) => Deadline::Try,
            Wait::Forever => Deadline::Forever,
            Wait::Default => now
                .checked_add(self.inner.default_timeout)
                .map_or(Deadline::Forever, Deadline::At),
            Wait::Timeout(d) => now.checked_add(d).map_or(Deadline::Forever, Deadline::At),
        };
        WaitCtx {
            deadline,
            started: now,
            cancel: None,
        }
    }

    /// A holder key for one async acquisition.
    pub(crate) fn task_key() -> HolderKey {
        HolderKey::Task(TASK_SEQ.fetch_add(1, Ordering::Relaxed))
    }

    /// Takes `name` for `key` in the in-process layer (and, through it, the back end);
    /// the caller wraps the entry in the guard type that fits the key.
    pub(crate) fn take(
        &self,
        name: &str,
        lock_type: LockType,
        user: &str,
        wait: WaitCtx,
        key: HolderKey,
    ) -> Result<Arc<Entry>, LockError> {
        let lname = LockName::new(name)?;
        let entry = self.entry(&lname);
        let info = self.inner.metadata.then(|| {
            LockInfo::for_current_thread(
                name,
                user,
                lock_type,
                !matches!(key, HolderKey::Thread(_)),
            )
        });
        tracing::debug!(lock = name, ?lock_type, user, "acquiring");
        let result = entry.acquire(
            &*self.inner.shared.backend,
            lock_type,
            key,
            &wait,
            info.as_ref(),
        );
        let waited = wait.started.elapsed();
        match result {
            Ok(how) => {
                if waited >= SLOW_WAIT {
                    tracing::warn!(
                        lock = name,
                        ?lock_type,
                        user,
                        waited_ms = waited.as_millis() as u64,
                        "acquired after a long wait"
                    );
                } else {
                    tracing::debug!(
                        lock = name,
                        ?lock_type,
                        user,
                        waited_ms = waited.as_millis() as u64,
                        reentrant = how.reentered,
                        "acquired"
                    );
                }
                Ok(entry)
            }
            Err(e) => {
                drop(entry);
                self.forget_if_idle(&lname);
                let e = self.with_holder(&lname, e);
                tracing::debug!(lock = name, ?lock_type, user, waited_ms = waited.as_millis() as u64, error = %e, "not acquired");
                Err(e)
            }
        }
    }

    /// Adds a current holder to a `Timeout`/`WouldBlock` error, for its message.
    fn with_holder(&self, name: &LockName, err: LockError) -> LockError {
        let find = || {
            self.inner
                .shared
                .backend
                .status(name)
                .ok()
                .and_then(|s| s.holders.into_iter().next())
                .map(Box::new)
        };
        match err {
            LockError::Timeout {
                name,
                lock_type,
                waited,
                holder: None,
            } => LockError::Timeout {
                holder: find(),
                name,
                lock_type,
                waited,
            },
            LockError::WouldBlock {
                name,
                lock_type,
                holder: None,
            } => LockError::WouldBlock {
                holder: find(),
                name,
                lock_type,
            },
            other => other,
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        let mut r = self
            .inner
            .shared
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let pid = crate::info::current_pid();
        if r.pid != pid {
            // A forked child: the inherited entries describe the parent's locks. Dropping
            // them only closes descriptors (the back end never unlocks in another pid).
            r.entries.clear();
            r.pid = pid;
        }
        r
    }

    fn entry(&self, name: &LockName) -> Arc<Entry> {
        let mut r = self.registry();
        if let Some(e) = r.entries.get(name.as_str()) {
            return e.clone();
        }
        let e = Arc::new(Entry::new(name.clone()));
        r.entries.insert(name.as_str().to_owned(), e.clone());
        e
    }

    /// Drops the registry's entry for `name` when no guard or waiter refers to it, so the
    /// registry stays as small as the set of names in use.
    pub(crate) fn forget_if_idle(&self, name: &LockName) {
        let mut r = self.registry();
        if r.entries
            .get(name.as_str())
            .is_some_and(|e| Arc::strong_count(e) == 1)
        {
            r.entries.remove(name.as_str());
        }
    }

    /// The state of `name` as every process sees it: mode and holders (from their
    /// metadata, and from the kernel's lock table for holders without metadata). Reads
    /// only; never takes or changes a lock, never creates a file.
    pub fn get_lock_status(&self, name: &str) -> Result<LockStatus, LockError> {
        let lname = LockName::new(name)?;
        let mut status = self.inner.shared.backend.status(&lname)?;
        // Writers of this process may wait above the back end, in the in-process layer.
        let local = self.registry().entries.get(name).cloned();
        let pid = crate::info::current_pid();
        if local.is_some_and(|e| e.waiting_writers() > 0) && !status.waiting_writers.contains(&pid)
        {
            status.waiting_writers.push(pid);
        }
        Ok(status)
    }

    /// Removes holder records left by processes that died. Never touches a lock or a
    /// gate file, so it is safe while others acquire and release. [`new`](Self::new) runs
    /// it once.
    ///
    /// Also removes plantdb `<scan_id>.info` files that name a process that is gone (or
    /// are not plantdb's format): each while holding that scan's lock exclusively for an
    /// instant, taken without waiting (a held lock keeps its `.info`), since plantdb
    /// writes `.info` only once it holds the lock. A `.info` naming a live process is
    /// never removed.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let m = scanlock::ScanLockManager::new(dir.path())?;
    /// let report = m.cleanup_stale_locks()?;
    /// assert!(report.removed.is_empty());
    /// # Ok::<(), scanlock::LockError>(())
    /// ```
    pub fn cleanup_stale_locks(&self) -> Result<CleanupReport, LockError> {
        let removed = self.inner.shared.backend.stale(true)?;
        if removed.is_empty() {
            tracing::debug!(dir = %self.inner.lock_dir.display(), "no stale holder records");
        } else {
            tracing::warn!(removed = removed.len(), dir = %self.inner.lock_dir.display(), "removed stale holder records");
        }
        Ok(CleanupReport { removed })
    }

    /// The stale records [`cleanup_stale_locks`](Self::cleanup_stale_locks) would remove,
    /// without removing them.
    pub fn find_stale_records(&self) -> Result<Vec<StaleRecord>, LockError> {
        self.inner.shared.backend.stale(false)
    }

    /// Every lock name with state under the root, sorted (held or not; a name too long
    /// for a file name is listed only while a holder's record names it).
    pub fn lock_names(&self) -> Result<Vec<String>, LockError> {
        let mut names = self.inner.shared.backend.names()?;
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The mode in which threads of this process hold `name`, if any.
    pub fn held_by_this_process(&self, name: &str) -> Option<LockType> {
        let r = self.registry();
        r.entries.get(name).and_then(|e| e.held_mode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_and_guard_are_send_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<ScanLockManager>();
        fn send<T: Send + Sync>() {}
        send::<SendLockGuard>();
        fn sync<T: Sync>() {}
        sync::<LockGuard>();
    }
}
