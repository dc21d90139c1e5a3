#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A long run with a steady heap, recorded with `heapprof run --snapshots`.

The program (tests/progs/snap-pattern steady) keeps ~20000 chunks live and
allocates and frees RATE chunks a second (each allocation replaces a live
chunk or is a short-lived buffer) for SECONDS. Measured: the database's size
(it must not grow with the run), the collector's peak memory (heapprof run's
VmHWM) against the program's, how many chunks were recorded, and how long
`heapprof report --at worst` and `--at exit` take on the file (medians of 3).

Usage: bench/run-snapshots.py [--build DIR] [--seconds N] [--rate N] [--every S]
"""
import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def vm_hwm(pid):
    """Peak resident set (VmHWM) of a process in bytes, or 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def human(n):
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--seconds", type=float, default=600, help="run length (default 600)")
    ap.add_argument("--rate", type=float, default=1_000_000,
                    help="chunks allocated (and freed) a second (default 1000000)")
    ap.add_argument("--every", default=None, help="--snapshot-every SECONDS (default 60)")
    args = ap.parse_args()
    heapprof = os.path.abspath(os.path.join(args.build, "analyzer", "heapprof"))
    prog = os.path.abspath(os.path.join(args.build, "tests", "snap-pattern"))
    for f in (heapprof, prog):
        if not os.path.exists(f):
            sys.exit(f"run-snapshots: {f}: not built (meson compile -C {args.build})")
    with tempfile.TemporaryDirectory(prefix="run-snapshots.") as tmp:
        db = os.path.join(tmp, "steady.db")
        argv = [heapprof, "run", "--snapshots"]
        if args.every:
            argv += ["--snapshot-every", args.every]
        argv += ["-o", db, prog, "steady", str(args.seconds), str(args.rate)]
        print(f"# {' '.join(argv[1:])}", flush=True)
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = {"collector": 0, "program": 0}
        done = threading.Event()

        def watch():
            while not done.is_set():
                peak["collector"] = max(peak["collector"], vm_hwm(p.pid))
                for c in children(p.pid):
                    peak["program"] = max(peak["program"], vm_hwm(c))
                time.sleep(0.2)

        w = threading.Thread(target=watch)
        w.start()
        out, err = p.communicate()
        done.set()
        w.join()
        wall = time.monotonic() - t0
        if p.returncode != 0:
            print(err, file=sys.stderr)
            sys.exit(f"run-snapshots: heapprof run exited {p.returncode}")
        pairs = int(out.split()[0])
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        chunks = con.execute("SELECT sum(allocs) FROM site").fetchone()[0]
        snaps = con.execute("SELECT count(*) FROM snapshot").fetchone()[0]
        rows = con.execute("SELECT count(*) FROM snapshot_chunk").fetchone()[0]
        con.close()
        size = os.path.getsize(db)
        times = {}
        for at in ("worst", "exit"):
            t = []
            for _ in range(3):
                s = time.monotonic()
                r = subprocess.run([heapprof, "report", db, "--at", at], capture_output=True)
                t.append(time.monotonic() - s)
                if r.returncode != 0:
                    sys.exit(f"run-snapshots: report --at {at} failed: {r.stderr!r}")
            times[at] = statistics.median(t)
        print(f"run:       {wall:.1f} s wall, {pairs} chunks allocated by the program "
              f"({pairs / args.seconds / 1e6:.2f} M/s), {chunks} recorded")
        print(f"database:  {human(size)} ({size} bytes), {snaps} snapshots, "
              f"{rows} snapshot_chunk rows; {size / max(chunks, 1):.3f} bytes a chunk")
        print(f"memory:    collector (heapprof run) peak {human(peak['collector'])}, "
              f"program peak {human(peak['program'])}: "
              f"ratio {peak['collector'] / max(peak['program'], 1):.2f}")
        print(f"report:    --at worst {times['worst']:.2f} s, --at exit {times['exit']:.2f} s "
              f"(medians of 3)")
        for line in err.splitlines():
            if line.startswith("heapprof: "):
                print(f"# {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
