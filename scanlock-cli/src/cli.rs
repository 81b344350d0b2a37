//! The command line: arguments, help texts, the documented exit codes and JSON schemas.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Exit codes, shown in every `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0      success; status: every lock asked about is free
  1      status: at least one lock asked about is held
  2      usage error, missing lock root, bad URL, I/O error
  3      run: the lock stayed busy (--no-wait) or --timeout passed
         (another code with --conflict-exit-code)
  N      run: the command's own exit code
  128+S  run: the command was killed by signal S (143 = SIGTERM)
  126    run: the command could not be executed; 127: not found";

/// The holder object of the JSON outputs.
const HOLDER_SCHEMA: &str = r#"HOLDER is
    {
      "user": "worker",           // null: holder without scanlock metadata
      "pid": 4242,                //       (e.g. flock(1)), seen via the kernel
      "hostname": "node1",        // null if unknown
      "thread": "main",           // thread name; null if unknown
      "thread_id": 4243,          // kernel thread id; null if unknown
      "lock_type": "exclusive",   // "shared" | "exclusive"
      "acquired_at": "2024-05-01T12:03:04.250Z",  // UTC; null if unknown
      "held_for_ms": 192000       // now - acquired_at; null if unknown
    }"#;

/// `status --help` after the options: the JSON schema and exit codes.
const STATUS_AFTER: &str = r#"JSON (--json), schema version 1; fields are only ever added within a version:
  {
    "version": 1,
    "backend": "file:///var/lib/scans",
    "time": "2024-05-01T12:06:16.250Z",   // when the status was taken (UTC)
    "locks": [                            // sorted by name
      {
        "name": "scan001",
        "state": "exclusive",             // "free" | "shared" | "exclusive"
        "holders": [HOLDER, ...],         // [] when free
        "waiting_writers": [4250],        // pids waiting to write (this host)
        "stale_records": 0                // dead holders' records (clean)
      }
    ]
  }
"#;

/// `clean --help` after the options: the JSON schema.
const CLEAN_AFTER: &str = r#"JSON (--json), schema version 1:
  {
    "version": 1,
    "backend": "file:///var/lib/scans",
    "dry_run": false,
    "removed": [                          // with --dry-run: what would be removed
      {
        "name": "scan001",                // null when the record was unreadable
        "location": "/var/lib/scans/.locks/scan001.holders/...",
        "holder": HOLDER                  // null when the record was unreadable
      }
    ]
  }
"#;

/// Named shared/exclusive locks, for operators: see who holds what, run a command under
/// a lock, watch locks change, and clean up after crashed holders.
#[derive(Debug, Parser)]
#[command(
    name = "scanlock",
    version,
    about = "Inspect and use scanlock locks (<root>/.locks/) from a shell",
    long_about = "Inspect and use scanlock locks (<root>/.locks/) from a shell.\n\n\
        Never delete files under .locks/ by hand: a lock file removed while held lets a \
        second writer in. `scanlock clean` is the safe way to remove what dead holders \
        left behind.\n\n\
        The lock store is --root DIR, or --url URL, or the SCANLOCK_URL environment \
        variable (in that order). The root must exist.",
    after_long_help = EXIT_CODES,
    propagate_version = true,
    max_term_width = 80
)]
pub struct Cli {
    /// Where the locks live.
    #[command(flatten)]
    pub store: StoreArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The lock store, accepted before or after the subcommand.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Lock root: the directory that contains .locks/ (must exist)
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "url")]
    pub root: Option<PathBuf>,
    /// Back-end URL, e.g. file:///var/lib/scans [default: $SCANLOCK_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show who holds which lock (exit 1 if any is held)
    #[command(
        long_about = "Show the locks named (default: every lock under the root): state, \
            holders (user, pid, host, thread, how long), writers waiting, and records \
            left by dead holders. Changes nothing.\n\n\
            Exit code 0 when every lock shown is free, 1 when any is held (so \
            `scanlock status NAME || echo busy` works), 2 on errors.",
        after_long_help = format!("{STATUS_AFTER}\n{HOLDER_SCHEMA}\n\n{EXIT_CODES}")
    )]
    Status(StatusArgs),
    /// Run a command holding a lock, like flock(1)
    #[command(
        long_about = "Take lock NAME (exclusive unless --shared), run COMMAND, release the \
            lock when COMMAND ends, however it ends. Waits until the lock is free unless \
            --timeout or --no-wait is given (as flock(1)).\n\n\
            Exits with COMMAND's exit code, or 128+S if a signal S killed it. SIGINT, \
            SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to scanlock are passed to \
            COMMAND (signals a terminal sends reach COMMAND directly and are not sent \
            twice); scanlock keeps the lock until COMMAND has exited.\n\n\
            COMMAND inherits the lock (the locked file's descriptor, as with flock(1); \
            file back end only), so the lock stays held while anything COMMAND started \
            lives, even if scanlock is killed (SIGKILL; on Linux COMMAND itself is then \
            killed too). -o/--close: COMMAND does not inherit it.\n\n\
            Options go before NAME; everything after NAME (or after --) is the command.",
        after_long_help = EXIT_CODES
    )]
    Run(RunArgs),
    /// Redraw the status table whenever locks change (Ctrl-C to quit)
    #[command(
        long_about = "Show the status table of the locks named (default: every lock) and \
            redraw it whenever it changes, until interrupted (Ctrl-C). On a terminal the \
            screen is redrawn in place and durations keep ticking; otherwise (a pipe, a \
            log) a new frame, headed by a `--- scanlock watch <time> ---` line, is \
            printed only when the locks change. Changes nothing.",
        after_long_help = EXIT_CODES
    )]
    Watch(WatchArgs),
    /// Remove records left by dead holders; never touches a held lock
    #[command(
        long_about = "Remove the metadata records of holders that died (crash, SIGKILL, \
            reboot) and say what was removed. Lock files and the records of live holders \
            are never touched, so this is safe while other processes use the locks: it \
            is the safe replacement for `rm .locks/*.lock`, which breaks exclusion. A \
            dead holder's lock itself was already released by the kernel.",
        after_long_help = format!("{CLEAN_AFTER}\n{HOLDER_SCHEMA}\n\n{EXIT_CODES}")
    )]
    Clean(CleanArgs),
}

