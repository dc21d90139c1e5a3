#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""snapshots.py HEAPPROF PROGS LIB - snapshot recordings (heapprof run --snapshots).

The same deterministic pattern programs are recorded both ways, with
address-space randomization off (setarch -R) so that both runs get the same
addresses; `heapprof report --at exit|worst|peak` must then give the same
figures, pins (state, function, weight) and holes (with their former sites)
from the snapshots as from the full history. Then: a worst written long
before the end (settled) and one that rose too little to be rewritten
(creeping); sites against the chunks; --at SECONDS and --list-snapshots;
interval thinning; snapshots on demand; standalone recording; a killed
collector; and a long run whose database does not grow with its length.
"""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

HEAPPROF, PROGS, LIB = sys.argv[1], sys.argv[2], sys.argv[3]
failures = 0
checks = 0


def check(desc, want, got):
    global failures, checks
    checks += 1
    if want != got:
        failures += 1
        print(f"FAIL - {desc}: want [{want}], got [{got}]")
    elif os.environ.get("VERBOSE"):
        print(f"ok - {desc}")


def record(db, prog, *args, snapshots=None):
    cmd = ["setarch", os.uname().machine, "-R", HEAPPROF, "run", "-o", db]
    if snapshots is not None:
        cmd += ["--snapshots"] + (["--snapshot-every", snapshots] if snapshots else [])
    p = subprocess.run(cmd + [os.path.join(PROGS, prog), *args], capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stderr)
    return p


def report(db, *args):
    p = subprocess.run([HEAPPROF, "report", db, "--format", "json", "--top", "1000", *args],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stderr)
        raise SystemExit(1)
    return json.loads(p.stdout)["processes"]


def innermost(stack):
    return stack[0]["function"] if stack else None


def comparable(proc, sites=True):
    """What both kinds of recording must agree on: every figure, the pins by
    state, function and weight, the holes and their former sites, the leaks;
    not times, ids or process ids. For a forked child (sites False) the
    former sites and leaks may differ: the full history's rows of chunks it
    inherited are its parent's, so it names neither the holes they left in
    the child nor those still live at its end; the child's snapshots do."""
    out = {k: v for k, v in proc.items()
           if k not in ("pid", "process_id", "note", "pins", "holes", "leaks", "heaps")
           and not k.endswith("_ns")}
    out["heaps"] = proc["heaps"]
    out["pins"] = [(p["address"], p["chunk_bytes"], p["state"], p["weight_bytes"],
                    innermost(p["stack"])) for p in proc["pins"]]
    out["holes"] = [(h["address"], h["bytes"], h["trim_reclaimable_bytes"],
                     [(s["function"], s["bytes"], s["chunks"]) for s in h["former_sites"]]
                     if sites else None) for h in proc["holes"]]
    out["leaks"] = sorted((l["function"], l["bytes"], l["chunks"], l["backing"])
                          for l in proc["leaks"]) if sites else None
    if not sites:
        del out["leaked_bytes"], out["leaked_chunks"]
    return out


def meta(db, key):
    con = sqlite3.connect(db)
    row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    con.close()
    return row[0] if row else None


def rows(db, sql, *params):
    con = sqlite3.connect(db)
    r = con.execute(sql, params).fetchall()
    con.close()
    return r


def same_as_full(tmp, prog, mode):
    full, snap = os.path.join(tmp, f"{mode}-full.db"), os.path.join(tmp, f"{mode}-snap.db")
    pf, ps = record(full, prog, mode), record(snap, prog, mode, snapshots="")
    check(f"{mode}: both runs end as natively", (pf.returncode, pf.stdout), (ps.returncode, ps.stdout))
    check(f"{mode}: the snapshot recording says so", "snapshots", meta(snap, "recording"))
    check(f"{mode}: no snapshot failed its self-check", "0", meta(snap, "snapshot_check_failures"))
    check(f"{mode}: no chunk or heap_event rows in a snapshot recording", [(0, 0)],
          rows(snap, "SELECT (SELECT count(*) FROM chunk_packed), (SELECT count(*) FROM heap_event)"))
    for at in ("exit", "worst", "peak"):
        f, s = report(full, "--at", at), report(snap, "--at", at)
        check(f"{mode} --at {at}: as many processes", len(f), len(s))
        for i, (a, b) in enumerate(zip(f, s)):
            # a forked child's holes may have been held by chunks it
            # inherited: the full history does not name them (its rows are
            # the parent's), the child's snapshot does
            forked = i > 0 and prog == "snap-pattern"
            check(f"{mode} --at {at}: process {i}: same figures, pins and holes",
                  comparable(a, not forked), comparable(b, not forked))
    # the sites, per function and backing, are the same in both
    q = ("SELECT f.function, s.backing, sum(s.allocs), sum(s.frees), sum(s.alloc_bytes), "
         "sum(s.free_bytes), max(s.peak_live_bytes) FROM sites s "
         "LEFT JOIN frames f ON f.stack_id = s.stack_id AND f.depth = 0 "
         "WHERE s.process_id = 1 GROUP BY 1, 2 ORDER BY 1, 2")
    check(f"{mode}: the same sites in both", rows(full, q), rows(snap, q))
    return full, snap


