//! The PostgreSQL back end: session-level advisory locks, for processes on several hosts
//! that share one database (cargo feature `postgres`, URLs `postgres://` and
//! `postgresql://`).
//!
//! # How a lock maps onto PostgreSQL
//!
//! - **Keys.** A name maps to the advisory-lock key `i64` = the first 8 bytes (big
//!   endian) of SHA-256(`namespace` ‖ 0x00 ‖ `name`). The namespace (default
//!   `"scanlock"`, [`pg_namespace`](crate::ScanLockManagerBuilder::pg_namespace)) keeps
//!   scanlock's keys apart from other applications' advisory locks. Two names collide
//!   only with probability 2⁻⁶⁴ per pair; a collision would make two names share one
//!   lock (more exclusion, never less).
//! - **One connection per held name.** A process takes at most one advisory lock per
//!   name (threads are queued above the back end), `pg_advisory_lock[_shared]` at session
//!   level, on a connection of its own that stays pinned to the lock until release:
//!   session locks belong to the connection, and a wait on one name must never hold up
//!   acquisitions of other names. Connections come from a per-process pool bounded by
//!   [`pg_pool_size`](crate::ScanLockManagerBuilder::pg_pool_size) (default 16); when all
//!   are in use an acquisition fails at once with an `Io` error of kind `ResourceBusy`
//!   that says how to raise the bound. A further connection serves status queries.
//! - **Waiting** is done by the server: after one `pg_try_advisory_lock` (the whole of
//!   a single attempt, and all an uncontended acquisition costs: with metadata on, the
//!   same statement inserts the holder's row), `SET lock_timeout`
//!   (transaction-local, in the same statement) and one blocking `pg_advisory_lock`
//!   call; SQLSTATE 55P03 becomes [`LockError::Timeout`] (after releasing the lock if
//!   the server granted it as the timeout fired: [`give_back_if_granted`]).
//!   `Wait::Forever` waits without
//!   a limit (scanlock's sessions run with `lock_timeout`, `statement_timeout` and
//!   `idle_session_timeout` at 0, whatever the server's defaults). An async acquisition
//!   (which can be cancelled by dropping its future) waits in slices of
//!   [`CANCEL_SLICE`], so that a dropped future is noticed within a slice; between
//!   slices the waiter briefly leaves the server's queue.
//! - **Deadlocks** between names are not detected: each name's lock lives on its own
//!   session, so the server's deadlock detector never sees one process's holds and
//!   waits as a cycle (nor does the file back end). Timeouts end such waits; take names
//!   in a fixed order. An upgrade (shared to exclusive by a holder) is refused at once
//!   with `WouldDeadlock` above the back end.
//! - **Writer preference** comes from PostgreSQL's lock manager: a new shared request
//!   that conflicts with a *waiting* exclusive request queues behind it, so overlapping
//!   readers cannot starve a writer.
//! - **Tables** (created at connect with `CREATE TABLE IF NOT EXISTS`, serialised by a
//!   transaction-level advisory lock, skipped when they exist):
//!   `scanlock_fencing(key, namespace, name, token)` keeps every name used (for
//!   `lock_names`) and its fencing token; `scanlock_holders(id, namespace, key, name,
//!   backend_pid, lock_type, info, created_at)` (UNLOGGED) keeps one JSON [`LockInfo`]
//!   per holder, inserted and deleted on the holder's own connection. The row of the
//!   holder that takes the lock is inserted by the statement that takes it, when its
//!   first try succeeds (after a wait, and for a thread joining a held lock, by one
//!   more statement); the row of the last holder is deleted by the statement that
//!   releases the lock (other holders' rows by a statement of their own, while the lock
//!   is held). So metadata costs no round trip on an uncontended acquisition or a
//!   release ([`lock_on`], [`PgLock::unlock`]). A row is live exactly while its backend holds the advisory lock on its key in
//!   `pg_locks` (which splits an int8 key into `classid`, high half, and `objid`, low half,
//!   with `objsubid = 1`); other rows are stale: status ignores them and
//!   `cleanup_stale_locks` deletes them. `pg_locks` needs no privileges, unlike the
//!   details of other users' sessions in `pg_stat_activity`, and a row's backend pid
//!   could be reused by an unrelated session, but not while that session holds our key.
//! - **Fencing tokens.** An exclusive holder's token is assigned on the first
//!   `fencing_token()` call of its hold, on its own connection while it holds the lock:
//!   `token = max(stored + 1, server clock in µs)`, committed synchronously. A shared
//!   holder reads the stored token. The clock term keeps tokens increasing even if the
//!   last update was lost (a failover to a replica that had not received it), as long
//!   as the new server's clock is not behind the old one's.
//! - **Status.** Holders are the live rows of the key plus, for holders that keep no
//!   rows (metadata off, or another program locking the same key), what `pg_locks`
//!   shows. scanlock names each connection `scanlock/<pid>@<host>` (`application_name`,
//!   unless the URL sets one), so that those holders and the waiting writers
//!   (`LockStatus::waiting_writers`: ungranted exclusive requests) are reported by their
//!   client pid, on any host. Holders of other programs appear with pid 0 and thread
//!   `postgres backend <pid>`.
//!
//! # Faults
//!
//! - A holder process that dies (even by `SIGKILL`) closes its connections; the server
//!   ends the sessions and releases their locks. Its rows become stale at the same time.
//! - A connection lost while holding (server restart, `pg_terminate_backend`, a proxy's
//!   idle timeout, failover, network) means the lock is gone. The holder
//!   learns it from [`LockGuard::is_held`](crate::LockGuard::is_held), which costs one
//!   round trip on the hold's connection and is exact as of the server's answer (a
//!   session that answers holds its locks; on a silent network it waits until TCP
//!   gives up, about 25 s, and says `false`), from any later operation on the
//!   connection (`fencing_token`, a new holder's metadata), and from `release`, which
//!   then returns an error of kind `ConnectionAborted`. Each detection is logged at
//!   `warn`. There is no background check: a holder that never asks learns it at
//!   release.
//! - An idle pooled connection is not checked when it is taken (that would cost a round
//!   trip or a timer tick): if its first statement finds the session gone, the
//!   acquisition retries once on a new connection.
//! - A server that is down or unreachable gives `LockError::Io` (with the URL, password
//!   hidden) within the connect timeout (5 s unless the URL sets `connect_timeout`, and
//!   never more than a timed acquisition has left); TCP keepalives (idle 10 s, every 5 s,
//!   3 probes) and `tcp_user_timeout` bound how long a call can hang on a silent network.
//!   A server whose host still answers TCP but whose backend process does not (stopped
//!   with `SIGSTOP`, stuck in I/O) is not detected: a call waits for it, past its own
//!   timeout, since the blocking client has no per-call deadline.
//! - No file descriptor left: a new connection fails with `LockError::Io` (EMFILE),
//!   not with the panic of the `postgres` client creating its runtime
//!   ([`FDS_PER_CONNECTION`] descriptors are checked first; the panic is caught too).
//! - A holder *host* that vanishes (power loss, network cut) sends nothing: its sessions
//!   and locks live until the server's TCP keepalives give up. scanlock sets them for
//!   its sessions (`tcp_keepalives_idle` 10 s, interval 5 s, count 3: about 25 s); they
//!   do not apply to Unix-socket connections, whose peers are on the server's host.
//!
//! # Pitfalls
//!
//! - **Poolers in transaction mode** (pgbouncer `pool_mode = transaction` or
//!   `statement`) hand a session's later statements to other server connections:
//!   session-level advisory locks are then taken and released on the wrong sessions.
//!   Connect directly, or through a pooler in *session* mode.
//! - **`idle_session_timeout`** (PostgreSQL 14+) ends an idle session and so releases
//!   its locks silently (measured: a plain session with 300 ms loses its lock). scanlock
//!   sets it to 0 for its own sessions (see [`SESSION_SETUP`]); a proxy or firewall
//!   that drops idle connections has the same effect and cannot be overridden:
//!   keepalives help against the latter.
//! - **Failover** to a standby drops every advisory lock (they are not replicated),
//!   while the old holders may still be working. Holders see `is_held() == false` only
//!   when they ask; storage that must not be written by a stale holder has to check
//!   fencing tokens.
//! - **TLS** is not supported by this build (no TLS connector): use a Unix socket, a
//!   trusted network, or a tunnel.
//! - **Connections:** each process opens up to `pg_pool_size + 1` connections per
//!   URL and namespace; size `max_connections` for all hosts' processes together.
//! - **Advisory locks are not access control:** any role that can connect to the
//!   database can take (or terminate the holder of) scanlock's keys.
//! - **Async code:** the `postgres` crate's blocking client cannot run inside a tokio
//!   runtime, so there every call runs on a short-lived helper thread (see
//!   [`blocking`]); `acquire_lock_async`'s first, non-blocking attempt still waits for
//!   one round trip (and a connect the first time) on the polling thread.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, Config, NoTls, Row, Statement};
use sha2::{Digest, Sha256};

