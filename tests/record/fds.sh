#!/bin/sh
# SPDX-License-Identifier: MIT
# fds.sh HEAPPROF PROGS - what the program does to its file descriptors
# does not touch the recording: after it closes 3..1023, or dup2s a file or
# a directory over them, a child it forks and a thread it starts are
# recorded in full (and nothing lands in that directory); when it has used
# up every descriptor, what could not be recorded is counted and reported.
. "$(dirname "$0")/lib.sh"

for how in close dup2 dir; do
	mkdir -p "$TMP/dir"
	"$HEAPPROF" run -o "$TMP/$how.db" "$PROGS/rec-fds" "$how" "$TMP/dir" >"$TMP/out" 2>"$TMP/err"
	check "$how: the program's status and output" "0|fds done" "$?|$(cat "$TMP/out")"
	check "$how: the child has its row and its 500 chunks" "2|500" \
		"$(q "$TMP/$how.db" 'SELECT count(*) FROM processes')|$(q "$TMP/$how.db" 'SELECT count(*) FROM chunks c JOIN processes p USING (process_id) WHERE c.size = 1001 AND p.parent_id IS NOT NULL')"
	check "$how: the thread's 500 chunks, nothing dropped" "500|0" \
		"$(q "$TMP/$how.db" 'SELECT count(*) FROM chunks WHERE size = 1002')|$(q "$TMP/$how.db" 'SELECT sum(dropped_events) FROM processes')"
done
check "dir: no file of heapprof's in the program's directory" "" "$(ls -A "$TMP/dir")"

# no descriptor left for a thread's ring or a child's files: counted
(ulimit -n 64 && exec "$HEAPPROF" run -o "$TMP/exhaust.db" "$PROGS/rec-fds" exhaust) \
	>"$TMP/out" 2>"$TMP/err"
check "exhausted: the program's status and output" "0|fds done" "$?|$(cat "$TMP/out")"
dropped=$(q "$TMP/exhaust.db" 'SELECT sum(dropped_events) FROM processes')
check "exhausted: the child's and the thread's events counted as dropped" 1 \
	"$([ "${dropped:-0}" -ge 1000 ] && echo 1)"
check "exhausted: and the summary says so" 1 \
	"$(grep -c "incomplete: $dropped events dropped" "$TMP/err")"
finish
