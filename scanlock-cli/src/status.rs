//! `scanlock status`: taking a snapshot of locks, and showing it as a table or as JSON.
//! `watch` reuses the snapshot and the table.

use std::time::SystemTime;

use scanlock::{LockInfo, LockType, ScanLockManager};
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::error::{CliError, code};
use crate::format::{self, fit, width};
use crate::store::{Location, Purpose};

/// JSON schema version of `status --json` and `clean --json` (see `--help`).
pub const SCHEMA_VERSION: u32 = 1;

/// Widest a status table may be.
const MAX_WIDTH: usize = 80;

/// One lock's state, as shown. (The library's `LockStatus` cannot be built outside it,
/// and a lock under a root without `.locks/` must still be shown, as free.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockView {
    /// The lock's name.
    pub name: String,
    /// `None` when free.
    pub lock_type: Option<LockType>,
    /// Holders in a stable order (oldest first), so that equal states compare equal.
    pub holders: Vec<LockInfo>,
    /// Pids waiting to take the lock exclusively.
    pub waiting_writers: Vec<u32>,
    /// Records left by dead holders.
    pub stale_records: usize,
    /// Damage in this name's files that status worked around.
    pub problems: Vec<String>,
}

impl LockView {
    /// A lock nobody holds.
    fn free(name: &str) -> LockView {
        LockView {
            name: name.to_owned(),
            lock_type: None,
            holders: Vec::new(),
            waiting_writers: Vec::new(),
            stale_records: 0,
            problems: Vec::new(),
        }
    }
}

/// The state of the locks `names` (all locks when empty); `manager` is `None` for a root
/// without `.locks/`, where every lock is free.
pub fn snapshot(
    manager: Option<&ScanLockManager>,
    names: &[String],
) -> Result<Vec<LockView>, CliError> {
    let lock_err = |e| crate::error::from_lock(e, code::ERROR);
    let Some(m) = manager else {
        return Ok(names.iter().map(|n| LockView::free(n)).collect());
    };
    let names = if names.is_empty() {
        m.lock_names().map_err(lock_err)?
    } else {
        names.to_vec()
    };
    let mut views = Vec::with_capacity(names.len());
    for name in &names {
        let s = m.get_lock_status(name).map_err(lock_err)?;
        // The library can say "free" next to a live holder record: it takes the state
        // from /proc/locks, whose reading can miss an entry while other locks change
        // (seen under load), or the holder is just releasing. A live record (its flock
        // is held) proves a holder, and "held" is the safe answer for a script that
        // would act on "free", so such a lock counts as held.
        let lock_type = s.lock_type.or_else(|| {
            (s.holders.iter())
                .map(|h| h.lock_type)
                .max_by_key(|t| *t == LockType::Exclusive)
        });
        let mut holders = s.holders;
        holders.sort_by(|a, b| {
            (a.acquired_at, a.pid, a.thread_id, &a.thread).cmp(&(
                b.acquired_at,
                b.pid,
                b.thread_id,
                &b.thread,
            ))
        });
        let mut waiting_writers = s.waiting_writers;
        waiting_writers.sort_unstable();
        views.push(LockView {
            name: s.name,
            lock_type,
            holders,
            waiting_writers,
            stale_records: s.stale_records,
            problems: s.problems,
        });
    }
    Ok(views)
}

/// `scanlock status`: prints the table or JSON; exit code 1 when any lock is held.
pub fn run(location: &Location, args: &StatusArgs) -> Result<u8, CliError> {
    let manager = location.open(Purpose::Inspect)?;
    let views = snapshot(manager.as_ref(), &args.names)?;
    let backend = backend_name(location, manager.as_ref());
    let now = SystemTime::now();
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&StatusJson::new(&backend, &views, now))
            .expect("status JSON");
        s.push('\n');
        s
    } else {
        render(&backend, &views, now)
    };
    crate::write_stdout(text.as_bytes())?;
    Ok(if views.iter().any(|v| v.lock_type.is_some()) {
        code::HELD
    } else {
        code::OK
    })
}

/// How to name the store in output: the manager's own URL (password hidden) when open.
pub fn backend_name(location: &Location, manager: Option<&ScanLockManager>) -> String {
    match (location, manager) {
        (Location::Url(_), Some(m)) => m.url(),
        _ => location.describe(),
    }
}

/// The state column: `free`, `shared ×3`, `exclusive`.
fn state(v: &LockView) -> String {
    match v.lock_type {
        None => "free".to_owned(),
        Some(LockType::Shared) => format!("shared ×{}", v.holders.len().max(1)),
        Some(LockType::Exclusive) => "exclusive".to_owned(),
    }
}

/// Columns of the table: header, and the narrowest a shrinking column may get.
const COLUMNS: [(&str, usize); 7] = [
    ("LOCK", 8),
    ("STATE", 9),
    ("USER", 6),
    ("PID", 3),
    ("HOST", 6),
    ("THREAD", 6),
    ("HELD", 4),
];
/// Columns given up first when the table is too wide: thread, host, user, then lock.
const SHRINK_ORDER: [usize; 4] = [5, 4, 2, 0];
/// A lock column wider than this puts long names on a line of their own instead.
const MAX_LOCK_COLUMN: usize = 24;