use super::{
    Backend, BackendLock, Deadline, Held, HolderRecord, PgOptions, WaitCtx, publish_holder, redact,
};
use crate::info::{LockInfo, current_pid};
use crate::name::LockName;
use crate::{LockError, LockStatus, LockType, StaleRecord};

/// How long one server-side wait lasts when the caller may cancel (async acquisitions).
pub(crate) const CANCEL_SLICE: Duration = Duration::from_millis(200);
/// Connect timeout when the URL sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(25);
/// Names whose `scanlock_fencing` row this process knows exists (bounded memory).
const REGISTERED_NAMES: usize = 65_536;
/// Prefix of the `application_name` scanlock gives its connections.
const APP_PREFIX: &str = "scanlock/";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS scanlock_fencing (
    key bigint PRIMARY KEY,
    namespace text NOT NULL,
    name text NOT NULL,
    token bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS scanlock_fencing_namespace ON scanlock_fencing (namespace);
CREATE UNLOGGED TABLE IF NOT EXISTS scanlock_holders (
    id bigserial PRIMARY KEY,
    namespace text NOT NULL,
    key bigint NOT NULL,
    name text NOT NULL,
    backend_pid integer NOT NULL,
    lock_type text NOT NULL,
    info text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS scanlock_holders_key ON scanlock_holders (key);
";

/// Settings of every scanlock session (see [`PgShared::connect`]). The timeouts that
/// would end a statement or a session under a holder are turned off for scanlock's own
/// sessions, whatever the server, database, role or URL set: `lock_timeout` is then set
/// per waiting statement only, and `idle_session_timeout` (PostgreSQL 14+; set only
/// where the server knows it) would otherwise end an idle holder's session and release
/// its locks.
const SESSION_SETUP: &str = "SET synchronous_commit = off; SET tcp_keepalives_idle = 10; \
     SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3; \
     SELECT set_config(name, '0', false) FROM pg_settings WHERE name IN ('lock_timeout', \
     'statement_timeout', 'idle_session_timeout', 'idle_in_transaction_session_timeout')";

/// Advisory locks of this database, with their int8 key put back together.
const ADVISORY: &str =
    "SELECT l.pid, l.mode, l.granted, (l.classid::int8 << 32) | l.objid::int8 AS key
    FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// The advisory-lock key of `name` in `namespace`: the first 8 bytes of
/// SHA-256(namespace ‖ 0 ‖ name), big endian. Stable across Rust versions and platforms.
pub(crate) fn advisory_key(namespace: &str, name: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(namespace.as_bytes());
    h.update([0u8]);
    h.update(name.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    i64::from_be_bytes(first)
}

/// An error (from PostgreSQL, or an I/O error) kept as the `source` of an `io::Error`
/// whose message says what scanlock was doing, naming the lock and the URL.
#[derive(Debug)]
struct WithContext<E> {
    message: String,
    source: E,
}

impl<E> fmt::Display for WithContext<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error + 'static> std::error::Error for WithContext<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The `io::ErrorKind` that best describes `e`, and a hint for the message.
fn classify(e: &postgres::Error) -> (io::ErrorKind, &'static str) {
    if let Some(code) = e.code() {
        let c = code.code();
        return match c {
            _ if c.starts_with("28") => (
                io::ErrorKind::PermissionDenied,
                "; check the user and password in the URL, and pg_hba.conf",
            ),
            "42501" => (
                io::ErrorKind::PermissionDenied,
                "; the role needs SELECT, INSERT, UPDATE, DELETE on scanlock_fencing and \
                 scanlock_holders (and CREATE on a schema in its search_path the first time)",
            ),
            "3D000" => (io::ErrorKind::NotFound, "; does the database exist?"),
            "53300" => (
                io::ErrorKind::ResourceBusy,
                "; the server has no free connection slots: raise max_connections or lower pg_pool_size",
            ),
            _ if c.starts_with("57P") || c.starts_with("08") => (
                io::ErrorKind::ConnectionAborted,
                "; the server ended the session",
            ),
            _ => (io::ErrorKind::Other, ""),
        };
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            let hint = match io.kind() {
                io::ErrorKind::ConnectionRefused => {
                    "; is the server running, and are host and port right?"
                }
                io::ErrorKind::TimedOut => "; is the server reachable from here?",
                _ => "",
            };
            return (io.kind(), hint);
        }
        source = s.source();
    }
    if e.is_closed() {
        return (
            io::ErrorKind::ConnectionAborted,
            "; the connection was closed",
        );
    }
    let text = e.to_string();
    if text.contains("timed out") || text.contains("timeout") {
        return (
            io::ErrorKind::TimedOut,
            "; is the server reachable from here?",
        );
    }
    (io::ErrorKind::Other, "")
}

/// `e` with its causes ("error connecting to server: Connection refused (os error 111)"),
/// or the server's own message for a database error.
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Whether `e` means the session is gone (rather than a statement failing in a live
/// session): then nothing it held is held any more, and a retry on a new connection is
/// safe.
fn connection_gone(e: &postgres::Error, conn: &Conn) -> bool {
    conn.client.is_closed()
        || e.is_closed()
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("57P") || c.starts_with("08")
        })
        || (e.code().is_none() && classify(e).0 != io::ErrorKind::Other)
}

/// Descriptors one connection needs while it is opened: the client runtime's epoll
/// and wake-up descriptors, and the socket (one spare).
const FDS_PER_CONNECTION: usize = 4;

/// Whether `n` descriptors are free right now (opens and closes them): lets a connect
/// fail with EMFILE/ENFILE instead of inside the client, which panics on it.
fn spare_descriptors(n: usize) -> io::Result<()> {
    let mut files = Vec::with_capacity(n);
    for _ in 0..n {
        files.push(std::fs::File::open("/dev/null")?);
    }
    Ok(())
}

/// The EMFILE or ENFILE inside a connect error (the socket could not be created).
fn fd_exhaustion(e: &postgres::Error) -> Option<io::Error> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(errno) = s
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
            .filter(|n| *n == libc::EMFILE || *n == libc::ENFILE)
        {
            return Some(io::Error::from_raw_os_error(errno));
        }
        source = s.source();
    }
    None
}

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// What a back end shares with its locks: how to connect, and the pool's accounting.
struct PgShared {
    config: Config,
    /// The URL with any password hidden, for messages.
    url: String,
    namespace: String,
    pool_size: usize,
    /// Connections open for locks (idle in the pool or in use).
    open: AtomicUsize,
    idle: Mutex<Idle>,
    /// Whether scanlock names its connections (the URL did not set `application_name`).
    own_app_name: bool,
}

