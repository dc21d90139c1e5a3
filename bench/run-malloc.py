#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Allocator throughput of libheapprof.so against glibc, side by side.

Runs each workload of malloc-bench natively and under LD_PRELOAD, alternating
(glibc, heapprof, glibc, heapprof, ...) so both see the same machine noise,
and reports the median ops/s of each and the median of the per-pair ratios
heapprof/glibc. A ratio of 1.00 means as fast as glibc.

Usage: bench/run-malloc.py [--build DIR] [--reps N] [--ops N]
"""
import argparse
import os
import statistics
import subprocess
import sys

WORKLOADS = [
    # name, threads, cross-thread frees, window
    ("1 thread, tcache-hot (window 16)", 1, 0, 16),
    ("1 thread, arena (window 1024)", 1, 0, 1024),
    ("2 threads, tcache-hot (window 16)", 2, 0, 16),
    ("2 threads, arena (window 1024)", 2, 0, 1024),
    ("2 threads, cross-thread frees", 2, 1, 1024),
]


def run(bench, env, threads, ops, cross, window):
    out = subprocess.run([bench, str(threads), str(ops), str(cross), str(window)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return float(out.split()[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--ops", type=int, default=10_000_000)
    args = ap.parse_args()
    bench = os.path.join(args.build, "bench", "malloc-bench")
    lib = os.path.abspath(os.path.join(args.build, "preload", "libheapprof.so"))
    for f in (bench, lib):
        if not os.path.exists(f):
            sys.exit(f"run-malloc: {f}: not built (meson compile -C {args.build})")
    native = dict(os.environ)
    native.pop("LD_PRELOAD", None)
    native.pop("MALLOC_PERTURB_", None)
    preload = dict(native, LD_PRELOAD=lib)
    print(f"# {args.reps} alternating pairs per workload, {args.ops} malloc+free pairs each")
    print(f"{'workload':38} {'glibc Mops/s':>12} {'heapprof':>10} {'ratio':>7}")
    worst = None
    for name, threads, cross, window in WORKLOADS:
        g, h, r = [], [], []
        for _ in range(args.reps):
            a = run(bench, native, threads, args.ops, cross, window)
            b = run(bench, preload, threads, args.ops, cross, window)
            g.append(a)
            h.append(b)
            r.append(b / a)
        ratio = statistics.median(r)
        worst = ratio if worst is None else min(worst, ratio)
        print(f"{name:38} {statistics.median(g) / 1e6:12.1f} "
              f"{statistics.median(h) / 1e6:10.1f} {ratio:7.2f}")
    print(f"# lowest median ratio: {worst:.2f} (target >= 0.90)")


if __name__ == "__main__":
    main()
