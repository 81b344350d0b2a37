//! The report: targets and verdicts, the tables, the machine, and why a missed target
//! was missed. Rendered as Markdown (BENCHMARKS.md) and, in part, to the terminal.

use std::fmt::Write as _;
use std::path::Path;

use crate::contention::{ContRow, Contender, Scope};
use crate::fairness::{self, FairRow};
use crate::handover::{HandRow, Waiter};
use crate::pg::PgResult;
use crate::python::PyResult;
use crate::run::{RunResult, Sizes};
use crate::stats::{self, dur, ns, ops_per_s, ratio};
use crate::sys;
use crate::uncontended::{self, Measured};

/// Whether a target was reached.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Reached.
    Met,
    /// Missed, by how much.
    Missed(String),
    /// Not measured in this run, and why.
    NotRun(String),
}

/// One line of the target summary.
#[derive(Clone, Debug)]
pub struct Target {
    /// Case number and short description.
    pub case: String,
    /// The target as stated in the issue.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// Met or not.
    pub verdict: Verdict,
}

fn at_most(case: &str, target_txt: &str, v: f64, limit: f64, shown: String) -> Target {
    let verdict = if !v.is_finite() {
        Verdict::NotRun("not measured".to_owned())
    } else if v <= limit {
        Verdict::Met
    } else {
        Verdict::Missed(format!("by {:.0}%", (v / limit - 1.0) * 100.0))
    };
    Target {
        case: case.to_owned(),
        target: target_txt.to_owned(),
        measured: shown,
        verdict,
    }
}

fn at_least(case: &str, target_txt: &str, v: f64, limit: f64, shown: String) -> Target {
    let verdict = if !v.is_finite() {
        Verdict::NotRun("not measured".to_owned())
    } else if v >= limit {
        Verdict::Met
    } else {
        Verdict::Missed(format!("by {:.0}%", (1.0 - v / limit) * 100.0))
    };
    Target {
        case: case.to_owned(),
        target: target_txt.to_owned(),
        measured: shown,
        verdict,
    }
}

fn r(unc: &[Measured], a: &str, b: &str) -> f64 {
    uncontended::ratio(unc, a, b)
}

fn cont_row(rows: &[ContRow], scope: Scope, workers: usize, who: Contender) -> Option<&ContRow> {
    rows.iter()
        .find(|c| c.scope == scope && c.workers == workers && c.who == who)
}

fn scope_name(s: Scope) -> &'static str {
    match s {
        Scope::Threads => "threads",
        Scope::Processes => "processes",
    }
}

