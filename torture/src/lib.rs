//! scanlock's reliability harness (issue 7): attacks scanlock the way production does
//! and proves from logs that it held.
//!
//! `scanlock-torture` (the binary) runs a supervisor that starts N worker processes of
//! T threads each doing random operations (shared/exclusive; one attempt, timed,
//! default and `Wait::Forever` waits; re-entrant and nested holds; the
//! `#[synchronized]`/`#[read_locked]`/`#[write_locked]` macros; status, cleanup and new
//! managers) on a few names, while it injects faults: SIGKILL and restart, SIGSTOP and
//! SIGCONT, an operator damaging `.locks/`, a read-only root, a full file system, too few
//! file descriptors. Each process logs its holds (CLOCK_MONOTONIC) and outcomes; the
//! [`check`] module proves that no exclusive hold overlapped another hold of its name,
//! that every operation succeeded or failed with a typed error naming its lock within
//! its deadline, and that fencing tokens increased. See RELIABILITY.md.
//!
//! [`fuzz`] holds the fuzz targets (run by cargo-fuzz from `fuzz/`, and as bounded
//! random loops by `torture/tests/fuzz_stable.rs` on stable Rust).

pub mod check;
pub mod config;
pub mod events;
pub mod fuzz;
mod operator;
pub mod rng;
mod supervisor;
pub mod sys;
mod worker;

pub use config::{Config, Faults, Role};
pub use supervisor::{Report, run};

/// The binary's entry point: parses `args` (without the program name), runs the role,
/// and returns the exit code (0: no violation; 1: violations; 2: usage or set-up error).
pub fn main_with_args(args: &[String]) -> i32 {
    let cfg = match Config::parse(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let dir = || {
        cfg.dir
            .clone()
            .expect("children are always given --dir by the supervisor")
    };
    match cfg.role.clone() {
        Role::Supervisor => match run(&cfg) {
            Ok(report) => {
                println!("{report}");
                if report.verdict.violations.is_empty() {
                    0
                } else {
                    1
                }
            }
            Err(e) => {
                eprintln!("scanlock-torture: {e}");
                2
            }
        },
        Role::Worker {
            id,
            generation,
            fd_limit,
        } => worker::worker_main(&cfg, &dir(), id, generation, fd_limit),
        Role::Cleaner => worker::cleaner_main(&cfg, &dir()),
        Role::Operator => operator::operator_main(&cfg, &dir()),
    }
}
