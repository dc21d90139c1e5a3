#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/quickstart.sh - install what is missing, build, and run the main
# job on the bundled example: `heapprof run` on a program whose heap stays
# ~40 MiB after it freed everything but one 100-byte string, the report of
# its worst moment (the pin, the hole, the call stacks), and a question
# asked of the database with the sqlite3 shell.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
sh scripts/build.sh build
db=build/pin-demo.db
echo "== build/analyzer/heapprof run -o $db --force build/tests/pin-demo"
build/analyzer/heapprof run -o "$db" --force build/tests/pin-demo
echo
echo "== build/analyzer/heapprof report $db --at worst"
build/analyzer/heapprof report "$db" --at worst
echo "== sqlite3 $db < schema/examples/chunks-by-backing.sql"
sqlite3 -header -column "$db" <schema/examples/chunks-by-backing.sql
