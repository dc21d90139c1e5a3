#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/quickstart.sh - install what is missing, build, and run the main
# job on the bundled example: `heapprof run` on a program whose heap stays
# ~40 MiB after it freed everything but one 100-byte string, then the first
# questions a user asks of the database, with the sqlite3 shell.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
sh scripts/build.sh build
db=build/pin-demo.db
echo "== build/analyzer/heapprof run -o $db --force build/tests/pin-demo"
build/analyzer/heapprof run -o "$db" --force build/tests/pin-demo
for q in chunks-by-backing largest-live-chunks; do
	echo
	echo "== sqlite3 $db < schema/examples/$q.sql"
	sqlite3 -header -column "$db" <"schema/examples/$q.sql"
done