struct Idle {
    /// The process the connections belong to: a forked child must never use (or close)
    /// its parent's sockets.
    pid: u32,
    conns: Vec<Conn>,
}

impl fmt::Debug for PgShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgShared")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .field("pool_size", &self.pool_size)
            .field("open", &self.open.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// One connection. Dropped in the process that opened it, it closes the session (which
/// releases any lock it holds); dropped in a forked child, it is leaked instead, since
/// closing would end the parent's session.
struct Conn {
    client: ManuallyDrop<Client>,
    pid: u32,
    /// Set for lock connections: they count toward the pool's bound.
    pool: Option<Arc<PgShared>>,
    /// The lock path's statements, prepared on this session at their first use (see
    /// [`Conn::query`]).
    prepared: HashMap<&'static str, Statement>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("closed", &self.client.is_closed())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// `sql` (parameter types `types`) prepared on this session, at its first use. The
    /// lock path's statements run on pooled sessions again and again: parsing and
    /// planning them each time (`query_typed`) would cost the server more than running
    /// them, most of all the statements that write holder rows. Running a prepared
    /// statement is still one round trip.
    fn statement(
        &mut self,
        sql: &'static str,
        types: &[Type],
    ) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare_typed(sql, types)?;
        self.prepared.insert(sql, s.clone());
        Ok(s)
    }

    /// Runs `sql` as a prepared statement (see [`Conn::statement`]).
    fn query(
        &mut self,
        sql: &'static str,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql, types)?;
        self.client.query(&statement, params)
    }

    /// [`Conn::query`] for a statement that returns one row.
    fn query_one(
        &mut self,
        sql: &'static str,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let statement = self.statement(sql, types)?;
        self.client.query_one(&statement, params)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.pid != current_pid() {
            return; // the parent's socket: leave it alone (leaks this copy's memory only)
        }
        let client = &mut self.client;
        // SAFETY: dropped exactly once, here, and never used again.
        blocking(|| unsafe { ManuallyDrop::drop(client) });
        if let Some(pool) = &self.pool {
            pool.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl PgShared {
    /// An `Io` error naming the lock (if any), the operation and the URL.
    fn err(&self, lock: Option<&str>, op: &str, e: postgres::Error) -> LockError {
        let (kind, hint) = classify(&e);
        let prefix = lock.map_or(String::new(), |l| format!("lock \"{l}\": "));
        let e_text = describe(&e);
        LockError::Io(io::Error::new(
            kind,
            WithContext {
                message: format!(
                    "{prefix}cannot {op} (PostgreSQL at {}): {e_text}{hint}",
                    self.url
                ),
                source: e,
            },
        ))
    }

    /// Opens a connection; `limit` bounds the connect timeout (a timed acquisition's
    /// remaining wait). Errors name `lock` (if any) and the URL.
    fn connect(&self, lock: Option<&str>, limit: Option<Duration>) -> Result<Conn, LockError> {
        let mut config = self.config.clone();
        let timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(CONNECT_TIMEOUT);
        let timeout = limit.map_or(timeout, |l| timeout.min(l.max(Duration::from_millis(1))));
        config.connect_timeout(timeout);
        if self.own_app_name {
            let mut app = format!("{APP_PREFIX}{}@{}", current_pid(), crate::info::this_host());
            while app.len() > 63 {
                app.pop();
            }
            config.application_name(&app);
        }
        // `postgres::Config::connect` builds a runtime per connection and unwraps that
        // (postgres 0.19): with no descriptor left it would panic. Check that a few are
        // free first (the runtime's epoll and wake-up descriptors and the socket), so
        // that the usual case gives a clean error; `open_client` catches the panic of the
        // race with other threads taking the last ones.
        if let Err(e) = spare_descriptors(FDS_PER_CONNECTION) {
            return Err(self.no_descriptors(lock, e));
        }
        let mut client = self.open_client(lock, &config)?;
        // Holder rows need no durability (they die with their sessions); fencing tokens
        // turn synchronous commit back on for their own transaction. Server-side
        // keepalives make the server notice a holder host that vanished (power loss,
        // network) in about 25 s instead of the system default of hours, and release
        // its locks (ignored on Unix sockets).
        client
            .batch_execute(SESSION_SETUP)
            .map_err(|e| self.err(lock, "connect", e))?;
        Ok(Conn {
            client: ManuallyDrop::new(client),
            pid: current_pid(),
            pool: None,
            prepared: HashMap::new(),
        })
    }

    /// `config.connect`, with its panics (a runtime it cannot create) turned into errors.
    fn open_client(&self, lock: Option<&str>, config: &Config) -> Result<Client, LockError> {
        let connected =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.connect(NoTls)));
        match connected {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(match fd_exhaustion(&e) {
                Some(io) => self.no_descriptors(lock, io),
                None => self.err(lock, "connect", e),
            }),
            Err(panic) => {
                let text = panic_text(&*panic);
                if text.contains("Too many open files") || text.contains("os error 24") {
                    return Err(
                        self.no_descriptors(lock, io::Error::from_raw_os_error(libc::EMFILE))
                    );
                }
                if text.contains("os error 23") {
                    return Err(
                        self.no_descriptors(lock, io::Error::from_raw_os_error(libc::ENFILE))
                    );
                }
                let prefix = lock.map_or(String::new(), |l| format!("lock \"{l}\": "));
                Err(LockError::Io(io::Error::other(format!(
                    "{prefix}cannot connect (PostgreSQL at {}): the PostgreSQL client failed \
                     while setting up the connection: {text}",
                    self.url
                ))))
            }
        }
    }

    /// The error for a connection that cannot be opened for want of file descriptors:
    /// kind and errno of `cause` (EMFILE or ENFILE) kept as its source.
    fn no_descriptors(&self, lock: Option<&str>, cause: io::Error) -> LockError {
        let prefix = lock.map_or(String::new(), |l| format!("lock \"{l}\": "));
        let hint = if cause.raw_os_error() == Some(libc::ENFILE) {
            "the system's file table is full"
        } else {
            "this process has no file descriptor left: raise the limit (ulimit -n, \
             RLIMIT_NOFILE) or hold fewer locks at once"
        };
        LockError::Io(io::Error::new(
            cause.kind(),
            WithContext {
                message: format!(
                    "{prefix}cannot connect (PostgreSQL at {}): {cause}; too many open \
                     files: {hint} (each PostgreSQL connection takes about \
                     {FDS_PER_CONNECTION} descriptors)",
                    self.url
                ),
                source: cause,
            },
        ))
    }

    fn idle(&self) -> MutexGuard<'_, Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let pid = current_pid();
        if idle.pid != pid {
            // A forked child: the parent's connections are not ours (dropping them leaks).
            idle.conns.clear();
            idle.pid = pid;
            self.open.store(0, Ordering::Release);
        }
        idle
    }

    /// A lock connection: an idle one, or a new one while the pool has room.
    /// `Ok((conn, reused))`. An idle connection is not checked (that would cost a round
    /// trip or a timer tick): a caller whose first statement finds it closed retries on
    /// a new one.
    fn checkout(
        self: &Arc<Self>,
        name: &LockName,
        wait: &WaitCtx,
    ) -> Result<(Conn, bool), LockError> {
        loop {
            let candidate = self.idle().conns.pop();
            match candidate {
                Some(c) if c.client.is_closed() => {
                    tracing::debug!(url = %self.url, "dropping a pooled connection that is closed");
                }
                Some(c) => return Ok((c, true)),
                None => break,
            }
        }
        // Reserve a slot, then connect outside any lock.
        let mut open = self.open.load(Ordering::Acquire);
        loop {
            if open >= self.pool_size {
                return Err(LockError::Io(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "lock \"{}\": all {} PostgreSQL connections of this process's pool \
                         for {} are in use (each lock held or awaited on a different name \
                         takes one); raise the bound with \
                         ScanLockManager::builder_from_url(..)?.pg_pool_size(n), or hold \
                         fewer locks at once",
                        name.as_str(),
                        self.pool_size,
                        self.url
                    ),
                )));
            }
            match self.open.compare_exchange_weak(
                open,
                open + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => open = now,
            }
        }
        let limit = match wait.deadline {
            Deadline::At(t) => Some(t.saturating_duration_since(Instant::now())),
            _ => None,
        };
        let result = self.connect(Some(name.as_str()), limit);
        match result {
            Ok(mut c) => {
                c.pool = Some(self.clone()); // takes over the reserved slot
                Ok((c, false))
            }
            Err(e) => {
                self.open.fetch_sub(1, Ordering::AcqRel);
                Err(e)
            }
        }
    }

    /// Returns an idle lock connection to the pool.
    fn put(&self, conn: Conn) {
        let mut idle = self.idle();
        if conn.pid == idle.pid {
            idle.conns.push(conn);
        }
    }
}