def sites_match_chunks(db, mode):
    """A full recording's sites add up to its chunks."""
    got = rows(db, "SELECT process_id, stack_id, backing, allocs, frees, live_bytes FROM sites "
               "ORDER BY 1, 2, 3")
    want = rows(db, "SELECT process_id, coalesce(stack_id, 0), backing, count(*), "
                "count(free_ns), sum(CASE WHEN free_ns IS NULL THEN size ELSE 0 END) "
                "FROM chunks GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    check(f"{mode}: sites add up to the chunks (allocs, frees, live bytes)", want, got)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for prog, mode in (("pattern", "live-pin"), ("pattern", "cached-pin"),
                           ("pattern", "stdio-pin"), ("pattern", "pages"),
                           ("pattern", "slivers"), ("pattern", "mmap-only"),
                           ("pattern", "freed-all"), ("pattern", "arena-pin"),
                           ("snap-pattern", "fork-pin"), ("snap-pattern", "settled-worst")):
            full, snap = same_as_full(tmp, prog, mode)
            if mode in ("freed-all", "arena-pin"):
                sites_match_chunks(full, mode)
            if mode == "fork-pin":
                s = report(snap)
                sites = {x["function"] for h in s[1]["holes"] for x in h["former_sites"]}
                check("fork-pin: the child's holes name the inherited chunks it freed",
                      True, "child_table" in sites)
            if mode == "settled-worst":
                ids = dict(rows(snap, "SELECT reason, snapshot_id FROM snapshot"))
                check("settled-worst: the worst was written long before the end", True,
                      ids["worst"] < ids["exit"])

        # a worst that rose by less than 1/16 after it settled: the stored
        # one is kept, the report says what the real worst was
        db = os.path.join(tmp, "creeping.db")
        record(db, "snap-pattern", "creeping-worst", snapshots="")
        (stored,), = rows(db, "SELECT untrimmable_bytes FROM snapshot WHERE reason = 'worst'")
        (real,), = rows(db, "SELECT worst_untrimmable_bytes FROM heap_summary")
        check("creeping-worst: the stored worst is below the real one, within 1/16", True,
              stored < real <= stored + stored // 16)
        w = report(db, "--at", "worst")[0]
        check("creeping-worst: the report says the real worst", (stored, real, True),
              (w["untrimmable_bytes"], w["worst_untrimmable_bytes"],
               "the worst instant" in w.get("note", "")))

        # intervals: --at SECONDS takes the nearest; thinning keeps 16
        db = os.path.join(tmp, "steady.db")
        p = record(db, "snap-pattern", "steady", "2", "200000", snapshots="0.05")
        check("steady 2 s: recorded", 0, p.returncode)
        snaps = rows(db, "SELECT snapshot_id, since_start_ns, untrimmable_bytes, extent_bytes, "
                     "live_bytes FROM snapshots WHERE reason = 'interval' ORDER BY ns")
        check("steady 2 s every 0.05 s: at most 16 interval snapshots kept, at least 8", True,
              8 <= len(snaps) <= 16)
        ivs = rows(db, "SELECT start_ns, end_ns FROM interval ORDER BY start_ns")
        check("steady: at most 17 intervals, each starting where the last ended", (True, True),
              (len(ivs) <= 17, all(a[1] == b[0] for a, b in zip(ivs, ivs[1:]))))
        (start, end), = rows(db, "SELECT started_ns, ended_ns FROM process")
        check("steady: the intervals cover the run", (start, True), (ivs[0][0], ivs[-1][1] >= end - 10**9))
        sid, since, untrim, extent, live = snaps[len(snaps) // 2]
        r = report(db, "--at", "%.9f" % (since / 1e9 + 0.0001))[0]
        check("--at SECONDS: the nearest snapshot, its figures, and a note saying so",
              (untrim, extent, live, True),
              (r["untrimmable_bytes"], r["extent_bytes"], r["live_bytes"],
               r.get("note", "").startswith("the nearest snapshot (interval")))
        lst = subprocess.run([HEAPPROF, "report", db, "--list-snapshots", "--format", "json"],
                             capture_output=True, text=True)
        listed = json.loads(lst.stdout)["processes"][0]["snapshots"]
        check("--list-snapshots: every snapshot", len(rows(db, "SELECT * FROM snapshot")), len(listed))
        full = os.path.join(tmp, "freed-all-full.db")
        lst = subprocess.run([HEAPPROF, "report", full, "--list-snapshots"], capture_output=True,
                             text=True)
        check("--list-snapshots on a full recording: exit 2, one line", (2, 1),
              (lst.returncode, len(lst.stderr.splitlines())))

        # on demand
        db, stop = os.path.join(tmp, "demand.db"), os.path.join(tmp, "stop")
        run = subprocess.Popen([HEAPPROF, "run", "--snapshots", "-o", db,
                                os.path.join(PROGS, "snap-pattern"), "wait", stop],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        asked = None
        for _ in range(500):
            asked = subprocess.run([HEAPPROF, "snapshot", db], capture_output=True, text=True)
            if asked.returncode == 0:
                break
            time.sleep(0.01)
        check("heapprof snapshot FILE during the run: 0", 0, asked.returncode)
        open(stop, "w").close()
        check("the run ends as the program does", 0, run.wait(timeout=60))
        check("one demand snapshot", [(1,)], rows(db, "SELECT count(*) FROM snapshot WHERE reason = 'demand'"))
        gone = subprocess.run([HEAPPROF, "snapshot", db], capture_output=True, text=True)
        check("heapprof snapshot once the run is over: 2, one line", (2, 1, True),
              (gone.returncode, len(gone.stderr.splitlines()), "no heapprof run" in gone.stderr))
        # a full recording cannot take one
        db2, stop2 = os.path.join(tmp, "demand-full.db"), os.path.join(tmp, "stop2")
        run = subprocess.Popen([HEAPPROF, "run", "-o", db2, os.path.join(PROGS, "snap-pattern"),
                                "wait", stop2], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            asked = subprocess.run([HEAPPROF, "snapshot", db2], capture_output=True, text=True)
            if "no heapprof run" not in asked.stderr:
                break
            time.sleep(0.01)
        check("heapprof snapshot on a full recording: 2, says why", (2, True),
              (asked.returncode, "full recording" in asked.stderr))
        open(stop2, "w").close()
        run.wait(timeout=60)

        # standalone: HEAPPROF_OUTPUT with HEAPPROF_SNAPSHOTS
        db = os.path.join(tmp, "standalone.db")
        env = dict(os.environ, LD_PRELOAD=LIB, HEAPPROF_OUTPUT=db, HEAPPROF_SNAPSHOTS="60")
        p = subprocess.run([os.path.join(PROGS, "pattern"), "live-pin"], env=env,
                           capture_output=True, text=True)
        check("standalone: the program ends as natively", 0, p.returncode)
        for _ in range(1000):
            if os.path.exists(db) and meta(db, "complete") == "1":
                break
            time.sleep(0.01)
        check("standalone: a complete snapshot recording with an exit snapshot",
              ("1", "snapshots", [(1,)]),
              (meta(db, "complete"), meta(db, "recording"),
               rows(db, "SELECT count(*) FROM snapshot WHERE reason = 'exit'")))

        # the collector killed: what was written is readable, marked incomplete
        db, stop = os.path.join(tmp, "killed.db"), os.path.join(tmp, "stop3")
        run = subprocess.Popen([HEAPPROF, "run", "--snapshot-every", "0.1", "-o", db,
                                os.path.join(PROGS, "snap-pattern"), "wait", stop],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        time.sleep(1.5)
        run.kill()
        run.wait()
        open(stop, "w").close()
        time.sleep(0.5)
        lst = subprocess.run([HEAPPROF, "report", db, "--list-snapshots"], capture_output=True,
                             text=True)
        check("killed: --list-snapshots reads what was committed, says it is incomplete",
              (0, True, True), (lst.returncode, "interval" in lst.stdout,
                                "did not finish" in lst.stderr))
        ex = subprocess.run([HEAPPROF, "report", db], capture_output=True, text=True)
        check("killed: no exit snapshot: said in one line per process", True,
              "no exit snapshot" in ex.stderr)
        r = subprocess.run([HEAPPROF, "report", db, "--at", "0.5", "--format", "json"],
                           capture_output=True, text=True)
        check("killed: --at 0.5 gives the nearest interval snapshot, incomplete", (0, False),
              (r.returncode, json.loads(r.stdout)["processes"][0]["complete"]))

        # the database grows with the heap, not with the run: 5 s and 30 s
        # of the same steady heap make files of the same size
        short, long_ = os.path.join(tmp, "short.db"), os.path.join(tmp, "long.db")
        runs = [subprocess.Popen([HEAPPROF, "run", "--snapshots", "-o", d,
                                  os.path.join(PROGS, "snap-pattern"), "steady", str(t), "100000"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                for d, t in ((short, 5), (long_, 30))]
        pairs = [int(r.communicate()[0]) for r in runs]
        check("steady 5 s and 30 s: both ran and recorded", [0, 0], [r.returncode for r in runs])
        check("steady: the long run did ~6 times the work", True, pairs[1] > 4 * pairs[0])
        # (heap_timeline keeps between 2048 and 4096 points an image: up to
        # four 64 KiB pages apart)
        sizes = [os.path.getsize(d) for d in (short, long_)]
        check(f"steady: the same database size for 5 s and 30 s ({sizes[0]} and {sizes[1]} bytes)",
              True, abs(sizes[1] - sizes[0]) <= 4 * 65536)
    print(f"{checks} checks, {failures} failed")
    return 1 if failures else 0


sys.exit(main())
