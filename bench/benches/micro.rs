//! Criterion micro benchmarks: one acquire+release of each contender, uncontended.
//!
//! `cargo bench -p scanlock-bench` (add a filter such as `-- scanlock` to run a part).
//! Criterion runs one benchmark after another, so on a busy machine compare ratios
//! from `cargo run --release -p scanlock-bench` (which interleaves them) rather than
//! these absolute times; these are for profiling one operation in isolation.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use scanlock_bench::ops::{self, F0};
use scanlock_bench::sys::ScratchDir;

fn floors_and_peers(c: &mut Criterion) {
    let scratch = ScratchDir::new_in(&std::env::temp_dir()).expect("scratch dir");
    let dir = scratch.sub("raw").join(".locks");
    std::fs::create_dir_all(&dir).expect("raw lock dir");
    let path = dir.join("floor.lock");
    ops::touch(&path);
    let cpath = ops::cpath(&path);
    let f0 = F0::open(&path);

    let mut g = c.benchmark_group("floor");
    g.bench_function("F0 flock EX+UN", |b| b.iter(|| f0.op(false)));
    g.bench_function("F1 open+flock+close", |b| b.iter(|| ops::f1(&cpath, false)));
    g.bench_function("F1v F1+same-inode check", |b| {
        b.iter(|| ops::f1v(&cpath, false))
    });
    g.finish();

    let mut g = c.benchmark_group("peer");
    g.bench_function("fs4", |b| b.iter(|| ops::fs4_op(&path, false)));
    g.bench_function("fd-lock", |b| b.iter(|| ops::fd_lock_op(&path, false)));
    g.finish();
}

fn scanlock_cases(c: &mut Criterion) {
    let scratch = ScratchDir::new_in(&std::env::temp_dir()).expect("scratch dir");
    let off = ops::manager(&scratch.sub("off"), false);
    let off_rot = ops::manager(&scratch.sub("off-rot"), false);
    let on = ops::manager(&scratch.sub("on"), true);
    let mac = ops::manager(&scratch.sub("macro"), false);
    let names = ops::rotation_names("rot-");
    let mut i = 0;

    let mut g = c.benchmark_group("scanlock");
    g.bench_function("EX metadata off, same name", |b| {
        b.iter(|| ops::scanlock_op(&off, "scan001", false))
    });
    g.bench_function("SH metadata off, same name", |b| {
        b.iter(|| ops::scanlock_op(&off, "scan001", true))
    });
    g.bench_function("EX metadata on, same name", |b| {
        b.iter(|| ops::scanlock_op(&on, "scan001", false))
    });
    g.bench_function("EX metadata off, 128 names", |b| {
        b.iter(|| {
            i = (i + 1) % names.len();
            ops::scanlock_op(&off_rot, &names[i], false)
        })
    });
    g.bench_function("manual format!+acquire_lock", |b| {
        b.iter(|| {
            black_box(
                scanlock_bench::macro_case::process_manual(&mac, black_box("scan001")).unwrap(),
            )
        })
    });
    g.bench_function("#[synchronized] call", |b| {
        b.iter(|| {
            black_box(scanlock_bench::macro_case::process(&mac, black_box("scan001")).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, floors_and_peers, scanlock_cases);
criterion_main!(benches);