/// The PostgreSQL back end of one manager (one URL and namespace per process).
pub(crate) struct PgBackend {
    shared: Arc<PgShared>,
    /// The connection for status, cleanup and listing (not counted in the pool).
    control: Mutex<Option<Conn>>,
    /// Keys whose `scanlock_fencing` row is known to exist.
    registered: Arc<Mutex<HashSet<i64>>>,
}

impl fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBackend")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl PgBackend {
    /// Connects to the database at `url` (creating scanlock's tables if needed).
    pub(crate) fn connect(url: &str, options: &PgOptions) -> Result<PgBackend, LockError> {
        blocking(|| Self::connect_now(url, options))
    }

    fn connect_now(url: &str, options: &PgOptions) -> Result<PgBackend, LockError> {
        let shown = redact(url);
        let mut config: Config = url.parse().map_err(|e| LockError::InvalidUrl {
            url: shown.clone(),
            reason: format!("not a PostgreSQL connection URL: {e}"),
        })?;
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(KEEPALIVE_IDLE);
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(KEEPALIVE_INTERVAL);
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(KEEPALIVE_RETRIES);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        let own_app_name = config.get_application_name().is_none();
        let shared = Arc::new(PgShared {
            config,
            url: shown,
            namespace: options.namespace.clone(),
            pool_size: options.pool_size.max(1),
            open: AtomicUsize::new(0),
            idle: Mutex::new(Idle {
                pid: current_pid(),
                conns: Vec::new(),
            }),
            own_app_name,
        });
        let backend = PgBackend {
            shared,
            control: Mutex::new(None),
            registered: Arc::default(),
        };
        backend.with_control(None, "create scanlock's tables", |c| {
            let exists: bool = c
                .query_one(
                    "SELECT to_regclass('scanlock_fencing') IS NOT NULL \
                     AND to_regclass('scanlock_holders') IS NOT NULL",
                    &[],
                )?
                .get(0);
            if !exists {
                let mut tx = c.transaction()?;
                // Concurrent CREATE TABLE IF NOT EXISTS can fail on the catalog's
                // unique index: serialise creators.
                let k = advisory_key("scanlock-schema", "");
                tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({k});{SCHEMA}"))?;
                tx.commit()?;
            }
            Ok(())
        })?;
        Ok(backend)
    }

    /// Runs `f` on the control connection, (re)connecting as needed; retries once when
    /// the connection turns out to be closed (e.g. after a server restart).
    fn with_control<T>(
        &self,
        lock: Option<&str>,
        op: &str,
        mut f: impl FnMut(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, LockError> {
        let mut ctl = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        let mut retried = false;
        loop {
            if ctl
                .as_ref()
                .is_none_or(|c| c.pid != current_pid() || c.client.is_closed())
            {
                *ctl = None;
                let c = self.shared.connect(lock, None)?;
                *ctl = Some(c);
            }
            let Some(c) = ctl.as_mut() else {
                unreachable!("connected above")
            };
            match f(&mut c.client) {
                Ok(v) => return Ok(v),
                Err(e) if !retried && connection_gone(&e, c) => {
                    tracing::debug!(url = %self.shared.url, error = %e, "status connection lost; reconnecting");
                    *ctl = None;
                    retried = true;
                }
                Err(e) => return Err(self.shared.err(lock, op, e)),
            }
        }
    }

    fn key(&self, name: &LockName) -> i64 {
        advisory_key(&self.shared.namespace, name.as_str())
    }

    /// Records `name` in `scanlock_fencing` (once per process and name), so that
    /// `lock_names` lists it.
    fn register(&self, conn: &mut Conn, key: i64, name: &LockName) {
        let mut known = self
            .registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if known.contains(&key) {
            return;
        }
        let r = conn.client.execute_typed(
            "INSERT INTO scanlock_fencing (key, namespace, name, token) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (key) DO NOTHING",
            &[
                (&key, Type::INT8),
                (&self.shared.namespace, Type::TEXT),
                (&name.as_str(), Type::TEXT),
            ],
        );
        match r {
            Ok(_) => {
                if known.len() >= REGISTERED_NAMES {
                    known.clear();
                }
                known.insert(key);
            }
            Err(e) => {
                tracing::warn!(lock = name.as_str(), error = %e, "could not record the lock name in scanlock_fencing")
            }
        }
    }
}

/// After a wait that ended with `lock_timeout` (55P03): releases the lock if the server
/// granted it anyway, so that the connection goes back to the pool holding nothing.
///
/// PostgreSQL can grant a lock to a waiter whose timeout fired at the same moment (the
/// releasing session grants it while the waiter is about to raise the timeout error, and
/// the waiter's error cleanup keeps the granted lock, `LockErrorCleanup` →
/// `GrantAwaitedLock`). For a session-level advisory lock that grant outlives the failed
/// statement: the session holds the lock although the client was told it timed out. A
/// pooled connection holding a lock nobody knows of blocks that name for every other
/// session until the process exits (found by the torture run with SIGSTOP faults, which
/// make the race likely). One round trip, on the timeout path only.
fn give_back_if_granted(conn: &mut Conn, key: i64, mode: LockType) -> Result<(), postgres::Error> {
    let (lock_mode, unlock) = match mode {
        LockType::Shared => ("ShareLock", "pg_advisory_unlock_shared"),
        LockType::Exclusive => ("ExclusiveLock", "pg_advisory_unlock"),
    };
    let sql = format!(
        "SELECT {unlock}($1) FROM pg_locks WHERE locktype = 'advisory' \
           AND pid = pg_backend_pid() AND granted AND objsubid = 1 AND mode = '{lock_mode}' \
           AND ((classid::int8 << 32) | objid::int8) = $1"
    );
    let rows = conn.client.query_typed(&sql, &[(&key, Type::INT8)])?;
    if !rows.is_empty() {
        tracing::debug!(
            key,
            "PostgreSQL granted the lock as the wait timed out; released it again"
        );
    }
    Ok(())
}

/// A holder's row of `scanlock_holders`, ready to insert: the parameters `$2`..`$5` of
/// [`INSERT_HOLDER`] and of the folded try statements of [`lock_on`] (`$1` is the key).
struct HolderRow<'a> {
    namespace: &'a str,
    name: &'a str,
    lock_type: String,
    info: String,
}

