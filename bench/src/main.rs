//! `scanlock-bench`: runs the whole comparison of issue 5 and writes `BENCHMARKS.md`.
//!
//! ```text
//! scanlock-bench [--quick] [--runs N] [--out FILE] [--dir DIR] [--python PYTHON] [--cases LIST]
//! ```
//!
//! - `--quick`: a few hundred iterations per case (CI: checks that the harness works);
//!   writes only where `--out` says and never over the committed `BENCHMARKS.md`.
//! - `--runs N`: repeat the comparison N times (default 3, quick 1) and report the
//!   median run, with the spread of all.
//! - `--out FILE`: where to write the Markdown (default: `BENCHMARKS.md` at the
//!   workspace root in full mode, nowhere in quick mode).
//! - `--dir DIR`: parent of the scratch directories (default: the temporary directory,
//!   `/tmp`); its file system is stated in the report.
//! - `--python PYTHON` (or `SCANLOCK_BENCH_PYTHON`): a Python with `filelock`,
//!   `fasteners` and `portalocker`, to run `bench/peers.py`.
//! - `--cases LIST`: only these cases, e.g. `4,6` (default: all, `1-9`; cases 1–3
//!   always run together, and case 9 needs case 1's figures).
//!
//! Internally the binary re-executes itself with `--role NAME` for the multi-process
//! cases.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use scanlock_bench::child::{ROLE_ARG, RoleArgs};
use scanlock_bench::run::{self, Config, Sizes};
use scanlock_bench::{contention, fairness, handover, python, report, scale};

const HELP: &str = "\
scanlock-bench: scanlock against the flock floor and its peers (issue 5)

usage: scanlock-bench [--quick] [--runs N] [--out FILE] [--dir DIR] [--python PYTHON] [--cases LIST]

  --quick          a few hundred iterations per case (checks the harness); writes only to --out
  --runs N         repeat the comparison N times and report the median run (default 3, quick 1)
  --out FILE       the Markdown report (default: BENCHMARKS.md at the workspace root; quick: none)
  --dir DIR        parent of the scratch directories (default: the temporary directory)
  --python PYTHON  a Python with filelock, fasteners, portalocker (or SCANLOCK_BENCH_PYTHON)
  --cases LIST     only these cases, e.g. 4,6 or 1-3 (default 1-9)";

/// The committed report, which quick mode must never overwrite.
const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../BENCHMARKS.md");

