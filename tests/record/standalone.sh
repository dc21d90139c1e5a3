#!/bin/sh
# SPDX-License-Identifier: MIT
# standalone.sh HEAPPROF PROGS LIBHEAPPROF - LD_PRELOAD=libheapprof.so
# HEAPPROF_OUTPUT=x.db ./app, without heapprof run: the preload starts a
# collector itself, children follow into the same database.
. "$(dirname "$0")/lib.sh"
LIB=$3
DB=$TMP/alone.db
out=$(LD_PRELOAD=$LIB HEAPPROF_OUTPUT=$DB "$PROGS/rec-tree" 2>"$TMP/err")
check "program unaffected" "0|children: 3 4 4 4" "$?|$out"
check "nothing on stderr" "" "$(cat "$TMP/err")"
# the collector finishes on its own once every process is gone
wait_complete "$DB"
check "database completed" 1 "$(q "$DB" "SELECT value FROM meta WHERE key = 'complete'")"
check "integrity" ok "$(q "$DB" 'PRAGMA integrity_check')"
check "all six images" 6 "$(q "$DB" 'SELECT count(*) FROM processes')"
check "leaf chunks" 12 "$(q "$DB" 'SELECT count(*) FROM chunk WHERE size = 1004')"
check "root ended by exit 0 (its exit record)" "exit|0" \
	"$(q "$DB" 'SELECT end_reason, exit_status FROM process WHERE parent_id IS NULL AND exec_from IS NULL')"

# the collector removes the spool when it is done: the spool the program
# was given (other heapprof runs on this machine have theirs, which this
# test does not look at)
spool=$(LD_PRELOAD=$LIB HEAPPROF_OUTPUT=$TMP/sh.db sh -c 'printf %s "$HEAPPROF_SPOOL"')
wait_complete "$TMP/sh.db"
check "its spool directory ($spool) is gone once the database is complete" "yes|no" \
	"$(case $spool in */heapprof-*) echo yes ;; esac)|$([ -e "$spool" ] && echo yes || echo no)"

# no collector to start: the program runs unrecorded, says so once, and
# leaves no spool behind: no spool directory named for its pid that was not
# there before (the spools of other processes that had its pid once are)
spools() {
	ls -d /dev/shm/heapprof-* /tmp/heapprof-* ${TMPDIR:+"$TMPDIR"/heapprof-*} 2>/dev/null | sort
}
spools >"$TMP/before"
out=$(LD_PRELOAD=$LIB HEAPPROF_OUTPUT=$TMP/none.db HEAPPROF_BIN=$TMP/no-such-heapprof \
	sh -c 'echo $$; exec "$0"' "$PROGS/rec-known" 2>"$TMP/err2")
rc=$?
spools >"$TMP/after"
pid=$(echo "$out" | head -n 1)
check "no collector: the status; a line saying why from sh and from the program it became" "7|2" \
	"$rc|$(grep -c 'cannot find the heapprof command' "$TMP/err2")"
check "no collector: no spool left" "" \
	"$(comm -13 "$TMP/before" "$TMP/after" | grep "/heapprof-$pid-")"
finish
