//! The fuzz targets of `fuzz/` as bounded random loops on stable Rust: seeds, then
//! mutations from a fixed seed, so CI exercises the same checks as the real fuzzers.
//! `SCANLOCK_FUZZ_ITERS` sets the number of mutated inputs per target (default 50 000;
//! the file-level target runs a hundredth of that: each of its inputs costs a few
//! milliseconds of file operations and a read of /proc/locks).

use scanlock_torture::fuzz::{self, FileTarget};
use scanlock_torture::rng::Rng;

fn iterations() -> usize {
    std::env::var("SCANLOCK_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

/// Feeds the seeds, then `n` mutants of them (each mutant can become a seed), to
/// `target`; returns how many inputs ran.
fn drive(
    name: &str,
    seeds: Vec<Vec<u8>>,
    dict: &[&[u8]],
    n: usize,
    target: impl Fn(&[u8]),
) -> usize {
    let mut rng = Rng::new(0x5ca1_ab1e ^ name.len() as u64);
    let mut pool = seeds;
    let seeds = pool.len();
    for s in &pool {
        target(s);
    }
    for i in 0..n {
        let a = rng.below(pool.len() as u64) as usize;
        let b = rng.below(pool.len() as u64) as usize;
        let input = fuzz::mutate(&mut rng, &pool[a], &pool[b], dict);
        target(&input);
        // Keep some mutants so that mutations compound (a crude corpus).
        if i % 16 == 0 && pool.len() < 256 {
            pool.push(input);
        }
    }
    eprintln!("{name}: {} inputs", seeds + n);
    seeds + n
}

#[test]
fn template_parser_survives_random_input() {
    let n = drive(
        "template",
        fuzz::template_seeds(),
        fuzz::TEMPLATE_DICT,
        iterations(),
        fuzz::template_target,
    );
    assert!(n > 0);
}

#[test]
fn plantdb_info_reader_survives_random_input() {
    let n = drive(
        "plantdb_info",
        fuzz::info_seeds(),
        fuzz::JSON_DICT,
        iterations(),
        fuzz::plantdb_info_target,
    );
    assert!(n > 0);
}

#[test]
fn holder_record_decoder_survives_random_input() {
    // The sample is a real record: if the format drifts, the seeds must follow.
    assert!(scanlock::__fuzz::decode_record(fuzz::RECORD_SAMPLE.as_bytes()).is_some());
    let n = drive(
        "holder_record",
        fuzz::record_seeds(),
        fuzz::JSON_DICT,
        iterations(),
        fuzz::holder_record_target,
    );
    assert!(n > 0);
}

#[test]
fn record_and_info_files_are_never_trusted() {
    let dir = std::env::temp_dir().join(format!("scanlock-fuzz-files-{}", std::process::id()));
    let t = FileTarget::new(&dir);
    t.sanity();
    let n = drive(
        "record_files",
        fuzz::record_seeds()
            .into_iter()
            .chain(fuzz::info_seeds())
            .collect(),
        fuzz::JSON_DICT,
        iterations() / 100,
        |d| t.run(d),
    );
    let _ = std::fs::remove_dir_all(t.dir());
    assert!(n > 0);
}
