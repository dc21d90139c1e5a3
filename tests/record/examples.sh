#!/bin/sh
# SPDX-License-Identifier: MIT
# examples.sh HEAPPROF PROGS EXAMPLES_DIR - every query in schema/examples
# runs without error on both kinds of recording of the same process tree
# (full and --snapshots), and returns rows on each kind its first line
# "-- kinds: ..." names (both if it names none); the queries that ask the
# same of both kinds get the same answer from both.
. "$(dirname "$0")/lib.sh"
EXAMPLES=$(realpath "$3")
"$HEAPPROF" run -o "$TMP/full.db" "$PROGS/rec-tree" >/dev/null 2>&1
check "recorded in full" 0 "$?"
"$HEAPPROF" run --snapshots -o "$TMP/snapshots.db" "$PROGS/rec-tree" >/dev/null 2>&1
check "recorded with --snapshots" 0 "$?"
for kind in full snapshots; do
	DB=$TMP/$kind.db
	for f in "$EXAMPLES"/*.sql; do
		name=$(basename "$f")
		kinds=$(sed -n '1s/^-- kinds: //p' "$f")
		out=$(sqlite3 -batch -bail "$DB" < "$f" 2>&1)
		check "$name runs on a $kind recording" 0 "$?"
		check "$name: no error on a $kind recording" 0 "$(printf '%s\n' "$out" | grep -c '^Error')"
		case " ${kinds:-full snapshots} " in
		*" $kind "*)
			check "$name returns rows on a $kind recording" 1 \
				"$( [ -n "$out" ] && echo 1 || echo 0)"
			;;
		esac
	done
	check "$kind: largest live chunk is the root's 1001-byte one or a leaf's" 1 \
		"$(sqlite3 -batch "$DB" < "$EXAMPLES/largest-live-chunks.sql" | grep -c -m1 '|100[1-4]|')"
done
# the same answers, pids aside (the chunks live at the end: the root
# process's; a forked child's exit snapshot also holds what it inherited)
a=$(sqlite3 -batch "$TMP/full.db" < "$EXAMPLES/bytes-by-function.sql" | sort)
b=$(sqlite3 -batch "$TMP/snapshots.db" < "$EXAMPLES/bytes-by-function.sql" | sort)
check "bytes-by-function: the same on both kinds" "$a" "$b"
for kind in full snapshots; do
	root=$(q "$TMP/$kind.db" "SELECT pid FROM processes WHERE process_id = 1")
	sqlite3 -batch "$TMP/$kind.db" < "$EXAMPLES/largest-live-chunks.sql" |
		grep "^$root|" | cut -d'|' -f2- | sort >"$TMP/$kind.live"
done
check "largest-live-chunks: the root's the same on both kinds" "$(cat "$TMP/full.live")" \
	"$(cat "$TMP/snapshots.live")"
a=$(sqlite3 -batch "$TMP/full.db" < "$EXAMPLES/process-tree.sql" | cut -d'|' -f1,3-4,6-)
b=$(sqlite3 -batch "$TMP/snapshots.db" < "$EXAMPLES/process-tree.sql" | cut -d'|' -f1,3-4,6-)
check "process-tree: the same on both kinds" "$a" "$b"
finish