fn num(map: &Result<crate::scale::ScaleOut, String>, k: &str) -> f64 {
    map.as_ref()
        .ok()
        .and_then(|m| m.get(k))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Every target of the issue, evaluated on one run; a case left out with `--cases`
/// shows as one "not run" line instead of its targets.
pub fn targets(run: &RunResult, sizes: &Sizes) -> Vec<Target> {
    let scale_ran = !matches!(&run.scale, Err(e) if e.starts_with("not run"));
    let ran = |case: char| match case {
        '1' | '2' | '3' => !run.unc.is_empty(),
        '4' => !run.cont.is_empty(),
        '5' => !run.fair.is_empty(),
        '6' => !run.hand.is_empty(),
        '7' => scale_ran,
        _ => true,
    };
    let mut out: Vec<Target> = Vec::new();
    for t in all_targets(run, sizes) {
        let case = t.case.chars().next().unwrap_or('?');
        if ran(case) {
            out.push(t);
        } else if !out.iter().any(|o| o.case.starts_with(case)) {
            out.push(Target {
                case: format!("{case} (all targets)"),
                target: "–".into(),
                measured: "–".into(),
                verdict: Verdict::NotRun("not run (--cases)".into()),
            });
        }
    }
    out
}

fn all_targets(run: &RunResult, sizes: &Sizes) -> Vec<Target> {
    let u = &run.unc;
    let mut t = Vec::new();
    let pair = |v: f64| {
        if v.is_finite() {
            format!("{v:.2}")
        } else {
            "–".to_owned()
        }
    };
    for (mode, sl, f0, f1v) in [
        ("EX", "sl_ex_off", "f0_ex", "f1v_ex"),
        ("SH", "sl_sh_off", "f0_sh", "f1v_sh"),
    ] {
        let v = r(u, sl, f0);
        t.push(at_most(
            &format!("1 {mode}, metadata off, handles kept (same name)"),
            "≤ 1.5 × F0 (the target for a manager that keeps handles, as scanlock does)",
            v,
            1.5,
            format!("{} × F0", pair(v)),
        ));
        let v = r(u, sl, f1v);
        t.push(at_most(
            &format!("1 {mode}, metadata off, handles kept (same name)"),
            "≤ 1.3 × F1v (the general target)",
            v,
            1.3,
            format!("{} × F1v", pair(v)),
        ));
    }
    for (mode, sl, f1v) in [
        ("EX", "sl_ex_off_rot", "f1v_ex"),
        ("SH", "sl_sh_off_rot", "f1v_sh"),
    ] {
        let v = r(u, sl, f1v);
        t.push(at_most(
            &format!("1 {mode}, metadata off, no kept handles (128 names)"),
            "≤ 1.3 × F1v",
            v,
            1.3,
            format!("{} × F1v", pair(v)),
        ));
    }
    for (what, on, off) in [
        ("EX, same name", "sl_ex_on", "sl_ex_off"),
        ("SH, same name", "sl_sh_on", "sl_sh_off"),
        ("EX, 128 names", "sl_ex_on_rot", "sl_ex_off_rot"),
        ("SH, 128 names", "sl_sh_on_rot", "sl_sh_off_rot"),
    ] {
        let v = r(u, on, off);
        t.push(at_most(
            &format!("2 metadata on, {what}"),
            "≤ 1.5 × metadata off",
            v,
            1.5,
            format!("{} × off", pair(v)),
        ));
    }
    let v = r(u, "macro", "manual");
    t.push(at_most(
        "3 #[synchronized] vs manual",
        "≤ 1.1 ×",
        v,
        1.1,
        format!("{} × manual", pair(v)),
    ));
    for scope in [Scope::Threads, Scope::Processes] {
        for workers in [2, 8] {
            let raw = cont_row(&run.cont, scope, workers, Contender::Raw);
            let sl = cont_row(&run.cont, scope, workers, Contender::Scanlock);
            let (tp, p99) = match (raw, sl) {
                (Some(raw), Some(sl)) if sl.errors == 0 && raw.errors == 0 => (
                    sl.ops_per_s / raw.ops_per_s,
                    sl.wait.p99 as f64 / raw.wait.p99.max(1) as f64,
                ),
                _ => (f64::NAN, f64::NAN),
            };
            let case = format!("4 {workers} {}", scope_name(scope));
            t.push(at_least(
                &format!("{case}, throughput"),
                "≥ 0.8 × raw flock",
                tp,
                0.8,
                format!("{} × raw", pair(tp)),
            ));
            t.push(at_most(
                &format!("{case}, p99 wait"),
                "≤ 1.5 × raw flock",
                p99,
                1.5,
                format!(
                    "{} vs {} = {} × raw",
                    sl.map_or("–".into(), |s| dur(s.wait.p99)),
                    raw.map_or("–".into(), |s| dur(s.wait.p99)),
                    pair(p99)
                ),
            ));
        }
    }
    let hold_ms = fairness::READER_HOLD.as_secs_f64() * 1e3;
    if let Some(f) = run.fair.iter().find(|f| f.who == "scanlock") {
        let ok = f.problem.is_none() && f.gave_up == 0;
        let v = if ok {
            f.wait.p99 as f64 / 1e6
        } else {
            f64::NAN
        };
        let mut tg = at_most(
            "5 writer among 4 overlapping readers, p99 wait",
            &format!("≤ {hold_ms:.0} ms hold + 2 ms"),
            v,
            hold_ms + 2.0,
            format!("{} (max {})", dur(f.wait.p99), dur(f.wait.max)),
        );
        if !ok {
            tg.verdict = Verdict::Missed(format!(
                "{} of {} attempts gave up{}",
                f.gave_up,
                f.attempts,
                f.problem
                    .as_ref()
                    .map_or(String::new(), |p| format!("; {p}"))
            ));
        }
        t.push(tg);
    }
    if let Some(f) = run.fair.iter().find(|f| f.who == "raw") {
        let starved = f.gave_up == f.attempts && f.problem.is_none();
        t.push(Target {
            case: "5 raw flock writer (reference)".into(),
            target: format!("starved: > {}", dur(f.cap.as_nanos() as u64)),
            measured: if starved {
                format!(
                    "> {} ({}/{} attempts gave up)",
                    dur(f.cap.as_nanos() as u64),
                    f.gave_up,
                    f.attempts
                )
            } else {
                format!("got in: p99 {}", dur(f.wait.p99))
            },
            // A reference, not a target of scanlock's: say whether the starvation that
            // scanlock's gate prevents was reproduced in this run.
            verdict: if starved {
                Verdict::NotRun("reference: starved, as expected".into())
            } else {
                Verdict::NotRun(
                    "reference: not starved in this run (on a loaded machine the readers' \
                     overlap breaks now and then, letting the raw writer in)"
                        .into(),
                )
            },
        });
    }
    if let Some(h) = run.hand.iter().find(|h| h.waiter == Waiter::ScanlockTimed) {
        let v = if h.problem.is_none() {
            h.latency.p99 as f64 / 1e6
        } else {
            f64::NAN
        };
        t.push(at_most(
            "6 hand-over to a timed waiter in another process, p99",
            "≤ 2 ms",
            v,
            2.0,
            format!("{} (max {})", dur(h.latency.p99), dur(h.latency.max)),
        ));
    }
    let s = &run.scale;
    let names = num(s, "names");
    let v2 = num(s, "pass2_ns") / num(s, "pass2_base_ns");
    t.push(at_most(
        &format!(
            "7 {} names once each, files exist, per op",
            stats::group(names as u64)
        ),
        "≤ 1.5 × case 1 (no kept handles)",
        v2,
        1.5,
        format!(
            "{} ns vs {} ns = {} ×",
            ns(num(s, "pass2_ns")),
            ns(num(s, "pass2_base_ns")),
            pair(v2)
        ),
    ));
    let v1 = num(s, "pass1_ns") / num(s, "pass1_base_ns");
    t.push(at_most(
        &format!(
            "7 {} new names (files created), per op",
            stats::group(names as u64)
        ),
        "≤ 1.5 × case 1 (no kept handles)",
        v1,
        1.5,
        format!(
            "{} ns vs {} ns = {} × (raw floor creating one fresh file: {} ×)",
            ns(num(s, "pass1_ns")),
            ns(num(s, "pass1_base_ns")),
            pair(v1),
            pair(num(s, "pass1_floor_create_ns") / num(s, "pass1_base_ns"))
        ),
    ));
    let fds_bound = num(s, "fds_before") + 3.0 * 64.0 + 8.0;
    let fds = num(s, "fds_max_meta");
    t.push(at_most(
        "7 open descriptors while cycling through the names",
        "bounded (≤ start + 3 × 64 cached names)",
        fds,
        fds_bound,
        format!("max {} (start {})", fds, num(s, "fds_before")),
    ));
    let grow = (num(s, "hwm_after_meta_kb") - num(s, "hwm_before_kb")) / 1024.0;
    t.push(at_most(
        "7 peak RSS growth over all passes",
        "bounded (≤ 16 MiB, independent of the number of names)",
        grow,
        16.0,
        format!(
            "+{grow:.1} MiB (VmHWM {:.1} → {:.1} MiB)",
            num(s, "hwm_before_kb") / 1024.0,
            num(s, "hwm_after_meta_kb") / 1024.0
        ),
    ));
    let held = num(s, "held");
    t.push(Target {
        case: "7 names held at once".into(),
        target: format!("{} works", sizes.held),
        measured: format!(
            "{} held, {} fds while holding, {} after",
            held,
            num(s, "fds_holding"),
            num(s, "fds_after_release")
        ),
        verdict: if held as usize == sizes.held {
            Verdict::Met
        } else {
            Verdict::Missed(s.as_ref().err().cloned().unwrap_or_default())
        },
    });
    let fl = &run.fd_limit;
    let msg = fl
        .as_ref()
        .ok()
        .and_then(|m| m.get("error").cloned())
        .unwrap_or_default();
    let clear = msg.to_lowercase().contains("too many open files");
    t.push(Target {
        case: format!("7 at RLIMIT_NOFILE = {}", sizes.fd_limit),
        target: "a clear LockError, no crash".into(),
        measured: match fl {
            Ok(m) => format!(
                "{} names held, then `{}`",
                m.get("held").cloned().unwrap_or_default(),
                m.get("error_kind").cloned().unwrap_or_default()
            ),
            Err(e) => e.clone(),
        },
        verdict: if clear {
            Verdict::Met
        } else {
            Verdict::Missed("see the case 7 section".into())
        },
    });
    match &run.pg {
        PgResult::Ran(m) => {
            let v = r(m, "pg_off", "pg_raw");
            t.push(at_most(
                "8 postgres lock+unlock, metadata off",
                "≤ 1.2 × raw advisory pair",
                v,
                1.2,
                format!("{} × raw", pair(v)),
            ));
        }
        PgResult::Skipped(why) => t.push(Target {
            case: "8 postgres lock+unlock".into(),
            target: "≤ 1.2 × raw advisory pair".into(),
            measured: "–".into(),
            verdict: Verdict::NotRun(why.clone()),
        }),
    }
    t
}

fn verdict_txt(v: &Verdict) -> String {
    match v {
        Verdict::Met => "met".into(),
        Verdict::Missed(by) => format!("**missed** {by}"),
        Verdict::NotRun(why) => why.clone(),
    }
}

/// The target summary as a Markdown table.
pub fn targets_table(ts: &[Target]) -> String {
    let mut s = String::from("| case | target | measured | verdict |\n|---|---|---|---|\n");
    for t in ts {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            t.case,
            t.target,
            t.measured,
            verdict_txt(&t.verdict)
        );
    }
    s
}

