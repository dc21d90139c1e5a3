#!/bin/sh
# SPDX-License-Identifier: MIT
# memcheck.sh HEAPPROF PROGS - heapprof itself under valgrind's memcheck:
# the collector and writer of `heapprof run` (the program it runs is not
# traced) and `heapprof report`, on a program of known chunks and on a
# tree of processes: no invalid access, no use of uninitialised memory,
# nothing definitely lost.
. "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null 2>&1 || { echo "skip: valgrind not installed"; exit 77; }
vg() {
	valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
		--trace-children=no "$@"
}
for prog in rec-known rec-tree; do
	name=${prog%% *}
	vg "$HEAPPROF" run -o "$TMP/$name.db" $PROGS/$prog >/dev/null 2>"$TMP/$name.err"
	rc=$?
	check "$name: heapprof run under memcheck: not memcheck's exit status (99)" "no" \
		"$([ $rc -eq 99 ] && echo yes || echo no)"
	check "$name: memcheck said nothing" 0 "$(grep -c '^==[0-9]*==' "$TMP/$name.err")"
	vg "$HEAPPROF" report "$TMP/$name.db" >/dev/null 2>"$TMP/$name.report.err"
	check "$name: heapprof report under memcheck: exit 0" 0 "$?"
	check "$name: memcheck said nothing of the report" 0 "$(grep -c '^==[0-9]*==' "$TMP/$name.report.err")"
done
finish
