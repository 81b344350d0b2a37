//! Uncontended lock + unlock latency of the PostgreSQL back end, against the raw
//! advisory-lock round trips it is built on.
//!
//! ```sh
//! cargo run --release --features postgres --example pg_latency -- \
//!     postgres://postgres@127.0.0.1:5432/postgres \
//!     'postgresql://postgres@%2Fvar%2Frun%2Fpostgresql:5432/postgres'   # Unix socket
//! ```
//!
//! For each URL it prints the median and 90th percentile, in µs, and the median's ratio
//! to the floor, of:
//! - the floor: `SELECT pg_advisory_lock(k)` then `SELECT pg_advisory_unlock(k)` on one
//!   connection (two round trips: the least any session-lock scheme can cost), each
//!   statement parsed and planned by the server every time (`query_typed`);
//! - the same two statements prepared once on their connection (the server only runs
//!   them), as scanlock runs its lock and unlock statements: a lower floor, whose ratio
//!   is printed too;
//! - scanlock shared and exclusive acquire + release (a default wait limit, so the
//!   timed path), without holder metadata (`.metadata(false)`) and with it (the
//!   default: the holder's row is inserted by the lock statement and deleted by the
//!   unlock statement, still two round trips, each a write transaction).

use std::time::{Duration, Instant};

use postgres::types::Type;
use scanlock::{LockType, ScanLockManager};

const ROUNDS: usize = 2_000;
const WARMUP: usize = 100;

fn median_p90(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (
        us(samples[samples.len() / 2]),
        us(samples[samples.len() * 9 / 10]),
    )
}

/// One measured operation: a lock + unlock.
type Op<'a> = Box<dyn FnMut() + 'a>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        eprintln!("usage: pg_latency URL [URL...]   (postgres://user@host:port/db)");
        std::process::exit(2);
    }
    println!(
        "{ROUNDS} rounds, after {WARMUP} warm-up rounds; µs per lock + unlock; the cases \
         take turns round by round, so that load from elsewhere hits them alike"
    );
    for url in &urls {
        println!(
            "\n{}",
            ScanLockManager::builder_from_url(url)?.build()?.url()
        );
        let mut raw = postgres::Client::connect(url, postgres::NoTls)?;
        let mut raw_prepared = postgres::Client::connect(url, postgres::NoTls)?;
        let lock_st =
            raw_prepared.prepare_typed("SELECT pg_advisory_lock($1)::text", &[Type::INT8])?;
        let unlock_st =
            raw_prepared.prepare_typed("SELECT pg_advisory_unlock($1)", &[Type::INT8])?;
        let key = 0x5ca1_10c4_i64;
        let managers = [true, false].map(|metadata| {
            ScanLockManager::builder_from_url(url)
                .and_then(|b| {
                    b.pg_namespace(format!("latency-{metadata}"))
                        .metadata(metadata)
                        .build()
                })
                .expect("manager")
        });
        let scanlock_op = |m: &ScanLockManager, mode: LockType| {
            m.acquire_lock("latency", mode, "bench", None)
                .unwrap()
                .release()
                .unwrap();
        };
        let (on, off) = (&managers[0], &managers[1]);
        let mut cases: Vec<(&str, Op)> = vec![
            (
                "raw pg_advisory_lock + unlock (floor)",
                Box::new(|| {
                    raw.query_typed("SELECT pg_advisory_lock($1)::text", &[(&key, Type::INT8)])
                        .unwrap();
                    raw.query_typed("SELECT pg_advisory_unlock($1)", &[(&key, Type::INT8)])
                        .unwrap();
                }),
            ),
            (
                "raw, prepared once (prepared floor)",
                Box::new(|| {
                    raw_prepared.query(&lock_st, &[&key]).unwrap();
                    raw_prepared.query(&unlock_st, &[&key]).unwrap();
                }),
            ),
            (
                "scanlock exclusive, metadata off",
                Box::new(|| scanlock_op(off, LockType::Exclusive)),
            ),
            (
                "scanlock shared,    metadata off",
                Box::new(|| scanlock_op(off, LockType::Shared)),
            ),
            (
                "scanlock exclusive, metadata on ",
                Box::new(|| scanlock_op(on, LockType::Exclusive)),
            ),
            (
                "scanlock shared,    metadata on ",
                Box::new(|| scanlock_op(on, LockType::Shared)),
            ),
        ];
        let mut samples = vec![Vec::with_capacity(ROUNDS); cases.len()];
        for round in 0..WARMUP + ROUNDS {
            for (i, (_, op)) in cases.iter_mut().enumerate() {
                let t = Instant::now();
                op();
                if round >= WARMUP {
                    samples[i].push(t.elapsed());
                }
            }
        }
        let medians: Vec<(f64, f64)> = samples.into_iter().map(median_p90).collect();
        let (floor, prepared_floor) = (medians[0].0, medians[1].0);
        for ((label, _), (med, p90)) in cases.iter().zip(medians) {
            println!(
                "  {label:<38} median {med:7.1}   p90 {p90:7.1}   {:4.2}x floor   {:4.2}x prepared floor",
                med / floor,
                med / prepared_floor
            );
        }
    }
    Ok(())
}
