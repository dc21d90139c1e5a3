#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""How long `heapprof report` takes on a database of N chunks.

Records malloc-bench (one thread, N malloc/free operations with a window
of live chunks: N chunk rows) under `heapprof run`, then times `heapprof
report` at the end of the process and at its worst instant (two replays),
REPS times each, alternating, and prints the medians, the chunks reported
per second and the peak memory of the report.

The target (issue 4): 10 million chunks in under 10 seconds here.

Usage: bench/run-report.py [--build DIR] [--chunks N] [--reps N] [--keep DB]
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build"))
    ap.add_argument("--chunks", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keep", help="keep the database here")
    a = ap.parse_args()
    heapprof = os.path.join(a.build, "analyzer", "heapprof")
    bench = os.path.join(a.build, "bench", "malloc-bench")
    for f in (heapprof, bench):
        if not os.access(f, os.X_OK):
            sys.exit(f"run-report: {f}: not built (meson compile -C {a.build})")
    with tempfile.TemporaryDirectory() as tmp:
        db = a.keep or os.path.join(tmp, "bench.db")
        t0 = time.monotonic()
        p = subprocess.run([heapprof, "run", "-o", db, "--force", bench, "1", str(a.chunks),
                            "0", "1024"], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"run-report: recording failed:\n{p.stderr}")
        rec = time.monotonic() - t0
        n = int(subprocess.run(["sqlite3", db, "SELECT count(*) FROM chunk"],
                               capture_output=True, text=True, check=True).stdout)
        print(f"# recorded {n} chunks in {rec:.1f} s; database {os.path.getsize(db) / 2**20:.0f} MiB",
              file=sys.stderr)
        times = {"exit": [], "worst": []}
        peak = {"exit": 0, "worst": 0}
        for r in range(a.reps):
            for at in ("exit", "worst"):
                t0 = time.monotonic()
                q = subprocess.run([heapprof, "report", db, "--at", at, "--format", "json"],
                                   capture_output=True, text=True)
                dt = time.monotonic() - t0
                if q.returncode != 0:
                    sys.exit(f"run-report: report failed: {q.stderr}")
                times[at].append(dt)
                peak[at] = max(peak[at], resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
                print(f"#   {r + 1}/{a.reps} --at {at}: {dt:.2f} s", file=sys.stderr)
        print(f"{'instant':8} {'chunks':>10} {'median s':>9} {'chunks/s':>10} {'max RSS MiB':>12}")
        for at in ("exit", "worst"):
            m = statistics.median(times[at])
            print(f"{at:8} {n:>10} {m:>9.2f} {n / m / 1e6:>9.2f}M {peak[at] / 1024:>12.0f}")
        m = statistics.median(times["worst"])
        print(f"# target: {a.chunks / 1e6:.0f}M chunks under 10 s; --at worst median {m:.2f} s"
              f" ({'met' if m < 10 * n / 1e7 else 'NOT met'}, scaled to 10M chunks: {m * 1e7 / n:.2f} s)")


main()
