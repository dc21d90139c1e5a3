#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""diff.py HEAPPROF PROGS - heapprof diff and heapprof check --baseline/--junit
on a regression and its fix (tests/progs/regress.c, built as regress and,
with -DFIXED, regress-fixed; each runs here under the name `regress`, from
a directory of its own, as two builds of one program are).

The regressed program's config string pins its dropped table (~39 MiB
untrimmable to its end) and its 10 sessions of 1000 bytes leak; the fix
makes the string first and closes the sessions. So from the regression to
the fix: untrimmable bytes at the end go to 0, leaked bytes fall by exactly
10000, load_table's untrimmable bytes and remember_config's pinned bytes
fall by what the regression's own report says they were, open_session's
leaked bytes by 10000; and every delta diff prints is the difference of the
two recordings' own reports, at the end, the worst instant and the peak.
Both kinds of recording (full and --snapshots) give the same changes.

check --baseline fails on the regression against the fix (naming the top
pin) and passes on the fix against the regression; --max-increase is
checked on both sides of its limit, as bytes and as a percent; the JUnit
file is checked against the structure CI systems read
(testsuites/testsuite/testcase/failure|skipped), with python's XML parser.
Bad input: one line on stderr, exit status 2.
"""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HEAPPROF, PROGS = sys.argv[1], sys.argv[2]
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "progs", "regress.c")
FIGS = ["extent", "resident", "live", "cached", "fastbin", "allocator", "top_free", "untrimmable",
        "untrimmable_resident", "trim_reclaimable", "trim_top", "mmap", "retained", "pymalloc",
        "program_mmap"]
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


def line_of(tag):
    with open(SRC) as f:
        for n, text in enumerate(f, 1):
            if tag in text:
                return n
    raise SystemExit(f"no {tag} in {SRC}")


def run(*args):
    return subprocess.run([HEAPPROF, *args], capture_output=True, text=True)


def record(tmp, exe, name, snapshots=False):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    prog = os.path.join(d, "regress")
    if not os.path.exists(prog):
        shutil.copy(os.path.join(PROGS, exe), prog)
    db = os.path.join(tmp, name + (".snap" if snapshots else "") + ".db")
    p = run("run", "-o", db, *(["--snapshots"] if snapshots else []), prog)
    if p.returncode != 0:
        print(p.stderr)
        raise SystemExit(f"recording {name} failed")
    return db


def report(db, at):
    p = run("report", db, "--format", "json", "--at", at, "--top", "100000")
    if p.returncode != 0:
        print(p.stderr)
        raise SystemExit(1)
    return json.loads(p.stdout)["processes"][0]


def diff(base, new, *args):
    p = run("diff", base, new, "--format", "json", *args)
    if p.returncode != 0:
        print(p.stderr)
        raise SystemExit(f"diff {base} {new} failed")
    return json.loads(p.stdout)["processes"]


def site(sites, name):
    got = [s for s in sites if s.get("function") == name or (s.get("stack") or [None])[0] == name]
    return got[0] if got else None


def bad(desc, *args, stdout=""):
    """bad input: exit 2, one line on stderr, nothing on stdout (or what
    was printed before the problem showed)"""
    p = run(*args)
    check(f"{desc}: exit status 2", 2, p.returncode)
    lines = p.stderr.splitlines()
    check(f"{desc}: one line on stderr ({p.stderr.strip()})", 1, len(lines))
    check(f"{desc}: it starts 'heapprof: '", True, bool(lines) and lines[0].startswith("heapprof: "))
    check(f"{desc}: nothing on stdout", stdout, p.stdout if stdout is not None else None)
    return lines[0] if lines else ""


def diffs_are_reports(tag, procs, base, new):
    """every delta is the difference of the two recordings' reports"""
    check(f"{tag}: one process, matched as regress", [("regress", [])],
          [(p["program"], p["args"]) for p in procs])
    d = procs[0]
    for at in ("exit", "worst", "peak"):
        rb, rn = report(base, at), report(new, at)
        for f in FIGS:
            b, n = rb[f + "_bytes"], rn[f + "_bytes"]
            check(f"{tag}: at {at}: {f} base, new, delta",
                  (b, n, n - b), (d[at][f + "_base_bytes"], d[at][f + "_new_bytes"],
                                  d[at][f + "_delta_bytes"]))
    rb, rn = report(base, "exit"), report(new, "exit")
    for f, key in (("peak_live", "peak_live_bytes"), ("peak_extent", "peak_extent_bytes"),
                   ("worst_untrimmable", "worst_untrimmable_bytes"), ("leaked", "leaked_bytes")):
        check(f"{tag}: over the run: {f} delta", rn[key] - rb[key], d[f + "_delta_bytes"])
    for f in FIGS:
        check(f"{tag}: {f}_delta_bytes at the top is the exit's", d["exit"][f + "_delta_bytes"],
              d[f + "_delta_bytes"])
    return d, rb, rn


