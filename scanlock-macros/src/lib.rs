//! Attribute macros for [scanlock](https://docs.rs/scanlock): run a function
//! while holding a named lock.
//!
//! Use them through the `scanlock` crate, which re-exports them and provides
//! the runtime they call: `#[scanlock::synchronized]`,
//! `#[scanlock::read_locked]`, `#[scanlock::write_locked]`. See
//! [`macro@synchronized`] for the lock name templates and options all three
//! share.
//!
//! The crate is split the way tracing-attributes and thiserror are: `args`
//! parses the attribute, `template` parses and checks lock name templates
//! (pure functions), `expand` writes the code.

#![warn(missing_docs)]

use proc_macro::TokenStream;

mod args;
mod expand;
mod template;
#[cfg(test)]
mod template_proptest;

use args::MacroKind;

/// Runs the function while holding an exclusive lock (or a shared one with
/// `shared`) whose name is built from its arguments.
///
/// ```no_run
/// # use std::collections::HashMap;
/// # #[derive(Debug)] struct MyError;
/// # impl From<scanlock::LockError> for MyError { fn from(_: scanlock::LockError) -> Self { MyError } }
/// # fn main() -> Result<(), scanlock::LockError> {
/// scanlock::init_lock_root("/var/lib/scans")?; // once per process
///
/// // Locks "process-scan001" for process("scan001", ..).
/// #[scanlock::synchronized("{f_name}-{scan_id}")]
/// fn process(scan_id: &str, data: &[u8]) -> Result<usize, MyError> {
///     Ok(data.len())
/// }
/// # Ok(()) }
/// ```
///
/// The lock is taken before the body runs and released when the function
/// returns by any path: a normal return, an early `return`, `?`, or a panic.
/// If it cannot be taken, the body does not run and the function returns
/// `Err(E::from(lock_error))`, where `E` is its declared error type: a type
/// with `From<scanlock::LockError>` (`std::io::Error` and `anyhow::Error` have
/// one). The error's message names the lock and how long was waited.
///
/// # Lock name templates
///
/// The first argument, a string literal, is the lock's name. Inside it:
///
/// | placeholder | value |
/// |---|---|
/// | `{f_name}` | the function's name |
/// | `{scan_id}` | the parameter `scan_id` |
/// | `{scan.id}`, `{self.id}`, `{pair.0}` | a field |
/// | `{snap[name]}` | `snap["name"]`: a string key (as in Python's `str.format`) |
/// | `{v[0]}` | `v[0]`: an integer index |
/// | `{{`, `}}` | a literal `{`, `}` |
///
/// Values are formatted with `Display`, through references: arguments are not
/// moved or cloned, and the name is built before the body runs. A name that is
/// not a parameter, an unclosed `{`, or an empty `{}` is a compile error
/// listing the names that exist.
///
/// Without a template, the lock is named by the value of the parameter
/// `scan_id`: `#[synchronized]` alone takes the same lock as
/// `manager.acquire_lock(scan_id, LockType::Exclusive, ..)`. A function
/// without a `scan_id` parameter then needs a template.
///
/// # Options
///
/// After the template, in any order, each at most once:
///
/// - `timeout = <Duration>`: wait at most this long (default: the
///   manager's default timeout, 30 s unless configured). A bare number
///   (`timeout = 10`) is rejected: it has no unit.
/// - `blocking = false`: make one attempt and fail at once if the lock is
///   held. Cannot be combined with `timeout`.
/// - `user = <&str>`: who holds the lock, as shown by
///   `ScanLockManager::get_lock_status` (default: the function's path,
///   `module::path::fn_name`).
/// - `manager = <expr>`: the `ScanLockManager` to lock with, instead of the
///   global one (set by `scanlock::init_lock_root` or `init_lock_url`, or from
///   the `SCANLOCK_URL` environment variable; without one, a locked function
///   returns `Err(LockError::NotInitialized)`). The expression is
///   borrowed, never moved: anything that derefs to `ScanLockManager` works
///   (`self.locks`, `&self.locks`, an `Arc<ScanLockManager>`, a
///   `&'static ScanLockManager`).
/// - `shared` (`#[synchronized]` only): take a shared lock instead.
/// - `on_error = panic`: panic with the lock error's message instead of
///   returning it; required when the function does not return a `Result`.
/// - `crate = <path>`: where the `scanlock` crate is, when it is not
///   `::scanlock`: a renamed dependency (`locks = { package = "scanlock" }`
///   in Cargo.toml, then `crate = locks`) or a crate that re-exports
///   scanlock (`crate = my_facade::locks`). The expansion reaches scanlock
///   only through this path.
///
/// ```no_run
/// use std::collections::HashMap;
/// use std::time::Duration;
/// use scanlock::ScanLockManager;
///
/// struct Store {
///     id: u32,
///     locks: ScanLockManager,
/// }
///
/// impl Store {
///     // Fails at once with Err(WouldBlock) if another thread or process
///     // holds e.g. "snapshot-7-daily".
///     #[scanlock::synchronized(
///         "{f_name}-{self.id}-{snap[name]}",
///         blocking = false,
///         manager = self.locks,
///     )]
///     fn snapshot(&mut self, snap: &HashMap<String, String>) -> std::io::Result<()> {
///         Ok(())
///     }
///
///     #[scanlock::synchronized(
///         "store-{self.id}",
///         shared,
///         timeout = Duration::from_secs(5),
///         user = "reporter",
///         manager = &self.locks,
///         on_error = panic,
///     )]
///     fn report(&self) -> usize {
///         42
///     }
/// }
/// ```
///
/// # Where it applies
///
/// Free functions, methods taking `&self`, `&mut self` or `self`, trait impl
/// methods, trait methods with a default body, generic functions (`impl
/// Trait` arguments and `where` clauses included), any visibility, `unsafe
/// fn`, and `async fn`. Attributes, doc comments and the signature are kept
/// as written; inner attributes at the start of the body (`#![allow(..)]`)
/// stay there. The expansion itself triggers no lint in the user's code (a
/// crate with `#![deny(warnings)]` and clippy compiles clean).
///
/// In an `async fn`, waiting for the lock does not block the executor
/// thread, the guard is `Send` so the future stays `Send`, and dropping the
/// future while it waits leaves nothing locked:
///
/// ```no_run
/// #[scanlock::synchronized("{f_name}-{scan_id}")]
/// async fn upload(scan_id: &str) -> std::io::Result<()> {
///     // The lock is held across this .await.
///     # async fn step() {}
///     step().await;
///     Ok(())
/// }
/// ```
///
/// # Nesting
///
/// A locked function that calls another locked function with the same lock
/// name on the same thread re-enters it instead of deadlocking (shared inside
/// shared, anything inside exclusive; exclusive inside shared is
/// `Err(LockError::WouldDeadlock)` at once).
///
/// Locks taken by an `async fn` are not re-entrant: a task can move between
/// threads, so scanlock cannot tell it is the same caller. An `async fn` that
/// calls another locked function with the same name while holding it waits
/// until that call's timeout. Take the lock once, in the outermost function.
#[proc_macro_attribute]
pub fn synchronized(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(MacroKind::Synchronized, attr.into(), item.into()).into()
}