/// The uncontended table (name, median ns/op, ops/s, ratio to its floor), with the
/// Python peers appended when they ran.
pub fn main_table(run: &RunResult) -> String {
    let u = &run.unc;
    let mut s =
        String::from("| name | median ns/op | ops/s | ratio | to |\n|---|--:|--:|--:|---|\n");
    for m in u {
        let floor = uncontended::get(u, m.floor);
        let (rt, to) = match floor {
            Some(f) if f.key != m.key => (ratio(m.median_ns / f.median_ns), f.label),
            _ => ("1.00×".to_owned(), "(floor)"),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            m.label,
            ns(m.median_ns),
            ops_per_s(m.median_ns),
            rt,
            short(to)
        );
    }
    if let PyResult::Ran(rows, _) = &run.python {
        let f1 = uncontended::get(u, "f1_ex").map_or(f64::NAN, |m| m.median_ns);
        for p in rows {
            let _ = writeln!(
                s,
                "| Python: {} {} | {} | {} | {} | F1 (Rust) |",
                p.name,
                p.version,
                ns(p.median_ns),
                ops_per_s(p.median_ns),
                ratio(p.median_ns / f1)
            );
        }
    }
    if let PgResult::Ran(m) = &run.pg {
        for x in m {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                x.label,
                ns(x.median_ns),
                ops_per_s(x.median_ns),
                ratio(
                    x.median_ns / uncontended::get(m, "pg_raw").map_or(f64::NAN, |p| p.median_ns)
                ),
                if x.key == "pg_raw" {
                    "(floor)"
                } else {
                    "raw advisory pair"
                }
            );
        }
    }
    s
}

/// The first words of a floor's label ("F0", "F1v", ...) or the whole label.
fn short(label: &str) -> &str {
    if label.starts_with('F') {
        label.split_whitespace().next().unwrap_or(label)
    } else {
        label
    }
}

