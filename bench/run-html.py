#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""How long the HTML report takes to write and to open, on a big recording.

Records malloc-bench (one thread, N malloc/free operations: N chunk rows)
under `heapprof run` (or takes --db), then, REPS times alternating, times
`heapprof report --format json --at worst` (two replays, the text report's
dearest instant) and `heapprof report --format html` (two replays and a
dozen stored instants, each with its heap map and sites), CPU seconds
(user + system) and wall seconds; prints the medians and their ratio, the
page's size, and how long headless Chromium takes to open it (its load
event, the page drawn: tests/report/browser.py), median of REPS.

Usage: bench/run-html.py [--build DIR] [--chunks N] [--reps N] [--db FILE]
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
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "report"))


def timed(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"run-html: {' '.join(cmd)} failed: {p.stderr}")
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime), wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build"))
    ap.add_argument("--chunks", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--db", help="a recording to use (else malloc-bench is recorded)")
    a = ap.parse_args()
    heapprof = os.path.join(a.build, "analyzer", "heapprof")
    bench = os.path.join(a.build, "bench", "malloc-bench")
    with tempfile.TemporaryDirectory() as tmp:
        db = a.db
        if not db:
            db = os.path.join(tmp, "bench.db")
            p = subprocess.run([heapprof, "run", "-o", db, bench, "1", str(a.chunks), "0", "1024"],
                               capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"run-html: recording failed:\n{p.stderr}")
        n = int(subprocess.run(["sqlite3", db, "SELECT count(*) FROM chunk_packed"],
                               capture_output=True, text=True, check=True).stdout)
        page = os.path.join(tmp, "page.html")
        cpu = {"json": [], "html": []}
        wall = {"json": [], "html": []}
        for r in range(a.reps):
            for kind in ("json", "html"):
                cmd = [heapprof, "report", db, "--format", kind]
                cmd += ["--at", "worst"] if kind == "json" else ["-o", page]
                c, w = timed(cmd)
                cpu[kind].append(c)
                wall[kind].append(w)
                print(f"#   {r + 1}/{a.reps} {kind}: {c:.2f} s CPU, {w:.2f} s wall", file=sys.stderr)
        import browser
        opened = []
        with browser.Browser(1280, 900) as b:
            for r in range(a.reps):
                b.open("file://" + page)
                opened.append(b.eval("performance.getEntriesByType('navigation')[0].loadEventEnd"))
        print(f"{'report':20} {'chunks':>10} {'CPU s':>8} {'wall s':>8}")
        for kind, name in (("json", "json --at worst"), ("html", "html")):
            print(f"{name:20} {n:>10} {statistics.median(cpu[kind]):>8.2f} "
                  f"{statistics.median(wall[kind]):>8.2f}")
        print(f"# html / json --at worst: CPU {statistics.median(cpu['html']) / statistics.median(cpu['json']):.2f}, "
              f"wall {statistics.median(wall['html']) / statistics.median(wall['json']):.2f}")
        print(f"# page: {os.path.getsize(page) / 1e6:.2f} MB; Chromium opens it (load event, drawn) "
              f"in {statistics.median(opened):.0f} ms (median of {a.reps})")


main()
