#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Wall-time overhead of heapprof and heaptrack on the same workloads.

Runs every workload natively, under heaptrack and under `heapprof run`,
alternating the three per repetition (native, heaptrack, heapprof, native,
...) so all three see the same machine noise, and reports per workload the
median wall time of each, the medians of the per-repetition ratios
heaptrack/native, heapprof/native and heapprof/heaptrack, and from the
heapprof databases the size per chunk and the collector's throughput
(chunks, and chunk + heap_event rows, per second of the heapprof run),
and the peak RSS of each run's largest process (wait4's ru_maxrss).

Wall times are end to end: for heapprof until `heapprof run` exits (the
database is complete), for heaptrack until the `heaptrack` script exits
(its trace file is written and compressed).

With --snapshots, heapprof records with `heapprof run --snapshots` (a
snapshot recording: no row per chunk); its chunks are then counted from the
sites.

Usage: bench/run-overhead.py [--build DIR] [--reps N] [--quick] [--only NAME[,NAME...]]
                             [--timeout SECONDS] [--snapshots]
"""
import argparse
import os
import re
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WL_DIR = os.path.join(os.path.dirname(HERE), "tests", "e2e", "workloads")

# Sizes: (default, --quick). Chosen for 0.3-1.5 s natively on the reference
# machine (2 cores) where the workload can be scaled; the malloc-bench
# commands are the fixed ones of the brief (40-150 ms natively: the cost of
# recording 2M chunks dominates the profiled runs anyway).
SIZES = {
    "churn": (2_000_000, 200_000),     # malloc-bench ops
    "churn-2t": (2_000_000, 200_000),
    "python3": (0.4, 0.05),            # fraction of alloc.py's work
    "sqlite3": (None, None),           # sqlite.sql as it is (~0.7 s)
    "perl": (0.5, 0.05),               # fraction of text.pl's lines
    "gcc": (250, 30),                  # functions in big.c (gen-big-c.awk n)
    "cc1": (250, 30),
}
ORDER = ["churn", "churn-2t", "python3", "sqlite3", "perl", "gcc", "cc1"]


class Failure(Exception):
    pass


def fail(msg, cmd=None, errfile=None):
    text = msg
    if cmd is not None:
        text += "\n  command: " + " ".join(shlex.quote(a) for a in cmd)
    if errfile and os.path.exists(errfile):
        with open(errfile, errors="replace") as f:
            tail = f.read().splitlines()[-15:]
        if tail:
            text += "\n  its stderr (last lines):\n" + "\n".join("    " + l for l in tail)
    raise Failure(text)


def python_path():
    if os.path.exists("/usr/bin/python3"):
        return "/usr/bin/python3"
    exe = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return os.path.realpath(exe)


def scaled_copy(src, dst, subs):
    """Copy SRC to DST, each (pattern, replacement) applied exactly once."""
    with open(src) as f:
        text = f.read()
    for pat, rep in subs:
        text, n = re.subn(pat, rep, text)
        if n != 1:
            raise Failure(f"{src}: expected one match of {pat!r}, found {n}: "
                          "update run-overhead.py's scaling")
    with open(dst, "w") as f:
        f.write(text)


class Workload:
    """argv to run, in a fresh directory; stdin file or None; the file
    (relative to the run directory) that must exist afterwards, or None
    for non-empty stdout."""

    def __init__(self, name, argv, desc, stdin=None, product=None):
        self.name, self.argv, self.desc = name, argv, desc
        self.stdin, self.product = stdin, product


def make_workloads(names, quick, build, tmp):
    k = 1 if quick else 0
    bench = os.path.abspath(os.path.join(build, "bench", "malloc-bench"))
    out = []
    for name in names:
        size = SIZES[name][k]
        if name == "churn":
            out.append(Workload(name, [bench, "1", str(size), "0", "1024"],
                                f"malloc-bench 1 {size} 0 1024"))
        elif name == "churn-2t":
            out.append(Workload(name, [bench, "2", str(size), "1", "1024"],
                                f"malloc-bench 2 {size} 1 1024"))
        elif name == "python3":
            py = python_path()
            script = os.path.join(tmp, "alloc.py")
            n = lambda base: str(max(1, int(base * size)))
            scaled_copy(os.path.join(WL_DIR, "alloc.py"), script, [
                (r"churn\(200000\)", f"churn({n(200000)})"),
                (r"records\(30000\)", f"records({n(30000)})"),
                (r"strings\(100000\)", f"strings({n(100000)})"),
                (r"tuples\(120000\)", f"tuples({n(120000)})"),
            ])
            out.append(Workload(name, [py, script],
                                f"PYTHONMALLOC=malloc {py} alloc.py x{size}"))
        elif name == "sqlite3":
            sq = shutil.which("sqlite3")
            if not sq:
                raise Failure("sqlite3: not found")
            out.append(Workload(name, [sq, "-bail", "-batch", ":memory:"],
                                "sqlite3 :memory: < sqlite.sql",
                                stdin=os.path.join(WL_DIR, "sqlite.sql")))
        elif name == "perl":
            script = os.path.join(tmp, "text.pl")
            lines = max(1000, int(40000 * size))
            scaled_copy(os.path.join(WL_DIR, "text.pl"), script,
                        [(r"for my \$i \(1 \.\. 40000\)", f"for my $i (1 .. {lines})")])
            out.append(Workload(name, ["/usr/bin/perl" if os.path.exists("/usr/bin/perl")
                                       else shutil.which("perl"), script],
                                f"perl text.pl x{size} ({lines} lines)"))
        elif name in ("gcc", "cc1"):
            src = os.path.join(tmp, f"big{size}.c")
            if not os.path.exists(src):
                with open(src, "w") as f:
                    subprocess.run(["awk", "-v", f"n={size}", "-f",
                                    os.path.join(WL_DIR, "gen-big-c.awk")],
                                   stdout=f, check=True)
            gcc = shutil.which("gcc")
            if name == "gcc":
                out.append(Workload(name, [gcc, "-O2", "-c", src, "-o", "big.o"],
                                    f"gcc -O2 -c big.c (n={size})", product="big.o"))
            else:
                # the compiler proper exactly as gcc runs it, but as the
                # only process: heaptrack does not follow gcc's children
                how = subprocess.run([gcc, "-###", "-O2", "-c", src, "-o", "big.o"],
                                     capture_output=True, text=True, check=True).stderr
                line = next((l for l in how.splitlines()
                             if l.startswith(" ") and "/cc1" in l.split()[0]), None)
                if line is None:
                    raise Failure("gcc -###: no cc1 command line in:\n" + how)
                argv = shlex.split(line)
                argv[argv.index("-o") + 1] = "big.s"
                out.append(Workload(name, argv, f"cc1 -O2 big.c -o big.s (n={size})",
                                    product="big.s"))
    return out


def run_once(argv, env, cwd, stdin, timeout, outfile, errfile):
    """Run argv in its own session; return (status, seconds, peak RSS in
    bytes of its largest process: wait4's ru_maxrss covers the child and
    every descendant it waited for)."""
    with open(stdin if stdin else os.devnull, "rb") as fin, \
            open(outfile, "wb") as fout, open(errfile, "wb") as ferr:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=fin, stdout=fout,
                             stderr=ferr, start_new_session=True)
        hung = threading.Event()

        def kill():
            # a hang (or ^C): end what we started, its whole session
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        def on_timeout():
            hung.set()
            kill()

        # A blocking wait, not Popen.wait(timeout=...): that one polls with
        # sleeps of up to 50 ms, which quantizes the wall time.
        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
            rc = p.returncode = os.waitstatus_to_exitcode(status)
        except BaseException:
            kill()
            p.wait()
            raise
        finally:
            timer.cancel()
        t1 = time.perf_counter()
    if hung.is_set():
        raise subprocess.TimeoutExpired(argv, timeout)
    return rc, t1 - t0, usage.ru_maxrss * 1024


def db_stats(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        snapshots = con.execute("SELECT value FROM meta WHERE key = 'recording'"
                                ).fetchone() == ("snapshots",)
        if snapshots:
            chunks = con.execute("SELECT coalesce(sum(allocs), 0) FROM site").fetchone()[0]
        else:
            chunks = con.execute("SELECT count(*) FROM chunk").fetchone()[0]
        events = con.execute("SELECT count(*) FROM heap_event").fetchone()[0]
        procs = con.execute("SELECT count(*) FROM process").fetchone()[0]
    finally:
        con.close()
    return chunks, events, procs


def measure(w, mode, rep, ctx):
    """One run of workload W in MODE; returns a dict of what was measured."""
    tag = f"{w.name}.{mode}.{rep}"
    cwd = os.path.join(ctx["tmp"], tag)
    os.mkdir(cwd)
    outfile, errfile = cwd + ".out", cwd + ".err"
    res = {}
    if mode == "native":
        argv = list(w.argv)
    elif mode == "heaptrack":
        trace = os.path.join(cwd, "trace")
        argv = [ctx["heaptrack"], "-o", trace] + w.argv
    else:
        db = os.path.join(cwd, "out.db")
        argv = [ctx["heapprof"], "run", "-o", db, "--force"] + \
            (["--snapshots"] if ctx["snapshots"] else []) + ["--"] + w.argv
    try:
        rc, secs, maxrss = run_once(argv, ctx["env"], cwd, w.stdin, ctx["timeout"], outfile,
                                    errfile)
    except subprocess.TimeoutExpired:
        fail(f"{tag}: no exit after {ctx['timeout']} s (killed)", argv, errfile)
    if rc != 0:
        fail(f"{tag}: exit status {rc}" + (f" (signal {-rc})" if rc < 0 else ""),
             argv, errfile)
    res["secs"] = secs
    res["maxrss"] = maxrss
    # the program's own product
    if w.product:
        if not os.path.exists(os.path.join(cwd, w.product)) or \
                os.path.getsize(os.path.join(cwd, w.product)) == 0:
            fail(f"{tag}: {w.product} missing or empty", argv, errfile)
    elif os.path.getsize(outfile) == 0:
        fail(f"{tag}: no output on stdout", argv, errfile)
    with open(errfile, errors="replace") as f:
        err = f.read()
    if mode == "heaptrack":
        files = [trace + ext for ext in (".zst", ".gz") if os.path.exists(trace + ext)]
        if not files or os.path.getsize(files[0]) == 0:
            fail(f"{tag}: no heaptrack output {trace}.zst or .gz", argv, errfile)
        m = re.search(r"^\s*allocations:\s*(\d+)", err, re.M)
        res["ht_allocs"] = int(m.group(1)) if m else None
    elif mode == "heapprof":
        if not os.path.exists(db) or os.path.getsize(db) == 0:
            fail(f"{tag}: database {db} missing or empty", argv, errfile)
        lines = [l for l in err.splitlines() if l.startswith("heapprof: ")]
        size = os.path.getsize(db)
        if os.path.exists(db + "-journal"):
            size += os.path.getsize(db + "-journal")
            res.setdefault("notes", []).append(f"{tag}: {db}-journal left behind")
        try:
            chunks, events, procs = db_stats(db)
        except sqlite3.Error as e:
            fail(f"{tag}: cannot read {db}: {e}", argv, errfile)
        if chunks == 0:
            fail(f"{tag}: database has no chunks", argv, errfile)
        bad = [l for l in lines if "incomplete" in l or "dropped" in l or "truncated" in l]
        if bad:
            fail(f"{tag}: heapprof reports an incomplete recording:\n    "
                 + "\n    ".join(lines), argv, errfile)
        res.update(db_bytes=size, chunks=chunks, rows=chunks + events,
                   procs=procs, summary=lines)
    shutil.rmtree(cwd)
    for f in (outfile, errfile):
        os.unlink(f)
    return res


def fmt_secs(s):
    return f"{s:.3f}" if s < 10 else f"{s:.2f}"


def human(n):
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build", help="meson build directory (default build)")
    ap.add_argument("--reps", type=int, default=None,
                    help="repetitions per workload (default 5, --quick 2)")
    ap.add_argument("--quick", action="store_true", help="small workloads, a smoke test")
    ap.add_argument("--only", metavar="NAME", help="only these workloads (comma-separated): "
                    + ", ".join(ORDER))
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds before a run counts as hung (default 300)")
    ap.add_argument("--snapshots", action="store_true",
                    help="record with heapprof run --snapshots")
    args = ap.parse_args()
    reps = args.reps if args.reps is not None else (2 if args.quick else 5)
    if reps < 1:
        ap.error("--reps must be at least 1")
    names = ORDER
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in ORDER]
        if unknown:
            ap.error(f"unknown workload {', '.join(unknown)} (known: {', '.join(ORDER)})")

    heapprof = os.path.abspath(os.path.join(args.build, "analyzer", "heapprof"))
    lib = os.path.abspath(os.path.join(args.build, "preload", "libheapprof.so"))
    bench = os.path.join(args.build, "bench", "malloc-bench")
    for f in (heapprof, lib, bench):
        if not os.path.exists(f):
            sys.exit(f"run-overhead: {f}: not built (ninja -C {args.build})")
    heaptrack = shutil.which("heaptrack")
    if not heaptrack:
        sys.exit("run-overhead: heaptrack not found")

    tmp = tempfile.mkdtemp(prefix="run-overhead.")
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "MALLOC_PERTURB_", "MALLOC_CHECK_")
           and not k.startswith("HEAPPROF_") and not k.startswith("GLIBC_TUNABLES")}
    env.update(LC_ALL="C", TZ="UTC", TMPDIR=tmp, PYTHONMALLOC="malloc",
               PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1",
               PERL_HASH_SEED="0", PERL_PERTURB_KEYS="0")
    ctx = dict(tmp=tmp, env=env, heapprof=heapprof, heaptrack=heaptrack,
               timeout=args.timeout, snapshots=args.snapshots)
    rows, notes = [], []
    status = 0
    try:
        workloads = make_workloads(names, args.quick, args.build, tmp)
        print(f"# {reps} repetitions of (native, heaptrack, heapprof) per workload"
              f"{' (--quick)' if args.quick else ''}; {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.2f} at start")
        print(f"# heapprof: {heapprof}{' run --snapshots' if args.snapshots else ''}")
        print(f"# heaptrack: {heaptrack}")
        for w in workloads:
            print(f"# {w.name:9} {w.desc}", flush=True)
        t_start = time.monotonic()
        for w in workloads:
            r = {m: [] for m in ("native", "heaptrack", "heapprof")}
            for rep in range(reps):
                for mode in ("native", "heaptrack", "heapprof"):
                    r[mode].append(measure(w, mode, rep, ctx))
                print(f"#   {w.name} {rep + 1}/{reps}: native "
                      f"{fmt_secs(r['native'][-1]['secs'])} s, heaptrack "
                      f"{fmt_secs(r['heaptrack'][-1]['secs'])} s, heapprof "
                      f"{fmt_secs(r['heapprof'][-1]['secs'])} s", file=sys.stderr, flush=True)
            nat = [x["secs"] for x in r["native"]]
            ht = [x["secs"] for x in r["heaptrack"]]
            hp = [x["secs"] for x in r["heapprof"]]
            hpr = r["heapprof"]
            for x in hpr:
                notes.extend(x.get("notes", []))
            procs = max(x["procs"] for x in hpr)
            rows.append(dict(
                name=w.name,
                native=statistics.median(nat), heaptrack=statistics.median(ht),
                heapprof=statistics.median(hp),
                ht_nat=statistics.median(b / a for a, b in zip(nat, ht)),
                hp_nat=statistics.median(c / a for a, c in zip(nat, hp)),
                hp_ht=statistics.median(c / b for b, c in zip(ht, hp)),
                rss=[statistics.median(x["maxrss"] for x in r[m])
                     for m in ("native", "heaptrack", "heapprof")],
                rss_ratio=statistics.median(c["maxrss"] / b["maxrss"]
                                            for b, c in zip(r["heaptrack"], r["heapprof"])),
                chunks=statistics.median(x["chunks"] for x in hpr),
                ht_allocs=statistics.median(x["ht_allocs"] for x in r["heaptrack"])
                if all(x["ht_allocs"] is not None for x in r["heaptrack"]) else None,
                procs=procs,
                bpc=statistics.median(x["db_bytes"] / x["chunks"] for x in hpr),
                cps=statistics.median(x["chunks"] / x["secs"] for x in hpr),
                eps=statistics.median(x["rows"] / x["secs"] for x in hpr),
                summary=hpr[0]["summary"]))
    except Failure as e:
        print(f"run-overhead: FAILED: {e}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("run-overhead: interrupted", file=sys.stderr)
        status = 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not rows:
        return status

    print()
    print("                  median wall time, s        median of per-rep ratios    "
          "heapprof database and collector")
    print(f"{'workload':10} {'native':>8} {'heaptrack':>9} {'heapprof':>9}   "
          f"{'ht/nat':>7} {'hp/nat':>7} {'hp/ht':>6}   "
          f"{'chunks':>8} {'ht allocs':>9} {'B/chunk':>7} {'chunks/s':>9} {'events/s':>9}")
    for x in rows:
        mark = "*" if x["procs"] > 1 else " "
        print(f"{x['name'] + mark:10} {fmt_secs(x['native']):>8} {fmt_secs(x['heaptrack']):>9} "
              f"{fmt_secs(x['heapprof']):>9}   {x['ht_nat']:7.2f} {x['hp_nat']:7.2f} "
              f"{x['hp_ht']:6.2f}   {human(x['chunks']):>8} "
              f"{human(x['ht_allocs']) if x['ht_allocs'] is not None else '?':>9} "
              f"{x['bpc']:7.1f} {human(x['cps']):>9} {human(x['eps']):>9}")
    print("# ratios: medians of per-repetition ratios (each repetition's three runs are adjacent)")
    print("# chunks: chunk rows in heapprof's database; ht allocs: allocations heaptrack counted;")
    print("# B/chunk: database bytes per chunk row; chunks/s, events/s: chunk rows and")
    print("# chunk + heap_event rows per second of the whole `heapprof run` wall time")
    multi = [x for x in rows if x["procs"] > 1]
    for x in multi:
        print(f"# * {x['name']}: heapprof recorded {x['procs']} processes (it follows "
              "children); heaptrack traces only the first process, so hp/ht is not "
              "like for like and is left out of the summary below")
    print()
    print("            peak RSS of the largest process, MiB (medians)")
    print(f"{'workload':10} {'native':>8} {'heaptrack':>9} {'heapprof':>9}   {'hp/ht':>6}")
    for x in rows:
        mark = "*" if x["procs"] > 1 else " "
        nat, ht, hp = (v / 2**20 for v in x["rss"])
        print(f"{x['name'] + mark:10} {nat:8.1f} {ht:9.1f} {hp:9.1f}   {x['rss_ratio']:6.2f}")
    print("# the largest process of each run: for heapprof `heapprof run` (the collector)")
    print("# or the program, for heaptrack the program or heaptrack_interpret (wait4's")
    print("# ru_maxrss over the process and every descendant it waited for)")
    for n in notes:
        print(f"# note: {n}")
    like = [x for x in rows if x["procs"] == 1] or rows
    ratios = [x["hp_ht"] for x in like]
    low = min(like, key=lambda x: x["hp_ht"])
    left_out = f"; left out: {', '.join(x['name'] for x in multi)}" if multi and like is not rows else ""
    print(f"heapprof/heaptrack wall time: lowest {low['hp_ht']:.2f} ({low['name']}), "
          f"median {statistics.median(ratios):.2f} over {len(like)} workloads{left_out}")
    if status:
        print("run-overhead: incomplete: a run failed (see above)", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
