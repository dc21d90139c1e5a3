#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""reality.py HEAPPROF PROGS REPORTER - heapprof advise against glibc itself.

Each program runs under `heapprof run`; `heapprof advise --format json`
replays its recording. Then the program runs natively on glibc's malloc
(heapprof not loaded) with the recorded settings and with the setting advise
recommends, and REPORTER (mallinfo-exit.so, preloaded: it only reads
mallinfo2() in its destructor, the last to run) says what glibc's heap is at
the end. The prediction must equal it:
    extent_bytes = arena
    untrimmable_bytes = fordblks - keepcost - fsmblks
exactly for the pattern programs (one thread, deterministic). For python3
(PYTHONMALLOC=malloc) the environment heapprof run adds (LD_PRELOAD, its
HEAPPROF_* variables) changes what CPython allocates at start-up (it copies
the environment), so the native run is not the recorded one: there the
extent must be equal and untrimmable bytes within 1%.
Also: the self-check passes (advise exits 0) for the pattern programs, the
JSON has the fields the README names, and bad input gets exit status 2.
"""
import json
import os
import subprocess
import sys
import tempfile

HEAPPROF, PROGS, REPORTER = sys.argv[1], sys.argv[2], sys.argv[3]
failures = 0
checks = 0
VERBOSE = os.environ.get("VERBOSE", "") not in ("", "0")


def check(desc, ok, detail=""):
    global failures, checks
    checks += 1
    if not ok:
        failures += 1
        print(f"FAIL - {desc} {detail}")
    elif VERBOSE:
        print(f"ok - {desc}")


def native(argv, setting, env_extra, out):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES" or k.startswith("HEAPPROF_"):
            del env[k]
    env.update(env_extra)
    if setting:
        k, v = setting.split("=", 1)
        env[k] = v
    env["LD_PRELOAD"] = REPORTER
    env["HP_MALLINFO_OUT"] = out
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    with open(out) as f:
        words = f.read().split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}


def advise(db):
    p = subprocess.run([HEAPPROF, "advise", db, "--format", "json"], capture_output=True,
                       text=True)
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None, p.stderr


def one(name, argv, env_extra, exact, tmp):
    db = os.path.join(tmp, name + ".db")
    env = dict(os.environ)
    env.update(env_extra)
    r = subprocess.run([HEAPPROF, "run", "-o", db, "--"] + argv, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        check(f"{name}: heapprof run", False, r.stderr)
        return
    rc, doc, err = advise(db)
    procs = [p for p in doc["processes"] if p["requests"] > 0] if doc else []
    if not procs:
        check(f"{name}: advise replayed the process", False, err)
        return
    p = procs[-1]
    if exact:
        check(f"{name}: the self-check passes (every chunk where recorded)",
              rc == 0 and p["self_check"]["passed"], err)
    for key in ("candidates", "recommended"):
        check(f"{name}: JSON has {key}", key in p)
    for c in p["candidates"]:
        keys = ("setting", "policy", "extent_bytes", "untrimmable_bytes", "retained_bytes",
                "worst_untrimmable_bytes")
        check(f"{name}: candidate has {keys}", "failed" in c or all(k in c for k in keys),
              str(c))
    if exact:
        check(f"{name}: a setting is recommended (the 40 KiB blocks' holes)",
              bool(p["recommended"]))
    want = {"": None}
    if p["recommended"]:
        want[p["recommended"]] = None
    for c in p["candidates"]:
        if c["policy"] == "glibc" and c["setting"] in want and "failed" not in c:
            want[c["setting"]] = c
    for setting, c in want.items():
        label = setting or "recorded settings"
        if c is None:
            check(f"{name}: {label}: a glibc candidate", False)
            continue
        mi = native(argv, setting, env_extra, os.path.join(tmp, name + ".mi"))
        untrim = mi["fordblks"] - mi["keepcost"] - mi["fsmblks"]
        check(f"{name}: {label}: predicted extent = glibc's arena",
              c["extent_bytes"] == mi["arena"],
              f"predicted {c['extent_bytes']}, glibc {mi['arena']}")
        if exact:
            ok = c["untrimmable_bytes"] == untrim
        else:
            ok = abs(c["untrimmable_bytes"] - untrim) <= max(untrim, 1) / 100
        check(f"{name}: {label}: predicted untrimmable = glibc's "
              f"(fordblks - keepcost - fsmblks){'' if exact else ', within 1%'}", ok,
              f"predicted {c['untrimmable_bytes']}, glibc {untrim}")
        print(f"{name}: {label}: extent predicted {c['extent_bytes']} glibc {mi['arena']}; "
              f"untrimmable predicted {c['untrimmable_bytes']} glibc {untrim}")


def bad_input(tmp):
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
        one("pin-demo", [os.path.join(PROGS, "pin-demo")], {}, True, tmp)
        for mode in ("live-pin", "cached-pin", "stdio-pin", "stashed-pin", "wrapped"):
            one(mode, [pattern, mode], {}, True, tmp)
        script = os.path.join(tmp, "frag.py")
        with open(script, "w") as f:
            f.write("blocks = [bytes(40000) for i in range(1000)]\n"
                    "keep = [str(i) * 3 for i in range(100)]\n"
                    "del blocks\n")
        if os.path.exists("/usr/bin/python3"):
            one("python3", ["/usr/bin/python3", "-S", script],
                {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0"}, False, tmp)
        bad_input(tmp)
    print(f"{checks} checks, {failures} failed")
    sys.exit(1 if failures else 0)


main()