/// Runs the function while holding a shared lock: any number of readers at
/// once, never together with a writer.
///
/// Takes the same template and options as [`macro@synchronized`], except
/// `shared`. Without a template it locks the value of the parameter
/// `scan_id`:
///
/// ```no_run
/// // The same lock as acquire_lock(scan_id, LockType::Shared, ..).
/// #[scanlock::read_locked]
/// fn read_scan(scan_id: &str) -> std::io::Result<Vec<u8>> {
///     std::fs::read(format!("/var/lib/scans/{scan_id}.bin"))
/// }
/// ```
#[proc_macro_attribute]
pub fn read_locked(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(MacroKind::ReadLocked, attr.into(), item.into()).into()
}

/// Runs the function while holding an exclusive lock: no other reader or
/// writer at once.
///
/// The same as [`macro@synchronized`] without `shared`; it reads as the
/// counterpart of [`macro@read_locked`]. Without a template it locks the
/// value of the parameter `scan_id`.
///
/// ```no_run
/// use std::time::Duration;
///
/// struct Scan {
///     id: String,
/// }
///
/// #[scanlock::write_locked("{scan.id}", timeout = Duration::from_secs(10), user = "ingest")]
/// fn write_scan(scan: &Scan) -> std::io::Result<()> {
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn write_locked(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(MacroKind::WriteLocked, attr.into(), item.into()).into()
}

/// Collects every error found, so one compile shows all of a user's
/// mistakes (serde_derive's `Ctxt`, in small).
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// For callers that know an error was pushed.
    fn into_error(self) -> syn::Error {
        self.0.unwrap_or_else(|| {
            syn::Error::new(
                proc_macro2::Span::call_site(),
                "scanlock-macros: an error was expected but none was recorded",
            )
        })
    }
}
