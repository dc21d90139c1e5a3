#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turn a text file into a C string for the analyzer: schema/heapprof.sql
(hp_schema_sql), analyzer/report.html (hp_report_html).

Usage: embed.py SRC DST [NAME]   (NAME: hp_schema_sql if not given)"""
import os
import sys

src, dst = sys.argv[1], sys.argv[2]
name = sys.argv[3] if len(sys.argv) > 3 else "hp_schema_sql"
text = open(src, encoding="utf-8").read()
with open(dst, "w", encoding="utf-8") as out:
    out.write(f"/* generated from {os.path.basename(src)} by embed.py: do not edit */\n")
    out.write(f"const char {name}[] =\n")
    for line in text.splitlines(keepends=True):
        esc = line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        out.write(f'\t"{esc}"\n')
    out.write("\t;\n")