/// Inserts a holder row on a session that holds the key.
const INSERT_HOLDER: &str = "INSERT INTO scanlock_holders \
     (namespace, key, name, backend_pid, lock_type, info) \
     VALUES ($2, $1, $3, pg_backend_pid(), $4, $5) RETURNING id";

impl<'a> HolderRow<'a> {
    fn new(
        namespace: &'a str,
        name: &'a str,
        mode: LockType,
        info: &LockInfo,
    ) -> Result<HolderRow<'a>, LockError> {
        let info = serde_json::to_string(info).map_err(|e| {
            LockError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("lock \"{name}\": cannot encode holder metadata: {e}"),
            ))
        })?;
        Ok(HolderRow {
            namespace,
            name,
            lock_type: mode.to_string(),
            info,
        })
    }

    /// The types of [`HolderRow::params`].
    const TYPES: [Type; 5] = [Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT];

    /// `$1` = `key`, then the row's columns.
    fn params<'p>(&'p self, key: &'p i64) -> [&'p (dyn ToSql + Sync); 5] {
        [
            key,
            &self.namespace,
            &self.name,
            &self.lock_type,
            &self.info,
        ]
    }
}

/// Takes the advisory lock on `conn` as `wait` allows: `Ok(Some(id))` when held,
/// `Ok(None)` when the wait ended without it (the connection is then clean and
/// reusable). `id` is the id of `row`'s row when the lock statement inserted it too.
///
/// Every mode starts with one `pg_try_advisory_lock`: the cheapest statement (a waiting
/// statement with its own `lock_timeout` costs the server tens of µs more to plan), and
/// as fair as waiting, since the server refuses a try that conflicts with a request
/// already queued. Only when that fails does the server wait. With a `row` (metadata
/// on), the try and the insert of the row are one statement, so that an uncontended
/// acquisition stays one round trip: `INSERT ... SELECT ... FROM (try) WHERE ok
/// RETURNING id`, which inserts nothing and returns no row when the try fails. Should
/// the insert fail in a live session (privileges, a dropped table), the session may
/// hold the lock anyway (session-level advisory locks ignore the rollback of the
/// statement that took them): that is given back, `row` is set to `None` (the holder
/// goes without a row, with a warning), and the acquisition goes on without metadata.
/// After a wait, the row is not inserted here: the waiting statement stays a plain
/// lock, so that its `lock_timeout` covers the wait only.
fn lock_on(
    conn: &mut Conn,
    key: i64,
    mode: LockType,
    wait: &WaitCtx,
    row: &mut Option<HolderRow<'_>>,
) -> Result<Option<Option<i64>>, postgres::Error> {
    let (try_sql, try_insert_sql, forever_sql, wait_sql) = match mode {
        LockType::Shared => (
            "SELECT pg_try_advisory_lock_shared($1)",
            "WITH l AS MATERIALIZED (SELECT pg_try_advisory_lock_shared($1) AS ok) \
             INSERT INTO scanlock_holders (namespace, key, name, backend_pid, lock_type, info) \
             SELECT $2, $1, $3, pg_backend_pid(), $4, $5 FROM l WHERE l.ok RETURNING id",
            "SELECT pg_advisory_lock_shared($1)::text",
            "WITH t AS MATERIALIZED (SELECT set_config('lock_timeout', $2, true)) \
             SELECT pg_advisory_lock_shared($1)::text FROM t",
        ),
        LockType::Exclusive => (
            "SELECT pg_try_advisory_lock($1)",
            "WITH l AS MATERIALIZED (SELECT pg_try_advisory_lock($1) AS ok) \
             INSERT INTO scanlock_holders (namespace, key, name, backend_pid, lock_type, info) \
             SELECT $2, $1, $3, pg_backend_pid(), $4, $5 FROM l WHERE l.ok RETURNING id",
            "SELECT pg_advisory_lock($1)::text",
            "WITH t AS MATERIALIZED (SELECT set_config('lock_timeout', $2, true)) \
             SELECT pg_advisory_lock($1)::text FROM t",
        ),
    };
    let attempt = |conn: &mut Conn,
                   row: &mut Option<HolderRow<'_>>|
     -> Result<Option<Option<i64>>, postgres::Error> {
        if let Some(r) = row.as_ref() {
            match conn.query(try_insert_sql, &HolderRow::TYPES, &r.params(&key)) {
                Ok(rows) => return Ok(rows.first().map(|row| Some(row.get(0)))),
                Err(e) if connection_gone(&e, conn) => return Err(e),
                Err(e) => {
                    tracing::warn!(lock = r.name, error = %e, "could not publish holder metadata");
                    *row = None;
                    give_back_if_granted(conn, key, mode)?;
                }
            }
        }
        let ok: bool = conn.query_one(try_sql, &[Type::INT8], &[&key])?.get(0);
        Ok(ok.then_some(None))
    };
    // `lock_timeout` is 0 (no limit) in scanlock's sessions (SESSION_SETUP) and set
    // transaction-locally, for this statement only, by a timed wait.
    let blocking = |conn: &mut Conn, ms: Option<u128>| -> Result<bool, postgres::Error> {
        let r = match ms {
            None => conn.client.query_typed(forever_sql, &[(&key, Type::INT8)]),
            Some(ms) => {
                let timeout = format!("{ms}ms");
                conn.client
                    .query_typed(wait_sql, &[(&key, Type::INT8), (&timeout, Type::TEXT)])
            }
        };
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                give_back_if_granted(conn, key, mode)?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    };
    if let Some(taken) = attempt(conn, row)? {
        return Ok(Some(taken));
    }
    if wait.deadline == Deadline::Try {
        return Ok(None);
    }
    if wait.cancel.is_none() && wait.deadline == Deadline::Forever {
        return Ok(blocking(conn, None)?.then_some(None));
    }
    loop {
        if wait.cancelled() {
            return Ok(None);
        }
        let left = match wait.deadline {
            Deadline::At(t) => t.saturating_duration_since(Instant::now()),
            _ => Duration::MAX,
        };
        if left.is_zero() {
            return Ok(None);
        }
        let slice = if wait.cancel.is_some() {
            left.min(CANCEL_SLICE)
        } else {
            left
        };
        // Round up: lock_timeout has millisecond resolution and 0 means "no limit"; its
        // largest value is about 24.8 days (a longer wait takes several rounds).
        let ms = slice.as_micros().div_ceil(1000).clamp(1, i32::MAX as u128);
        if blocking(conn, Some(ms))? {
            return Ok(Some(None));
        }
        if let Deadline::At(t) = wait.deadline
            && Instant::now() >= t
        {
            return Ok(None);
        }
    }
}

