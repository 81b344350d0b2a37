#!/usr/bin/env python3
"""Times Python's file-lock libraries doing scanlock's case 1 loop: take a named
exclusive lock, release it, again and again, uncontended.

Not part of the tests. The benchmark binary runs it when SCANLOCK_BENCH_PYTHON names a
Python that has `filelock`, `fasteners` and `portalocker`:

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install filelock fasteners portalocker
    SCANLOCK_BENCH_PYTHON=/tmp/bench-venv/bin/python cargo run --release -p scanlock-bench

It can also run alone: `python bench/peers.py --dir /tmp/x`.

Output, one line per contender: `name<TAB>median ns/op<TAB>version`. Lines starting
with `#` are notes (a library that is not installed is skipped with a note).

Like the Rust suite, the contenders run interleaved: every round runs a short batch of
each, and a contender's figure is the median over rounds, so a machine that slows down
mid-run slows every contender alike. "raw" (os.open + fcntl.flock + os.close) is
the floor for what any Python library can reach.
"""

import argparse
import fcntl
import os
import sys
import time
from importlib import metadata


def version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def contenders(directory):
    """(name, version, op) for every library that imports."""
    out = []
    raw_path = os.path.join(directory, "raw.lock")

    def raw():
        fd = os.open(raw_path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    out.append(("raw os.open+flock+close", sys.version.split()[0], raw))

    try:
        import filelock

        # Opens the file on acquire and closes it on release, like F1.
        fl = filelock.FileLock(os.path.join(directory, "filelock.lock"))

        def filelock_op():
            fl.acquire()
            fl.release()

        out.append(("filelock FileLock", version("filelock"), filelock_op))
    except ImportError:
        print("# skipped filelock: not installed", flush=True)

    try:
        import fasteners

        fa = fasteners.InterProcessLock(os.path.join(directory, "fasteners.lock"))

        def fasteners_op():
            fa.acquire()
            fa.release()

        out.append(("fasteners InterProcessLock", version("fasteners"), fasteners_op))
    except ImportError:
        print("# skipped fasteners: not installed", flush=True)

    try:
        import portalocker

        pl = portalocker.Lock(
            os.path.join(directory, "portalocker.lock"),
            flags=portalocker.LockFlags.EXCLUSIVE,
        )

        def portalocker_op():
            pl.acquire()
            pl.release()

        out.append(("portalocker Lock", version("portalocker"), portalocker_op))
    except ImportError:
        print("# skipped portalocker: not installed", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="scratch directory for the lock files")
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--batch-ms", type=float, default=5.0)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    cases = contenders(args.dir)

    # Warm up and size each batch to last about --batch-ms.
    batch = []
    for _, _, op in cases:
        for _ in range(200):
            op()
        t = time.perf_counter_ns()
        for _ in range(200):
            op()
        per_op = max(1, (time.perf_counter_ns() - t) // 200)
        batch.append(max(20, int(args.batch_ms * 1e6 // per_op)))

    samples = [[] for _ in cases]
    for r in range(args.rounds):
        for k in range(len(cases)):
            i = (r + k) % len(cases)
            op = cases[i][2]
            n = batch[i]
            t = time.perf_counter_ns()
            for _ in range(n):
                op()
            samples[i].append((time.perf_counter_ns() - t) / n)

    for (name, ver, _), s in zip(cases, samples):
        s.sort()
        m = len(s)
        med = s[m // 2] if m % 2 else (s[m // 2 - 1] + s[m // 2]) / 2
        print(f"{name}\t{med:.1f}\t{ver}", flush=True)


if __name__ == "__main__":
    main()