fn contention_table(run: &RunResult) -> String {
    let mut s = String::from(
        "| workers | contender | holds/s | × raw | wait p50 | p99 | p99.9 | max | p99 × raw | holds per worker (min–max) |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for c in &run.cont {
        let raw = cont_row(&run.cont, c.scope, c.workers, Contender::Raw);
        let (x, p) = raw.map_or((f64::NAN, f64::NAN), |raw| {
            (
                c.ops_per_s / raw.ops_per_s,
                c.wait.p99 as f64 / raw.wait.p99.max(1) as f64,
            )
        });
        let _ = writeln!(
            s,
            "| {} {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {}–{} |",
            c.workers,
            scope_name(c.scope),
            c.who.label(),
            if c.errors > 0 {
                format!(" ({} errors)", c.errors)
            } else {
                String::new()
            },
            stats::group(c.ops_per_s.round() as u64),
            ratio(x),
            dur(c.wait.p50),
            dur(c.wait.p99),
            dur(c.wait.p999),
            dur(c.wait.max),
            ratio(p),
            stats::group(c.per_worker.0 as u64),
            stats::group(c.per_worker.1 as u64),
        );
    }
    s
}

fn fairness_table(rows: &[FairRow]) -> String {
    let mut s = String::from(
        "| writer | attempts | got in | wait p50 | p99 | max | gave up (cap) |\n|---|--:|--:|--:|--:|--:|--:|\n",
    );
    for f in rows {
        let got = f.wait.n;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} ({}){} |",
            f.who,
            f.attempts,
            got,
            if got > 0 {
                dur(f.wait.p50)
            } else {
                "–".into()
            },
            if got > 0 {
                dur(f.wait.p99)
            } else {
                "–".into()
            },
            if got > 0 {
                dur(f.wait.max)
            } else {
                "–".into()
            },
            f.gave_up,
            dur(f.cap.as_nanos() as u64),
            f.problem
                .as_ref()
                .map_or(String::new(), |p| format!("; {p}"))
        );
    }
    s
}

fn handover_table(rows: &[HandRow]) -> String {
    let mut s = String::from(
        "| waiter (other process) | hand-overs | p50 | p99 | p99.9 | max |\n|---|--:|--:|--:|--:|--:|\n",
    );
    for h in rows {
        let _ = writeln!(
            s,
            "| {}{} | {} | {} | {} | {} | {} |",
            h.waiter.label(),
            h.problem
                .as_ref()
                .map_or(String::new(), |p| format!(" ({p})")),
            h.latency.n,
            dur(h.latency.p50),
            dur(h.latency.p99),
            dur(h.latency.p999),
            dur(h.latency.max)
        );
    }
    s
}

fn scale_section(run: &RunResult) -> String {
    let s = &run.scale;
    let mut o = String::new();
    if let Err(e) = s {
        let _ = writeln!(o, "The scale child failed: {e}\n");
    }
    let n = stats::group(num(s, "names") as u64);
    let _ = writeln!(
        o,
        "| measure | value |\n|---|--:|\n\
         | pass 1: {n} new names, scanlock EX acquire+release (metadata off), median per op | {} ns |\n\
         | pass 1: case 1 reference, interleaved (128 names, no kept handles) | {} ns |\n\
         | pass 1: raw floor, create a fresh file + flock + same-inode check + close | {} ns |\n\
         | pass 1: wall time | {} ms |\n\
         | pass 2: the same {n} names again (files exist), median per op | {} ns |\n\
         | pass 2: case 1 reference, interleaved | {} ns |\n\
         | metadata on (default): {n} new names, median per op | {} ns |\n\
         | open descriptors: at start / with 64 names cached / max while cycling (metadata off) / max (metadata on) | {} / {} / {} / {} |\n\
         | peak RSS (VmHWM): before / after metadata-off passes / after metadata-on pass | {:.1} / {:.1} / {:.1} MiB |\n\
         | {} names held at once: acquisition per name | {} ns |\n\
         | descriptors while holding them / after release | {} / {} |\n",
        ns(num(s, "pass1_ns")),
        ns(num(s, "pass1_base_ns")),
        ns(num(s, "pass1_floor_create_ns")),
        num(s, "pass1_total_ms"),
        ns(num(s, "pass2_ns")),
        ns(num(s, "pass2_base_ns")),
        ns(num(s, "meta_pass_ns")),
        num(s, "fds_start"),
        num(s, "fds_before"),
        num(s, "fds_max"),
        num(s, "fds_max_meta"),
        num(s, "hwm_before_kb") / 1024.0,
        num(s, "hwm_after_kb") / 1024.0,
        num(s, "hwm_after_meta_kb") / 1024.0,
        num(s, "held"),
        ns(num(s, "held_ns_per_name")),
        num(s, "fds_holding"),
        num(s, "fds_after_release"),
    );
    match &run.fd_limit {
        Ok(m) => {
            let g = |k: &str| m.get(k).cloned().unwrap_or_default();
            let _ = writeln!(
                o,
                "With `RLIMIT_NOFILE` lowered to {} (soft and hard) in a child process, \
                 `try_acquire_lock` on ever more names (metadata on: 3 descriptors per held \
                 name) held {} names and then returned `{}`, and the process carried on:\n\n> {}\n",
                g("limit"),
                g("held"),
                g("error_kind"),
                g("error"),
            );
            if g("works_after_release") == "true" {
                let _ = writeln!(
                    o,
                    "After releasing all guards ({} descriptors open) it took a new name again.\n",
                    g("fds_after_release")
                );
            } else {
                let _ = writeln!(
                    o,
                    "**Finding:** after releasing all guards the process still had {} descriptors \
                     open (the released names' handles stay in the idle-handle cache), so a \
                     *new* name still failed:\n\n> {}\n\n\
                     Proposed fix (library): when opening a lock file fails with EMFILE/ENFILE, \
                     close the idle cached handles and retry once.\n",
                    g("fds_after_release"),
                    g("error_after_release")
                );
            }
        }
        Err(e) => {
            let _ = writeln!(o, "The descriptor-limit child failed: {e}\n");
        }
    }
    o
}

