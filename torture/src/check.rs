//! The checker: reads every event log of a run and proves (or refutes) the properties.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::events::{Class, EXPECTED_ERRNOS};

/// One hold of a name, from the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// Name index.
    pub k: usize,
    /// Exclusive?
    pub exclusive: bool,
    /// Entered (ns).
    pub start: u64,
    /// Left (ns). For a hold whose process was killed inside it, `start`: only the
    /// moment of entry is known to lie inside the hold.
    pub end: u64,
    /// Holder (`w<slot>.<generation>.t<thread>`, `op`, `rec`).
    pub who: String,
    /// Fencing token, 0 when not asked for.
    pub token: u64,
    /// False for a hold cut short by SIGKILL.
    pub complete: bool,
    /// The holder found the lock no longer held at the end of the hold
    /// (`LockGuard::is_held() == false`: its PostgreSQL session was terminated).
    pub lost: bool,
}

/// A `pg_terminate_backend` of one worker process's session (`T` line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Termination {
    /// The worker's tag (`w<slot>.<generation>`); its threads are `<tag>.t<n>`.
    pub tag: String,
    /// Its pid.
    pub pid: u32,
    /// Just before the call (ns): the lock was held at least until then.
    pub start: u64,
    /// Just after it returned (ns).
    pub end: u64,
}

/// One operation's outcome, from the logs.
#[derive(Clone, Debug)]
pub struct Op {
    /// What was asked.
    pub class: Class,
    /// Name index (`usize::MAX` for operations on no particular name).
    pub k: usize,
    /// Called (ns).
    pub start: u64,
    /// Returned (ns).
    pub end: u64,
    /// The allowed wait in ms (0 for one attempt, `u64::MAX` for none).
    pub deadline_ms: u64,
    /// The calling process.
    pub pid: u32,
    /// `ok`, a variant name, or `Io:<errno>`; `!`-prefixed when the error did not name
    /// its lock.
    pub result: String,
}

/// Everything the logs of a run say.
#[derive(Debug, Default)]
pub struct Logs {
    /// Holds.
    pub holds: Vec<Hold>,
    /// Operations.
    pub ops: Vec<Op>,
    /// Violations that processes noticed themselves.
    pub self_reported: Vec<String>,
    /// Fault windows: kind → count.
    pub faults: BTreeMap<String, u64>,
    /// SIGSTOP windows: pid → (start, end).
    pub stops: HashMap<u32, Vec<(u64, u64)>>,
    /// Sessions terminated by the `pgterm` fault.
    pub terminations: Vec<Termination>,
}

/// Parses one log line into `logs`; `open` collects `B` lines awaiting their `H`.
fn parse_line(
    line: &str,
    logs: &mut Logs,
    open: &mut HashMap<(String, usize, u64), Hold>,
) -> Result<(), String> {
    let f: Vec<&str> = line.split(' ').collect();
    let num = |i: usize| -> Result<u64, String> {
        f.get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad field {i} in {line:?}"))
    };
    match f.first().copied() {
        Some("B") if f.len() == 5 => {
            let h = Hold {
                k: num(1)? as usize,
                exclusive: f[2] == "X",
                start: num(3)?,
                end: num(3)?,
                who: f[4].to_owned(),
                token: 0,
                complete: false,
                lost: false,
            };
            open.insert((h.who.clone(), h.k, h.start), h);
        }
        Some("H") if f.len() == 7 || (f.len() == 8 && f[7] == "lost") => {
            let (k, start, who) = (num(1)? as usize, num(3)?, f[5].to_owned());
            open.remove(&(who.clone(), k, start));
            logs.holds.push(Hold {
                k,
                exclusive: f[2] == "X",
                start,
                end: num(4)?,
                who,
                token: num(6)?,
                complete: true,
                lost: f.len() == 8,
            });
        }
        Some("O") if f.len() == 8 => logs.ops.push(Op {
            class: Class::parse(f[1]).ok_or_else(|| format!("bad class in {line:?}"))?,
            k: f[2].parse().unwrap_or(usize::MAX),
            start: num(3)?,
            end: num(4)?,
            deadline_ms: num(5)?,
            pid: num(6)? as u32,
            result: f[7].to_owned(),
        }),
        Some("V") => logs
            .self_reported
            .push(line[2.min(line.len())..].to_owned()),
        Some("F") if f.len() >= 4 => *logs.faults.entry(f[1].to_owned()).or_default() += 1,
        Some("T") if f.len() == 5 => {
            logs.terminations.push(Termination {
                tag: f[1].to_owned(),
                pid: num(2)? as u32,
                start: num(3)?,
                end: num(4)?,
            });
            *logs.faults.entry("pgterm".to_owned()).or_default() += 1;
        }
        Some("S") if f.len() == 4 => logs
            .stops
            .entry(num(1)? as u32)
            .or_default()
            .push((num(2)?, num(3)?)),
        _ => return Err(format!("unknown log line {line:?}")),
    }
    Ok(())
}