/// The back end's operations, called where the blocking client may run (see
/// [`blocking`]).
impl PgBackend {
    /// Takes the lock and, with `info`, publishes the holder's row: in the lock's own
    /// statement when the first try succeeds, else after the wait (one more round trip).
    fn acquire_now(
        &self,
        name: &LockName,
        mode: LockType,
        wait: &WaitCtx,
        info: Option<&LockInfo>,
    ) -> Result<Held, LockError> {
        let key = self.key(name);
        let mut row = match info
            .map(|i| HolderRow::new(&self.shared.namespace, name.as_str(), mode, i))
        {
            Some(Err(e)) => {
                tracing::warn!(lock = name.as_str(), error = %e, "could not publish holder metadata");
                None
            }
            Some(Ok(row)) => Some(row),
            None => None,
        };
        let mut retried = false;
        loop {
            let (mut conn, reused) = self.shared.checkout(name, wait)?;
            match lock_on(&mut conn, key, mode, wait, &mut row) {
                Ok(Some(id)) => {
                    self.register(&mut conn, key, name);
                    let lock = PgLock {
                        conn: Some(Arc::new(Mutex::new(conn))),
                        shared: self.shared.clone(),
                        key,
                        mode,
                        name: name.as_str().to_owned(),
                        token: OnceLock::new(),
                        lost: AtomicBool::new(false),
                        pid: current_pid(),
                    };
                    let record = match (id, &row, info) {
                        (Some(id), _, _) => lock.record(id),
                        // Acquired after a wait: the row was not part of the lock statement.
                        (None, Some(_), Some(info)) => publish_holder(&lock, name, info),
                        _ => None,
                    };
                    return Ok((Box::new(lock), record));
                }
                Ok(None) => {
                    self.shared.put(conn);
                    return Err(wait.give_up(name, mode));
                }
                // A pooled connection the server closed since its last use (a restart):
                // try once more on a fresh one.
                Err(e) if reused && !retried && connection_gone(&e, &conn) => {
                    tracing::debug!(lock = name.as_str(), error = %e, "pooled connection was closed; reconnecting");
                    retried = true;
                }
                // Anything else: close the connection, which releases whatever the
                // failed statement may have taken.
                Err(e) => return Err(self.shared.err(Some(name.as_str()), "take the lock", e)),
            }
        }
    }

    fn status_now(&self, name: &LockName) -> Result<LockStatus, LockError> {
        let key = self.key(name);
        let sql = format!(
            "WITH adv AS ({ADVISORY}) \
             SELECT a.pid, a.mode, a.granted, s.application_name, NULL::text AS info \
               FROM adv a LEFT JOIN pg_stat_activity s ON s.pid = a.pid WHERE a.key = $1 \
             UNION ALL \
             SELECT h.backend_pid, NULL, NULL, NULL, h.info FROM scanlock_holders h \
               WHERE h.key = $1 AND h.namespace = $2"
        );
        let rows = self.with_control(Some(name.as_str()), "read the lock's status", |c| {
            c.query_typed(
                &sql,
                &[(&key, Type::INT8), (&self.shared.namespace, Type::TEXT)],
            )
        })?;
        // backend pid -> (mode, application_name) of granted locks
        let mut granted: HashMap<i32, (LockType, Option<String>)> = HashMap::new();
        let mut waiting_writers = Vec::new();
        let mut records: Vec<(i32, Option<LockInfo>)> = Vec::new();
        for row in &rows {
            let pid: i32 = row.get(0);
            let info: Option<String> = row.get(4);
            if let Some(info) = info {
                records.push((pid, serde_json::from_str(&info).ok()));
                continue;
            }
            let mode = match row.get::<_, Option<&str>>(1) {
                Some("ExclusiveLock") => LockType::Exclusive,
                Some("ShareLock") => LockType::Shared,
                _ => continue,
            };
            let app: Option<String> = row.get(3);
            if row.get::<_, Option<bool>>(2) == Some(true) {
                granted.insert(pid, (mode, app));
            } else if mode == LockType::Exclusive
                && let Some((client_pid, _)) = app.as_deref().and_then(parse_app_name)
            {
                waiting_writers.push(client_pid);
            }
        }
        let mut holders = Vec::new();
        let mut stale_records = 0;
        let mut with_rows = HashSet::new();
        for (pid, info) in records {
            if !granted.contains_key(&pid) {
                stale_records += 1;
            } else if let Some(info) = info {
                with_rows.insert(pid);
                holders.push(info);
            }
        }
        for (pid, (mode, app)) in &granted {
            if !with_rows.contains(pid) {
                holders.push(foreign_holder(name, *pid, *mode, app.as_deref()));
            }
        }
        let lock_type = granted
            .values()
            .map(|(m, _)| *m)
            .max_by_key(|m| *m == LockType::Exclusive);
        waiting_writers.sort_unstable();
        waiting_writers.dedup();
        Ok(LockStatus {
            name: name.as_str().to_owned(),
            lock_type,
            holders,
            stale_records,
            waiting_writers,
            problems: Vec::new(),
        })
    }

    fn stale_now(&self, remove: bool) -> Result<Vec<StaleRecord>, LockError> {
        let verb = if remove {
            "DELETE FROM scanlock_holders h"
        } else {
            "SELECT h.id, h.backend_pid, h.info FROM scanlock_holders h"
        };
        let tail = if remove {
            "RETURNING h.id, h.backend_pid, h.info"
        } else {
            ""
        };
        let sql = format!(
            "WITH adv AS ({ADVISORY}) {verb} WHERE h.namespace = $1 AND NOT EXISTS \
             (SELECT 1 FROM adv a WHERE a.granted AND a.pid = h.backend_pid AND a.key = h.key) \
             {tail}"
        );
        let rows = self.with_control(None, "look for stale holder rows", |c| {
            c.query_typed(&sql, &[(&self.shared.namespace, Type::TEXT)])
        })?;
        Ok(rows
            .iter()
            .map(|r| {
                let id: i64 = r.get(0);
                let backend: i32 = r.get(1);
                let info: String = r.get(2);
                StaleRecord {
                    location: format!("scanlock_holders id={id} (backend pid {backend})"),
                    holder: serde_json::from_str(&info).ok(),
                }
            })
            .collect())
    }