fn python_section(run: &RunResult) -> String {
    let mut o = String::new();
    match &run.python {
        PyResult::Skipped(why) => {
            let _ = writeln!(o, "Python peers: {why}.\n");
        }
        PyResult::Ran(rows, notes) => {
            let raw = rows
                .iter()
                .find(|p| p.name.starts_with("raw "))
                .map_or(f64::NAN, |p| p.median_ns);
            let sl = uncontended::get(&run.unc, "sl_ex_off").map_or(f64::NAN, |m| m.median_ns);
            let sl_on = uncontended::get(&run.unc, "sl_ex_on").map_or(f64::NAN, |m| m.median_ns);
            let _ = writeln!(
                o,
                "| library (Python) | version | median ns/op | × Python raw loop | × scanlock EX (metadata on) | × scanlock EX (metadata off) |\n|---|---|--:|--:|--:|--:|"
            );
            for p in rows {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} |",
                    p.name,
                    p.version,
                    ns(p.median_ns),
                    ratio(p.median_ns / raw),
                    ratio(p.median_ns / sl_on),
                    ratio(p.median_ns / sl),
                );
            }
            for n in notes {
                let _ = writeln!(o, "\nNote: {n}");
            }
            o.push('\n');
        }
    }
    o
}

fn pg_section(run: &RunResult) -> String {
    match &run.pg {
        PgResult::Skipped(why) => format!("Case 8 (PostgreSQL): {why}.\n"),
        PgResult::Ran(m) => {
            let mut o =
                String::from("| name | median ns/op | ops/s | × raw pair |\n|---|--:|--:|--:|\n");
            for x in m {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    x.label,
                    ns(x.median_ns),
                    ops_per_s(x.median_ns),
                    ratio(uncontended::ratio(m, x.key, "pg_raw"))
                );
            }
            o
        }
    }
}