/// Reads every `*.log` in `dir`. A line that cannot be parsed is itself a violation
/// (the proof must not skip data), except a torn last line of a killed process.
pub fn read_logs(dir: &Path) -> Result<Logs, String> {
    let mut logs = Logs::default();
    let mut open = HashMap::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    entries.sort();
    for path in entries {
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
        let n = lines.len();
        for (i, line) in lines.iter().enumerate() {
            if let Err(e) = parse_line(line, &mut logs, &mut open)
                && i + 1 != n
            {
                return Err(format!("{}: {e}", path.display()));
            }
        }
    }
    // Holds whose process died inside them: only their entry is known.
    logs.holds.extend(open.into_values());
    Ok(logs)
}

/// The verdict on a run.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Holds checked for exclusion.
    pub holds: usize,
    /// Of which cut short by SIGKILL.
    pub holds_killed: usize,
    /// Operations checked.
    pub ops: usize,
    /// Outcomes: result word → count.
    pub outcomes: BTreeMap<String, u64>,
    /// Worst lateness past a deadline, in ms (SIGSTOPped processes excused).
    pub max_late_ms: f64,
    /// Exclusive holds with a fencing token, checked for increase.
    pub tokens: usize,
    /// Holds whose holder found them lost (session terminated), judged only up to the
    /// termination.
    pub holds_lost: usize,
    /// Of which entered after their session's termination began (nothing to judge).
    pub holds_lost_unchecked: usize,
    /// Every violation found (must be empty).
    pub violations: Vec<String>,
}

/// How late past its deadline an operation may return before it counts as hanging:
/// generous, because a 2-core CI machine running 20 processes deschedules threads for
/// hundreds of milliseconds; the worst lateness is reported as a figure.
pub const LATE_SLACK_MS: f64 = 1500.0;

/// Checks the logs: exclusion, typed and named outcomes, deadlines, fencing tokens.
pub fn check(logs: &Logs, names: &[String]) -> Verdict {
    let mut v = Verdict {
        violations: logs
            .self_reported
            .iter()
            .map(|s| format!("self-reported: {s}"))
            .collect(),
        ..Verdict::default()
    };
    let holds = judged_holds(logs, &mut v);
    check_exclusion(&holds, names, &mut v);
    check_ops(logs, names, &mut v);
    check_tokens(logs, names, &mut v);
    v
}

/// How long after a hold's end its holder may still be asking `is_held` (a round trip,
/// stretched by a SIGSTOP of at most 500 ms): a termination that began in that window
/// can have made the answer "lost" although the lock was held up to the hold's end.
const LOST_CHECK_SLACK_NS: u64 = 2_000_000_000;

/// The holds as far as they can be judged. A hold its holder reported lost is cut at
/// the earliest termination of its process that began before the hold ended (the lock
/// was held at least until that call; after it, the server may have handed it on), and
/// dropped if that termination began before the hold did. The end of a hold is logged
/// just before its holder asks `is_held`, so a termination that began shortly after the
/// end (during the check, [`LOST_CHECK_SLACK_NS`]) explains a "lost" too, and the hold
/// is judged in full. A lost hold without such a termination is a violation: nothing
/// else may take a lock away.
fn judged_holds(logs: &Logs, v: &mut Verdict) -> Vec<Hold> {
    let mut out = Vec::with_capacity(logs.holds.len());
    for h in &logs.holds {
        if !h.lost {
            out.push(h.clone());
            continue;
        }
        v.holds_lost += 1;
        let cut = logs
            .terminations
            .iter()
            .filter(|t| {
                h.who
                    .strip_prefix(t.tag.as_str())
                    .is_some_and(|r| r.starts_with('.'))
            })
            .filter(|t| t.start < h.end)
            .map(|t| t.start)
            .min();
        let during_check = || {
            logs.terminations.iter().any(|t| {
                h.who
                    .strip_prefix(t.tag.as_str())
                    .is_some_and(|r| r.starts_with('.'))
                    && t.start >= h.end
                    && t.start - h.end <= LOST_CHECK_SLACK_NS
            })
        };
        match cut {
            None if during_check() => out.push(h.clone()),
            None => v.violations.push(format!(
                "hold reported lost, but its session was never terminated: {h:?}"
            )),
            Some(c) if c <= h.start => v.holds_lost_unchecked += 1,
            Some(c) => out.push(Hold {
                end: c,
                ..h.clone()
            }),
        }
    }
    out
}

