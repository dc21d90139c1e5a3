#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turn schema/heapprof.sql into a C string (hp_schema_sql) for the analyzer."""
import sys

src, dst = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
with open(dst, "w", encoding="utf-8") as out:
    out.write("/* generated from heapprof.sql by embed.py: do not edit */\n")
    out.write("const char hp_schema_sql[] =\n")
    for line in text.splitlines(keepends=True):
        esc = line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        out.write(f'\t"{esc}"\n')
    out.write("\t;\n")
