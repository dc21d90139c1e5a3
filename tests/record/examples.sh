#!/bin/sh
# SPDX-License-Identifier: MIT
# examples.sh HEAPPROF PROGS EXAMPLES_DIR - every query in schema/examples
# runs on a real database without error and returns rows.
. "$(dirname "$0")/lib.sh"
EXAMPLES=$(realpath "$3")
DB=$TMP/ex.db
"$HEAPPROF" run -o "$DB" "$PROGS/rec-tree" >/dev/null 2>&1
check "recorded" 0 "$?"
for f in "$EXAMPLES"/*.sql; do
	name=$(basename "$f")
	out=$(sqlite3 -batch -bail "$DB" < "$f" 2>&1)
	check "$name runs" 0 "$?"
	check "$name returns rows" 1 "$( [ -n "$out" ] && echo 1 || echo 0)"
	check "$name: no error" 0 "$(printf '%s\n' "$out" | grep -c '^Error')"
done
check "largest live chunk is the root's 1001-byte one or a leaf's" 1 \
	"$(sqlite3 -batch "$DB" < "$EXAMPLES/largest-live-chunks.sql" | grep -c -m1 '|100[1-4]|')"
finish
