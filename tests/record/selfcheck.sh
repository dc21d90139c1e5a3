#!/bin/sh
# SPDX-License-Identifier: MIT
# selfcheck.sh HEAPPROF PROGS - HEAPPROF_SELFCHECK (analyzer/selfcheck.h),
# which the suites set for every recording they make, fires: with the
# collector made to write one granule too many into heap_summary's live
# bytes ("perturb"), `heapprof run` fails with status 125 and one line
# naming the process and the figure, for a full and a snapshot recording
# and for each process of a tree; the same runs with "1" pass.
. "$(dirname "$0")/lib.sh"

for mode in full snapshots; do
	opt=
	[ $mode = snapshots ] && opt=--snapshots
	# shellcheck disable=SC2086
	HEAPPROF_SELFCHECK=1 "$HEAPPROF" run $opt -o "$TMP/$mode-ok.db" "$PROGS/rec-known" \
		>/dev/null 2>"$TMP/err"
	check "$mode: checked, agrees: the program's status" 7 "$?"
	check "$mode: checked, agrees: no line of the check's" 0 "$(grep -c 'self-check' "$TMP/err")"
	# shellcheck disable=SC2086
	HEAPPROF_SELFCHECK=perturb "$HEAPPROF" run $opt -o "$TMP/$mode.db" "$PROGS/rec-known" \
		>/dev/null 2>"$TMP/err"
	check "$mode: a wrong heap_summary: status 125" 125 "$?"
	pid=$(q "$TMP/$mode.db" 'SELECT pid FROM process')
	live=$(q "$TMP/$mode.db" 'SELECT live_bytes FROM heap_summary')
	check "$mode: one line names the process and the figure" \
		"heapprof: self-check: $TMP/$mode.db: pid $pid: live_bytes: heap_summary $live, report --at exit $((live - 16))" \
		"$(grep 'self-check' "$TMP/err")"
done

# a tree: every process is checked (the first one's line is enough to fail)
HEAPPROF_SELFCHECK=1 "$HEAPPROF" run -o "$TMP/tree-ok.db" "$PROGS/rec-tree" >/dev/null 2>"$TMP/err"
check "a tree, checked, agrees" "0|0" "$?|$(grep -c 'self-check' "$TMP/err")"
HEAPPROF_SELFCHECK=perturb "$HEAPPROF" run -o "$TMP/tree.db" "$PROGS/rec-tree" \
	>/dev/null 2>"$TMP/err"
check "a tree, a wrong heap_summary: status 125 and one line" "125|1" \
	"$?|$(grep -c 'self-check: .*: pid [0-9]*: live_bytes: ' "$TMP/err")"
check "a tree: several processes have a heap_summary to check" yes \
	"$([ "$(q "$TMP/tree.db" 'SELECT count(*) FROM heap_summary')" -gt 1 ] && echo yes)"
finish
