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

HEAPPROF, PROGS, LIB = (os.path.abspath(a) for a in sys.argv[1:4])
failures = 0
checks = 0


def check(desc, want, got):
    global failures, checks
    checks += 1
    if want != got:
        failures += 1
        print(f"FAIL - {desc}: want [{want}], got [{got}]")
    elif os.environ.get("VERBOSE", "0") not in ("", "0"):
        print(f"ok - {desc}")


def record(db, prog, *args, snapshots=None):
    cmd = ["setarch", os.uname().machine, "-R", HEAPPROF, "run", "-o", db]
    if snapshots is not None:
        cmd += ["--snapshots"] + (["--snapshot-every", snapshots] if snapshots else [])
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONMALLOC="malloc")
    p = subprocess.run(cmd + [os.path.join(PROGS, prog), *args], capture_output=True, text=True,
                       env=env, cwd=os.path.dirname(db))
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
           if k not in ("pid", "process_id", "note", "pins", "holes", "leaks", "heaps", "holders")
           and not k.endswith("_ns")}
    out["holders"] = [(h["function"], h["chunks"], h["bytes"], h["keeps_bytes"])
                      for h in proc.get("holders", [])]
    out["heaps"] = proc["heaps"]
    out["pins"] = [(p["address"], p["chunk_bytes"], p["state"], p["weight_bytes"],
                    innermost(p["stack"])) for p in proc["pins"]]
    out["holes"] = [(h["address"], h["bytes"], h["trim_reclaimable_bytes"],
                     [(s["function"], s["bytes"], s["chunks"]) for s in h["former_sites"]]
                     if sites else None) for h in proc["holes"]]
    out["leaks"] = sorted((l["function"] or "", l["bytes"], l["chunks"], l["backing"])
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


def summary_is_replay(db, mode):
    """What the collector computed while it recorded (heap_summary) is what
    the report's replay of the recording finds: the end, the worst and the
    peak."""
    con = sqlite3.connect(db)
    summ = {r[0]: r[1:] for r in con.execute(
        "SELECT p.pid, s.extent_bytes, s.live_bytes, s.cached_bytes, s.untrimmable_bytes, "
        "s.top_free_bytes, s.mmap_bytes, s.worst_untrimmable_bytes, s.worst_untrimmable_ns - "
        "p.started_ns, s.peak_extent_bytes, s.peak_extent_ns - p.started_ns, s.peak_live_bytes "
        "FROM heap_summary s JOIN process p USING (process_id)")}
    con.close()
    for r in report(db):
        if r["pid"] not in summ:
            continue
        check(f"{mode}: pid {r['pid']}: heap_summary is the replay's end, worst and peak",
              summ[r["pid"]],
              (r["extent_bytes"], r["live_bytes"], r["cached_bytes"], r["untrimmable_bytes"],
               r["top_free_bytes"], r["mmap_bytes"], r["worst_untrimmable_bytes"],
               r["worst_untrimmable_ns"], r["peak_extent_bytes"], r["peak_extent_ns"],
               r["peak_live_bytes"]))


def same_as_full(tmp, prog, mode, *args):
    full, snap = os.path.join(tmp, f"{mode}-full.db"), os.path.join(tmp, f"{mode}-snap.db")
    if args:
        pf, ps = record(full, prog, *args), record(snap, prog, *args, snapshots="")
    else:
        pf, ps = record(full, prog, mode), record(snap, prog, mode, snapshots="")
    summary_is_replay(full, mode)
    check(f"{mode}: both runs end as natively", (pf.returncode, pf.stdout), (ps.returncode, ps.stdout))
    check(f"{mode}: the snapshot recording says so", "snapshots", meta(snap, "recording"))
    check(f"{mode}: no snapshot failed its self-check", "0", meta(snap, "snapshot_check_failures"))
    check(f"{mode}: no chunk or heap_event rows in a snapshot recording", [(0, 0)],
          rows(snap, "SELECT (SELECT count(*) FROM chunk_packed), (SELECT count(*) FROM heap_event)"))
    # one former row for each hole and stack (python3's exit snapshot:
    # 505 K chunks' pieces, 11 K rows); the report's chunk counts below
    # come from their `chunks`
    check(f"{mode}: one former row for each hole and stack", [(0,)],
          rows(snap, "SELECT count(*) FROM (SELECT 1 FROM snapshot_former "
               "GROUP BY snapshot_id, address, stack_id HAVING count(*) > 1)"))
    for at in ("exit", "worst", "peak"):
        f, s = report(full, "--at", at), report(snap, "--at", at)
        check(f"{mode} --at {at}: as many processes", len(f), len(s))
        for i, (a, b) in enumerate(zip(f, s)):
            # a forked child's holes may have been held by chunks it
            # inherited: the full history does not name them (its rows are
            # the parent's), the child's snapshot does
            forked = i > 0
            check(f"{mode} --at {at}: process {i}: same figures, pins and holes",
                  comparable(a, not forked), comparable(b, not forked))
    # the sites, per function and backing, are the same in both
    q = ("SELECT f.function, s.backing, sum(s.allocs), sum(s.frees), sum(s.alloc_bytes), "
         "sum(s.free_bytes), max(s.peak_live_bytes) FROM sites s "
         "LEFT JOIN frames f ON f.stack_id = s.stack_id AND f.depth = 0 "
         "WHERE s.process_id = 1 GROUP BY 1, 2 ORDER BY 1, 2")
    if prog.startswith("/"):
        q = None  # a real program's own temporary names differ run to run
    if q is None:
        return full, snap
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
            if mode == "live-pin":
                # its 1000 blocks of 40 KiB, freed side by side below the
                # pin, are one row; its worst lasted to the end, so the
                # worst snapshot has the exit's rows, not a copy of them
                check("live-pin: one former row for the blocks freed side by side",
                      [(1, 1000)], rows(snap, "SELECT count(*), sum(chunks) FROM snapshot_former"))
                check("live-pin: the worst, which lasted to the exit, shares its rows",
                      [("exit", None, 1, 1), ("peak", None, 999, 999), ("worst", "exit", 1, 1)],
                      rows(snap, "SELECT s.reason, o.reason, (SELECT count(*) FROM chunks c "
                           "WHERE c.snapshot_id = s.snapshot_id), s.live_chunks + "
                           "s.mmap_chunks + s.cached_chunks FROM snapshot s LEFT JOIN "
                           "snapshot o ON o.snapshot_id = s.rows_of ORDER BY 1"))
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

        # real programs: python3 and the gcc driver with its children (the
        # driver found a replay that took a state between two changes of
        # one instant for the worst)
        same_as_full(tmp, "/usr/bin/python3", "python3", "-c",
                     "d = {str(i): [i] * 5 for i in range(100000)}\n"
                     "for k in list(d)[::3]: del d[k]\nprint(len(d))")
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
        same_as_full(tmp, "/usr/bin/gcc", "gcc", "-O2", "-I", os.path.join(src, "preload"),
                     "-c", os.path.join(src, "tests", "progs", "pattern.c"), "-o", "pattern.o")
        check("gcc: no record dropped or bad", [(0, 0, 0)] * 2,
              rows(os.path.join(tmp, "gcc-full.db"),
                   "SELECT dropped_events, truncated_records, bad_records FROM processes "
                   "WHERE exe LIKE '%gcc%' OR exe LIKE '%cc1' LIMIT 2"))

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
        # asked as soon as the run's database is known, often before its
        # program is there to snapshot: the request waits for it (it was
        # answered with no snapshot 1 time in 20, asking every 1 ms)
        asked = None
        for _ in range(5000):
            asked = subprocess.run([HEAPPROF, "snapshot", db], capture_output=True, text=True)
            if asked.returncode == 0:
                break
            time.sleep(0.001)
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

        # the program killed: its snapshots are taken from what it recorded
        db, stop = os.path.join(tmp, "program-killed.db"), os.path.join(tmp, "never")
        run = subprocess.Popen([HEAPPROF, "run", "--snapshots", "-o", db,
                                os.path.join(PROGS, "snap-pattern"), "wait", stop],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            kids = open(f"/proc/{run.pid}/task/{run.pid}/children").read().split()
            if kids and os.path.exists(db):
                break
            time.sleep(0.01)
        time.sleep(0.5)
        os.kill(int(kids[0]), 9)
        check("program killed: heapprof run exits 128+9", 137, run.wait(timeout=60))
        check("program killed: a complete recording, its end, an exit snapshot with its heap",
              ("1", [("signal", 9)], True),
              (meta(db, "complete"), rows(db, "SELECT end_reason, exit_signal FROM processes"),
               rows(db, "SELECT live_chunks FROM snapshot WHERE reason = 'exit'")[0][0] > 10000))

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
        check("killed: no exit snapshot: exit 2, said in one line", (2, True),
              (ex.returncode, "no exit snapshot" in ex.stderr))
        ex = subprocess.run([HEAPPROF, "check", db, "--max-untrimmable", "1G"],
                            capture_output=True, text=True)
        check("killed: check cannot check the end: exit 2", (2, True),
              (ex.returncode, "no exit snapshot" in ex.stderr))
        r = subprocess.run([HEAPPROF, "report", db, "--at", "0.5", "--format", "json"],
                           capture_output=True, text=True)
        check("killed: --at 0.5 gives the nearest interval snapshot, incomplete", (0, False),
              (r.returncode, json.loads(r.stdout)["processes"][0]["complete"]))

        # hostile snapshot databases: one line, exit 2, or the bad rows left
        # out; never a crash
        good = os.path.join(tmp, "live-pin-snap.db")
        for desc, sql, want_rc, says in (
                ("a heap that ends before it starts",
                 "UPDATE snapshot_heap SET end_address = start - 1", 2, "damaged"),
                ("a heap of a petabyte",
                 "UPDATE snapshot_heap SET end_address = start + (1 << 50)", 2, "damaged"),
                ("chunks of unknown occupants and absurd sizes",
                 "UPDATE snapshot_origin SET occupant = 99 WHERE origin_id % 2 = 0;"
                 "UPDATE snapshot_origin SET chunk_bytes = 1 << 60 WHERE origin_id % 3 = 0", 0, ""),
                ("chunks whose shared values are gone",
                 "DELETE FROM snapshot_origin WHERE origin_id % 2 = 1", 0, ""),
                ("a snapshot whose rows are gone",
                 "DELETE FROM snapshot_chunk_packed; DELETE FROM snapshot_former", 0, ""),
                ("formers of absurd sizes",
                 "UPDATE snapshot_former SET bytes = 1 << 62", 0, ""),
                ("formers of no chunks, or more chunks than bytes",
                 "UPDATE snapshot_former SET chunks = CASE WHEN former_id % 2 THEN -1 "
                 "ELSE 1 << 62 END", 0, ""),
                ("a snapshot that shares the rows of one that is not there",
                 "UPDATE snapshot SET rows_of = 99 WHERE rows_of IS NOT NULL;"
                 "UPDATE snapshot SET rows_of = snapshot_id WHERE reason = 'exit'", 2, "damaged"),
                ("no snapshots at all", "DELETE FROM snapshot", 2, "no snapshot")):
            bad = os.path.join(tmp, "hostile.db")
            with open(good, "rb") as a, open(bad, "wb") as b:
                b.write(a.read())
            con = sqlite3.connect(bad)
            con.executescript(sql)
            con.commit()
            con.close()
            for at in ("exit", "worst"):
                r = subprocess.run([HEAPPROF, "report", bad, "--at", at], capture_output=True,
                                   text=True)
                lines = r.stderr.splitlines()
                check(f"hostile: {desc}, --at {at}: exit {want_rc}, no crash",
                      (want_rc, True), (r.returncode,
                                        not says or (len(lines) == 1 and says in lines[0])))

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
        # (heap_timeline keeps between 2048 and 4096 points a process: up to
        # 256 KiB apart); the free pages replaced snapshots left stay while
        # they are at most an eighth of the file
        def pages(d):
            con = sqlite3.connect(d)
            n, free, size = (con.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "freelist_count", "page_size"))
            con.close()
            return n, free, size
        (n5, f5, size), (n30, f30, _) = pages(short), pages(long_)
        check(f"steady: the same pages in use for 5 s and 30 s ({n5 - f5} and {n30 - f30} "
              f"of {size} bytes)", True, abs((n30 - f30) - (n5 - f5)) * size <= 256 << 10)
        check(f"steady: free pages at most an eighth of the file ({f5}/{n5}, {f30}/{n30})",
              True, f5 * 8 <= n5 and f30 * 8 <= n30)
    print(f"{checks} checks, {failures} failed")
    return 1 if failures else 0


sys.exit(main())
