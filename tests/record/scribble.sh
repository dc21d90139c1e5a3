#!/bin/sh
# SPDX-License-Identifier: MIT
# scribble.sh HEAPPROF PROGS - a program that writes garbage into its
# rings (tests/progs/rec-scribble.c) costs the records it broke, counted,
# and not the run: its status, its other chunks, a complete database.
. "$(dirname "$0")/lib.sh"

"$HEAPPROF" run -o "$TMP/s.db" "$PROGS/rec-scribble" >"$TMP/out" 2>"$TMP/err"
check "the program's status and output" "3|bad 14" "$?|$(cat "$TMP/out")"
check "the database is complete, with its views" "1|3" \
	"$(q "$TMP/s.db" "SELECT value FROM meta WHERE key = 'complete'")|$(q "$TMP/s.db" "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name IN ('processes', 'chunks', 'frames')")"
check "every bad record counted, nothing else lost" "14|0|0" \
	"$(q "$TMP/s.db" 'SELECT bad_records, dropped_events, truncated_records FROM processes')"
check "the chunks after the garbage are all there" "500|250" \
	"$(q "$TMP/s.db" 'SELECT count(*), count(free_ns) FROM chunks WHERE size = 1234')"
check "none of the garbage became a chunk" 0 \
	"$(q "$TMP/s.db" 'SELECT count(*) FROM chunks WHERE address IN (65536, 65544, 1152921504606846976)')"
check "the summary says so" 1 \
	"$(grep -c 'incomplete: 0 events dropped, 0 records truncated, 14 bad records dropped' "$TMP/err")"
check "and the report reads it" 0 "$("$HEAPPROF" report "$TMP/s.db" >/dev/null 2>&1; echo $?)"
finish
