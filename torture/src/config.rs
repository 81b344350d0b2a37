//! Command line of `scanlock-torture` (shared by the supervisor and the child roles it
//! spawns, which get the same flags plus `--role ...`).

use std::path::PathBuf;
use std::time::Duration;

/// One fault kind the supervisor can inject.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// SIGKILL random workers, and restart them.
    pub kill: bool,
    /// SIGSTOP a random worker (usually holding something) for a while, then SIGCONT.
    pub stop: bool,
    /// A process that builds new managers and runs `cleanup_stale_locks` in a loop.
    pub cleanup: bool,
    /// An "operator" process that deletes, truncates and garbles `.gate`, `.lock`,
    /// `.info` and `.holders/` files, plants forged records and symlinks, and deletes
    /// lock files the way plantdb does (holding them).
    pub operator: bool,
    /// The lock root made read-only for a while.
    pub readonly: bool,
    /// The lock root's file system filled up (blocks, then inodes) for a while.
    pub diskfull: bool,
    /// Some worker generations start with a low `RLIMIT_NOFILE` (soft and hard) and
    /// periodically use up every descriptor they have left.
    pub fdlimit: bool,
    /// `pg_terminate_backend` of a random holder's connection (PostgreSQL back end only):
    /// its locks are gone at once, and the holder must notice (`LockGuard::is_held`,
    /// an error from `release`).
    pub pgterm: bool,
    /// The operator also unlinks lock files *without* holding them. No flock-based lock
    /// survives that (see RELIABILITY.md); off unless asked for, and violations are then
    /// the expected outcome.
    pub unlink_held: bool,
}

impl Faults {
    /// Every fault that exclusion must survive (all but `unlink-held`).
    pub fn all() -> Faults {
        Faults {
            kill: true,
            stop: true,
            cleanup: true,
            operator: true,
            readonly: true,
            diskfull: true,
            fdlimit: true,
            pgterm: true,
            unlink_held: false,
        }
    }

    /// Parses `kill,stop,...`, `all`, `none` (items may be combined: `all,unlink-held`).
    pub fn parse(s: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "all" => {
                    let u = f.unlink_held;
                    f = Faults::all();
                    f.unlink_held = u;
                }
                "none" => {}
                "kill" => f.kill = true,
                "stop" => f.stop = true,
                "cleanup" => f.cleanup = true,
                "operator" => f.operator = true,
                "readonly" => f.readonly = true,
                "diskfull" => f.diskfull = true,
                "fdlimit" => f.fdlimit = true,
                "pgterm" => f.pgterm = true,
                "unlink-held" => {
                    f.unlink_held = true;
                    f.operator = true;
                }
                other => {
                    return Err(format!(
                        "unknown fault `{other}`; use kill, stop, cleanup, operator, readonly, \
                         diskfull, fdlimit, pgterm, unlink-held, all or none"
                    ));
                }
            }
        }
        Ok(f)
    }

    /// The canonical spelling, for child command lines and reports.
    pub fn to_arg(self) -> String {
        let mut v = Vec::new();
        for (on, name) in [
            (self.kill, "kill"),
            (self.stop, "stop"),
            (self.cleanup, "cleanup"),
            (self.operator, "operator"),
            (self.readonly, "readonly"),
            (self.diskfull, "diskfull"),
            (self.fdlimit, "fdlimit"),
            (self.pgterm, "pgterm"),
            (self.unlink_held, "unlink-held"),
        ] {
            if on {
                v.push(name);
            }
        }
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(",")
        }
    }
}

/// What a process of the harness is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The supervisor: spawns the others, injects faults, checks the logs.
    Supervisor,
    /// A worker process (`id`, restart generation `gen`), optionally fd-limited.
    Worker {
        /// Worker slot.
        id: usize,
        /// Restart generation of that slot.
        generation: usize,
        /// `RLIMIT_NOFILE` (soft and hard) to set before creating a manager.
        fd_limit: Option<u64>,
    },
    /// Builds managers and cleans up in a loop.
    Cleaner,
    /// Damages files under `.locks/`.
    Operator,
}

/// The harness's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Worker processes.
    pub workers: usize,
    /// Threads per worker.
    pub threads: usize,
    /// How long faults are injected.
    pub seconds: f64,
    /// How many lock names (a mix of plain, percent-encoded and unicode names).
    pub names: usize,
    /// Which faults.
    pub faults: Faults,
    /// Seed of every random choice (scheduling adds its own randomness).
    pub seed: u64,
    /// Working directory (default: a fresh directory under the system temp dir).
    pub dir: Option<PathBuf>,
    /// Keep the working directory (logs) afterwards.
    pub keep: bool,
    /// A back-end URL instead of a lock root on disk (`postgres://...`); file faults
    /// are then skipped.
    pub url: Option<String>,
    /// Print progress while running.
    pub verbose: bool,
    /// This process's role.
    pub role: Role,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            workers: 4,
            threads: 4,
            seconds: 10.0,
            names: 4,
            faults: Faults::all(),
            seed: 1,
            dir: None,
            keep: false,
            url: None,
            verbose: false,
            role: Role::Supervisor,
        }
    }
}