/// The status table, at most 80 columns wide, with a summary line.
pub fn render(backend: &str, views: &[LockView], now: SystemTime) -> String {
    if views.is_empty() {
        return format!("no locks under {backend}\n");
    }
    // Each lock's rows of cells: one per holder (later ones without name and state), or
    // one empty row when free.
    let groups: Vec<Vec<[String; 7]>> = views.iter().map(|v| rows(v, now)).collect();

    let mut widths: Vec<usize> = COLUMNS.iter().map(|(h, _)| width(h)).collect();
    for cells in groups.iter().flatten() {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(width(c));
        }
    }
    // Names too long for the column go on their own line, so they must not widen it.
    widths[0] = (groups.iter().flatten())
        .map(|cells| width(&cells[0]))
        .filter(|&w| w <= MAX_LOCK_COLUMN)
        .fold(width(COLUMNS[0].0), usize::max);
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * (w.len() - 1);
    while total(&widths) > MAX_WIDTH {
        let Some(&col) = SHRINK_ORDER
            .iter()
            .filter(|&&c| widths[c] > COLUMNS[c].1)
            .max_by_key(|&&c| widths[c] - COLUMNS[c].1)
        else {
            break;
        };
        widths[col] -= 1;
    }

    let mut out = String::new();
    push_row(&mut out, &COLUMNS.map(|(h, _)| h.to_owned()), &widths);
    for (v, group) in views.iter().zip(groups) {
        for mut cells in group {
            // Names are never cut (operators copy them): a long one gets its own line.
            if width(&cells[0]) > widths[0] {
                out.push_str(&cells[0]);
                out.push('\n');
                cells[0].clear();
            }
            push_row(&mut out, &cells, &widths);
        }
        notes(v, &mut out);
    }

    let held = views.iter().filter(|v| v.lock_type.is_some()).count();
    let plural = if views.len() == 1 { "lock" } else { "locks" };
    let summary = format!(
        "{} {plural}: {held} held, {} free",
        views.len(),
        views.len() - held
    );
    if width(&summary) + width(backend) + 4 <= MAX_WIDTH {
        out.push_str(&format!("{summary} ({backend})\n"));
    } else {
        out.push_str(&format!("{summary}\n  in {backend}\n"));
    }
    out
}

/// The table rows of one lock, before fitting to widths.
fn rows(v: &LockView, now: SystemTime) -> Vec<[String; 7]> {
    if v.holders.is_empty() {
        let mut row: [String; 7] = Default::default();
        row[0] = v.name.clone();
        row[1] = state(v);
        return vec![row];
    }
    (v.holders.iter().enumerate())
        .map(|(i, h)| {
            let (name, st) = if i == 0 {
                (v.name.clone(), state(v))
            } else {
                Default::default()
            };
            [
                name,
                st,
                format::user(h).to_owned(),
                h.pid.to_string(),
                format::host(h).to_owned(),
                format::thread(h),
                format::held_for(h, now).map_or("-".to_owned(), crate::duration::human),
            ]
        })
        .collect()
}

