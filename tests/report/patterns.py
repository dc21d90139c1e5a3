#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""patterns.py HEAPPROF PROGS GOLDEN_DIR - heapprof report and check on the
heap patterns of tests/progs/pattern.c.

Each pattern runs under `heapprof run`; the program prints glibc's own view
of its heap at its end (mallinfo2), and the report's figures for the end
must agree with it exactly:
    extent = arena, top free = keepcost, untrimmable = fordblks - keepcost
    - fsmblks, mmap = hblkhd.
Then per pattern: the top pin's state and allocating function, the holes
and the sites that last held them, malloc_trim's reclaimable bytes against
the resident memory malloc_trim(0) really gave back, check's exit status
on both sides of every limit, and golden reports (text and JSON, with
addresses, times and pids normalized; UPDATE_GOLDEN=1 rewrites them).
"""
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile

HEAPPROF, PROGS, GOLDEN = sys.argv[1], sys.argv[2], sys.argv[3]
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "progs", "pattern.c")
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


def line_of(tag):
    with open(SRC) as f:
        for n, text in enumerate(f, 1):
            if tag in text:
                return n
    raise SystemExit(f"no {tag} in {SRC}")


def record(tmp, mode):
    db = os.path.join(tmp, mode + ".db")
    p = subprocess.run([HEAPPROF, "run", "-o", db, os.path.join(PROGS, "pattern"), mode],
                       capture_output=True, text=True)
    check(f"{mode}: exit status", 0, p.returncode)
    if p.returncode != 0:
        print(p.stderr)
    mi = {}
    for ln in p.stdout.splitlines():
        w = ln.split()
        for k, v in zip(w[0::2], w[1::2]):
            mi[k] = int(v)
    return db, mi, p.stderr


def report(db, *args):
    p = subprocess.run([HEAPPROF, "report", db, "--format", "json", *args],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stderr)
        raise SystemExit(1)
    return json.loads(p.stdout)["processes"]


def agree_with_glibc(mode, r, mi):
    check(f"{mode}: extent = mallinfo2 arena", mi["arena"], r["extent_bytes"])
    check(f"{mode}: top free = keepcost", mi["keepcost"], r["top_free_bytes"])
    check(f"{mode}: untrimmable = fordblks - keepcost - fsmblks",
          mi["fordblks"] - mi["keepcost"] - mi["fsmblks"], r["untrimmable_bytes"])
    check(f"{mode}: mmap = hblkhd", mi["hblkhd"], r["mmap_bytes"])
    check(f"{mode}: extent = live + cached + allocator + untrimmable + top free",
          r["extent_bytes"], r["live_bytes"] + r["cached_bytes"] + r["allocator_bytes"]
          + r["untrimmable_bytes"] + r["top_free_bytes"])


def innermost(stack):
    return (stack[0]["function"], stack[0]["line"]) if stack else (None, None)


def normalize_text(s):
    s = re.sub(r"0x[0-9a-f]+", "0xADDR", s)
    s = re.sub(r"\d+\.\d{3} s", "T s", s)
    s = re.sub(r"process \d+ \(.*?\)", "process PID (pattern)", s)
    # frames outside the test program depend on libc's debug information
    out = []
    for ln in s.splitlines():
        if re.match(r"^ {6}\S", ln) and "pattern.c" not in ln:
            continue
        out.append(ln)
    return "\n".join(out) + "\n"


def normalize_json(procs):
    keep_int = ("bytes", "chunks", "weight_bytes", "chunk_bytes", "trim_reclaimable_bytes")
    def walk(v, key=None):
        if isinstance(v, dict):
            return {k: walk(x, k) for k, x in v.items()
                    if k not in ("pid", "exe", "address", "start", "age_ns", "stack_id")
                    and not k.endswith("_ns")}
        if isinstance(v, list):
            if key == "stack":
                v = [f for f in v if (f.get("file") or "").endswith("pattern.c")]
            return [walk(x) for x in v]
        if key in ("file", "module") and isinstance(v, str):
            return os.path.basename(v)
        return v
    return json.dumps(walk(procs), indent=1, sort_keys=True) + "\n"


def golden(name, text):
    path = os.path.join(GOLDEN, name)
    if os.environ.get("UPDATE_GOLDEN"):
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        want = f.read()
    check(f"golden {name}", want, text)
    if want != text:
        import difflib
        sys.stdout.writelines(difflib.unified_diff(want.splitlines(True), text.splitlines(True),
                                                   "golden", "now", n=1))


def run_check(db, *limits):
    p = subprocess.run([HEAPPROF, "check", db, *limits], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def main():
    pin_line = line_of("PIN_SITE")
    with tempfile.TemporaryDirectory() as tmp:
        # a live pin
        db, mi, err = record(tmp, "live-pin")
        r = report(db)[0]
        agree_with_glibc("live-pin", r, mi)
        check("live-pin: about 39 MiB untrimmable", True, r["untrimmable_bytes"] > 39 << 20)
        check("live-pin: the top pin is live, from keep_config at its line", ("live", ("keep_config", pin_line)),
              (r["pins"][0]["state"], innermost(r["pins"][0]["stack"])))
        check("live-pin: its weight is the hole below it and itself", r["untrimmable_bytes"] + r["pins"][0]["chunk_bytes"],
              r["pins"][0]["weight_bytes"])
        check("live-pin: one hole, last held by 1000 chunks of fill_blocks",
              (1, "fill_blocks", 1000), (len(r["holes"]), r["holes"][0]["former_sites"][0]["function"],
                                         r["holes"][0]["former_sites"][0]["chunks"]))
        check("heapprof run said the top pin's site", 1,
              len(re.findall(r"top pin: 112 B, live, from keep_config \(pattern\.c:%d\)" % pin_line, err)))
        text = subprocess.run([HEAPPROF, "report", db], capture_output=True, text=True).stdout
        golden("live-pin.txt", normalize_text(text))
        # check, each limit on both sides
        u, ret, leak, peak = (r["untrimmable_bytes"], r["retained_bytes"], r["leaked_bytes"],
                              r["peak_live_bytes"])
        for flag, value in (("--max-untrimmable", u), ("--max-retained", ret),
                            ("--max-leaked", leak), ("--max-peak", peak)):
            rc, out = run_check(db, flag, str(value))
            check(f"check {flag} at the value passes", (0, "PASS"), (rc, out[:4]))
            rc, out = run_check(db, flag, str(value - 1))
            check(f"check {flag} one byte below fails, naming the top pin", (1, "FAIL", True),
                  (rc, out[:4], flag == "--max-leaked" or "keep_config" in out))
        rc, out = run_check(db, "--max-untrimmable", "1M", "--max-leaked", "1K")
        check("check: one line per limit, 1 if any fails", (1, 2), (rc, len(out.splitlines())))
        rc, out = run_check(db, "--max-untrimmable", "1G", "--at", "worst")
        check("check --at worst with a limit above: 0", 0, rc)

        # a cached pin: freed, the tcache still holds it
        db, mi, _ = record(tmp, "cached-pin")
        r = report(db)[0]
        agree_with_glibc("cached-pin", r, mi)
        check("cached-pin: the top pin is cached, from keep_config", ("cached", "keep_config"),
              (r["pins"][0]["state"], innermost(r["pins"][0]["stack"])[0]))
        check("cached-pin: nothing leaked of the program's (only stdio's buffer, if any)", 0,
              sum(l["bytes"] for l in r["leaks"] if l["function"] == "keep_config"))
        golden("cached-pin.json", normalize_json([r]))

        # a stdio FILE pins the heap
        db, mi, _ = record(tmp, "stdio-pin")
        r = report(db)[0]
        agree_with_glibc("stdio-pin", r, mi)
        funcs = [f["function"] or "" for f in r["pins"][0]["stack"]]
        check("stdio-pin: the top pin is live stdio memory (allocated under fputs)", ("live", True),
              (r["pins"][0]["state"], any("fputs" in f or "doallocate" in f for f in funcs)))

        # whole pages vs slivers
        db, mi, _ = record(tmp, "pages")
        r = report(db)[0]
        agree_with_glibc("pages", r, mi)
        check("pages: 100 holes, each with whole pages", (100, 0),
              (len(report(db, "--top", "1000")[0]["holes"]),
               sum(1 for h in report(db, "--top", "1000")[0]["holes"] if h["trim_reclaimable_bytes"] == 0)))
        check("pages: the holes' sites are interleave's", "interleave",
              r["holes"][0]["former_sites"][0]["function"])
        rss = mi["trim_rss"]
        check("pages: malloc_trim(0) gave back exactly the reclaimable bytes (resident heap pages)",
              r["trim_reclaimable_bytes"], rss)
        check("pages: reclaimable bytes are most of the holes", True,
              r["trim_reclaimable_bytes"] > r["untrimmable_bytes"] * 9 // 10)

        db, mi, _ = record(tmp, "slivers")
        r = report(db)[0]
        agree_with_glibc("slivers", r, mi)
        check("slivers: a megabyte of holes, none with a whole page", (True, 0),
              (r["untrimmable_bytes"] > 1 << 20, r["trim_reclaimable_bytes"]))
        check("slivers: the top pin is interleave's 32-byte chunk", ("live", "interleave", 48),
              (r["pins"][0]["state"], innermost(r["pins"][0]["stack"])[0], r["pins"][0]["chunk_bytes"]))
        golden("slivers.txt", normalize_text(subprocess.run(
            [HEAPPROF, "report", db, "--top", "3"], capture_output=True, text=True).stdout))

        db, mi, _ = record(tmp, "mmap-only")
        r = report(db)[0]
        agree_with_glibc("mmap-only", r, mi)
        check("mmap-only: no holes, no pins, 5 chunks mapped", (0, [], [], 5),
              (r["untrimmable_bytes"], r["holes"], r["pins"], r["mmap_chunks"]))

        # a thread's arena: its own mapped heap, pinned the same way
        db, mi, _ = record(tmp, "arena-pin")
        r = report(db)[0]
        check("arena-pin: extent = arena (all arenas)", mi["arena"], r["extent_bytes"])
        check("arena-pin: untrimmable + top free = fordblks - fsmblks (all arenas)",
              mi["fordblks"] - mi["fsmblks"], r["untrimmable_bytes"] + r["top_free_bytes"])
        arenas = [h for h in r["heaps"] if h["kind"] == "arena"]
        check("arena-pin: the thread's heap holds the untrimmable bytes, pinned by keep_config",
              (1, r["untrimmable_bytes"], "live", "keep_config"),
              (len(arenas), sum(h["untrimmable_bytes"] for h in arenas), r["pins"][0]["state"],
               innermost(r["pins"][0]["stack"])[0]))
        check("arena-pin: heaps add up", r["extent_bytes"], sum(h["extent_bytes"] for h in r["heaps"]))
        text = subprocess.run([HEAPPROF, "report", db], capture_output=True, text=True).stdout
        check("arena-pin: the text report has a line for each heap", (1, 1),
              (len(re.findall(r"the brk heap at 0x", text)), len(re.findall(r"an arena's heap at 0x", text))))

        # the instants: worst is the most untrimmable, peak the largest extent
        db, mi, _ = record(tmp, "freed-all")
        w = report(db, "--at", "worst")[0]
        e = report(db, "--at", "exit")[0]
        p = report(db, "--at", "peak")[0]
        check("freed-all: worst untrimmable is reported at the worst instant", w["worst_untrimmable_bytes"],
              w["untrimmable_bytes"])
        check("freed-all: at the worst instant keep_config pins ~39 MiB", (True, "keep_config"),
              (w["untrimmable_bytes"] > 38 << 20, innermost(w["pins"][0]["stack"])[0]))
        check("freed-all: peak is the largest extent", p["peak_extent_bytes"], p["extent_bytes"])
        check("freed-all: nothing leaked of the program's at exit", True,
              all(l["function"] != "keep_config" for l in e["leaks"]))
        t = report(db, "--at", "%.9f" % (w["at_ns"] / 1e9))[0]
        check("--at SECONDS at the worst instant gives the worst figures", w["untrimmable_bytes"],
              t["untrimmable_bytes"])
        # heap events are read in the order written; a file where they are
        # out of time order (rewritten by someone) is sorted, same report
        shuffled = os.path.join(tmp, "shuffled.db")
        with open(db, "rb") as src, open(shuffled, "wb") as dst:
            dst.write(src.read())
        con = sqlite3.connect(shuffled)
        n = con.execute("SELECT count(*) FROM heap_event").fetchone()[0]
        con.executescript("CREATE TEMP TABLE ev AS SELECT * FROM heap_event ORDER BY ns DESC;"
                          "DELETE FROM heap_event; INSERT INTO heap_event SELECT * FROM ev;")
        con.commit()
        con.close()
        for at in ("worst", "exit"):
            check(f"freed-all: {n} heap events written in reverse time order, same report --at {at}",
                  report(db, "--at", at), report(shuffled, "--at", at))
    print(f"{checks} checks, {failures} failed")
    return 1 if failures else 0


sys.exit(main())
