//! One full comparison: every case, in one process tree, in one scratch directory.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::contention::{self, ContRow, Contender, Scope};
use crate::fairness::{self, FairRow};
use crate::handover::{self, HandRow, Waiter};
use crate::pg::{self, PgResult};
use crate::python::{self, PyResult};
use crate::scale::{self, ScaleOut};
use crate::sys::{self, ScratchDir};
use crate::uncontended::{self, Measured, Plan, Roots};

/// What to run and how long.
#[derive(Clone, Debug)]
pub struct Config {
    /// A few hundred iterations per case: checks that the harness works (CI).
    pub quick: bool,
    /// Where the scratch directories go (default: the system temporary directory).
    pub parent: PathBuf,
    /// A Python with the peer libraries, for `peers.py`.
    pub python: Option<String>,
    /// The cases to run (1–9; cases 1–3 run together).
    pub cases: Vec<u8>,
}

impl Config {
    fn runs(&self, case: u8) -> bool {
        self.cases.contains(&case)
    }
}

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Cases 1–3 (and case 8).
    pub plan: Plan,
    /// Case 4: time per configuration.
    pub contention: Duration,
    /// Case 4: the critical section.
    pub hold_ns: u64,
    /// Case 5: scanlock writer requests.
    pub fair_attempts: usize,
    /// Case 5: raw writer requests, and the cap of each.
    pub fair_raw_attempts: usize,
    /// See above.
    pub fair_raw_cap: Duration,
    /// Case 6: hand-overs per waiter kind.
    pub handovers: usize,
    /// Case 7: distinct names.
    pub names: usize,
    /// Case 7: names held at once.
    pub held: usize,
    /// Case 7: the descriptor limit of the demonstration child.
    pub fd_limit: u64,
    /// Case 9: rounds and batch length of `peers.py`.
    pub py_rounds: usize,
    /// See above.
    pub py_batch_ms: f64,
}

impl Sizes {
    /// The sizes for a mode.
    pub fn for_mode(quick: bool) -> Sizes {
        if quick {
            Sizes {
                plan: Plan {
                    rounds: 5,
                    batch_ns: 500_000,
                },
                contention: Duration::from_millis(150),
                hold_ns: 10_000,
                fair_attempts: 20,
                fair_raw_attempts: 1,
                fair_raw_cap: Duration::from_secs(1),
                handovers: 20,
                names: 2_000,
                held: 1_000,
                fd_limit: 64,
                py_rounds: 3,
                py_batch_ms: 1.0,
            }
        } else {
            Sizes {
                plan: Plan {
                    rounds: 41,
                    batch_ns: 4_000_000,
                },
                contention: Duration::from_secs(2),
                hold_ns: 10_000,
                fair_attempts: 200,
                fair_raw_attempts: 2,
                fair_raw_cap: Duration::from_secs(5),
                handovers: 300,
                names: 100_000,
                held: 1_000,
                fd_limit: 64,
                py_rounds: 21,
                py_batch_ms: 4.0,
            }
        }
    }
}

/// Everything one run measured.
#[derive(Debug)]
pub struct RunResult {
    /// Cases 1–3, the floors and the Rust peers.
    pub unc: Vec<Measured>,
    /// Case 4.
    pub cont: Vec<ContRow>,
    /// Case 5.
    pub fair: Vec<FairRow>,
    /// Case 6.
    pub hand: Vec<HandRow>,
    /// Case 7: the scale child's report.
    pub scale: Result<ScaleOut, String>,
    /// Case 7: the descriptor-limit child's report.
    pub fd_limit: Result<ScaleOut, String>,
    /// Case 8.
    pub pg: PgResult,
    /// Case 9.
    pub python: PyResult,
    /// Load average at the start and at the end.
    pub load: (String, String),
    /// Wall time of the run.
    pub secs: f64,
}

impl RunResult {
    /// The headline ratio that picks the median run: scanlock's cached exclusive
    /// acquire+release over F0.
    pub fn key_ratio(&self) -> f64 {
        uncontended::ratio(&self.unc, "sl_ex_off", "f0_ex")
    }

