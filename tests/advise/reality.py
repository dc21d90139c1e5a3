#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""reality.py HEAPPROF PROGS REPORTER WORKLOADS - heapprof advise against glibc itself.

Each program runs under `heapprof run`; `heapprof advise --format json`
replays its recording. Then the program runs natively on glibc's malloc
(heapprof not loaded) with the recorded settings and with the setting advise
recommends (when it recommends none: the first glibc candidate whose
predicted heap differs from the recorded settings'), and REPORTER
(mallinfo-exit.so, preloaded: it only reads mallinfo2() in its destructor,
the last to run) says what glibc's heap is at the end. The prediction must
equal it:
    extent_bytes = arena
    untrimmable_bytes = fordblks - keepcost - fsmblks - the thread arenas' tops
(keepcost is the main arena's top alone; the others come from the
malloc_info() XML the reporter writes too), exactly for the one-thread
programs: the pattern programs, realloc-slack (a chunk larger than its
request, resized in place; a realloc grown over a fastbin chunk),
mallopt-mix (settings from its environment and four mallopt calls: the
replay has them from table malloc_setting; a GLIBC_TUNABLES candidate keeps
the recorded tunables it does not name) and the
sqlite3 shell on WORKLOADS/sqlite.sql. Within 1% for a program with threads (pattern
arena-pin, fastbins-mt: which arena a thread gets is the kernel's
scheduling; so MALLOC_ARENA_MAX is not the setting compared: threads that
share an arena interleave their requests as the scheduler runs them, not as
recorded) and for python3 (PYTHONMALLOC=malloc): what CPython asks for
depends a little on where its chunks are (its type-attribute cache keeps a
name alive until another name lands in its slot, the slot chosen by the
name's address), so under another setting it asks a little differently.
Measured natively with the same environment and MALLOC_MMAP_THRESHOLD_=32768
or a variable of the same length: the same 2042332 requests, frees in
another order. So CPython runs with exactly the environment it was recorded
with (the setting comes to REPORTER on a descriptor, see native), from a
directory of its own, without address randomization (see fixed_addresses:
its heap depends on where brk starts), and ends with os._exit: what is left
after its finalization is a few such survivors, and which is highest
decided the extent (12.1 MB predicted, 22.7 MB in glibc, once in CI).
The self-check passes (every chunk where the recording had it; advise
exits 0) for every one-thread program, python3 and sqlite3 included; the
JSON has the fields the README names; bad input gets exit status 2.
"""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import ctypes
import xml.etree.ElementTree as ET

HEAPPROF, PROGS, REPORTER, WORKLOADS = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
failures = 0
checks = 0
VERBOSE = os.environ.get("VERBOSE", "") not in ("", "0")


# mallopt-mix's recorded tunables
MIX_TUNABLES = "glibc.malloc.tcache_count=2:glibc.malloc.mxfast=64"
# the settings REPORTER can make with mallopt() (see native)
MALLOPT_SETTINGS = ("MALLOC_MMAP_THRESHOLD_=", "MALLOC_TRIM_THRESHOLD_=", "MALLOC_TOP_PAD_=",
                    "MALLOC_ARENA_MAX=")


def fixed_addresses():
    """In the child before exec: no address randomization (personality
    ADDR_NO_RANDOMIZE, as setarch -R; kept across exec and by heapprof
    run's fork). CPython's heap depends on where brk starts: object ids
    hash sets and dicts, and the order they are walked in decides what
    is freed first. Measured natively, frag.py's arena was 49692672 bytes
    in 5 runs of 12 and 52252672 in the rest; with brk not randomized,
    52252672 in 16 of 16. The recorded and the native runs must start brk
    at the same place."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.personality(0x0040000) == -1:
        raise OSError(ctypes.get_errno(), "personality(ADDR_NO_RANDOMIZE)")


class Descriptor9:
    """Descriptor 9 of this process reads `data` (a pipe) until restore(),
    which puts back what 9 was."""

    def __init__(self, data):
        try:
            self.saved = os.dup(9)
            self.inheritable = os.get_inheritable(9)
        except OSError:
            self.saved = None
        rfd, wfd = os.pipe()
        os.write(wfd, data)
        os.close(wfd)
        os.dup2(rfd, 9)
        os.close(rfd)

    def restore(self):
        if self.saved is None:
            os.close(9)
        else:
            os.dup2(self.saved, 9, inheritable=self.inheritable)
            os.close(self.saved)


def check(desc, ok, detail=""):
    global failures, checks
    checks += 1
    if not ok:
        failures += 1
        print(f"FAIL - {desc} {detail}")
    elif VERBOSE:
        print(f"ok - {desc}")


def native(argv, setting, env_extra, out, recorded_env=None):
    """glibc's figures at the end of argv run natively. recorded_env: the
    environment the recorded run had (its LD_PRELOAD gives way to REPORTER,
    padded to the same length, and the figures come on standard error), for
    a program whose heap depends on its environment's size: then the
    setting is not a variable more but comes to REPORTER on descriptor 9,
    which makes it with mallopt() (so it is one of MALLOPT_SETTINGS)."""
    if recorded_env is not None:
        env = {}
        for k, v in recorded_env:
            if k == "LD_PRELOAD":
                pad = len(v) - len(REPORTER)
                d, b = os.path.split(REPORTER)
                v = d + "/" * (pad + 1) + b if pad >= 0 else REPORTER
            env[k] = v
    else:
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES" or k.startswith("HEAPPROF_"):
                del env[k]
        env.update(env_extra)
        env["LD_PRELOAD"] = REPORTER
        env["HP_MALLINFO_OUT"] = out
    fd9 = None
    if setting and recorded_env is not None:
        # not one variable more than recorded: REPORTER makes the setting
        # with mallopt() before the program starts, read from descriptor 9
        # (ours for the run; the only descriptor past 2 the program gets)
        fd9 = Descriptor9(setting.encode())
    elif setting:
        k, v = setting.split("=", 1)
        env[k] = v
    try:
        p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, check=False, preexec_fn=fixed_addresses,
                           pass_fds=(9,) if fd9 else ())
    finally:
        if fd9:
            fd9.restore()
    check(f"{argv[0]} ran natively ({setting or 'recorded settings'})", p.returncode == 0,
          f"status {p.returncode}: {p.stderr[-300:]!r}")
    if recorded_env is not None:
        words = p.stderr.split()
    else:
        with open(out) as f:
            words = f.read().split()
    mi = {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}
    mi["thread_tops"] = thread_tops(out + ".xml") if recorded_env is None else 0
    return mi


def thread_tops(path):
    """The free bytes of the thread arenas' top chunks, from malloc_info()'s
    XML: mallinfo2's keepcost is the main arena's top alone. A heap's "rest"
    is its top plus its bins' chunks, "fast" its fastbins', and its <size>
    and <unsorted> lines total both kinds of chunks."""
    tops = 0
    for heap in ET.parse(path).getroot().findall("heap"):
        if heap.get("nr") == "0":
            continue
        totals = {t.get("type"): int(t.get("size")) for t in heap.findall("total")}
        listed = sum(int(e.get("total")) for e in heap.find("sizes"))
        tops += totals["fast"] + totals["rest"] - listed
    return tops


def advise(db, policies):
    p = subprocess.run([HEAPPROF, "advise", db, "--format", "json"] +
                       ([] if policies else ["--no-policies"]), capture_output=True, text=True)
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None, p.stderr


def changes_heap(c, ref):
    return (c["extent_bytes"], c["untrimmable_bytes"]) != (ref["extent_bytes"],
                                                           ref["untrimmable_bytes"])


def one(name, argv, env_extra, tmp, exact=True, selfcheck=True, recommends=False,
        policies=True, other_setting=True, env_dump=None, threads=False, also=()):
    """exact: the figures equal glibc's (else within 1%); selfcheck: advise's
    must pass; recommends: a setting must be recommended; other_setting:
    compare a second setting too (the recommended one, else the first that
    changes the heap); env_dump: where the program writes the environment
    it had (NAME=value, NUL-separated) for the native runs; threads: the
    program has threads; also: settings to compare as well (each must be a
    candidate's). Returns advise's JSON of the process."""
    db = os.path.join(tmp, name + ".db")
    env = dict(os.environ)
    env.update(env_extra)
    r = subprocess.run([HEAPPROF, "run", "-o", db, "--"] + argv, env=env,
                       preexec_fn=fixed_addresses,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        check(f"{name}: heapprof run", False, r.stderr)
        return
    rc, doc, err = advise(db, policies)
    procs = [p for p in doc["processes"] if p["requests"] > 0] if doc else []
    if not procs:
        check(f"{name}: advise replayed the process", False, err)
        return
    p = procs[-1]
    if selfcheck:
        check(f"{name}: the self-check passes (every chunk where recorded)",
              rc == 0 and p["self_check"]["passed"], err + str(p["self_check"]))
    for key in ("candidates", "recommended"):
        check(f"{name}: JSON has {key}", key in p)
    for c in p["candidates"]:
        keys = ("setting", "policy", "extent_bytes", "untrimmable_bytes", "retained_bytes",
                "worst_untrimmable_bytes")
        check(f"{name}: candidate has {keys}", "failed" in c or all(k in c for k in keys),
              str(c))
    if recommends:
        check(f"{name}: a setting is recommended (the 40 KiB blocks' holes)",
              bool(p["recommended"]))
    glibc = [c for c in p["candidates"] if c["policy"] == "glibc" and "failed" not in c]
    ref = next((c for c in glibc if c["setting"] == ""), None)
    if ref is None:
        check(f"{name}: recorded settings: a glibc candidate", False)
        return
    # with threads, not MALLOC_ARENA_MAX: threads sharing an arena interleave
    # their requests as the scheduler runs them, not as they were recorded
    usable = [c for c in glibc if c["setting"] and not
              (threads and c["setting"].startswith("MALLOC_ARENA_MAX=")) and not
              (env_dump and not c["setting"].startswith(MALLOPT_SETTINGS))]
    other = next((c for c in usable if c["setting"] == p["recommended"]), None) or \
        next((c for c in usable if changes_heap(c, ref)), None)
    if not other_setting:
        other = None
    else:
        check(f"{name}: a setting to compare (recommended, or one that changes the heap)",
              other is not None)
    recorded_env = None
    if env_dump:
        with open(env_dump, "rb") as f:
            recorded_env = [kv.decode().split("=", 1) for kv in f.read().split(b"\0") if kv]
    extra = []
    for setting in also:
        c = next((c for c in glibc if c["setting"] == setting), None)
        check(f"{name}: {setting} is a candidate", c is not None,
              str([c["setting"] for c in glibc]))
        if c is not None and c is not other:
            extra.append(c)
    for c in [ref] + ([other] if other else []) + extra:
        label = c["setting"] or "recorded settings"
        mi = native(argv, c["setting"], env_extra, os.path.join(tmp, name + ".mi"), recorded_env)
        untrim = mi["fordblks"] - mi["keepcost"] - mi["fsmblks"] - mi["thread_tops"]
        if exact:
            ok_ext = c["extent_bytes"] == mi["arena"]
            ok_untrim = c["untrimmable_bytes"] == untrim
        else:
            ok_ext = abs(c["extent_bytes"] - mi["arena"]) <= max(mi["arena"], 1) / 100
            ok_untrim = abs(c["untrimmable_bytes"] - untrim) <= max(untrim, 1) / 100
        how = "" if exact else ", within 1%"
        check(f"{name}: {label}: predicted extent = glibc's arena{how}", ok_ext,
              f"predicted {c['extent_bytes']}, glibc {mi['arena']}")
        check(f"{name}: {label}: predicted untrimmable = glibc's "
              f"(fordblks - keepcost - fsmblks - thread arenas' tops){how}", ok_untrim,
              f"predicted {c['untrimmable_bytes']}, glibc {untrim}")
        print(f"{name}: {label}: extent predicted {c['extent_bytes']} glibc {mi['arena']}; "
              f"untrimmable predicted {c['untrimmable_bytes']} glibc {untrim}")
    return p


def changed_copy(good, tmp, name, sql):
    """A copy of the database `good`, tmp/name, changed by sql; and the
    number of rows sql changed."""
    path = os.path.join(tmp, name)
    shutil.copy(good, path)
    con = sqlite3.connect(path)
    n = con.execute(sql).rowcount
    con.commit()
    con.close()
    return path, n


def selfcheck_fails(db, what):
    p = subprocess.run([HEAPPROF, "advise", "--no-policies", db], capture_output=True,
                       text=True)
    check(f"{what}: the self-check fails (exit 1)",
          p.returncode == 1 and "SELF-CHECK FAILED" in p.stdout,
          f"status {p.returncode}, stdout {p.stdout[:300]!r}")


def settings_recorded(tmp, p):
    # mallopt-mix ran with two environment settings and made 4 mallopt
    # calls: the recording has them (table malloc_setting), advise says so
    # and replays them; without them its self-check must fail
    good = os.path.join(tmp, "mallopt-mix.db")
    if p is None or not os.path.exists(good):
        check("mallopt-mix's recording and advise's JSON are there", False)
        return
    con = sqlite3.connect(good)
    rows = con.execute("SELECT param, value, line FROM malloc_setting WHERE process_id = 1 "
                       "ORDER BY rowid").fetchall()
    # (meson test sets MALLOC_PERTURB_: a line too)
    lines = sorted(r[2] for r in rows if r[2] is not None and
                   not r[2].startswith("MALLOC_PERTURB_="))
    child = con.execute("SELECT line FROM malloc_setting WHERE process_id = 2 "
                        "AND line NOT LIKE 'MALLOC_PERTURB_=%' ORDER BY rowid").fetchall()
    calls = [(r[0], r[1]) for r in rows if r[2] is None]
    want = sorted(["MALLOC_TOP_PAD_=4096", "GLIBC_TUNABLES=" + MIX_TUNABLES])
    con.close()
    check("mallopt-mix: malloc_setting has the environment lines", lines == want, str(rows))
    check("mallopt-mix: its forked child has them too, though the program wrote over its "
          "environment first", sorted(r[0] for r in child) == want, str(child))
    # M_MXFAST 1, M_MMAP_THRESHOLD -3, M_TOP_PAD -2, M_TRIM_THRESHOLD -1
    check("mallopt-mix: malloc_setting has the mallopt calls in order",
          calls == [(1, 0), (-3, 65536), (-2, 0), (-1, 8192)], str(calls))
    check("mallopt-mix: advise's JSON names the recorded settings and calls",
          sorted(x for x in p.get("recorded_settings", [])
                 if not x.startswith("MALLOC_PERTURB_=")) == want and
          p.get("mallopt_calls") == 4,
          str(p.get("recorded_settings")) + " " + str(p.get("mallopt_calls")))
    # "Try:" says with which of them the prediction was made
    t = subprocess.run([HEAPPROF, "advise", "--no-policies", good], capture_output=True,
                       text=True).stdout
    kept = re.search(r"predicted with the recorded settings it keeps: (.*); 4 mallopt calls "
                     r"the program makes\n", t)
    check("mallopt-mix: advise names the recorded settings the one to try keeps",
          kept is not None and sorted(kept.group(1).split()) == want, t[-600:])
    # heapprof report names them too (MALLOC_PERTURB_ left out: it shapes
    # nothing)
    r = subprocess.run([HEAPPROF, "report", good, "--format", "json"], capture_output=True,
                       text=True)
    got = next((x.get("settings") for x in json.loads(r.stdout)["processes"]
                if x["process_id"] == 1), None) if r.returncode == 0 else None
    check("mallopt-mix: report's JSON has the settings",
          got is not None and sorted(x["line"] for x in got if "line" in x) == want and
          [(x["mallopt"], x["value"]) for x in got if "mallopt" in x] ==
          [("M_MXFAST", 0), ("M_MMAP_THRESHOLD", 65536), ("M_TOP_PAD", 0),
           ("M_TRIM_THRESHOLD", 8192)], f"{r.returncode} {got}")
    text = subprocess.run([HEAPPROF, "report", good], capture_output=True, text=True).stdout
    check("mallopt-mix: report's text names the settings",
          "allocator settings: " in text and "MALLOC_PERTURB_" not in text and
          re.search(r"mallopt calls: M_MXFAST=0 at [0-9.]+ s, M_MMAP_THRESHOLD=65536", text),
          text[:600])
    # a line with a terminal escape in it is printed without it
    esc, n = changed_copy(good, tmp, "mallopt-esc.db",
                          "UPDATE malloc_setting SET line = line || char(27) || '[31m' "
                          "WHERE line LIKE 'MALLOC_TOP_PAD_=%'")
    outs = [subprocess.run([HEAPPROF] + args + [esc], capture_output=True, text=True).stdout
            for args in (["advise", "--no-policies"], ["report"])]
    check("a recorded line with an escape: advise and report print it without",
          n > 0 and all("MALLOC_TOP_PAD_=4096?[31m" in o and "\x1b" not in o for o in outs),
          repr([o[:300] for o in outs]))
    blind, _ = changed_copy(good, tmp, "mallopt-blind.db", "DELETE FROM malloc_setting")
    selfcheck_fails(blind, "mallopt-mix without its recorded settings")


def main_heap_in_mmap(tmp):
    # glibc.malloc.hugetlb=2: the main heap never uses brk. The replay puts
    # it on the simulated break, so the self-check fails, loudly, and no
    # replay dies (a huge-page mapping made MAP_NORESERVE was SIGBUS when
    # touched without huge pages)
    db = os.path.join(tmp, "hugetlb.db")
    env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.hugetlb=2")
    r = subprocess.run([HEAPPROF, "run", "-o", db, "--", os.path.join(PROGS, "pattern"),
                        "live-pin"], env=env, capture_output=True, text=True)
    check("live-pin with glibc.malloc.hugetlb=2: heapprof run", r.returncode == 0, r.stderr)
    p = subprocess.run([HEAPPROF, "advise", "--no-policies", db], capture_output=True,
                       text=True)
    check("hugetlb=2: the self-check fails (exit 1) and no replay died",
          p.returncode == 1 and "SELF-CHECK FAILED" in p.stdout and "died" not in p.stdout,
          f"status {p.returncode}, stdout {p.stdout[:600]!r}")


def alignment_recorded(tmp):
    # memalign-mix asks for 32, 64 and 128 and often gets more aligned
    # addresses: its self-check passed above only because the recording
    # holds the alignment asked for; without it (the alignment taken from
    # the address) the replay must fail, or the program tests nothing
    good = os.path.join(tmp, "memalign-mix.db")
    if not os.path.exists(good):
        check("memalign-mix's recording is there", False)
        return
    con = sqlite3.connect(good)
    got = con.execute("SELECT count(*), count(alignment), min(alignment), max(alignment) "
                      "FROM chunk WHERE call = 4").fetchone()
    con.close()
    check("memalign-mix: every aligned chunk has the alignment asked for (32-128)",
          got[0] == 1800 and got[1] == 1800 and got[2] == 32 and got[3] == 128, str(got))
    blind, _ = changed_copy(good, tmp, "memalign-blind.db",
                            "UPDATE chunk_slack SET align_log2 = NULL")
    selfcheck_fails(blind, "memalign-mix without the recorded alignments")


def bad_input(tmp):
    for db, sql, what, word in (
            ("realloc-slack.db", "UPDATE heap_event_resize SET size = (SELECT e.bytes + 1 FROM heap_event e"
             " WHERE e.rowid = event_id)",
             "a resize larger than its chunk", "resize"),
            ("mallopt-mix.db", "INSERT INTO malloc_setting VALUES (1, 5, NULL, NULL, 'garbage')",
             "a malloc_setting line that is no setting", "malloc_setting")):
        good = os.path.join(tmp, db)
        if not os.path.exists(good):
            check(f"{db} is there to damage", False)
            continue
        damaged, n = changed_copy(good, tmp, "damaged.db", sql)
        p = subprocess.run([HEAPPROF, "advise", damaged], capture_output=True, text=True)
        check(f"advise with {what}: exit 2, one line naming it",
              n > 0 and p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and
              word in p.stderr, f"{n} rows, status {p.returncode}, stderr {p.stderr!r}")
    junk = os.path.join(tmp, "junk.db")
    with open(junk, "w") as f:
        f.write("not a database\n")
    for args, what in (([junk], "a file that is no database"),
                       ([os.path.join(tmp, "missing.db")], "a missing file"),
                       ([junk, "--format", "xml"], "a bad --format"),
                       ([], "no file")):
        p = subprocess.run([HEAPPROF, "advise"] + args, capture_output=True, text=True)
        lines = p.stderr.strip().splitlines()
        check(f"advise with {what}: exit 2 and one line", p.returncode == 2 and len(lines) == 1,
              f"status {p.returncode}, stderr {p.stderr!r}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        pattern = os.path.join(PROGS, "pattern")
        one("pin-demo", [os.path.join(PROGS, "pin-demo")], {}, tmp, recommends=True)
        for mode in ("live-pin", "cached-pin", "stdio-pin", "stashed-pin", "wrapped"):
            one(mode, [pattern, mode], {}, tmp, recommends=True)
        one("realloc-slack", [os.path.join(PROGS, "realloc-slack")], {}, tmp)
        one("memalign-mix", [os.path.join(PROGS, "memalign-mix")], {}, tmp)
        # settings of its own: from the environment and mallopt; the
        # tcache candidate keeps the recorded mxfast
        mix = one("mallopt-mix", [os.path.join(PROGS, "mallopt-mix")],
                  {"MALLOC_TOP_PAD_": "4096", "GLIBC_TUNABLES": MIX_TUNABLES}, tmp,
                  also=("GLIBC_TUNABLES=glibc.malloc.mxfast=64:glibc.malloc.tcache_count=0",))
        settings_recorded(tmp, mix)
        main_heap_in_mmap(tmp)
        alignment_recorded(tmp)
        # threads: the figures within 1%, the self-check only counts
        for mode in ("arena-pin", "fastbins-mt"):
            one(mode, [pattern, mode], {}, tmp, exact=False, selfcheck=False, policies=False,
                threads=True)
        # a directory of its own: the script's is the first place CPython
        # looks for a module, and it lists it (names it caches on the heap);
        # tmp's files are not the same in the recorded and the native runs
        os.mkdir(os.path.join(tmp, "py"))
        script = os.path.join(tmp, "py", "frag.py")
        env_dump = os.path.join(tmp, "python3.env")
        with open(script, "w") as f:
            f.write("import json, os, re, sys\n"
                    "blocks = [bytes(40000) for i in range(1000)]\n"
                    "keep = [str(i) * 3 for i in range(100)]\n"
                    "d = {str(i): [i] * (i % 20) for i in range(20000)}\n"
                    "s = json.dumps(d)\n"
                    "words = re.findall(r'\\d+', s)\n"
                    "del blocks, d\n"
                    "with open(sys.argv[1], 'wb') as f:\n"
                    "    f.write(b'\\0'.join(k + b'=' + v for k, v in os.environb.items()))\n"
                    "os._exit(0)\n")
        check("python3 and sqlite3 are installed (scripts/deps.sh)",
              os.path.exists("/usr/bin/python3") and shutil.which("sqlite3"))
        if os.path.exists("/usr/bin/python3"):
            one("python3", ["/usr/bin/python3", "-S", script, env_dump],
                {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0"}, tmp, exact=False,
                policies=False, env_dump=env_dump)
        sqlite = shutil.which("sqlite3")
        if sqlite:
            one("sqlite3", [sqlite, "-bail", "-batch", ":memory:",
                            ".read " + os.path.join(WORKLOADS, "sqlite.sql")], {}, tmp,
                policies=False)
        bad_input(tmp)
    print(f"{checks} checks, {failures} failed")
    sys.exit(1 if failures else 0)


main()