fn role(name: &str, rest: &[String]) -> ExitCode {
    let a = RoleArgs::parse(rest);
    match name {
        "contend" => contention::role(&a),
        "reader" => fairness::reader_role(&a),
        "writer" => fairness::writer_role(&a),
        "waiter" => handover::waiter_role(&a),
        "scale" => scale::scale_role(&a),
        "fdlimit" => scale::fd_limit_role(&a),
        other => {
            eprintln!("unknown role {other}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn usage(err: &str) -> ExitCode {
    eprintln!(
        "scanlock-bench: {err}\n\
         usage: scanlock-bench [--quick] [--runs N] [--out FILE] [--dir DIR] [--python PYTHON] [--cases LIST]"
    );
    ExitCode::from(2)
}

/// The same file, whether or not it exists yet.
fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| {
        let parent = p
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::canonicalize(parent)
            .map(|d| d.join(p.file_name().unwrap_or_default()))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    canon(a) == canon(b)
}

/// `1,4-6` → `[1, 4, 5, 6]`.
fn parse_cases(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u8, u8) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        if a < 1 || b > 9 || a > b {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(ROLE_ARG) {
        return match args.get(1) {
            Some(name) => role(name, &args[2..]),
            None => usage("--role needs a name"),
        };
    }
    let mut quick = false;
    let mut runs = None;
    let mut out: Option<PathBuf> = None;
    let mut parent = std::env::temp_dir();
    let mut py = std::env::var(python::PYTHON_ENV)
        .ok()
        .filter(|s| !s.is_empty());
    let mut cases: Vec<u8> = (1..=9).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--runs" => match it.next().and_then(|v| v.parse::<usize>().ok()) {
                Some(n) if n > 0 => runs = Some(n),
                _ => return usage("--runs needs a positive number"),
            },
            "--out" => match it.next() {
                Some(v) => out = Some(PathBuf::from(v)),
                None => return usage("--out needs a file"),
            },
            "--dir" => match it.next() {
                Some(v) => parent = PathBuf::from(v),
                None => return usage("--dir needs a directory"),
            },
            "--python" => match it.next() {
                Some(v) => py = Some(v.clone()),
                None => return usage("--python needs an interpreter"),
            },
            "--cases" => match it.next().map(|v| parse_cases(v)) {
                Some(Some(c)) => cases = c,
                _ => return usage("--cases needs a list such as 1,4-6"),
            },
            "-h" | "--help" => {
                println!("{HELP}");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    let runs = runs.unwrap_or(if quick { 1 } else { 3 });
    let out = match out {
        Some(o) if quick && same_file(&o, Path::new(COMMITTED)) => {
            return usage("--quick never writes the committed BENCHMARKS.md; pass another --out");
        }
        Some(o) => Some(o),
        None if quick => None,
        None => Some(PathBuf::from(COMMITTED)),
    };

    let mut command = String::new();
    if py.is_some() {
        command.push_str(&format!(
            "{}={} ",
            python::PYTHON_ENV,
            py.as_deref().unwrap_or_default()
        ));
    }
    if cfg!(feature = "postgres") && std::env::var_os(scanlock_bench::pg::PG_ENV).is_some() {
        command.push_str(&format!("{}=postgres://... ", scanlock_bench::pg::PG_ENV));
    }
    command.push_str("cargo run --release -p scanlock-bench");
    if cfg!(feature = "postgres") {
        command.push_str(" --features postgres");
    }
    if !args.is_empty() {
        command.push_str(" -- ");
        command.push_str(&args.join(" "));
    }

    let cfg = Config {
        quick,
        parent: parent.clone(),
        python: py,
        cases,
    };
    let sizes = Sizes::for_mode(quick);
    let mut results = Vec::with_capacity(runs);
    for i in 0..runs {
        eprintln!("[scanlock-bench] run {} of {runs}", i + 1);
        results.push(run::run_once(&cfg, &sizes));
    }
    // The median run by the headline ratio (NaN sorts last).
    let mut order: Vec<usize> = (0..runs).collect();
    order.sort_by(|&a, &b| results[a].key_ratio().total_cmp(&results[b].key_ratio()));
    let chosen = order[(runs - 1) / 2];

    println!("{}", report::terminal(chosen, &results, &sizes));
    if let Some(out) = out {
        let md = report::markdown(
            chosen,
            &results,
            &sizes,
            &report::Meta {
                command: &command,
                bench_dir: &parent,
                quick,
            },
        );
        if let Err(e) = std::fs::write(&out, md) {
            eprintln!("scanlock-bench: cannot write {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
        eprintln!("[scanlock-bench] wrote {}", out.display());
    }
    let problems: Vec<String> = results.iter().flat_map(|r| r.harness_problems()).collect();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("[scanlock-bench] harness problem: {p}");
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_lists_parse_and_reject_what_is_not_a_case() {
        assert_eq!(parse_cases("1,4-6"), Some(vec![1, 4, 5, 6]));
        assert_eq!(parse_cases("9"), Some(vec![9]));
        for bad in ["0", "10", "3-1", "x", "1,", ""] {
            assert_eq!(parse_cases(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_committed_report_is_recognised_under_another_spelling() {
        let committed = Path::new(COMMITTED);
        let dir = committed.parent().unwrap();
        assert!(same_file(&dir.join("bench/../BENCHMARKS.md"), committed));
        assert!(!same_file(
            &std::env::temp_dir().join("BENCHMARKS.md"),
            committed
        ));
    }
}