def junit_valid(path):
    """The structure of the JUnit schema CI systems read (Jenkins'
    junit-10.xsd): testsuites > testsuite > testcase > failure|skipped|...,
    the required attributes, and counts that agree with the elements."""
    root = ET.parse(path).getroot()
    problems = []
    if root.tag != "testsuites":
        problems.append(f"root is {root.tag}")
    total = fails = skips = 0
    for suite in root:
        if suite.tag != "testsuite":
            problems.append(f"{suite.tag} under testsuites")
            continue
        for a in ("name", "tests", "failures", "errors", "time", "timestamp", "hostname"):
            if a not in suite.attrib:
                problems.append(f"testsuite without {a}")
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp", "")):
            problems.append("timestamp is not an xs:dateTime without zone")
        n = f = s = 0
        for case in suite:
            if case.tag in ("properties", "system-out", "system-err"):
                continue
            if case.tag != "testcase":
                problems.append(f"{case.tag} under testsuite")
                continue
            n += 1
            for a in ("name", "classname", "time"):
                if a not in case.attrib:
                    problems.append(f"testcase without {a}")
            for x in case:
                if x.tag not in ("failure", "error", "skipped", "system-out", "system-err"):
                    problems.append(f"{x.tag} under testcase")
                if x.tag == "failure":
                    f += 1
                    if "message" not in x.attrib or "type" not in x.attrib:
                        problems.append("failure without message or type")
                if x.tag == "skipped":
                    s += 1
        if (int(suite.get("tests", -1)), int(suite.get("failures", -1)),
                int(suite.get("skipped", 0))) != (n, f, s):
            problems.append(f"testsuite counts {suite.attrib} for {n} cases, {f} failures")
        total, fails, skips = total + n, fails + f, skips + s
    if (int(root.get("tests", -1)), int(root.get("failures", -1))) != (total, fails):
        problems.append("testsuites counts")
    return problems, root


