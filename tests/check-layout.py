#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check-layout.py SOURCE_ROOT - the README's "Source layout" names every
file of the source tree (preload/, analyzer/, schema/, tests/, bench/,
scripts/, .ci/ and the top level), so that a newcomer finds each one there.

A file counts as named when its name appears in the layout, when it is
an X.h whose X.c does (the layout says each X.h is its X.c's contract), a
meson.build (each directory has one), or when a pattern of the layout
matches it: a name with * (rec-*.c, sym-target*, record/*.sh) or a
directory written DIR/ (golden/, workloads/, checks/).
"""
import fnmatch
import os
import re
import sys

ROOT = sys.argv[1]
DIRS = ["preload", "analyzer", "schema", "tests", "bench", "scripts", ".ci"]
TOP = ["meson.build", "meson_options.txt", ".gitignore", "README.md"]

readme = open(os.path.join(ROOT, "README.md")).read()
m = re.search(r"^## Source layout\n(.*?)^```\n(.*?)^```\n", readme, re.S | re.M)
if not m:
    print("FAIL - README.md has no source layout block")
    sys.exit(1)
layout = m.group(1) + m.group(2)
words = set(re.findall(r"[A-Za-z0-9_.*/+-]+", layout))
names = {w.strip("(),;:").rstrip(".") for w in words}
patterns = [n for n in names if "*" in n]
dirs = [n.rstrip("/") for n in names if n.endswith("/")]


def named(rel):
    base = os.path.basename(rel)
    if base in names or rel in names or base == "meson.build" or base == "README.md":
        return True
    if base.endswith(".h") and base[:-2] + ".c" in names:
        return True
    for p in patterns:
        if fnmatch.fnmatch(rel, "*" + p) if "/" in p else fnmatch.fnmatch(base, p):
            return True
    parts = rel.split("/")[:-1]
    return any(d.split("/")[-1] in parts[1:] for d in dirs if d)


files = [f for f in TOP if os.path.exists(os.path.join(ROOT, f))]
for d in DIRS:
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, d)):
        dirnames[:] = [x for x in dirnames if x != "__pycache__"]
        for f in filenames:
            files.append(os.path.relpath(os.path.join(dirpath, f), ROOT))
missing = sorted(f for f in files if not named(f))
for f in missing:
    print(f"FAIL - README.md's source layout does not name {f}")
if not missing:
    print(f"ok: the source layout names all {len(files)} files")
sys.exit(1 if missing else 0)