    fn names_now(&self) -> Result<Vec<String>, LockError> {
        let rows = self.with_control(None, "list lock names", |c| {
            c.query_typed(
                "SELECT name FROM scanlock_fencing WHERE namespace = $1 \
                 UNION SELECT name FROM scanlock_holders WHERE namespace = $1",
                &[(&self.shared.namespace, Type::TEXT)],
            )
        })?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

impl Backend for PgBackend {
    fn acquire(
        &self,
        name: &LockName,
        mode: LockType,
        wait: &WaitCtx,
    ) -> Result<Box<dyn BackendLock>, LockError> {
        blocking(|| self.acquire_now(name, mode, wait, None)).map(|(lock, _)| lock)
    }

    fn acquire_with_holder(
        &self,
        name: &LockName,
        mode: LockType,
        wait: &WaitCtx,
        info: Option<&LockInfo>,
    ) -> Result<Held, LockError> {
        blocking(|| self.acquire_now(name, mode, wait, info))
    }

    fn status(&self, name: &LockName) -> Result<LockStatus, LockError> {
        blocking(|| self.status_now(name))
    }

    fn stale(&self, remove: bool) -> Result<Vec<StaleRecord>, LockError> {
        blocking(|| self.stale_now(remove))
    }

    fn names(&self) -> Result<Vec<String>, LockError> {
        blocking(|| self.names_now())
    }
}

/// Runs `f` where the blocking client may run. The `postgres` crate drives each
/// connection with a runtime of its own and panics when called inside a tokio runtime
/// (an `async fn` holding or dropping a guard, `acquire_lock_async`'s first attempt):
/// there, `f` runs on a short-lived helper thread instead (some tens of µs more).
fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// `scanlock/<pid>@<host>` → `(pid, host)`.
fn parse_app_name(app: &str) -> Option<(u32, &str)> {
    let rest = app.strip_prefix(APP_PREFIX)?;
    let (pid, host) = rest.split_once('@').unwrap_or((rest, ""));
    Some((pid.parse().ok()?, host))
}

/// A holder that keeps no row: a scanlock process with metadata off (known by its
/// connection's name) or another program locking the same key.
fn foreign_holder(name: &LockName, backend: i32, mode: LockType, app: Option<&str>) -> LockInfo {
    let mut h = LockInfo::for_current_thread(name.as_str(), "", mode, true);
    h.acquired_at = std::time::SystemTime::UNIX_EPOCH;
    h.thread_id = 0;
    h.boot_id = String::new();
    match app.and_then(parse_app_name) {
        Some((pid, host)) => {
            h.pid = pid;
            h.hostname = host.to_owned();
            h.thread = String::new();
        }
        None => {
            h.pid = 0;
            h.hostname = String::new();
            h.thread = format!("postgres backend {backend}");
            h.user = app.unwrap_or_default().to_owned();
        }
    }
    h
}

/// A held advisory lock and the connection it lives on.
struct PgLock {
    /// Shared with this hold's holder records, which delete their rows through it.
    /// `None` once released.
    conn: Option<Arc<Mutex<Conn>>>,
    shared: Arc<PgShared>,
    key: i64,
    mode: LockType,
    name: String,
    token: OnceLock<u64>,
    /// The connection was found closed: the server released the lock.
    lost: AtomicBool,
    /// The process that took the lock (a forked child must not touch it).
    pid: u32,
}

impl fmt::Debug for PgLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgLock")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn lock_conn(conn: &Mutex<Conn>) -> MutexGuard<'_, Conn> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PgLock {
    /// Notes (once, with a warning) that the connection, and so the lock, is gone.
    fn mark_lost(&self, why: &dyn fmt::Display) {
        if !self.lost.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                lock = %self.name,
                url = %self.shared.url,
                reason = %why,
                "PostgreSQL connection lost while holding the lock: the server has released it"
            );
        }
    }

    fn lost_error(&self, detail: &dyn fmt::Display) -> LockError {
        LockError::Io(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!(
                "lock \"{}\": the PostgreSQL connection to {} was lost while the lock was held \
                 ({detail}); the server released the lock when the session ended, so work \
                 done since then was not protected by it (check fencing tokens)",
                self.name, self.shared.url
            ),
        ))
    }

    /// Releases the lock; with `row`, the id of the last holder's row, deletes that row
    /// in the same statement (one round trip). The delete runs first (the unlock reads
    /// its count), so that a delete that fails leaves the lock held, to be released by
    /// the plain unlock that follows (the row is then stale, for cleanup). Data-modifying
    /// CTEs run whether or not they are read; reading it also fixes the order.
    fn unlock(&mut self, row: Option<i64>) -> Result<(), LockError> {
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        if self.pid != current_pid() {
            std::mem::forget(conn); // the parent's connection and lock
            return Ok(());
        }
        let (sql, delete_sql) = match self.mode {
            LockType::Shared => (
                "SELECT pg_advisory_unlock_shared($1)",
                "WITH d AS (DELETE FROM scanlock_holders WHERE id = $2 RETURNING 1) \
                 SELECT pg_advisory_unlock_shared($1) FROM (SELECT count(*) FROM d) n",
            ),
            LockType::Exclusive => (
                "SELECT pg_advisory_unlock($1)",
                "WITH d AS (DELETE FROM scanlock_holders WHERE id = $2 RETURNING 1) \
                 SELECT pg_advisory_unlock($1) FROM (SELECT count(*) FROM d) n",
            ),
        };
        let result = {
            let mut c = lock_conn(&conn);
            let folded = row.map(|id| {
                let r = c.query_one(delete_sql, &[Type::INT8, Type::INT8], &[&self.key, &id]);
                (id, r)
            });
            match folded {
                None => c.query_one(sql, &[Type::INT8], &[&self.key]),
                Some((id, Err(e))) if !connection_gone(&e, &c) => {
                    tracing::warn!(id, error = %e, "could not delete a holder row");
                    c.query_one(sql, &[Type::INT8], &[&self.key])
                }
                Some((_, r)) => r,
            }
        };
        match result {
            Ok(row) if row.get::<_, bool>(0) => {
                // Back to the pool, unless a holder record still shares it (not expected:
                // records are dropped before the lock).
                if let Ok(m) = Arc::try_unwrap(conn) {
                    self.shared
                        .put(m.into_inner().unwrap_or_else(PoisonError::into_inner));
                }
                Ok(())
            }
            Ok(_) => {
                // The session lives but does not hold the lock: someone unlocked it on
                // our connection. Drop the connection to be safe.
                self.mark_lost(&"the server says the lock was not held");
                Err(self.lost_error(&"the server says the lock was not held at release"))
            }
            Err(e) => {
                self.mark_lost(&e);
                Err(self.lost_error(&e))
            }
        }
    }
}

impl Drop for PgLock {
    fn drop(&mut self) {
        if let Err(e) = blocking(|| self.unlock(None)) {
            tracing::warn!(error = %e, "error while releasing a PostgreSQL lock");
        }
    }
}

impl PgLock {
    fn add_holder_now(&self, info: &LockInfo) -> Result<Box<dyn HolderRecord>, LockError> {
        let Some(conn) = &self.conn else {
            return Err(self.lost_error(&"already released"));
        };
        let holder = HolderRow::new(&self.shared.namespace, &self.name, self.mode, info)?;
        let row = {
            let mut c = lock_conn(conn);
            let r = c.query_one(INSERT_HOLDER, &HolderRow::TYPES, &holder.params(&self.key));
            if r.is_err() && c.client.is_closed() {
                drop(c);
                self.mark_lost(&"the connection closed while writing holder metadata");
            }
            r
        };
        let id: i64 = row
            .map_err(|e| {
                self.shared
                    .err(Some(&self.name), "write holder metadata", e)
            })?
            .get(0);
        self.record(id)
            .ok_or_else(|| self.lost_error(&"already released"))
    }

    /// The record of the row `id`, inserted on this hold's connection.
    fn record(&self, id: i64) -> Option<Box<dyn HolderRecord>> {
        let conn = self.conn.as_ref()?;
        Some(Box::new(PgRecord {
            conn: conn.clone(),
            id,
            pid: current_pid(),
            armed: true,
        }))
    }

    fn fencing_token_now(&self) -> u64 {
        *self.token.get_or_init(|| {
            let Some(conn) = &self.conn else { return 0 };
            let mut c = lock_conn(conn);
            let r = match self.mode {
                // max(stored + 1, µs on the server's clock), committed synchronously
                // although the session's default is asynchronous.
                LockType::Exclusive => c.client.query_typed_one(
                    "WITH s AS MATERIALIZED (SELECT set_config('synchronous_commit', 'on', true)) \
                     INSERT INTO scanlock_fencing AS f (key, namespace, name, token) \
                     SELECT $1, $2, $3, (extract(epoch FROM clock_timestamp()) * 1000000)::int8 FROM s \
                     ON CONFLICT (key) DO UPDATE \
                       SET token = GREATEST(f.token + 1, EXCLUDED.token), name = EXCLUDED.name \
                     RETURNING token",
                    &[
                        (&self.key, Type::INT8),
                        (&self.shared.namespace, Type::TEXT),
                        (&self.name, Type::TEXT),
                    ],
                ),
                LockType::Shared => c.client.query_typed_one(
                    "SELECT COALESCE((SELECT token FROM scanlock_fencing WHERE key = $1), 0)",
                    &[(&self.key, Type::INT8)],
                ),
            };
            match r {
                Ok(row) => u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
                Err(e) => {
                    let closed = c.client.is_closed();
                    drop(c);
                    if closed {
                        self.mark_lost(&e);
                    }
                    tracing::warn!(lock = %self.name, error = %e, "cannot read or advance the fencing token");
                    0
                }
            }
        })
    }