def main():
    config_line = line_of("CONFIG_SITE")
    with tempfile.TemporaryDirectory() as tmp:
        base = record(tmp, "regress", "base")
        new = record(tmp, "regress-fixed", "new")

        # ---- diff: the fix against the regression ----
        procs = diff(base, new)
        d, rb, rn = diffs_are_reports("diff", procs, base, new)
        check("untrimmable at the end: all of it gone", (True, 0),
              (rb["untrimmable_bytes"] > 1000 * 40 * 1024 - 64 * 1024,
               d["untrimmable_new_bytes"]))
        check("untrimmable delta: minus the regression's", -rb["untrimmable_bytes"],
              d["untrimmable_delta_bytes"])
        check("leaked: 10 sessions of 1000 bytes fewer", -10000, d["leaked_delta_bytes"])
        check("leaked chunks: 11 -> 1 (the config string stays)", (11, 1),
              (d["leaked_base_chunks"], d["leaked_new_chunks"]))
        table_bytes = sum(s["bytes"] for h in rb["holes"] for s in h["former_sites"]
                          if s["function"] == "load_table")
        pin_weight = sum(p["weight_bytes"] for p in rb["pins"]
                         if p["stack"] and p["stack"][0]["function"] == "remember_config")
        for kind in ("sites_by_function", "sites_by_stack"):
            lt, rc, os_ = (site(d[kind], n) for n in ("load_table", "remember_config",
                                                      "open_session"))
            check(f"{kind}: load_table, remember_config, open_session changed", (True, True, True),
                  (lt is not None, rc is not None, os_ is not None))
            if not (lt and rc and os_):
                continue
            check(f"{kind}: load_table's untrimmable bytes fall by the holes it left",
                  (-table_bytes, 0), (lt["untrimmable_delta_bytes"], lt["untrimmable_new_bytes"]))
            check(f"{kind}: load_table's holes are most of the heap", True,
                  table_bytes > 1000 * 40 * 1024 - 64 * 1024)
            check(f"{kind}: remember_config's pinned bytes fall by its pin's weight",
                  (-pin_weight, 0), (rc["pinned_delta_bytes"], rc["pinned_new_bytes"]))
            check(f"{kind}: open_session's leaks fall by 10000", (-10000, 0),
                  (os_["leaked_delta_bytes"], os_["leaked_new_bytes"]))
            check(f"{kind}: remember_config still leaks its 100 bytes", (100, 100, 0),
                  (rc["leaked_base_bytes"], rc["leaked_new_bytes"], rc["leaked_delta_bytes"]))
            check(f"{kind}: retained = untrimmable + cached (open_session's freed sessions)",
                  rn["cached_bytes"], os_["retained_new_bytes"])
        st = site(d["sites_by_stack"], "load_table")
        check("by stack: the stack's function names", ["load_table", "main"],
              st["stack"][:2] if st else None)
        check("the largest change first", True,
              max(abs(d["sites_by_function"][0][m + "_delta_bytes"])
                  for m in ("untrimmable", "retained", "pinned", "leaked")) >= table_bytes)

        # the other way round: every sign flips
        back = diff(new, base)[0]
        check("diff NEW BASE: the opposite change", -d["untrimmable_delta_bytes"],
              back["untrimmable_delta_bytes"])
        check("diff NEW BASE: the leaks come back", 10000, back["leaked_delta_bytes"])
        check("diff NEW BASE: load_table's holes come back", table_bytes,
              site(back["sites_by_function"], "load_table")["untrimmable_delta_bytes"])

        # --at worst: the sites at the worst instants
        w = diff(base, new, "--at", "worst")[0]
        wb, wn = report(base, "worst"), report(new, "worst")
        check("--at worst: figures at worst at the top", wn["untrimmable_bytes"]
              - wb["untrimmable_bytes"], w["untrimmable_delta_bytes"])

        # text
        p = run("diff", base, new)
        check("text: exit status 0", 0, p.returncode)
        rows = [ln.split() for ln in p.stdout.splitlines() if ln.strip().startswith("untrimmable")]
        check("text: untrimmable at exit from 39.1 MiB to 0 B, -39.1 MiB",
              ["untrimmable", "39.1", "MiB", "0", "B", "-39.1", "MiB"], rows[0] if rows else None)
        check("text: sites by function and by stack", True,
              "sites by function" in p.stdout and "sites by stack" in p.stdout and
              re.search(r"-39\.1 MiB +0 +0 +load_table \(regress\.c:\d+\)", p.stdout) is not None)

        # snapshot recordings: the same changes, and across kinds
        sbase = record(tmp, "regress", "base", snapshots=True)
        snew = record(tmp, "regress-fixed", "new", snapshots=True)
        s = diff(sbase, snew)[0]
        for f in ("untrimmable", "live", "extent", "leaked", "retained"):
            check(f"snapshots: {f} delta as from full recordings", d[f + "_delta_bytes"],
                  s[f + "_delta_bytes"])
        for n, m in (("load_table", "untrimmable"), ("remember_config", "pinned"),
                     ("open_session", "leaked")):
            check(f"snapshots: {n}'s {m} delta as from full recordings",
                  site(d["sites_by_function"], n)[m + "_delta_bytes"],
                  (site(s["sites_by_function"], n) or {}).get(m + "_delta_bytes"))
        mixed = diff(base, snew)[0]
        check("a full BASE against a snapshot NEW", d["untrimmable_delta_bytes"],
              mixed["untrimmable_delta_bytes"])

        # matching: another program does not match, --pid pairs it
        other = os.path.join(tmp, "other.db")
        p = run("run", "-o", other, os.path.join(PROGS, "pin-demo"))
        check("pin-demo recorded", 0, p.returncode)
        msg = bad("diff of two programs", "diff", base, other)
        check("no match: says so and names --pid", True, "no process matches" in msg and "--pid" in msg)
        pid_b = procs[0]["base_pid"]
        pid_o = report(other, "exit")["pid"]
        q = run("diff", base, other, "--format", "json", "--pid", f"{pid_b}:{pid_o}")
        check("--pid BASE:NEW pairs them", (0, "pin-demo"),
              (q.returncode, json.loads(q.stdout)["processes"][0]["program"] if q.stdout else None))

        # the settings each ran with, when they differ (advise's setting
        # tried: MALLOC_PERTURB_, which meson sets, shapes nothing and is
        # left out)
        tried = os.path.join(tmp, "tried.db")
        p = subprocess.run([HEAPPROF, "run", "-o", tried, os.path.join(PROGS, "pin-demo")],
                           env=dict(os.environ, MALLOC_MMAP_THRESHOLD_="32768"),
                           capture_output=True, text=True)
        check("pin-demo recorded with MALLOC_MMAP_THRESHOLD_=32768", 0, p.returncode)
        t = run("diff", other, tried).stdout
        check("diff says the settings changed", 1, t.count(
            "allocator settings: glibc's defaults -> MALLOC_MMAP_THRESHOLD_=32768\n"))
        j = diff(other, tried)[0]
        check("diff's JSON has both sides' settings", ("", "MALLOC_MMAP_THRESHOLD_=32768"),
              (j.get("settings_base"), j.get("settings_new")))
        check("no settings line when they are the same", 0,
              run("diff", other, other).stdout.count("allocator settings"))

        # ---- check --baseline ----
        p = run("check", new, "--baseline", base, "--max-increase", "1%")
        check("the fix against the regression: passes", 0, p.returncode)
        check("the fix: four PASS lines", ["PASS"] * 4, [ln.split()[0] for ln in p.stdout.splitlines()])
        junit = os.path.join(tmp, "j.xml")
        p = run("check", base, "--baseline", new, "--max-increase", "1%", "--junit", junit)
        check("the regression against the fix: fails", 1, p.returncode)
        lines = p.stdout.splitlines()
        verdict = {ln.split()[1]: ln.split()[0] for ln in lines}
        check("untrimmable, retained, leaked fail; peak passes",
              {"untrimmable": "FAIL", "retained": "FAIL", "leaked": "FAIL", "peak": "PASS"}, verdict)
        check("a failure names the top pin", True,
              all(f"top pin: remember_config (regress.c:{config_line})" in ln
                  for ln in lines if ln.startswith("FAIL")))
        problems, root = junit_valid(junit)
        check("JUnit: the usual structure", [], problems)
        cases = root.findall("./testsuite/testcase")
        check("JUnit: one testcase per figure", 4, len(cases))
        fails = root.findall("./testsuite/testcase/failure")
        check("JUnit: three failures", 3, len(fails))
        check("JUnit: each failure names the top pin and its stack", True,
              bool(fails) and all(f"remember_config (regress.c:{config_line})" in f.get("message")
                                  and f"remember_config (regress.c:{config_line})" in f.text
                                  and "main (regress.c:" in f.text for f in fails))
        check("JUnit: testcases named by figure and pid", True,
              all(re.fullmatch(r"(untrimmable|retained|leaked|peak) vs baseline \(pid \d+\)",
                               c.get("name")) and c.get("classname") == "heapprof.regress"
                  for c in cases))

        # the same as JSON, with --opt=value
        p = run("check", base, "--baseline=" + new, "--max-increase=1%", "--format=json")
        got = json.loads(p.stdout) if p.stdout else {}
        checks_ = [c for c in got.get("checks", []) if c.get("baseline")]
        check("check --format json: exit 1, pass false", (1, False), (p.returncode, got.get("pass")))
        check("check --format json: a baseline object per figure",
              {"untrimmable": False, "retained": False, "leaked": False, "peak": True},
              {c["limit"]: c["pass"] for c in checks_})
        u = [c for c in checks_ if c["limit"] == "untrimmable"]
        check("check --format json: untrimmable now and in the baseline, its top pin",
              (rb["untrimmable_bytes"], rn["untrimmable_bytes"], "remember_config"),
              (u[0]["bytes"], u[0]["baseline_bytes"], u[0]["top_pin"]["site"].split(" ")[0])
              if u else None)
        # at the peak: the same instant of the baseline
        p = run("check", base, "--baseline", new, "--at", "peak", "--max-increase", "untrimmable=0")
        pb, pn = report(base, "peak"), report(new, "peak")
        check("--at peak: the peaks' untrimmable bytes compared",
              f"(baseline {pn['untrimmable_bytes']} bytes, now {pb['untrimmable_bytes']},",
              re.search(r"\(baseline \d+ bytes, now \d+,", p.stdout).group(0)
              if re.search(r"\(baseline \d+ bytes, now \d+,", p.stdout) else p.stdout)

        # --max-increase on both sides of its limit
        grew = rb["untrimmable_bytes"] - rn["untrimmable_bytes"]
        for inc, want in ((str(grew), 0), (str(grew - 1), 1)):
            p = run("check", base, "--baseline", new, "--max-increase", "untrimmable=" + inc)
            check(f"untrimmable may grow {inc} bytes (it grew {grew})", want, p.returncode)
        # leaked: 100 -> 10100 bytes, +10000%
        for inc, want in (("10000%", 0), ("9999.9%", 1)):
            p = run("check", base, "--baseline", new, "--max-increase", "leaked=" + inc)
            check(f"leaked may grow {inc} (it grew 10000%)", want, p.returncode)
        p = run("check", base, "--baseline", new, "--max-increase", "50M")
        check("everything may grow 50 MiB: passes", 0, p.returncode)
        p = run("check", base, "--baseline", new, "--max-increase", "50M",
                "--max-untrimmable", "1M", "--junit", junit)
        check("a fixed limit fails on top of a baseline that holds", 1, p.returncode)
        problems, root = junit_valid(junit)
        check("JUnit of both: valid, five testcases, one failure", ([], 5, 1),
              (problems, len(root.findall("./testsuite/testcase")),
               len(root.findall("./testsuite/testcase/failure"))))
        p = run("check", base, "--max-leaked", "1M", "--max-untrimmable", "1M", "--junit", junit)
        problems, root = junit_valid(junit)
        check("JUnit of fixed limits alone", (1, [], 2, 1),
              (p.returncode, problems, len(root.findall("./testsuite/testcase")),
               len(root.findall("./testsuite/testcase/failure"))))

        # ---- bad input ----
        text = os.path.join(tmp, "notes.txt")
        with open(text, "w") as f:
            f.write("not a database\n" * 10)
        foreign = os.path.join(tmp, "foreign.db")
        c = sqlite3.connect(foreign)
        c.execute("CREATE TABLE t (x)")
        c.commit()
        c.close()
        newer = os.path.join(tmp, "newer.db")
        shutil.copy(base, newer)
        c = sqlite3.connect(newer)
        c.execute("PRAGMA user_version = 99")
        c.commit()
        c.close()
        msg = bad("diff: a foreign file", "diff", base, text)
        check("a foreign file: named", True, "notes.txt" in msg and "not a SQLite database" in msg)
        bad("diff: a SQLite database not heapprof's", "diff", foreign, new)
        msg = bad("diff: databases of two schema versions", "diff", base, newer)
        check("schema versions: says which", True, "schema version 99" in msg)
        bad("diff: a missing file", "diff", base, os.path.join(tmp, "missing.db"))
        bad("diff: one database", "diff", base)
        bad("diff: three databases", "diff", base, new, new)
        bad("diff: a bad --pid", "diff", base, new, "--pid", "12")
        bad("diff: --pid of no process", "diff", base, new, "--pid", "1:2")
        bad("diff: a bad --at", "diff", base, new, "--at", "sometime")
        bad("diff: a bad --format", "diff", base, new, "--format", "html")
        bad("diff: an unknown option", "diff", base, new, "--frobnicate", "1")
        msg = bad("check: a baseline of another program", "check", base, "--baseline", other,
                  "--max-increase", "1%")
        check("check: no match named", True, "no process matches" in msg)
        bad("check: a foreign baseline", "check", base, "--baseline", text, "--max-increase", "1M")
        bad("check: a newer baseline", "check", base, "--baseline", newer, "--max-increase", "1M")
        bad("check: --baseline without --max-increase", "check", base, "--baseline", new)
        bad("check: --max-increase without --baseline", "check", base, "--max-increase", "1M")
        for v in ("lots", "-5%", "%", "10%%", "untrimmable=", "speed=1M", "1X"):
            bad(f"check: --max-increase {v}", "check", base, "--baseline", new,
                "--max-increase", v)
        bad("check: --junit into a missing directory", "check", base, "--max-leaked", "1G",
            "--junit", os.path.join(tmp, "no", "such", "dir.xml"), stdout=None)
        adir = os.path.join(tmp, "adir")
        os.mkdir(adir)
        bad("check: --junit onto a directory", "check", base, "--max-leaked", "1G",
            "--junit", adir, stdout=None)
        check("check: no half-written file left", ["adir"],
              [n for n in os.listdir(tmp) if n.startswith("adir")])
    print(f"{checks} checks, {failures} failed")
    return 1 if failures else 0


sys.exit(main())
