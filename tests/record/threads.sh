#!/bin/sh
# SPDX-License-Identifier: MIT
# threads.sh HEAPPROF PROGS - 4 threads, each chunk freed by another
# thread: all recorded, alloc and free threads differ, thread arenas'
# chunks have backing 'arena', threads have rows.
. "$(dirname "$0")/lib.sh"
DB=$TMP/threads.db
"$HEAPPROF" run -o "$DB" "$PROGS/rec-threads" >/dev/null 2>"$TMP/err"
check "exit status" 0 "$?"
check "2000 chunks of 2000..2003 bytes" 2000 "$(q "$DB" 'SELECT count(*) FROM chunk WHERE size BETWEEN 2000 AND 2003')"
check "all freed, each by another thread" "2000|2000" \
	"$(q "$DB" 'SELECT sum(free_ns IS NOT NULL), sum(free_tid <> alloc_tid) FROM chunk WHERE size BETWEEN 2000 AND 2003')"
check "4 allocating threads" 4 "$(q "$DB" 'SELECT count(DISTINCT alloc_tid) FROM chunk WHERE size BETWEEN 2000 AND 2003')"
check "thread arenas' chunks have backing arena" 1 \
	"$(q "$DB" "SELECT count(*) > 0 FROM chunks WHERE backing = 'arena' AND size BETWEEN 2000 AND 2003")"
check "thread rows" 1 "$(q "$DB" 'SELECT count(*) >= 5 FROM thread')"
check "worker frames" worker \
	"$(q "$DB" "SELECT DISTINCT f.function FROM frames f JOIN chunk c ON c.stack_id = f.stack_id AND f.depth = 0 WHERE c.size = 2001")"
check "nothing truncated" "0|0" "$(q "$DB" 'SELECT truncated_records, dropped_events FROM process')"
finish
