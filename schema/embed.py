#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turn a text file into a C string for the analyzer: schema/heapprof.sql
(hp_schema_sql), analyzer/report.html (hp_report_html); or, with
--version, write schema_version.h: HP_SCHEMA_VERSION and HP_APPLICATION_ID,
the PRAGMA user_version and application_id that heapprof.sql sets (their one
home).

Usage: embed.py SRC DST [NAME]   (NAME: hp_schema_sql if not given)
       embed.py --version SQL DST"""
import os
import re
import sys

if sys.argv[1] == "--version":
    src, dst = sys.argv[2], sys.argv[3]
    sql = open(src, encoding="utf-8").read()
    values = {}
    for pragma in ("user_version", "application_id"):
        found = re.findall(rf"^PRAGMA {pragma} = (\d+);", sql, re.M)
        if len(found) != 1:
            sys.exit(f"embed.py: {src}: expected one 'PRAGMA {pragma} = N;', "
                     f"found {len(found)}")
        values[pragma] = found[0]
    with open(dst, "w", encoding="utf-8") as out:
        out.write(f"/* generated from {os.path.basename(src)} by embed.py: do not edit */\n"
                  "#ifndef HP_SCHEMA_VERSION_H\n#define HP_SCHEMA_VERSION_H\n"
                  f"#define HP_SCHEMA_VERSION {values['user_version']} /* PRAGMA user_version */\n"
                  f"#define HP_APPLICATION_ID {values['application_id']} /* PRAGMA application_id */\n"
                  "#endif\n")
    sys.exit(0)

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