/// Why each missed target was missed, and what would reach it, with this run's numbers.
fn notes(run: &RunResult, ts: &[Target]) -> String {
    let u = &run.unc;
    let missed = |prefix: &str| {
        ts.iter()
            .any(|t| t.case.starts_with(prefix) && matches!(t.verdict, Verdict::Missed(_)))
    };
    let g = |k: &str| uncontended::get(u, k).map_or(f64::NAN, |m| m.median_ns);
    let mut o = String::new();
    if missed("1 EX, metadata off, handles kept") || missed("1 SH, metadata off, handles kept") {
        let _ = writeln!(
            o,
            "**Case 1 with kept handles vs F0.** F0 is two system calls (`flock`, unlock) on an \
             open descriptor. One scanlock acquire+release of a kept name makes five (strace): \
             `flock` the gate, `flock` the lock, `fstat` the open lock directory, unlock the \
             gate, unlock the lock. The directory's version (its timestamps, link count and \
             inode) stands in for two checks while it is unchanged and settled (2 s old): that \
             the kept descriptor is still the file at the path (`fstat` + `lstat`, the \
             same-inode check) and that no plantdb `.info` exists (a failed `open`); both run \
             again after any change to `.locks/` (the case \"lock directory just changed\" \
             above: {} ns, {} the steady state). Issued raw with no library code at all, the \
             five calls cost {} ns EX / {} ns SH here ({} / {} F0): that is the floor of this \
             design, and it is above the 1.5 × F0 target. scanlock itself adds {} ns EX / {} \
             ns SH on top of its own system calls (registry and handle-cache look-ups under \
             mutexes, boxing the back-end lock, the guard).\n\n\
             - The gate (2 of the 5 calls) is the price of writer preference across processes \
             (case 5): without it plain `flock` starves writers (the raw writer above never got \
             in).\n\
             - The directory's `fstat` is what lets the same-inode check (F1v − F1 = {} ns \
             with a raw loop) and the `.info` probe be skipped.\n\n\
             What could go further, and why it is not done: an exclusive request could try \
             `flock(lock, LOCK_EX|LOCK_NB)` before the gate and skip the gate when that \
             succeeds (3 calls for an uncontended writer), but a writer arriving as the lock \
             frees would then barge past a writer waiting at the gate, and a timed waiter, \
             which polls, could be starved by a stream of them: the gate exists to prevent \
             exactly that. Readers must look at the gate, which costs a `flock` and an unlock \
             however it is done.\n",
            ns(g("sl_ex_off_changing")),
            ratio(g("sl_ex_off_changing") / g("sl_ex_off")),
            ns(g("replay_ex")),
            ns(g("replay_sh")),
            ratio(g("replay_ex") / g("f0_ex")),
            ratio(g("replay_sh") / g("f0_sh")),
            ns(g("sl_ex_off") - g("replay_ex")),
            ns(g("sl_sh_off") - g("replay_sh")),
            ns(g("f1v_ex") - g("f1_ex")),
        );
    }
    if missed("1 EX, metadata off, no kept") || missed("1 SH, metadata off, no kept") {
        let _ = writeln!(
            o,
            "**Case 1 without kept handles vs F1v.** A name that is not in the handle cache \
             costs two `open`s (the gate and the lock) and two `close`s where F1v opens and \
             closes one file, and its fresh descriptor gets the full same-inode check and the \
             `.info` probe (it was checked at no version of the directory yet): eleven system \
             calls against F1v's six. The raw replay of that sequence costs {} ns EX ({} \
             F1v), scanlock {} ns ({} F1v); the rest is the cache eviction (a linear scan of \
             the 64 cached names for the oldest one), building the name's paths, and \
             allocation. Reaching ≤ 1.3 × F1v would need one file per name instead of two \
             (the gate as a byte-range lock inside the lock file, say, which would change the \
             on-disk protocol that running processes share) and a probe-free first look.\n",
            ns(g("replay_ex_rot")),
            ratio(g("replay_ex_rot") / g("f1v_ex")),
            ns(g("sl_ex_off_rot")),
            ratio(g("sl_ex_off_rot") / g("f1v_ex")),
        );
    }
    if missed("2 ") {
        let _ = writeln!(
            o,
            "**Case 2, metadata on.** With metadata, every new holder writes its JSON record \
             (serialising a `LockInfo`: user, pid, host, thread name, time; one `pwrite`) and \
             marks it inactive at release (another `pwrite`): {} ns EX here, two buffered \
             writes to ext4 and the serialisation. That is a fixed price, so the ratio grew \
             as the metadata-off path got cheaper (1.57× before the directory-version change \
             took two `stat`s out of it). The one write that could go is the release's: a \
             status reader could instead compare a record with the kernel's lock table, but \
             not on systems without `/proc/locks`, and a reader would then see the previous \
             holder's record for the moment between a new holder's lock and its write. A name \
             that is not in the handle cache also creates its record file (`O_TMPFILE` + \
             `linkat`) and unlinks it on eviction, which costs far more than the lock \
             itself. Use `.metadata(false)` on hot paths with many names.\n",
            ns(g("sl_ex_on") - g("sl_ex_off")),
        );
    }
    if missed("3 ") {
        let _ = writeln!(
            o,
            "**Case 3.** The macro expands to the same `format!` + `acquire_lock_with` as the \
             manual code; a difference beyond noise would come from inlining.\n"
        );
    }
    if missed("4 ") {
        let hold = crate::run::Sizes::for_mode(false).hold_ns as f64;
        let bound = |sl: &str| (hold + g("f0_ex")) / (hold + g(sl));
        let forever_x = |workers: usize| {
            let row = |who| cont_row(&run.cont, Scope::Processes, workers, who);
            match (row(Contender::ScanlockForever), row(Contender::Raw)) {
                (Some(f), Some(r)) => f.ops_per_s / r.ops_per_s,
                _ => f64::NAN,
            }
        };
        let _ = writeln!(
            o,
            "**Case 4, contention.** Between threads of one process, scanlock hands an \
             exclusive hold from one thread to the next without releasing the OS lock while \
             another thread of the process waits for it (at most 16 times in a row and for \
             2 ms, so that other processes get their turn): a hand-over then costs no system \
             call, only the holder record's writes with metadata on. Between processes two \
             things hold scanlock back. (1) Its own cost per hold: with a {:.0} µs critical \
             section, a worker's cycle is the hold plus one acquire+release, so even with \
             perfect hand-overs the throughput could be at most (hold + F0) / (hold + \
             scanlock) = {} of raw with metadata (the default) and {} without. (2) The gate: \
             a worker that releases and asks again finds the other process's writer waiting at \
             the gate and queues behind it, so the hold alternates between processes and every \
             hold starts with a wake-up in another process; raw `flock` lets the releasing \
             worker take the lock straight back (barging), which is why raw p99 is a \
             microsecond with 2 workers while its p99.9 and max are milliseconds. On top of \
             that, a timed wait cannot sleep in `flock` (it could not be woken at its \
             deadline), so it polls with a back-off up to 1 ms (`Wait::Forever` blocks in the \
             kernel and shows what the polling costs). What would help: a timed waiter woken by \
             a helper thread blocked in `flock` (on the waiter's descriptor, abandoned at the \
             deadline, or on a second descriptor as a probe). Not done: it would start \
             threads inside users' processes (one per blocked timed wait), and it would not \
             reach the target either, because of (1) and (2): `Wait::Forever`, which blocks \
             in the kernel, is at {} of raw with 2 processes and {} with 8.\n",
            hold / 1e3,
            ratio(bound("sl_ex_on")),
            ratio(bound("sl_ex_off")),
            ratio(forever_x(2)),
            ratio(forever_x(8)),
        );
    }
    if missed("5 writer") {
        let _ = writeln!(
            o,
            "**Case 5.** A waiting writer holds the gate, so new readers queue; it then polls \
             the lock with a back-off capped at 1 ms while the current readers finish.\n"
        );
    }
    if missed("6 ") {
        let _ = writeln!(
            o,
            "**Case 6.** A timed waiter cannot sleep in `flock` (it could not be woken at \
             its deadline), so it polls with a back-off capped at 1 ms (`MAX_POLL` in \
             `backend/mod.rs`): a release is noticed after 0.5 ms on average and 1 ms at worst, \
             plus the time the waiter takes to be scheduled, which on a loaded two-core machine \
             can exceed the remaining 1 ms. What would reach it reliably: a cap of 0.5 ms (twice \
             the polls during a long wait, each two non-blocking `flock` calls), or a timed \
             waiter that blocks in `flock` on a helper thread and abandons it at the deadline \
             (then hand-over costs what `Wait::Forever` shows).\n"
        );
    }
    if missed("7 ") {
        let s = &run.scale;
        let _ = writeln!(
            o,
            "**Case 7.** A name seen for the first time costs the creation of two files (the \
             gate and the lock, each an inode and a directory entry) where case 1's \
             reference opens existing ones. The raw floor for creating one fresh file in the \
             same directory, locking it and checking it is {} ns here ({} the case 1 \
             reference), scanlock's new name {} ns ({} that floor): the target compares a \
             creation with an open, which no named lock can meet, since the file has to be \
             created once. On ext4 right after a mass deletion (the previous run's scratch \
             directory) creation is much dearer still: `perf` shows the time in the inode \
             allocator (`find_inode_bit`, `recently_deleted`), not in scanlock. Once the files \
             exist (pass 2) the cost per name is case 1's. What would narrow it: create the \
             gate only when a writer first has to wait (one creation per new name instead of \
             two).\n",
            ns(num(s, "pass1_floor_create_ns")),
            ratio(num(s, "pass1_floor_create_ns") / num(s, "pass1_base_ns")),
            ns(num(s, "pass1_ns")),
            ratio(num(s, "pass1_ns") / num(s, "pass1_floor_create_ns")),
        );
    }
    if missed("8 ") {
        let (pg_u, pg_off) = match &run.pg {
            PgResult::Ran(m) => (
                uncontended::ratio(m, "pg_raw_unnamed", "pg_raw"),
                uncontended::ratio(m, "pg_off", "pg_raw_unnamed"),
            ),
            PgResult::Skipped(_) => (f64::NAN, f64::NAN),
        };
        let _ = writeln!(
            o,
            "**Case 8.** An uncontended scanlock lock+unlock makes the same two round trips as \
             the raw pair (`pg_try_advisory_lock`, then `pg_advisory_unlock`; seen with \
             `log_statement = all`), but sends them as unnamed statements \
             (`query_typed`), which the server parses and plans on every call. The raw pair \
             sent the same way costs {} the prepared one, and scanlock (metadata off) is {} \
             that unprepared pair: {} What would reach ≤ 1.2 ×: prepare the try-lock and unlock statements once per pooled \
             connection (keep the `Statement`s with the connection) and execute those. With \
             metadata on, each hold also inserts and deletes its row in `scanlock_holders` \
             (two more round trips).\n",
            ratio(pg_u),
            ratio(pg_off),
            if pg_off <= 1.1 {
                "the gap is the per-call parsing, not extra work."
            } else {
                "the per-call parsing is most of the gap; the rest is scanlock's client side \
                 (pool checkout, the in-process layer) and the noise of a server sharing the \
                 CPUs with the benchmark."
            },
        );
    }
    if o.is_empty() {
        o.push_str("Every target was met in this run.\n");
    }
    o
}

