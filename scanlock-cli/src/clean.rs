//! `scanlock clean`: remove what dead holders left behind, and say what.

use std::time::SystemTime;

use scanlock::StaleRecord;
use serde::Serialize;

use crate::cli::CleanArgs;
use crate::error::{CliError, code};
use crate::status::{HolderJson, SCHEMA_VERSION, backend_name};
use crate::store::{Location, Purpose};
use crate::{duration, format};

/// Removes (or with `--dry-run` lists) stale holder records. The library only ever
/// removes records whose holder is gone, never a lock file, so this is safe while
/// others hold and take locks.
pub fn run(location: &Location, args: &CleanArgs) -> Result<u8, CliError> {
    let manager = location.open(Purpose::Inspect)?;
    let backend = backend_name(location, manager.as_ref());
    let lock_err = |e| crate::error::from_lock(e, code::ERROR);
    let records = match &manager {
        None => Vec::new(),
        Some(m) if args.dry_run => m.find_stale_records().map_err(lock_err)?,
        Some(m) => m.cleanup_stale_locks().map_err(lock_err)?.removed,
    };
    let now = SystemTime::now();
    let text = if args.json {
        let json = CleanJson {
            version: SCHEMA_VERSION,
            backend,
            dry_run: args.dry_run,
            removed: records.iter().map(|r| RecordJson::new(r, now)).collect(),
        };
        let mut s = serde_json::to_string_pretty(&json).expect("clean JSON");
        s.push('\n');
        s
    } else {
        render(&backend, &records, args.dry_run, now)
    };
    crate::write_stdout(text.as_bytes())?;
    Ok(code::OK)
}

/// The text report: one entry per record, its holder and where it was.
fn render(backend: &str, records: &[StaleRecord], dry_run: bool, now: SystemTime) -> String {
    if records.is_empty() {
        return format!("no stale records under {backend}\n");
    }
    let n = records.len();
    let plural = if n == 1 { "record" } else { "records" };
    let mut out = if dry_run {
        format!("would remove {n} stale {plural} (dry run; nothing removed):\n")
    } else {
        format!("removed {n} stale {plural} (live holders' records untouched):\n")
    };
    for r in records {
        match &r.holder {
            Some(h) => {
                let since = format::held_for(h, now)
                    .map(|d| format!(", taken {} ago", duration::human(d)))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "  \"{}\": {} by user \"{}\", pid {} on {}{since}\n",
                    h.name,
                    h.lock_type,
                    format::user(h),
                    h.pid,
                    format::host(h)
                ));
            }
            None => out.push_str("  unreadable record\n"),
        }
        out.push_str(&format!("    {}\n", r.location));
    }
    out
}

/// `clean --json`, schema version 1 (documented in `clean --help` and the README).
#[derive(Serialize)]
struct CleanJson {
    /// [`SCHEMA_VERSION`].
    version: u32,
    /// The store, as a URL.
    backend: String,
    /// Whether this only lists (`--dry-run`).
    dry_run: bool,
    /// The records removed (or removable).
    removed: Vec<RecordJson>,
}

/// One removed (or, with `--dry-run`, removable) record.
#[derive(Serialize)]
struct RecordJson {
    /// The lock's name, when the record could be read.
    name: Option<String>,
    /// Where the record was (a file path).
    location: String,
    /// The dead holder, when the record could be read.
    holder: Option<HolderJson>,
}

impl RecordJson {
    /// The JSON form of `r`.
    fn new(r: &StaleRecord, now: SystemTime) -> RecordJson {
        RecordJson {
            name: r.holder.as_ref().map(|h| h.name.clone()),
            location: r.location.clone(),
            holder: r.holder.as_ref().map(|h| HolderJson::new(h, now)),
        }
    }
}