fn check_exclusion(holds: &[Hold], names: &[String], v: &mut Verdict) {
    let mut by_name: HashMap<usize, Vec<&Hold>> = HashMap::new();
    for h in holds {
        if h.end < h.start {
            v.violations
                .push(format!("hold ends before it starts: {h:?}"));
        }
        by_name.entry(h.k).or_default().push(h);
    }
    v.holds = holds.len();
    v.holds_killed = holds.iter().filter(|h| !h.complete).count();
    for (k, mut list) in by_name {
        list.sort_by_key(|h| (h.start, h.end));
        // Sweep in start order, remembering the latest-ending exclusive hold and the
        // latest-ending hold of any mode. Overlap is strict: `a.end == b.start` is a
        // hand-over (both timestamps lie inside their holds, so equal means touching).
        let mut last_x: Option<&Hold> = None;
        let mut last_any: Option<&Hold> = None;
        for h in list {
            let mut report = |a: &Hold| {
                if v.violations.len() < 50 {
                    v.violations.push(format!(
                        "exclusion broken on {:?}: {a:?} overlaps {h:?}",
                        names.get(k).map_or("?", |s| s.as_str())
                    ));
                } else if v.violations.len() == 50 {
                    v.violations.push("... (more)".to_owned());
                }
            };
            if let Some(x) = last_x
                && x.end > h.start
            {
                report(x);
            } else if h.exclusive
                && let Some(a) = last_any
                && a.end > h.start
            {
                report(a);
            }
            if h.exclusive && last_x.is_none_or(|x| x.end < h.end) {
                last_x = Some(h);
            }
            if last_any.is_none_or(|a| a.end < h.end) {
                last_any = Some(h);
            }
        }
    }
}

fn stopped_during(logs: &Logs, pid: u32, start: u64, end: u64) -> bool {
    logs.stops
        .get(&pid)
        .is_some_and(|w| w.iter().any(|&(s, e)| s < end && e > start))
}

/// Whether a session of process `pid` was terminated before `t`: only then may its
/// operations fail with a lost connection.
fn terminated_before(logs: &Logs, pid: u32, t: u64) -> bool {
    logs.terminations
        .iter()
        .any(|x| x.pid == pid && x.start <= t)
}

fn check_ops(logs: &Logs, names: &[String], v: &mut Verdict) {
    v.ops = logs.ops.len();
    for op in &logs.ops {
        *v.outcomes
            .entry(format!("{} {}", op.class.as_str(), op.result))
            .or_default() += 1;
        let name = names.get(op.k).map_or("-", |s| s.as_str());
        if op.result.starts_with('!') {
            v.violations
                .push(format!("error does not name its lock {name:?}: {op:?}"));
            continue;
        }
        if !op.class.allows(&op.result) {
            v.violations
                .push(format!("outcome not allowed for {name:?}: {op:?}"));
        }
        if let Some(errno) = op.result.strip_prefix("Io:")
            && !EXPECTED_ERRNOS.contains(&errno)
            && !(errno == "ConnectionAborted" && terminated_before(logs, op.pid, op.end))
        {
            v.violations
                .push(format!("unexpected I/O error for {name:?}: {op:?}"));
        }
        if op.deadline_ms != u64::MAX && op.end >= op.start {
            let took_ms = (op.end - op.start) as f64 / 1e6;
            let late = took_ms - op.deadline_ms as f64;
            if late > 0.0 && !stopped_during(logs, op.pid, op.start, op.end) {
                v.max_late_ms = v.max_late_ms.max(late);
                if late > LATE_SLACK_MS {
                    v.violations.push(format!(
                        "returned {late:.0} ms after its deadline on {name:?}: {op:?}"
                    ));
                }
            }
        }
    }
}

fn check_tokens(logs: &Logs, names: &[String], v: &mut Verdict) {
    let mut by_name: HashMap<usize, Vec<&Hold>> = HashMap::new();
    for h in logs.holds.iter().filter(|h| h.exclusive && h.token > 0) {
        by_name.entry(h.k).or_default().push(h);
    }
    for (k, mut list) in by_name {
        v.tokens += list.len();
        list.sort_by_key(|h| h.start);
        for w in list.windows(2) {
            if w[1].token <= w[0].token {
                v.violations.push(format!(
                    "fencing token did not increase on {:?}: {:?} then {:?}",
                    names.get(k).map_or("?", |s| s.as_str()),
                    w[0],
                    w[1]
                ));
            }
        }
    }
}
