//! Exit codes and the one error type of the commands: a message, a hint, a code.

use std::fmt;
use std::time::SystemTime;

use scanlock::LockError;

use crate::{duration, format};

/// Exit codes shared by every command (`run` also passes the command's own code through).
pub mod code {
    /// Success; for `status`: every lock asked about is free.
    pub const OK: u8 = 0;
    /// `status`: at least one lock asked about is held.
    pub const HELD: u8 = 1;
    /// Usage error (as clap reports it) or any other error: missing root, bad URL, I/O.
    pub const ERROR: u8 = 2;
    /// `run`: the lock stayed busy (`--no-wait`) or the `--timeout` passed; changeable
    /// with `--conflict-exit-code`.
    pub const BUSY: u8 = 3;
    /// `run`: the command was found but could not be executed (as in shells).
    pub const CANNOT_EXECUTE: u8 = 126;
    /// `run`: the command was not found (as in shells).
    pub const NOT_FOUND: u8 = 127;
}

/// An error as the operator sees it: one line saying what went wrong, one saying what to
/// do about it, and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// What went wrong, one line.
    pub message: String,
    /// What to do next, one line (may be empty).
    pub hint: String,
    /// The process exit code.
    pub code: u8,
}

impl CliError {
    /// An error with exit code [`code::ERROR`].
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            hint: hint.into(),
            code: code::ERROR,
        }
    }

    /// The same error with another exit code.
    pub fn with_code(mut self, code: u8) -> CliError {
        self.code = code;
        self
    }

    /// Writes the error to stderr.
    pub fn print(&self) {
        eprintln!("{self}");
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scanlock: {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

/// Turns a library error into the operator's terms. Busy locks get exit code
/// `busy_code` and a message naming the holder; the library's own messages end in hints
/// for programmers (`get_lock_status(..)`), so those are rephrased here.
pub fn from_lock(err: LockError, busy_code: u8) -> CliError {
    let now = SystemTime::now();
    let holder_text = |h: &Option<Box<scanlock::LockInfo>>| match h {
        Some(h) => format!("held {}", format::holder_sentence(h, now)),
        None => "holder unknown".to_owned(),
    };
    match err {
        LockError::Timeout {
            name,
            lock_type,
            waited,
            holder,
        } => CliError::new(
            format!(
                "timed out after {} waiting for {lock_type} lock \"{name}\": {}",
                duration::human_precise(waited),
                holder_text(&holder)
            ),
            format!("`scanlock status {name}` shows every holder; wait longer with --timeout"),
        )
        .with_code(busy_code),
        LockError::WouldBlock {
            name,
            lock_type,
            holder,
        } => CliError::new(
            format!(
                "{lock_type} lock \"{name}\" is busy: {}",
                holder_text(&holder)
            ),
            format!("`scanlock status {name}` shows every holder; --timeout 10s waits a while"),
        )
        .with_code(busy_code),
        LockError::InvalidName { name, reason } => CliError::new(
            format!("invalid lock name \"{name}\": {reason}"),
            "lock names are any non-empty text without NUL bytes, e.g. scan001",
        ),
        other => CliError::new(
            other.to_string(),
            "check the lock root and its permissions (`ls -la ROOT/.locks`)",
        ),
    }
}