/// `scanlock status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Locks to show (default: every lock under the root)
    #[arg(value_name = "NAME", value_parser = parse_name)]
    pub names: Vec<String>,
    /// Print JSON (schema below) instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `scanlock run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Take the lock shared (a reader)
    #[arg(short = 's', long, conflicts_with = "exclusive")]
    pub shared: bool,
    /// Take the lock exclusive (a writer; the default)
    #[arg(short = 'x', long, short_alias = 'e')]
    pub exclusive: bool,
    /// Give up after waiting this long: 10s, 500ms, 1.5s, 2m, 1m30s [default: forever]
    #[arg(
        short = 'w',
        long,
        visible_alias = "wait",
        value_name = "DURATION",
        value_parser = crate::duration::parse,
        conflicts_with = "no_wait"
    )]
    pub timeout: Option<Duration>,
    /// Fail at once if the lock is busy
    #[arg(short = 'n', long, visible_aliases = ["nb", "nonblock"])]
    pub no_wait: bool,
    /// User recorded in the lock's metadata [default: $USER]
    // No -u: in flock(1), -u means unlock.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Exit code when the lock stays busy or the timeout passes
    #[arg(short = 'E', long, value_name = "CODE", default_value_t = crate::error::code::BUSY)]
    pub conflict_exit_code: u8,
    /// Say on stderr when waiting, acquiring and releasing (default: only a waiting
    /// notice, when stderr is a terminal)
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Do not let the command inherit the lock: it is released when the command
    /// exits, even if processes the command started in the background live on
    #[arg(short = 'o', long)]
    pub close: bool,
    /// Run this command string with `sh -c` (as flock(1) -c) instead of COMMAND
    #[arg(short = 'c', value_name = "STRING", conflicts_with = "command")]
    pub shell_command: Option<OsString>,
    /// The lock's name, e.g. scan001
    #[arg(value_name = "NAME", value_parser = parse_run_name)]
    pub name: String,
    /// The command and its arguments
    #[arg(
        value_name = "COMMAND",
        required_unless_present = "shell_command",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

/// `scanlock watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Locks to show (default: every lock, including new ones)
    #[arg(value_name = "NAME", value_parser = parse_name)]
    pub names: Vec<String>,
    /// How often to look for changes
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "200ms",
        value_parser = parse_interval
    )]
    pub interval: Duration,
}

/// `scanlock clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Only list what would be removed
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON (schema below) instead of text
    #[arg(long)]
    pub json: bool,
}

/// A lock name: any text but the empty string (NUL cannot occur in an argument). Checked
/// here too because a root without `.locks/` is answered without asking the library.
fn parse_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("a lock name cannot be empty; use e.g. scan001".to_owned());
    }
    Ok(s.to_owned())
}

/// The NAME of `run`: a lock name, not a path (a path is a likely mix-up with
/// `flock(1) FILE COMMAND`, which would silently lock a different thing).
fn parse_run_name(s: &str) -> Result<String, String> {
    if s.contains('/') || s.ends_with(".lock") {
        return Err(format!(
            "`{s}` looks like a file path, but NAME is a lock name such as scan001 \
             (its file is <root>/.locks/NAME.lock); to lock a file by path use flock(1)"
        ));
    }
    parse_name(s)
}

/// A polling interval: a duration of at least 10 ms, so a typo cannot spin a core.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = crate::duration::parse(s)?;
    if d < Duration::from_millis(10) {
        return Err(format!("interval `{s}` is too short; use 10ms or more"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_everything_after_the_name() {
        let cli = Cli::try_parse_from([
            "scanlock",
            "--root",
            "/r",
            "run",
            "-s",
            "-w",
            "2s",
            "scan1",
            "--",
            "ls",
            "-l",
            "--timeout",
            "x",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!()
        };
        assert!(run.shared);
        assert_eq!(run.timeout, Some(Duration::from_secs(2)));
        assert_eq!(run.name, "scan1");
        assert_eq!(run.command, ["ls", "-l", "--timeout", "x"]);
        let cli = Cli::try_parse_from(["scanlock", "run", "scan1", "echo", "-n", "hi"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!()
        };
        assert_eq!(run.command, ["echo", "-n", "hi"]);
    }
}