    /// One round trip on the hold's own connection: a session that answers still holds
    /// its session-level advisory locks, so the answer is exact as of the moment the
    /// server sent it. Looking at the socket without a round trip is not enough: the
    /// blocking client reads only while a call runs on it, so a termination notice or
    /// end of file the server sent (after which another session may already have been
    /// granted the lock) can sit unread in the socket buffer.
    fn is_held_now(&self) -> bool {
        if self.lost.load(Ordering::Acquire) {
            return false;
        }
        let Some(conn) = &self.conn else { return false };
        if self.pid != current_pid() {
            return false; // a forked child: the parent's session, never to be touched here
        }
        let mut c = lock_conn(conn);
        if c.client.is_closed() {
            drop(c);
            self.mark_lost(&"the server closed the connection");
            return false;
        }
        // An empty query: the cheapest statement the server answers (EmptyQueryResponse,
        // ReadyForQuery), with no parse or plan.
        match c.client.simple_query("") {
            Ok(_) => true,
            Err(e) => {
                drop(c);
                self.mark_lost(&e);
                false
            }
        }
    }
}

impl BackendLock for PgLock {
    fn add_holder(&self, info: &LockInfo) -> Result<Box<dyn HolderRecord>, LockError> {
        blocking(|| self.add_holder_now(info))
    }

    fn release(mut self: Box<Self>) -> Result<(), LockError> {
        blocking(move || self.unlock(None))
    }

    fn release_with_holder(
        mut self: Box<Self>,
        last: Option<Box<dyn HolderRecord>>,
    ) -> Result<(), LockError> {
        // A row of this hold's connection is deleted by the unlock statement; any other
        // record withdraws itself as it is dropped, before the unlock.
        let row = last.and_then(|last| {
            let last: Box<dyn std::any::Any> = last;
            let record = last.downcast::<PgRecord>().ok()?;
            let ours = self
                .conn
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, &record.conn));
            if ours { (*record).disarm() } else { None }
        });
        blocking(move || self.unlock(row))
    }

    fn renew_hold(&mut self) {
        self.token = OnceLock::new();
    }

    fn fencing_token(&self) -> u64 {
        blocking(|| self.fencing_token_now())
    }

    fn is_held(&self) -> bool {
        if self.lost.load(Ordering::Acquire) {
            return false;
        }
        blocking(|| self.is_held_now())
    }
}

/// One holder's row in `scanlock_holders`, deleted on drop through the hold's connection
/// (unless disarmed: the last holder's row is deleted by the unlock statement).
struct PgRecord {
    conn: Arc<Mutex<Conn>>,
    id: i64,
    pid: u32,
    armed: bool,
}

impl fmt::Debug for PgRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgRecord").field("id", &self.id).finish()
    }
}

impl HolderRecord for PgRecord {}

impl Drop for PgRecord {
    fn drop(&mut self) {
        if !self.armed || self.pid != current_pid() {
            return;
        }
        blocking(|| self.delete());
    }
}

impl PgRecord {
    /// Leaves the row for the caller to delete: its id, or `None` in a forked child
    /// (whose parent's row and connection are not its own).
    fn disarm(mut self) -> Option<i64> {
        self.armed = false;
        (self.pid == current_pid()).then_some(self.id)
    }

    fn delete(&self) {
        let mut c = lock_conn(&self.conn);
        if c.client.is_closed() {
            return; // the row is stale now; cleanup removes it
        }
        if let Err(e) = c.client.execute_typed(
            "DELETE FROM scanlock_holders WHERE id = $1",
            &[(&self.id, Type::INT8)],
        ) {
            tracing::warn!(id = self.id, error = %e, "could not delete a holder row");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_namespaced() {
        // Fixed values: a change would make old and new processes use different keys.
        assert_eq!(
            advisory_key("scanlock", "scan001"),
            advisory_key("scanlock", "scan001")
        );
        assert_ne!(
            advisory_key("scanlock", "scan001"),
            advisory_key("other", "scan001")
        );
        assert_ne!(
            advisory_key("scan", "lockscan001"),
            advisory_key("scanlock", "scan001")
        );
        let mut h = Sha256::new();
        h.update(b"scanlock\0scan001");
        let d = h.finalize();
        assert_eq!(advisory_key("scanlock", "scan001").to_be_bytes(), d[..8]);
    }

    #[test]
    fn app_names_parse() {
        assert_eq!(parse_app_name("scanlock/42@host-a"), Some((42, "host-a")));
        assert_eq!(parse_app_name("scanlock/42"), Some((42, "")));
        assert_eq!(parse_app_name("psql"), None);
        assert_eq!(parse_app_name("scanlock/x@h"), None);
    }

    #[test]
    fn unreachable_server_is_a_typed_error_with_the_password_hidden() {
        let started = Instant::now();
        let e = PgBackend::connect("postgres://u:s3cret@127.0.0.1:1/db", &PgOptions::default())
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        let msg = e.to_string();
        assert!(!msg.contains("s3cret"), "{msg}");
        assert!(msg.contains("postgres://u:***@127.0.0.1:1/db"), "{msg}");
        let LockError::Io(io) = e else {
            panic!("{msg}")
        };
        assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused, "{msg}");
    }

    /// The client panics when it cannot create its runtime for want of descriptors
    /// (postgres 0.19 unwraps it): `open_client` must turn that into a typed EMFILE
    /// error. In a child process (this test binary again) whose descriptors are all
    /// taken; no server is needed, the runtime is built before connecting.
    #[test]
    fn a_client_panic_for_want_of_descriptors_is_a_typed_error() {
        const CHILD: &str = "SCANLOCK_TEST_PG_NO_FDS_CHILD";
        const TEST: &str =
            "backend::postgres::tests::a_client_panic_for_want_of_descriptors_is_a_typed_error";
        if std::env::var_os(CHILD).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
                .env(CHILD, "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "child failed:\n{text}");
            assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
            return;
        }
        let shared = PgShared {
            config: "postgres://u@127.0.0.1:1/db".parse().unwrap(),
            url: "postgres://u@127.0.0.1:1/db".to_owned(),
            namespace: "scanlock".to_owned(),
            pool_size: 1,
            open: AtomicUsize::new(0),
            idle: Mutex::new(Idle {
                pid: current_pid(),
                conns: Vec::new(),
            }),
            own_app_name: true,
        };
        let lim = libc::rlimit {
            rlim_cur: 128,
            rlim_max: 128,
        };
        // SAFETY: lim is a valid rlimit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
        let mut hog = Vec::new();
        while let Ok(f) = std::fs::File::open("/dev/null") {
            hog.push(f);
        }
        let Err(e) = shared.open_client(Some("scan001"), &shared.config) else {
            panic!("connected without descriptors")
        };
        drop(hog);
        let LockError::Io(io) = &e else {
            panic!("{e:?}")
        };
        let errno = io
            .get_ref()
            .and_then(|inner| inner.source())
            .and_then(|s| s.downcast_ref::<io::Error>())
            .and_then(io::Error::raw_os_error);
        assert_eq!(errno, Some(libc::EMFILE), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("scan001") && text.contains("ulimit -n"),
            "{text}"
        );
    }

    #[test]
    fn bad_urls_are_invalid_url_errors() {
        let e =
            PgBackend::connect("postgres://u:pw@h:notaport/db", &PgOptions::default()).unwrap_err();
        assert!(matches!(e, LockError::InvalidUrl { .. }), "{e:?}");
        assert!(!e.to_string().contains("pw@"), "{e}");
    }
}
