"""plantdb side of tests/interop_plantdb.rs: drives plantdb-commons 0.17's LockManager.

Usage (ROOT must exist; MODE is "shared" or "exclusive"):

    plantdb_worker.py hold ROOT SCAN MODE USER READY STOP MAX_S
        Acquire, create READY, wait until STOP exists (at most MAX_S s), release.
        With $PLANTDB_WORKER_UNLINK_DELAY_MS set, the release sleeps that long between
        plantdb's unlock and its unlink of the ".lock" (a preempted release).
    plantdb_worker.py try ROOT SCAN MODE USER TIMEOUT_S
        Acquire with plantdb's timeout and release at once.
    plantdb_worker.py race ROOT SCAN LOG WHO ITERS HOLD_MS THINK_MS PREEMPT_MS READY GO MAX_S SEED
        Create the manager, create READY, wait for GO (at most MAX_S s), then ITERS
        exclusive holds of about HOLD_MS ms each, pausing up to THINK_MS ms (uniformly
        random, seeded by SEED) between them, appending one line per hold to LOG in
        scanlock_testkit's interval format "SCAN WHO X START END" (CLOCK_MONOTONIC ns:
        time.monotonic_ns() on Linux, the clock of scanlock_testkit::monotonic_ns).
        PREEMPT_MS > 0 delays every unlink of a ".lock" file by up to that long, as if
        the process were preempted between plantdb's unlock and its unlink: the window
        a waiter of another tool can fall into, widened from microseconds so that a
        short race meets it on every run and on any number of CPUs.
        The racers of one ROOT take turns among themselves (a flock on ROOT/plantdb-turn,
        held from before plantdb's acquisition until its release has unlinked its files):
        between two plantdb processes the same window lets the second lock the file the
        first is about to unlink, a plantdb bug that no other tool can see or prevent.
        So plantdb competes only with scanlock here, as in the recommended configuration.

Exit codes: 0 done, 2 LockTimeoutError, 3 LockError, 4 a wait for READY/GO/STOP files
timed out, 5 usage.
"""

import fcntl
import logging
import os
import random
import sys
import time

# Silence plantdb before it configures its logger: its get_logger() only adds handlers
# (stdout, and a <root>/.locks/lock_manager.log truncated by every process) when the
# logger has none yet. The logger name is "LockManager" unless ROMI_APP_LOGGER is set.
_lg = logging.getLogger(os.environ.get("ROMI_APP_LOGGER", "LockManager"))
_lg.addHandler(logging.NullHandler())
_lg.propagate = False

from plantdb.commons.fsdb.lock import (  # noqa: E402
    LockError,
    LockLevel,
    LockManager,
    LockTimeoutError,
    LockType,
)

EXIT_TIMEOUT = 2
EXIT_LOCK_ERROR = 3
EXIT_DEADLINE = 4
EXIT_USAGE = 5


def lock_type(mode):
    return {"shared": LockType.SHARED, "exclusive": LockType.EXCLUSIVE}[mode]


def wait_for(path, max_s):
    end = time.monotonic() + max_s
    while not os.path.exists(path):
        if time.monotonic() > end:
            print(f"plantdb_worker: {path} did not appear within {max_s} s", file=sys.stderr)
            sys.exit(EXIT_DEADLINE)
        time.sleep(0.005)


def touch(path):
    with open(path, "w"):
        pass


def manager(root, timeout):
    return LockManager(root, default_timeout=timeout, log_file=None)


def delay_lock_unlinks(delay_s):
    """Makes plantdb sleep delay_s() seconds before each unlink of a ".lock" file."""
    real_unlink = os.unlink

    def delayed_unlink(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            time.sleep(delay_s())
        return real_unlink(path, *args, **kwargs)

    os.unlink = delayed_unlink  # plantdb's lock module calls os.unlink


def hold(root, scan, mode, user, ready, stop, max_s):
    m = manager(root, 10.0)
    delay_ms = os.environ.get("PLANTDB_WORKER_UNLINK_DELAY_MS")
    if delay_ms:
        delay_lock_unlinks(lambda: float(delay_ms) / 1000.0)
    with m.acquire_lock(scan, lock_type(mode), user=user, level=LockLevel.SCAN):
        touch(ready)
        wait_for(stop, float(max_s))


def try_once(root, scan, mode, user, timeout_s):
    m = manager(root, float(timeout_s))
    with m.acquire_lock(scan, lock_type(mode), user=user, level=LockLevel.SCAN, timeout=float(timeout_s)):
        pass


def race(root, scan, log, who, iters, hold_ms, think_ms, preempt_ms, ready, go, max_s, seed):
    m = manager(root, 30.0)
    rng = random.Random(int(seed))
    preempt_s = float(preempt_ms) / 1000.0
    if preempt_s > 0:
        delay_lock_unlinks(lambda: rng.uniform(0.0, preempt_s))
    touch(ready)
    wait_for(go, float(max_s))
    lines = []
    turn = os.open(os.path.join(root, "plantdb-turn"), os.O_CREAT | os.O_RDWR, 0o644)
    for _ in range(int(iters)):
        fcntl.flock(turn, fcntl.LOCK_EX)
        with m.acquire_lock(scan, LockType.EXCLUSIVE, user=who, level=LockLevel.SCAN, timeout=30.0):
            start = time.monotonic_ns()
            time.sleep(float(hold_ms) / 1000.0)
            end = time.monotonic_ns()
        fcntl.flock(turn, fcntl.LOCK_UN)
        lines.append(f"{scan} {who} X {start} {end}\n")
        time.sleep(rng.uniform(0.0, float(think_ms) / 1000.0))
    with open(log, "a") as f:
        f.writelines(lines)


def main(argv):
    commands = {"hold": (hold, 7), "try": (try_once, 5), "race": (race, 12)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return EXIT_USAGE
    func, _ = commands[argv[1]]
    try:
        func(*argv[2:])
    except LockTimeoutError:
        return EXIT_TIMEOUT  # expected by some tests: the exit code says it
    except LockError as e:
        print(f"plantdb_worker: LockError: {e}", file=sys.stderr)
        return EXIT_LOCK_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
