#!/usr/bin/env bash
# Builds the libFuzzer targets of this directory and runs each for a bounded time.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 30 s, every target)
#
# Works on stable Rust: it passes the coverage instrumentation flags that cargo-fuzz
# passes (without AddressSanitizer, which needs nightly; the code under test is safe Rust,
# so a panic is the failure being looked for). With nightly and cargo-fuzz installed,
# `cargo +nightly fuzz run <target>` runs the same targets with ASan.
#
# Prints one `FUZZ <target> runs=<n> seconds=<s>` line per target; exits non-zero on the
# first crash (libFuzzer leaves the input as fuzz/artifacts/<target>/crash-*).
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(template plantdb_info holder_record record_files)

triple=$(rustc -vV | sed -n 's/^host: //p')
# Only the target crates get the flags (with --target, build scripts and proc macros do
# not): the same split as cargo-fuzz.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build --quiet --release --target "$triple" --bins
bin_dir=${CARGO_TARGET_DIR:-target}/$triple/release
case "$bin_dir" in /*) ;; *) bin_dir=$PWD/$bin_dir ;; esac

for t in "${targets[@]}"; do
  corpus=corpus/$t
  mkdir -p "$corpus" "artifacts/$t"
  log=$(mktemp)
  if ! "$bin_dir/$t" -max_total_time="$secs" -artifact_prefix="artifacts/$t/" \
      -print_final_stats=1 "$corpus" >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "FUZZ $t FAILED (input saved under fuzz/artifacts/$t/)"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  echo "FUZZ $t runs=${runs:-?} seconds=$secs corpus=$(ls "$corpus" | wc -l)"
  rm -f "$log"
done