    /// What went wrong in the harness itself (a child that failed or hung, failed
    /// acquisitions, a script that crashed), as opposed to a target that was missed:
    /// the binary exits non-zero when there is any, so that CI's quick run checks the
    /// harness.
    pub fn harness_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for c in &self.cont {
            if c.errors > 0 {
                p.push(format!(
                    "case 4 {:?} {} {}: {} failed acquisitions or workers",
                    c.scope,
                    c.workers,
                    c.who.arg(),
                    c.errors
                ));
            }
        }
        for f in &self.fair {
            if let Some(why) = &f.problem {
                p.push(format!("case 5 {}: {why}", f.who));
            }
        }
        for h in &self.hand {
            if let Some(why) = &h.problem {
                p.push(format!("case 6 {}: {why}", h.waiter.label()));
            }
        }
        for (what, r) in [("scale", &self.scale), ("descriptor limit", &self.fd_limit)] {
            if let Err(e) = r
                && !e.starts_with("not run")
            {
                p.push(format!("case 7 {what}: {e}"));
            }
        }
        if let PyResult::Skipped(why) = &self.python
            && (why.contains("failed") || why.contains("cannot run"))
        {
            p.push(format!("case 9: {why}"));
        }
        p
    }
}

/// Prints a progress line to stderr (stdout carries the results).
fn step(what: &str) {
    eprintln!("[scanlock-bench] {what}");
}

/// Runs every case once.
pub fn run_once(cfg: &Config, sizes: &Sizes) -> RunResult {
    let t = Instant::now();
    let load0 = sys::load_avg();
    let scratch = ScratchDir::new_in(&cfg.parent).expect("create scratch directory");
    let dir = scratch.path();

    let skipped = |why: &str| format!("not run ({why})");
    step("cases 1-3: uncontended, interleaved with the floors and the Rust peers");
    let (raw, off, off_rot, on, on_rot, macros) = (
        scratch.sub("raw"),
        scratch.sub("off"),
        scratch.sub("off-rot"),
        scratch.sub("on"),
        scratch.sub("on-rot"),
        scratch.sub("macro"),
    );
    let unc = if !(cfg.runs(1) || cfg.runs(2) || cfg.runs(3) || cfg.runs(9)) {
        Vec::new()
    } else {
        uncontended::suite(
            &Roots {
                raw: &raw,
                off: &off,
                off_rot: &off_rot,
                on: &on,
                on_rot: &on_rot,
                macros: &macros,
            },
            sizes.plan,
        )
    };

    if cfg.runs(4) {
        step("case 4: contention");
    }
    let mut cont = Vec::new();
    for scope in [Scope::Threads, Scope::Processes] {
        if !cfg.runs(4) {
            break;
        }
        for workers in [2, 8] {
            let mut who = vec![
                Contender::Raw,
                Contender::Scanlock,
                Contender::ScanlockNoMeta,
            ];
            if scope == Scope::Processes {
                who.push(Contender::ScanlockForever);
            }
            for w in who {
                cont.push(contention::measure(
                    dir,
                    scope,
                    workers,
                    w,
                    sizes.contention,
                    sizes.hold_ns,
                ));
            }
        }
    }

    if cfg.runs(5) {
        step("case 5: writer fairness");
    }
    let fair = if cfg.runs(5) {
        vec![
            fairness::measure(dir, false, sizes.fair_attempts, Duration::from_secs(5)),
            fairness::measure(dir, true, sizes.fair_raw_attempts, sizes.fair_raw_cap),
        ]
    } else {
        Vec::new()
    };

    if cfg.runs(6) {
        step("case 6: hand-over latency");
    }
    let hand = if cfg.runs(6) {
        [Waiter::ScanlockTimed, Waiter::ScanlockForever, Waiter::Raw]
            .into_iter()
            .map(|w| handover::measure(dir, w, sizes.handovers))
            .collect()
    } else {
        Vec::new()
    };

    if cfg.runs(7) {
        step("case 7: scale");
    }
    let (scale, fd_limit) = if cfg.runs(7) {
        (
            scale::measure(dir, sizes.names, sizes.held),
            scale::fd_limit(dir, sizes.fd_limit),
        )
    } else {
        (Err(skipped("--cases")), Err(skipped("--cases")))
    };

    if cfg.runs(8) {
        step("case 8: postgres");
    }
    let pg = if cfg.runs(8) {
        pg::run(Plan {
            rounds: sizes.plan.rounds.min(21),
            batch_ns: sizes.plan.batch_ns * 2,
        })
    } else {
        PgResult::Skipped(skipped("--cases"))
    };

    if cfg.runs(9) {
        step("case 9: python peers");
    }
    let python = if cfg.runs(9) {
        python::run(
            cfg.python.as_deref(),
            &scratch.sub("python"),
            sizes.py_rounds,
            sizes.py_batch_ms,
        )
    } else {
        PyResult::Skipped(skipped("--cases"))
    };

    RunResult {
        unc,
        cont,
        fair,
        hand,
        scale,
        fd_limit,
        pg,
        python,
        load: (load0, sys::load_avg()),
        secs: t.elapsed().as_secs_f64(),
    }
}
