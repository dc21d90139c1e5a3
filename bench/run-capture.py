#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""CPU time the program itself spends recording, for two preload builds.

Runs every workload of bench/run-overhead.py natively and recording with
each of two libheapprof.so builds (LD_PRELOAD and HEAPPROF_OUTPUT, the
standalone mode), alternating them per repetition (native, A, B, native,
...), and reports per workload the median CPU time (user + system) of the
program's own processes - not of the collector, which runs apart - and
what recording added per chunk, in ns: the cost of the allocation calls'
recording work (stack capture, events) to the program, which wall time on
a busy 2-core machine hides behind the collector and the noise.

Usage: bench/run-capture.py --lib A.so --lib B.so [--build DIR] [--reps N] [--quick]
                            [--only NAME[,NAME...]]
(--build: where malloc-bench and the heapprof command are; default build)
"""
import argparse
import importlib.util
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("overhead", os.path.join(HERE, "run-overhead.py"))
overhead = importlib.util.module_from_spec(spec)
spec.loader.exec_module(overhead)


def cpu_run(w, env, cwd):
    """Run workload w; return the CPU seconds of it and its children."""
    with open(w.stdin if w.stdin else os.devnull, "rb") as fin:
        p = subprocess.Popen(w.argv, env=env, cwd=cwd, stdin=fin, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise overhead.Failure(f"{w.name}: exit status {os.waitstatus_to_exitcode(status)}")
    return ru.ru_utime + ru.ru_stime


def chunks_in(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM chunk").fetchone()[0]
    finally:
        con.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", action="append", required=True, help="a libheapprof.so (twice)")
    ap.add_argument("--build", default="build")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", metavar="NAME")
    args = ap.parse_args()
    if len(args.lib) != 2:
        ap.error("--lib twice: the two builds to compare")
    libs = [os.path.abspath(l) for l in args.lib]
    names = args.only.split(",") if args.only else overhead.ORDER
    tmp = tempfile.mkdtemp(prefix="run-capture.")
    try:
        env0 = dict(os.environ, LC_ALL="C", PYTHONMALLOC="malloc", PYTHONHASHSEED="0",
                    PYTHONDONTWRITEBYTECODE="1", PERL_HASH_SEED="0", PERL_PERTURB_KEYS="0",
                    HEAPPROF_BIN=os.path.abspath(os.path.join(args.build, "analyzer",
                                                              "heapprof")))
        env0.pop("LD_PRELOAD", None)
        print(f"# {args.reps} repetitions of (native, A, B) per workload; CPU s of the program")
        print(f"# A: {libs[0]}\n# B: {libs[1]}")
        print(f"{'workload':10} {'native':>7} {'A':>7} {'B':>7}   {'chunks':>8} "
              f"{'A ns/chunk':>10} {'B ns/chunk':>10} {'B/A added':>9}")
        for w in overhead.make_workloads(names, args.quick, args.build, tmp):
            t = {"native": [], 0: [], 1: []}
            chunks = None
            for rep in range(args.reps):
                for mode in ("native", 0, 1):
                    cwd = os.path.join(tmp, f"{w.name}.{rep}.{mode}")
                    os.mkdir(cwd)
                    env = dict(env0)
                    db = os.path.join(cwd, "out.db")
                    if mode != "native":
                        env.update(LD_PRELOAD=libs[mode], HEAPPROF_OUTPUT=db)
                    t[mode].append(cpu_run(w, env, cwd))
                    if mode != "native":
                        # the collector finishes the file after the program
                        for _ in range(600):
                            if os.path.exists(db) and not os.path.exists(db + "-journal"):
                                break
                            subprocess.run(["sleep", "0.1"])
                        if chunks is None:
                            try:
                                chunks = chunks_in(db)
                            except sqlite3.Error:
                                pass
                    shutil.rmtree(cwd, ignore_errors=True)
            med = {k: statistics.median(v) for k, v in t.items()}
            added = [med[k] - med["native"] for k in (0, 1)]
            per = [a / chunks * 1e9 if chunks else float("nan") for a in added]
            print(f"{w.name:10} {med['native']:7.3f} {med[0]:7.3f} {med[1]:7.3f}   "
                  f"{chunks or 0:8} {per[0]:10.0f} {per[1]:10.0f} "
                  f"{added[1] / added[0] if added[0] > 0 else float('nan'):9.2f}", flush=True)
    except overhead.Failure as e:
        print(f"run-capture: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
