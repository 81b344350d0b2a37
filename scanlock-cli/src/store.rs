//! Which lock store the commands use (`--root`, `--url`, `SCANLOCK_URL`) and opening it
//! without creating what an operator did not ask for.

use std::io;
use std::path::{Path, PathBuf};

use scanlock::{LockError, ScanLockManager};

use crate::cli::StoreArgs;
use crate::error::CliError;

/// Where the locks live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A lock root on a file system: the directory that holds `.locks/`.
    Dir(PathBuf),
    /// Any other back-end URL, judged by the library (e.g. `postgres://`).
    Url(String),
}

/// What a command will do with the store, which decides what may be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `status`, `watch`, `clean`: never create anything. An existing root without
    /// `.locks/` simply has no locks yet.
    Inspect,
    /// `run`: may create `<root>/.locks/` and the lock's files, as any locker would.
    Lock,
}

impl Location {
    /// From the arguments: `--root` wins, then `--url`, then `SCANLOCK_URL`.
    pub fn resolve(args: &StoreArgs) -> Result<Location, CliError> {
        if let Some(root) = &args.root {
            return Ok(Location::Dir(root.clone()));
        }
        let url = match &args.url {
            Some(url) => url.clone(),
            None => match std::env::var(scanlock::URL_ENV) {
                Ok(url) if !url.trim().is_empty() => url,
                _ => {
                    return Err(CliError::new(
                        "no lock root given",
                        format!(
                            "pass --root DIR or --url file:///DIR, or set {}=file:///DIR",
                            scanlock::URL_ENV
                        ),
                    ));
                }
            },
        };
        Location::parse_url(url.trim())
    }

    /// A `file://` URL becomes a directory, so that its existence can be checked before
    /// anything is created; every other URL goes to the library as it is.
    fn parse_url(url: &str) -> Result<Location, CliError> {
        match scanlock::file_url_root(url) {
            Ok(Some(root)) => Ok(Location::Dir(root)),
            Ok(None) => Ok(Location::Url(url.to_owned())),
            Err(e) => Err(url_error(url, e)),
        }
    }

    /// The store as a URL, for headers and `--json` (`file:///abs/root`).
    pub fn describe(&self) -> String {
        match self {
            Location::Dir(root) => {
                let abs = std::path::absolute(root).unwrap_or_else(|_| root.clone());
                format!("file://{}", abs.display())
            }
            Location::Url(url) => scanlock::redact_url(url),
        }
    }

    /// Opens a manager that changes nothing when built (no stale-record sweep).
    ///
    /// A missing root is an error for every purpose: the library would create it, and a
    /// mistyped root would then silently be a second, separate set of locks. For
    /// [`Purpose::Inspect`], an existing root without `.locks/` gives `None` (no locks)
    /// instead of creating the directory.
    pub fn open(&self, purpose: Purpose) -> Result<Option<ScanLockManager>, CliError> {
        let builder = match self {
            Location::Dir(root) => {
                check_root(root)?;
                if purpose == Purpose::Inspect && !root.join(".locks").exists() {
                    return Ok(None);
                }
                ScanLockManager::builder(root)
            }
            Location::Url(url) => {
                ScanLockManager::builder_from_url(url).map_err(|e| url_error(url, e))?
            }
        };
        builder
            .cleanup_on_start(false)
            .build()
            .map(Some)
            .map_err(|e| match (self, e) {
                (Location::Url(url), e @ LockError::InvalidUrl { .. }) => url_error(url, e),
                (Location::Url(url), e @ LockError::Io(_)) => CliError::new(
                    e.to_string(),
                    format!(
                        "check that the server of {} is up and reachable from this host",
                        scanlock::redact_url(url)
                    ),
                ),
                (_, e) => crate::error::from_lock(e, crate::error::code::ERROR),
            })
    }
}

/// The root must exist and be a directory; this is checked before the library (which
/// creates directories) sees it.
fn check_root(root: &Path) -> Result<(), CliError> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(CliError::new(
            format!("lock root {} is not a directory", root.display()),
            "give the directory that contains .locks/, not a file in it",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(CliError::new(
            format!("lock root {} does not exist", root.display()),
            "check the path (scanlock never creates a lock root; it creates only .locks/ inside one)",
        )),
        Err(e) => Err(CliError::new(
            format!("cannot use lock root {}: {e}", root.display()),
            "check that this user may read the directory",
        )),
    }
}

/// Why a non-file URL cannot be used, in the operator's terms: a back end missing from
/// this build (an unknown scheme, or one whose cargo feature is off) is said plainly;
/// anything else (a malformed URL) keeps the library's reason.
fn url_error(url: &str, err: LockError) -> CliError {
    let Some((scheme, _)) = url.split_once("://") else {
        return CliError::new(
            format!("`{url}` is not a back-end URL"),
            "write file:///path/to/root (three slashes), or use --root DIR",
        );
    };
    let known = matches!(
        scheme.to_ascii_lowercase().as_str(),
        "file" | "postgres" | "postgresql"
    );
    match err {
        LockError::InvalidUrl { reason, .. } if !known || reason.contains("this build") => {
            CliError::new(
                format!("back end `{scheme}://` is not available in this build"),
                "use a file back end: --root DIR or --url file:///DIR",
            )
        }
        LockError::InvalidUrl { url, reason } => CliError::new(
            format!("cannot use back end {url}: {reason}"),
            if scheme.eq_ignore_ascii_case("file") {
                "write file:///path/to/root (three slashes, %XX escapes), or use --root DIR"
            } else {
                "check the URL, e.g. postgres://user@host:5432/db"
            },
        ),
        other => crate::error::from_lock(other, crate::error::code::ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Location, CliError> {
        Location::parse_url(url)
    }

    #[test]
    fn file_urls_become_directories() {
        let dir = |p: &str| Ok(Location::Dir(PathBuf::from(p)));
        assert_eq!(parse("file:///var/lib/scans"), dir("/var/lib/scans"));
        assert_eq!(parse("FILE://localhost/x"), dir("/x"));
        assert_eq!(parse("file:///a%20b"), dir("/a b"));
        assert!(parse("file://relative/x").is_err());
        assert!(parse("file:///bad%2").is_err());
        assert!(parse("/var/lib/scans").is_err());
        assert_eq!(
            Location::Url("postgres://u:secret@h/db".into()).describe(),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            parse("postgres://u@h/db"),
            Ok(Location::Url("postgres://u@h/db".into()))
        );
    }
}