/// Appends one table line: each cell cut or padded to its column, no trailing blanks.
fn push_row(out: &mut String, cells: &[String], widths: &[usize]) {
    let mut line = String::new();
    for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        let c = fit(c, *w);
        line.push_str(&c);
        line.extend(std::iter::repeat_n(' ', w - width(&c)));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// Lines under a lock's rows for what does not fit in columns.
fn notes(v: &LockView, out: &mut String) {
    if !v.waiting_writers.is_empty() {
        let pids: Vec<String> = v.waiting_writers.iter().map(u32::to_string).collect();
        out.push_str(&format!("  waiting writers: pid {}\n", pids.join(", ")));
    }
    if v.stale_records > 0 {
        out.push_str(&format!(
            "  stale records: {} (dead holders or plantdb .info; see `scanlock clean`)\n",
            v.stale_records
        ));
    }
    for p in &v.problems {
        out.push_str(&format!("  damaged: {p}\n"));
    }
}

/// `status --json`, schema version 1 (documented in `status --help` and the README).
#[derive(Serialize)]
pub struct StatusJson {
    /// [`SCHEMA_VERSION`].
    version: u32,
    /// The store, as a URL.
    backend: String,
    /// When the snapshot was taken, RFC 3339 UTC.
    time: String,
    /// The locks, by name.
    locks: Vec<LockJson>,
}

impl StatusJson {
    /// The JSON form of a snapshot taken at `now`.
    pub fn new(backend: &str, views: &[LockView], now: SystemTime) -> StatusJson {
        StatusJson {
            version: SCHEMA_VERSION,
            backend: backend.to_owned(),
            time: format::rfc3339_utc(now),
            locks: views
                .iter()
                .map(|v| LockJson {
                    name: v.name.clone(),
                    state: match v.lock_type {
                        None => "free",
                        Some(LockType::Shared) => "shared",
                        Some(LockType::Exclusive) => "exclusive",
                    },
                    holders: v.holders.iter().map(|h| HolderJson::new(h, now)).collect(),
                    waiting_writers: v.waiting_writers.clone(),
                    stale_records: v.stale_records,
                    problems: v.problems.clone(),
                })
                .collect(),
        }
    }
}

/// One lock in `status --json`.
#[derive(Serialize)]
struct LockJson {
    /// The lock's name.
    name: String,
    /// `free`, `shared` or `exclusive`.
    state: &'static str,
    /// Oldest first; empty when free.
    holders: Vec<HolderJson>,
    /// Pids waiting to take it exclusively.
    waiting_writers: Vec<u32>,
    /// Records of dead holders.
    stale_records: usize,
    /// Damage in this name's files that status worked around (empty when none).
    problems: Vec<String>,
}

/// One holder in the JSON outputs. Its own type rather than `LockInfo`'s serde form, so
/// that the CLI's schema stays put when the library's record format changes, and so
/// that unknown fields are `null` rather than `""` or the epoch.
#[derive(Serialize)]
pub struct HolderJson {
    /// The `user` given at acquisition; `null` for holders without metadata.
    user: Option<String>,
    /// The holding process.
    pid: u32,
    /// The holding host; `null` if unknown.
    hostname: Option<String>,
    /// The holding thread's name; `null` if unknown.
    thread: Option<String>,
    /// The kernel thread id; `null` if unknown.
    thread_id: Option<u64>,
    /// The mode held.
    lock_type: LockType,
    /// RFC 3339 UTC; `null` if unknown.
    acquired_at: Option<String>,
    /// Milliseconds since `acquired_at`; `null` if unknown.
    held_for_ms: Option<u64>,
}

impl HolderJson {
    /// The JSON form of `h`, with `held_for_ms` measured to `now`.
    pub fn new(h: &LockInfo, now: SystemTime) -> HolderJson {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let held = format::held_for(h, now);
        HolderJson {
            user: some(&h.user),
            pid: h.pid,
            hostname: some(&h.hostname),
            thread: some(&h.thread),
            thread_id: (h.thread_id != 0).then_some(h.thread_id),
            lock_type: h.lock_type,
            acquired_at: held.map(|_| format::rfc3339_utc(h.acquired_at)),
            held_for_ms: held.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(user: &str, pid: u32, host: &str, thread: &str, secs: u64) -> LockInfo {
        serde_json::from_value(serde_json::json!({
            "name": "x", "user": user, "pid": pid, "hostname": host, "thread": thread,
            "thread_id": 77, "lock_type": "shared",
            "acquired_at": {"secs_since_epoch": secs, "nanos_since_epoch": 0},
            "boot_id": ""
        }))
        .expect("LockInfo from JSON")
    }

    #[test]
    fn table_fits_80_columns_and_never_cuts_names() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(10_000);
        let long_name = "scan-".repeat(12);
        let views = vec![
            LockView {
                name: long_name.clone(),
                lock_type: Some(LockType::Shared),
                holders: vec![
                    holder(
                        "a-very-long-user-name",
                        4_194_303,
                        "a.very.long.host.name.example.org",
                        "ThreadId(12)",
                        9_808,
                    ),
                    holder("", 17, "", "", 0),
                ],
                waiting_writers: vec![99],
                stale_records: 2,
                problems: vec![],
            },
            LockView::free("scan001"),
        ];
        let text = render("file:///r", &views, now);
        for line in text.lines() {
            assert!(
                width(line) <= MAX_WIDTH,
                "{} columns: {line}\n{text}",
                width(line)
            );
        }
        assert!(text.lines().any(|l| l == long_name), "{text}");
        assert!(
            text.contains("shared ×2") && text.contains("3m12s"),
            "{text}"
        );
        assert!(text.contains("tid 77") && text.contains("  ?  "), "{text}");
        assert!(text.contains("waiting writers: pid 99"), "{text}");
        assert!(text.contains("stale records: 2"), "{text}");
        assert!(text.contains("2 locks: 1 held, 1 free"), "{text}");
        assert_eq!(render("file:///r", &[], now), "no locks under file:///r\n");
    }

    #[test]
    fn json_marks_unknowns_as_null() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(100);
        let v = LockView {
            name: "s".into(),
            lock_type: Some(LockType::Shared),
            holders: vec![holder("", 5, "", "", 0), holder("u", 6, "h", "main", 40)],
            waiting_writers: vec![],
            stale_records: 0,
            problems: vec![],
        };
        let json = serde_json::to_value(StatusJson::new("b", &[v], now)).unwrap();
        let h = &json["locks"][0]["holders"];
        assert_eq!(json["version"], 1);
        assert_eq!(json["locks"][0]["state"], "shared");
        assert!(h[0]["user"].is_null() && h[0]["acquired_at"].is_null());
        assert_eq!(h[1]["user"], "u");
        assert_eq!(h[1]["held_for_ms"], 60_000);
        assert_eq!(h[1]["acquired_at"], "1970-01-01T00:00:40.000Z");
    }
}
