//! scanlock's benchmark suite: the physical floor, the peers, and the cases of issue 5.
//!
//! `cargo run --release -p scanlock-bench` runs everything in one process tree and
//! writes `BENCHMARKS.md` (see `src/main.rs` for the options); `cargo bench -p
//! scanlock-bench` runs the criterion micro benchmarks. Both share the operations in
//! [`ops`].
//!
//! | module | case |
//! |---|---|
//! | [`uncontended`] | 1–3: acquire+release against F0/F1/F1v, metadata, the macro; Rust peers |
//! | [`contention`] | 4: 2 and 8 threads / processes on one name vs raw `flock` |
//! | [`fairness`] | 5: a writer among overlapping readers |
//! | [`handover`] | 6: release → timed waiter in another process |
//! | [`scale`] | 7: 100 000 names, 1 000 held, the descriptor limit |
//! | [`pg`] | 8: the PostgreSQL back end vs raw advisory locks |
//! | [`python`] | 9: Python's `filelock`, `fasteners`, `portalocker` (via `peers.py`) |

pub mod child;
pub mod contention;
pub mod fairness;
pub mod handover;
pub mod macro_case;
pub mod ops;
pub mod pg;
pub mod python;
pub mod report;
pub mod run;
pub mod scale;
pub mod stats;
pub mod sys;
pub mod uncontended;
