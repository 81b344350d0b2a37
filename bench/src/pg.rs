//! Case 8: the PostgreSQL back end against the raw advisory-lock pair it is built on,
//! `SELECT pg_advisory_lock(k)` + `SELECT pg_advisory_unlock(k)` on one connection
//! (prepared statements, the same client library scanlock uses), interleaved like
//! case 1. Built with the bench crate's `postgres` feature; run when
//! `SCANLOCK_TEST_PG_URL` names a database.

use crate::uncontended::Measured;

/// Environment variable naming the database.
pub const PG_ENV: &str = "SCANLOCK_TEST_PG_URL";

/// The outcome of case 8.
#[derive(Clone, Debug)]
pub enum PgResult {
    /// Not run, and why.
    Skipped(String),
    /// The interleaved measurements (keys `pg_raw`, `pg_raw_unnamed`, `pg_off`, `pg_on`).
    Ran(Vec<Measured>),
}

/// Runs case 8 if this build and the environment allow.
#[cfg(not(feature = "postgres"))]
pub fn run(_plan: crate::uncontended::Plan) -> PgResult {
    PgResult::Skipped(
        "skipped: built without the `postgres` feature (cargo run --release -p scanlock-bench \
         --features postgres, with SCANLOCK_TEST_PG_URL set)"
            .to_owned(),
    )
}

/// Runs case 8 if this build and the environment allow.
#[cfg(feature = "postgres")]
pub fn run(plan: crate::uncontended::Plan) -> PgResult {
    use crate::uncontended::{Case, run as run_cases};
    use scanlock::ScanLockManager;

    let Ok(url) = std::env::var(PG_ENV) else {
        return PgResult::Skipped(format!("skipped: {PG_ENV} is not set"));
    };
    let mut client = match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(c) => c,
        Err(e) => return PgResult::Skipped(format!("skipped: cannot connect: {e}")),
    };
    let (lock, unlock) = match (
        client.prepare("SELECT pg_advisory_lock($1)"),
        client.prepare("SELECT pg_advisory_unlock($1)"),
    ) {
        (Ok(l), Ok(u)) => (l, u),
        _ => return PgResult::Skipped("skipped: cannot prepare statements".to_owned()),
    };
    let build = |meta: bool| {
        ScanLockManager::builder_from_url(&url)
            .and_then(|b| b.metadata(meta).cleanup_on_start(false).build())
    };
    let (off, on) = match (build(false), build(true)) {
        (Ok(off), Ok(on)) => (off, on),
        (Err(e), _) | (_, Err(e)) => {
            return PgResult::Skipped(format!("skipped: scanlock cannot use {PG_ENV}: {e}"));
        }
    };
    // A key no scanlock name maps to in practice (scanlock hashes names into keys).
    let key: i64 = 0x5ca1_ab1e;
    let mut client2 = match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(c) => c,
        Err(e) => return PgResult::Skipped(format!("skipped: cannot connect: {e}")),
    };
    let cases = vec![
        Case::new(
            "pg_raw_unnamed",
            "raw pair, unprepared (query_typed: parsed per call)",
            "pg_raw",
            move || {
                use postgres::types::Type;
                client2
                    .query_typed("SELECT pg_advisory_lock($1)", &[(&key, Type::INT8)])
                    .expect("pg_advisory_lock");
                client2
                    .query_typed("SELECT pg_advisory_unlock($1)", &[(&key, Type::INT8)])
                    .expect("pg_advisory_unlock");
            },
        ),
        Case::new(
            "pg_raw",
            "raw pg_advisory_lock + pg_advisory_unlock, prepared (one connection)",
            "pg_raw",
            move || {
                client.query_one(&lock, &[&key]).expect("pg_advisory_lock");
                client
                    .query_one(&unlock, &[&key])
                    .expect("pg_advisory_unlock");
            },
        ),
        Case::new(
            "pg_off",
            "scanlock postgres EX, metadata off",
            "pg_raw",
            move || crate::ops::scanlock_op(&off, "scan001", false),
        ),
        Case::new(
            "pg_on",
            "scanlock postgres EX, metadata on (default)",
            "pg_raw",
            move || crate::ops::scanlock_op(&on, "scan001", false),
        ),
    ];
    // Round trips take tens of microseconds: fewer, longer batches.
    PgResult::Ran(run_cases(cases, plan))
}

/// The ratio of `key` to the raw pair, if case 8 ran.
pub fn ratio(r: &PgResult, key: &str) -> Option<f64> {
    match r {
        PgResult::Ran(m) => Some(crate::uncontended::ratio(m, key, "pg_raw")),
        PgResult::Skipped(_) => None,
    }
}
