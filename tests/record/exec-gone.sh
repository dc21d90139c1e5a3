#!/bin/sh
# SPDX-License-Identifier: MIT
# exec-gone.sh HEAPPROF PROGS LIBHEAPPROF - a process the collector found
# before it exec'd, and looks at again only once it has ended and been
# reaped (its pidfd cannot be opened any more): its row must end by exec,
# and the image that replaced it (found by name, whatever the directory
# read said) must have the end. The collector is made that slow with
# HEAPPROF_TEST_SCAN_PAUSE_MS (a pause between its directory read and the
# new processes' pidfds); on a busy machine it happened without (CI, stop
# 24: role 12 of reap.sh ended by signal 15, role 13 unknown).
. "$(dirname "$0")/lib.sh"
LIB=$(realpath "$3")
PROG=$PROGS/rec-reap

cat >"$TMP/want.out" <<'EOF2'
30: signal 15
31: exit 34
32: exit 36
EOF2
"$PROG" exec-late >"$TMP/native.out" 2>&1
check "natively: status 0 and what the parent saw" "0|" \
	"$?|$(diff "$TMP/want.out" "$TMP/native.out")"

# role: the end of the process whose chunk is 2000+role bytes
ends="29:exit|0| 30:exec|| 31:exec|| 32:exec|| 33:signal||15 34:exit|34| 35:exec|| 36:exit|36|"

check_ends() {
	db=$1 how=$2
	for e in $ends; do
		role=${e%%:*} want=${e#*:}
		got=$(q "$db" "SELECT group_concat(end_reason || '|' || ifnull(exit_status, '') || '|' || ifnull(exit_signal, ''), ' ') FROM process p WHERE EXISTS (SELECT 1 FROM chunk c WHERE c.process_id = p.process_id AND c.size = 2000 + $role)")
		check "$how: role $role ended $want" "$want" "$got"
	done
	check "$how: each image replaced by the next (30>33, 31>34, 32>35>36)" "2030>2033 2031>2034 2032>2035 2035>2036" \
		"$(q "$db" "SELECT group_concat(a || '>' || b, ' ') FROM (SELECT (SELECT min(size) FROM chunk c WHERE c.process_id = f.process_id AND size BETWEEN 2029 AND 2036) a, (SELECT min(size) FROM chunk c WHERE c.process_id = p.process_id AND size BETWEEN 2029 AND 2036) b FROM process p JOIN process f ON p.exec_from = f.process_id ORDER BY a, b)")"
	check "$how: 8 processes, nothing lost" "8|0" \
		"$(q "$db" 'SELECT count(*), sum(dropped_events + truncated_records + bad_records) FROM process' | tr ' ' '|')"
}

HEAPPROF_TEST_SCAN_PAUSE_MS=400 "$HEAPPROF" run -o "$TMP/run.db" "$PROG" exec-late \
	>"$TMP/run.out" 2>"$TMP/run.err"
check "heapprof run: the program's status and output, unchanged" "0|" \
	"$?|$(diff "$TMP/native.out" "$TMP/run.out")"
check_ends "$TMP/run.db" "heapprof run"

HEAPPROF_TEST_SCAN_PAUSE_MS=400 LD_PRELOAD=$LIB HEAPPROF_OUTPUT=$TMP/alone.db "$PROG" exec-late \
	>"$TMP/alone.out" 2>"$TMP/alone.err"
check "HEAPPROF_OUTPUT: the program's status and output, unchanged" "0|" \
	"$?|$(diff "$TMP/native.out" "$TMP/alone.out")"
wait_complete "$TMP/alone.db"
check "HEAPPROF_OUTPUT: the database is complete" 1 \
	"$(q "$TMP/alone.db" "SELECT value FROM meta WHERE key = 'complete'")"
check_ends "$TMP/alone.db" "HEAPPROF_OUTPUT"
finish
