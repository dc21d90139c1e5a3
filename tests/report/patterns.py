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
BLOCK = 40 * 1024
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


def native(mode):
    """The pattern without heapprof: glibc's own figures."""
    p = subprocess.run([os.path.join(PROGS, "pattern"), mode], capture_output=True, text=True)
    check(f"{mode}: native exit status", 0, p.returncode)
    mi = {}
    for ln in p.stdout.splitlines():
        w = ln.split()
        for k, v in zip(w[0::2], w[1::2]):
            mi[k] = int(v)
    return mi


def summary(db, col):
    """A column of the collector's heap_summary for the first process."""
    con = sqlite3.connect(db)
    v = con.execute(f"SELECT {col} FROM heap_summary ORDER BY process_id LIMIT 1").fetchone()[0]
    con.close()
    return v


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
                    if k not in ("pid", "exe", "address", "start", "age_ns", "stack_id", "offset")
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

        # the top pin is free space the allocator cached itself (the tail a
        # realloc split off, in the tcache): labelled so, no chunk
        db, mi, _ = record(tmp, "stashed-pin")
        r = report(db)[0]
        agree_with_glibc("stashed-pin", r, mi)
        top = r["pins"][0]
        check("stashed-pin: the top pin is the 496-byte tail the tcache holds, no chunk",
              ("stashed", "tcache", 496, 0, []),
              (top["state"], top["cache"], top["chunk_bytes"], top["chunk_id"], top["stack"]))
        check("stashed-pin: below it the live chunk realloc shrank", ("live", 512),
              (r["pins"][1]["state"], r["pins"][1]["chunk_bytes"]))
        rc, out = run_check(db, "--max-untrimmable", "1M")
        check("stashed-pin: check's FAIL line says what the top pin is", (1, True),
              (rc, "top pin: free space the allocator keeps in a tcache" in out))
        check("stashed-pin: the collector's summary says stashed", "stashed",
              summary(db, "top_pin_state"))

        # allocation wrappers: xmalloc (built in), pool_get (--skip); the
        # same sites in the report, check, heapprof run's summary and SQL
        wrapped_line, pooled_line = line_of("WRAPPED_SITE"), line_of("POOLED_SITE")
        db, mi, err = record(tmp, "wrapped")
        r = report(db)[0]
        site = lambda x: (x["site"]["function"], x["site"]["line"])
        check("wrapped: the top pin's site is past xmalloc: pool_get", "pool_get",
              r["pins"][0]["site"]["function"])
        check("wrapped: the hole was held by fill_wrapped's chunks (past xmalloc)",
              "fill_wrapped", r["holes"][0]["former_sites"][0]["function"])
        check("wrapped: heapprof run's summary names pool_get", 1,
              len(re.findall(r"top pin: 112 B, live, from pool_get \(pattern\.c:", err)))
        r = report(db, "--skip", "pool_get")[0]
        check("wrapped --skip pool_get: the site is keep_pooled's line",
              ("keep_pooled", pooled_line), site(r["pins"][0]))
        check("wrapped --skip pool_get: the leak's site too", ("keep_pooled", pooled_line),
              site(r["leaks"][0]))
        rc, out = run_check(db, "--max-untrimmable", "1M", "--skip", "pool_get")
        check("wrapped: check --skip pool_get names keep_pooled", (1, True),
              (rc, "top pin: keep_pooled (pattern.c:%d)" % pooled_line in out))
        con = sqlite3.connect(db)
        q = ("SELECT s.function FROM site_frames s JOIN chunks c USING (stack_id) "
             "WHERE c.size = %d GROUP BY 1")
        check("wrapped: SQL's site_frames view says the same", (["pool_get"], ["fill_wrapped"]),
              ([x[0] for x in con.execute(q % 100)], [x[0] for x in con.execute(q % BLOCK)]))
        con.execute("INSERT INTO alloc_wrapper VALUES ('pool_*', 'function')")
        con.commit()
        check("wrapped: a row added to alloc_wrapper: the view skips it", ["keep_pooled"],
              [x[0] for x in con.execute(q % 100)])
        con.close()
        check("wrapped: ... and so does the report", "keep_pooled",
              report(db)[0]["pins"][0]["site"]["function"])

        # C++: operator new and the standard library's inlined templates
        cdb = os.path.join(tmp, "cxx.db")
        p = subprocess.run([HEAPPROF, "run", "-o", cdb, os.path.join(PROGS, "cxx-new")],
                           capture_output=True, text=True)
        check("cxx-new: recorded", 0, p.returncode)
        r = report(cdb)[0]
        names = ([s["function"] for h in r["holes"] for s in h["former_sites"]] +
                 [l["function"] for l in r["leaks"]])
        check("cxx-new: sites are the program's functions, never operator new or std::",
              (True, []), (len(names) > 5, [n for n in names if n and
                                              (n.startswith("operator new") or "std::" in n)]))
        con = sqlite3.connect(cdb)
        check("cxx-new: the site_frames view agrees", 0, con.execute(
            "SELECT count(*) FROM site_frames WHERE function GLOB 'operator new*' "
            "OR file GLOB '/usr/include/c++/*'").fetchone()[0])
        con.close()

        # who holds the holes: 400 survivors of two sites among 30 MiB of
        # holes; the top pin alone frees little. What freeing one site's
        # chunks would give back, against a child that does it and trims.
        db, mi, _ = record(tmp, "survivors")
        r = report(db)[0]
        agree_with_glibc("survivors", r, mi)
        nat = native("survivors")
        holders = {h["function"]: h for h in r["holders"]}
        check("survivors: two sites hold the holes, 200 chunks each",
              (["survive_a", "survive_b"], 200, 200),
              (sorted(holders), holders.get("survive_a", {}).get("chunks"),
               holders.get("survive_b", {}).get("chunks")))
        check("survivors: malloc_trim(0) as predicted, here and under glibc",
              (r["trim_reclaimable_bytes"],) * 2, (mi["trim_rss"], nat["trim_rss"]))
        keeps = holders.get("survive_a", {}).get("keeps_bytes", 0)
        check("survivors: freeing survive_a's chunks gives back what it keeps, here and "
              "under glibc", (keeps,) * 2,
              (mi["free_a_rss"] - mi["trim_rss"], nat["free_a_rss"] - nat["trim_rss"]))
        check("survivors: that is far more than the top pin's weight", True,
              keeps > 10 * r["pins"][0]["weight_bytes"])
        text = subprocess.run([HEAPPROF, "report", db, "--pid", str(r["pid"])],
                              capture_output=True, text=True).stdout
        check("survivors: the text lists them", 2,
              len(re.findall(r"keeps +[0-9.]+ MiB +200 chunks, 3\.8 MiB, from survive_[ab] "
                             r"\(pattern\.c:", text)))

        # --by stack: one site, two stacks, told apart by their callers
        db, mi, _ = record(tmp, "two-stacks")
        r = report(db)[0]
        check("two-stacks: by function, one site for the hole", [("fill_at", 1000)],
              [(x["function"], x["chunks"]) for x in r["holes"][0]["former_sites"]])
        r = report(db, "--by", "stack")[0]
        sites = r["holes"][0]["former_sites"]
        check("two-stacks --by stack: two stacks of 500 chunks, each with its frames",
              (2, [500, 500], True, 2),
              (len(sites), [x["chunks"] for x in sites], all(len(x.get("stack", [])) > 2 for x in sites),
               len(set(x["stack_id"] for x in sites))))
        text = subprocess.run([HEAPPROF, "report", db, "--by", "stack"], capture_output=True,
                              text=True).stdout
        fa = line_of("FILL_AT")
        check("two-stacks --by stack: the text tells them apart by their callers",
              [("a", line_of("LOAD_A")), ("b", line_of("LOAD_B"))],
              sorted((m.group(1), int(m.group(2))) for m in re.finditer(
                  r"from #\d+ fill_at \(pattern\.c:%d\) <- load_(a|b) \(pattern\.c:(\d+)\)" % fa,
                  text)))

        # a program without symbols: frames are module+offset
        stripped = os.path.join(tmp, "pattern-stripped")
        subprocess.run(["objcopy", "--strip-all", os.path.join(PROGS, "pattern"), stripped],
                       check=True)
        db = os.path.join(tmp, "stripped.db")
        subprocess.run([HEAPPROF, "run", "-o", db, stripped, "live-pin"], capture_output=True)
        r = report(db)[0]
        site = r["pins"][0]["site"]
        text = subprocess.run([HEAPPROF, "report", db], capture_output=True, text=True).stdout
        m = re.search(r"top pin, a 112-byte\s+chunk from 0x([0-9a-f]+) in pattern-stripped", text)
        check("stripped: the top pin's site is module+offset, in text and JSON",
              (None, "pattern-stripped", True, site["offset"]),
              (site["function"], os.path.basename(site["module"] or ""), site["offset"] > 0,
               int(m.group(1), 16) if m else None))

        # instants the program marked (heapprof_mark)
        db, mi, _ = record(tmp, "marked")
        check("marked: runs natively (heapprof_mark is weak)", 0,
              subprocess.run([os.path.join(PROGS, "pattern"), "marked"],
                             capture_output=True).returncode)
        at = lambda w: report(db, "--at", w)[0]
        m = at("mark:pinned")
        check("marked: at mark:pinned ~39 MiB pinned by the 2000-byte chunk",
              (True, "main", line_of("MARKED_PIN"), "mark", "pinned"),
              (m["untrimmable_bytes"] > 39 << 20, m["pins"][0]["site"]["function"],
               m["pins"][0]["site"]["line"], m["at"], m["mark"]))
        check("marked: nothing pinned at exit", 0, at("exit")["untrimmable_bytes"])
        check("marked: mark:phase is the first, #2 and #last the second",
              (0, m["untrimmable_bytes"], m["untrimmable_bytes"]),
              (at("mark:phase")["untrimmable_bytes"], at("mark:phase#2")["untrimmable_bytes"],
               at("mark:phase#last")["untrimmable_bytes"]))
        rc, out = run_check(db, "--at", "mark:pinned", "--max-untrimmable", "1M")
        check("marked: check --at mark:pinned fails, --at exit passes", (1, 0),
              (rc, run_check(db, "--at", "exit", "--max-untrimmable", "1M")[0]))
        for when in ("peak", "worst", "0.001"):
            rc, out = run_check(db, "--at", when, "--max-retained", "1G")
            check(f"check --at {when}: the instants report takes", (0, "PASS"), (rc, out[:4]))
        p = subprocess.run([HEAPPROF, "report", db, "--at", "mark:nope"], capture_output=True,
                           text=True)
        check("marked: an unknown mark is an error naming the marks there", (2, True),
              (p.returncode, "no process has this mark (marks: phase, pinned, phase)" in p.stderr))
        # an interpreter marks through its foreign-function interface
        pdb = os.path.join(tmp, "py.db")
        p = subprocess.run([HEAPPROF, "run", "-o", pdb, sys.executable, "-c",
                            "import ctypes; ctypes.CDLL(None).heapprof_mark(b'py-ready')"],
                           capture_output=True, text=True)
        check("python3 marks with ctypes", (0, "mark"), (p.returncode,
                                                         report(pdb, "--at", "mark:py-ready")[-1]["at"]))

        # CPython's pymalloc: its arenas are mmaps of its own, counted as
        # such and against Python's own count (sys._debugmallocstats)
        py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        code = ("import ctypes, sys\n"
                "x = [str(i) * 2 for i in range(300000)]\n"
                "ctypes.CDLL(None).heapprof_mark(b'built')\n"
                "sys._debugmallocstats()\n")
        pdb = os.path.join(tmp, "pymalloc.db")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONMALLOC"}
        p = subprocess.run([HEAPPROF, "run", "-o", pdb, py, "-c", code], capture_output=True,
                           text=True, env=env)
        m = re.search(r"# arenas allocated current\s*=\s*(\d+)", p.stderr)
        r = report(pdb, "--at", "mark:built")[-1]
        check("pymalloc: the arenas live at the mark, as Python counts them", (True, "cpython"),
              (m is not None and r["pymalloc_arenas"] == int(m.group(1)) > 0, r["interpreter"]))
        check("pymalloc: 1 MiB each (Python 3.10 and later) or 256 KiB",
              True, r["pymalloc_bytes"] in (r["pymalloc_arenas"] << 20, r["pymalloc_arenas"] << 18))
        text = subprocess.run([HEAPPROF, "report", pdb, "--at", "mark:built"],
                              capture_output=True, text=True).stdout
        check("pymalloc: the report says so", (1, 1),
              (len(re.findall(r"^  pymalloc +[0-9.]+ MiB +\d+ arenas", text, re.M)),
               text.count("Run it with PYTHONMALLOC=malloc")))
        p = subprocess.run([HEAPPROF, "run", "-o", pdb + "2", py, "-c", code], capture_output=True,
                           text=True, env=dict(env, PYTHONMALLOC="malloc"))
        r = report(pdb + "2", "--at", "mark:built")[-1]
        text = subprocess.run([HEAPPROF, "report", pdb + "2", "--at", "mark:built"],
                              capture_output=True, text=True).stdout
        check("PYTHONMALLOC=malloc: no arenas, and the report says every object is a chunk",
              (0, "cpython", 1), (r["pymalloc_arenas"], r["interpreter"],
                                  text.count("without pymalloc arenas")))

        # a stdio FILE pins the heap
        db, mi, _ = record(tmp, "stdio-pin")
        r = report(db)[0]
        agree_with_glibc("stdio-pin", r, mi)
        funcs = [f["function"] or "" for f in r["pins"][0]["stack"]]
        check("stdio-pin: the top pin is live stdio memory (allocated under fputs)", ("live", True),
              (r["pins"][0]["state"], any("fputs" in f or "doallocate" in f for f in funcs)))

        # whole pages vs slivers; what malloc_trim(0) gives back, predicted
        # from the recording and measured (mincore) when a child calls it
        # on the same heap, under heapprof and under glibc itself
        db, mi, _ = record(tmp, "pages")
        r = report(db)[0]
        agree_with_glibc("pages", r, mi)
        check("pages: 100 holes, each with whole pages", (100, 0),
              (len(report(db, "--top", "1000")[0]["holes"]),
               sum(1 for h in report(db, "--top", "1000")[0]["holes"] if h["trim_reclaimable_bytes"] == 0)))
        check("pages: the holes' sites are interleave's", "interleave",
              r["holes"][0]["former_sites"][0]["function"])
        check("pages: malloc_trim(0) gives back what the report says (resident heap pages)",
              (r["trim_reclaimable_bytes"], r["trim_reclaimable_bytes"]),
              (mi["trim_rss"], native("pages")["trim_rss"]))
        check("pages: resident bytes are what mincore says", mi["resident"], r["resident_bytes"])
        check("pages: reclaimable bytes are most of the holes", True,
              r["trim_reclaimable_bytes"] > r["untrimmable_bytes"] * 9 // 10)
        check("pages: the collector's summary agrees", r["trim_reclaimable_bytes"],
              summary(db, "trim_reclaimable_bytes"))

        # the program called malloc_trim(0) itself: those pages are gone
        db, mi, _ = record(tmp, "self-trim")
        r = report(db, "--top", "1000")[0]
        agree_with_glibc("self-trim", r, mi)
        check("self-trim: nothing more to give back, resident = mincore (and glibc's)",
              (0, mi["resident"], mi["resident"]),
              (r["trim_reclaimable_bytes"], r["resident_bytes"], native("self-trim")["resident"]))
        check("self-trim: the holes' madvised pages are not resident, nor reclaimable",
              (True, 0), (r["untrimmable_resident_bytes"] < r["untrimmable_bytes"] // 10,
                          sum(h["trim_reclaimable_bytes"] for h in r["holes"])))
        check("self-trim: the collector's summary agrees", (0, r["resident_bytes"]),
              (summary(db, "trim_reclaimable_bytes"), summary(db, "resident_bytes")))

        # fastbins: malloc_trim consolidates them first
        for mode in ("fastbins", "fastbins-mt"):
            db, mi, _ = record(tmp, mode)
            r = report(db)[0]
            if mode == "fastbins":
                agree_with_glibc(mode, r, mi)
            else:
                check(f"{mode}: extent = arena (all arenas)", mi["arena"], r["extent_bytes"])
                check(f"{mode}: untrimmable + top free = fordblks - fsmblks (all arenas)",
                      mi["fordblks"] - mi["fsmblks"], r["untrimmable_bytes"] + r["top_free_bytes"])
            check(f"{mode}: fastbins hold fsmblks", mi["fsmblks"], r["fastbin_bytes"])
            check(f"{mode}: malloc_trim(0) gives back what the report says, here and under glibc",
                  (r["trim_reclaimable_bytes"], r["trim_reclaimable_bytes"]),
                  (mi["trim_rss"], native(mode)["trim_rss"]))
            check(f"{mode}: that is most of the fastbins", True,
                  r["trim_reclaimable_bytes"] > r["fastbin_bytes"] * 9 // 10)
            check(f"{mode}: the collector's summary agrees", r["trim_reclaimable_bytes"],
                  summary(db, "trim_reclaimable_bytes"))
            text = subprocess.run([HEAPPROF, "report", db], capture_output=True, text=True).stdout
            check(f"{mode}: the advice names the fastbins, not 'nothing is pinned'", (True, False),
                  ("astbins hold" in text, "Nothing is pinned" in text))
        # --at past one process's end (the trimming child ends first): that
        # one at its end, saying so; past every process's end: refused
        both = report(db, "--at", "%.9f" % ((r["at_ns"] - 1) / 1e9))
        check("an instant after the child's end: the child at its end, saying so",
              (2, False, True), (len(both), both[0]["past_end"], both[1]["past_end"]))
        check("... the parent at that instant", r["at_ns"] - 1, both[0]["at_ns"])
        text = subprocess.run([HEAPPROF, "report", db, "--at", "%.9f" % ((r["at_ns"] - 1) / 1e9)],
                              capture_output=True, text=True).stdout
        check("... the text says so", 1, text.count("past its end, so at its end"))

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

        # an mmap chunk resized in place by mremap: the mmap figure follows
        # the mapping at every instant, the collector's summary too
        db, mi, _ = record(tmp, "mremap")
        check("mremap: glibc shrank it in place", 1, mi["in_place"])
        for mark in ("mapped", "shrunk", "grown"):
            check(f"mremap: mmap at mark:{mark} = hblkhd then", mi[mark + "_hblkhd"],
                  report(db, "--at", "mark:" + mark)[0]["mmap_bytes"])
        check("mremap: mmap at exit 0, in the report and in heap_summary", (0, 0),
              (report(db)[0]["mmap_bytes"], summary(db, "mmap_bytes")))

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
              (len(re.findall(r"^    brk +0x", text, re.M)), len(re.findall(r"^    arena +0x", text, re.M))))

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
        # (times are stored against a base per block of rowids: the new
        # rows get base 0, their times whole)
        con.executescript(
            "CREATE TEMP TABLE ev AS SELECT e.process_id, x.base_ns + e.ns_rel AS ns, e.address,"
            " e.bytes, e.what FROM heap_event e"
            " JOIN heap_event_epoch x ON x.block = e.rowid >> 10 ORDER BY ns DESC;"
            "DELETE FROM heap_event; DELETE FROM heap_event_epoch;"
            "INSERT INTO heap_event (process_id, ns_rel, address, bytes, what)"
            " SELECT process_id, ns, address, bytes, what FROM ev;"
            "INSERT INTO heap_event_epoch SELECT DISTINCT rowid >> 10, 0 FROM heap_event;")
        con.commit()
        con.close()
        for at in ("worst", "exit"):
            check(f"freed-all: {n} heap events written in reverse time order, same report --at {at}",
                  report(db, "--at", at), report(shuffled, "--at", at))
    print(f"{checks} checks, {failures} failed")
    return 1 if failures else 0


sys.exit(main())