pub(crate) const USAGE: &str = "\
usage: scanlock-torture [--workers N] [--threads T] [--seconds S] [--names K]
                        [--faults LIST] [--seed X] [--dir DIR] [--keep] [--url URL] [-v]

Runs N worker processes x T threads doing random scanlock operations on K names for S
seconds while injecting faults, then proves from their enter/exit logs that no exclusive
hold overlapped another hold of the same name, that every operation succeeded or failed
with a typed error naming its lock within its deadline, and that every name can be
acquired again afterwards. Exit status 0 only with zero violations.

  --faults LIST  comma-separated: kill, stop, cleanup, operator, readonly, diskfull,
                 fdlimit, pgterm (pg_terminate_backend of a holder; PostgreSQL only),
                 unlink-held (breaks flock by design; see RELIABILITY.md),
                 all (every one but unlink-held; the default), none
  --url URL      lock back end (default: a lock root under DIR); with postgres:// only
                 kill, stop, cleanup, fdlimit and pgterm apply (needs the binary built
                 with the `postgres` feature)
";

impl Config {
    /// Parses the command line (without the program name).
    pub fn parse(args: &[String]) -> Result<Config, String> {
        let mut c = Config::default();
        let mut role = None::<String>;
        let (mut id, mut generation, mut fd_limit) = (0usize, 0usize, None);
        let mut i = 0;
        let value = |i: &mut usize| -> Result<String, String> {
            *i += 1;
            args.get(*i)
                .cloned()
                .ok_or_else(|| format!("{} needs a value", args[*i - 1]))
        };
        fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{flag}: `{v}` is not a valid number"))
        }
        while i < args.len() {
            let a = args[i].as_str();
            match a {
                "--workers" => c.workers = num(a, &value(&mut i)?)?,
                "--threads" => c.threads = num(a, &value(&mut i)?)?,
                "--seconds" => c.seconds = num(a, &value(&mut i)?)?,
                "--names" => c.names = num(a, &value(&mut i)?)?,
                "--seed" => c.seed = num(a, &value(&mut i)?)?,
                "--faults" => c.faults = Faults::parse(&value(&mut i)?)?,
                "--dir" => c.dir = Some(PathBuf::from(value(&mut i)?)),
                "--url" => c.url = Some(value(&mut i)?),
                "--keep" => c.keep = true,
                "-v" | "--verbose" => c.verbose = true,
                "--role" => role = Some(value(&mut i)?),
                "--id" => id = num(a, &value(&mut i)?)?,
                "--gen" => generation = num(a, &value(&mut i)?)?,
                "--fd-limit" => fd_limit = Some(num(a, &value(&mut i)?)?),
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
            }
            i += 1;
        }
        if c.workers == 0 || c.threads == 0 || c.names == 0 {
            return Err("--workers, --threads and --names must be at least 1".to_owned());
        }
        if !(c.seconds.is_finite() && c.seconds > 0.0) {
            return Err("--seconds must be positive".to_owned());
        }
        c.role = match role.as_deref() {
            None => Role::Supervisor,
            Some("worker") => Role::Worker {
                id,
                generation,
                fd_limit,
            },
            Some("cleaner") => Role::Cleaner,
            Some("operator") => Role::Operator,
            Some(other) => return Err(format!("unknown role `{other}`")),
        };
        Ok(c)
    }

    /// The flags a child needs to reproduce this configuration (without `--role`).
    pub(crate) fn child_args(&self, dir: &std::path::Path) -> Vec<String> {
        let mut v = vec![
            "--workers".into(),
            self.workers.to_string(),
            "--threads".into(),
            self.threads.to_string(),
            "--seconds".into(),
            self.seconds.to_string(),
            "--names".into(),
            self.names.to_string(),
            "--seed".into(),
            self.seed.to_string(),
            "--faults".into(),
            self.faults.to_arg(),
            "--dir".into(),
            dir.display().to_string(),
        ];
        if let Some(u) = &self.url {
            v.push("--url".into());
            v.push(u.clone());
        }
        v
    }

    /// How long the run may take in all, after which every child gives up on its own.
    pub(crate) fn hard_limit(&self) -> Duration {
        Duration::from_secs_f64(self.seconds) + Duration::from_secs(90)
    }
}

/// The lock names of a run: plain names (the files plantdb uses), names that are
/// percent-encoded on disk, and a unicode one, so that every stem kind is exercised.
pub fn lock_names(k: usize) -> Vec<String> {
    (0..k)
        .map(|i| match i % 4 {
            0 => format!("scan{i:03}"),
            1 => format!("scan/{i:03}"),
            2 => format!("scän {i:03}"),
            _ => format!("scan{i:03}.v2"),
        })
        .collect()
}