/// Machine and run description.
pub struct Meta<'a> {
    /// The command that produced the report.
    pub command: &'a str,
    /// Where the scratch directories were.
    pub bench_dir: &'a Path,
    /// Quick or full.
    pub quick: bool,
}

fn git_state() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match out(&["rev-parse", "--short", "HEAD"]) {
        Some(h) => {
            let dirty = out(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{h} with uncommitted changes")
            } else {
                h
            }
        }
        None => "unknown".into(),
    }
}

fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The whole Markdown report for the chosen run, with the spread of all runs.
pub fn markdown(chosen: usize, runs: &[RunResult], sizes: &Sizes, meta: &Meta<'_>) -> String {
    let run = &runs[chosen];
    let ts = targets(run, sizes);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Benchmarks\n\n\
         Written by `scanlock-bench` (crate `bench/`); do not edit by hand, re-run it:\n\n\
         ```sh\n{}\n```\n\n\
         Case 8 needs the `postgres` feature and `SCANLOCK_TEST_PG_URL` naming a database \
         (scanlock creates its tables there at connect); case 9 needs a Python \
         with the peers, e.g. `python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip \
         install filelock fasteners portalocker`, named by `SCANLOCK_BENCH_PYTHON`. \
         Without them those cases say why they were skipped. `--quick` runs a few hundred \
         iterations per case to check the harness (CI) and never writes this file.\n\n\
         Every figure is a median, and every ratio compares cases measured in the same run, \
         interleaved where they are single-threaded, so the ratios hold on a busy machine \
         even where the absolute times do not.\n",
        meta.command
    );
    let _ = writeln!(
        o,
        "## Machine and run\n\n\
         | | |\n|---|---|\n\
         | CPU | {} |\n\
         | kernel | {} |\n\
         | file system of the bench directory | {} |\n\
         | bench directory | {} (scratch directories inside it, removed afterwards) |\n\
         | scanlock | {} |\n\
         | date | {} |\n\
         | mode | {} |\n\
         | runs | {} (reported: run {}, the median by scanlock EX / F0) |\n\
         | load average (1, 5, 15 min) at start / end of the reported run | {} / {} |\n\
         | wall time of the reported run | {:.0} s |\n",
        sys::cpu_model(),
        sys::kernel(),
        sys::fs_type(meta.bench_dir),
        meta.bench_dir.display(),
        git_state(),
        today(),
        if meta.quick {
            "quick (a few hundred iterations per case: checks the harness, not the numbers)"
        } else {
            "full"
        },
        runs.len(),
        chosen + 1,
        run.load.0,
        run.load.1,
        run.secs,
    );
    let _ = writeln!(o, "## Targets\n\n{}", targets_table(&ts));
    let _ = writeln!(
        o,
        "## Where targets are missed, and why\n\n{}",
        notes(run, &ts)
    );
    let _ = writeln!(
        o,
        "## Cases 1–3: uncontended acquire+release\n\n\
         F0 = `flock` + unlock on an open descriptor; F1 = open + `flock` + unlock + close of \
         a named file; F1v = F1 + the same-inode check after locking (`fstat` the descriptor, \
         `lstat` the path, compare device and inode, link count > 0). The floors, the raw \
         replays and the peers use files at the same depth as scanlock's \
         (`<root>/.locks/<name>.lock`). \"Same name\" repeats one name, whose handles \
         scanlock keeps open between acquisitions (a per-process cache of 64 idle names); \
         \"128 names\" cycles through more names than the cache keeps, so every acquisition \
         opens its files. {} rounds, each running a batch of every case (~{} ms).\n\n{}",
        sizes.plan.rounds,
        sizes.plan.batch_ns / 1_000_000,
        main_table(run)
    );
    let _ = writeln!(
        o,
        "## Case 4: contention on one name\n\n\
         Every worker takes the name exclusively, holds it for a busy {} µs and asks again at \
         once, for {:.1} s. The raw peer opens its own descriptor per worker and blocks in \
         `flock`. Wait = from asking to holding. Processes are this binary re-executed; \
         timestamps are CLOCK_MONOTONIC.\n\n{}",
        sizes.hold_ns / 1_000,
        sizes.contention.as_secs_f64(),
        contention_table(run)
    );
    let _ = writeln!(
        o,
        "## Case 5: a writer among overlapping readers\n\n\
         {} reader processes each hold the name shared for {} ms and re-acquire at once, \
         started a quarter hold apart, so that the name is never free of readers. A writer \
         process asks for it exclusively every 2–8 ms and holds it 100 µs. The raw writer's \
         blocking `flock` is interrupted at the cap by a timer (as `flock -w` does).\n\n{}",
        fairness::READERS,
        fairness::READER_HOLD.as_millis(),
        fairness_table(&run.fair)
    );
    let _ = writeln!(
        o,
        "## Case 6: hand-over latency between processes\n\n\
         This process holds the name; a waiter in another process is already waiting; this \
         process releases it after 2–6 ms. Latency = from just before the release call \
         (CLOCK_MONOTONIC in the holder) to the waiter's return with the lock (CLOCK_MONOTONIC \
         in the waiter).\n\n{}",
        handover_table(&run.hand)
    );
    let _ = writeln!(
        o,
        "## Case 7: many names\n\n\
         In a child process of its own (so that peak RSS and descriptors are its own). \
         Medians over chunks of 1 000 names, each chunk followed by the reference loops, so \
         the ratios compare neighbouring milliseconds.\n\n{}",
        scale_section(run)
    );
    let _ = writeln!(o, "## Case 8: PostgreSQL back end\n\n{}", pg_section(run));
    let _ = writeln!(
        o,
        "## Case 9: Python peers\n\n\
         `bench/peers.py` times each library's lock object doing acquire+release in a loop \
         (each opens and closes its file per acquisition, like F1), interleaved with a raw \
         Python loop (`os.open` + `fcntl.flock` + `os.close`).\n\n{}",
        python_section(run)
    );
    if runs.len() > 1 {
        let _ = writeln!(
            o,
            "## Spread across runs\n\n\
             | run | load at start | scanlock EX / F0 | EX / F1v | EX 128 names / F1v | metadata on / off (EX) | macro / manual | 8 processes throughput × raw | hand-over p99 |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|"
        );
        for (i, rr) in runs.iter().enumerate() {
            let u = &rr.unc;
            let tp = match (
                cont_row(&rr.cont, Scope::Processes, 8, Contender::Scanlock),
                cont_row(&rr.cont, Scope::Processes, 8, Contender::Raw),
            ) {
                (Some(a), Some(b)) => a.ops_per_s / b.ops_per_s,
                _ => f64::NAN,
            };
            let h = rr
                .hand
                .iter()
                .find(|h| h.waiter == Waiter::ScanlockTimed)
                .map_or("–".into(), |h| dur(h.latency.p99));
            let _ = writeln!(
                o,
                "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} |",
                i + 1,
                if i == chosen { " (reported)" } else { "" },
                rr.load.0,
                ratio(r(u, "sl_ex_off", "f0_ex")),
                ratio(r(u, "sl_ex_off", "f1v_ex")),
                ratio(r(u, "sl_ex_off_rot", "f1v_ex")),
                ratio(r(u, "sl_ex_on", "sl_ex_off")),
                ratio(r(u, "macro", "manual")),
                ratio(tp),
                h
            );
        }
        o.push('\n');
    }
    o
}

/// What the terminal shows: the main table and the target summary.
pub fn terminal(chosen: usize, runs: &[RunResult], sizes: &Sizes) -> String {
    let run = &runs[chosen];
    let mut o = main_table(run);
    if !run.cont.is_empty() {
        let _ = write!(
            o,
            "\ncase 4, contention (wait percentiles):\n{}",
            contention_table(run)
        );
    }
    if !run.fair.is_empty() {
        let _ = write!(
            o,
            "\ncase 5, writer fairness:\n{}",
            fairness_table(&run.fair)
        );
    }
    if !run.hand.is_empty() {
        let _ = write!(
            o,
            "\ncase 6, hand-over latency:\n{}",
            handover_table(&run.hand)
        );
    }
    let _ = write!(o, "\ntargets:\n{}", targets_table(&targets(run, sizes)));
    o
}
