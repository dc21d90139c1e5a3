#!/bin/sh
# SPDX-License-Identifier: MIT
# no-pidfd.sh HEAPPROF PROGS - where pidfd_open(2) fails (kernels before
# 5.3, seccomp profiles without it, valgrind 3.19), the collector watches
# processes in /proc instead: a run records as much as with pidfds and
# says how each process ended.
. "$(dirname "$0")/lib.sh"
"$PROGS/no-pidfd" true || { echo "skip: no seccomp filter here"; exit 77; }
for prog in "mt-stress 2 10" rec-tree; do
	name=${prog%% *}
	"$HEAPPROF" run -o "$TMP/$name.db" $PROGS/$prog >/dev/null 2>&1
	rc=$?
	"$PROGS/no-pidfd" "$HEAPPROF" run -o "$TMP/$name-np.db" $PROGS/$prog >/dev/null 2>"$TMP/$name.err"
	check "$name: the program's status, with and without pidfds" "$rc" "$?"
	check "$name: nothing truncated or dropped" 0 \
		"$(q "$TMP/$name-np.db" 'SELECT sum(truncated_records) + sum(dropped_events) FROM process')"
	check "$name: the same processes, ended the same way" \
		"$(q "$TMP/$name.db" 'SELECT group_concat(end_reason || exit_status, ",") FROM (SELECT end_reason, exit_status FROM process ORDER BY 1, 2)')" \
		"$(q "$TMP/$name-np.db" 'SELECT group_concat(end_reason || exit_status, ",") FROM (SELECT end_reason, exit_status FROM process ORDER BY 1, 2)')"
	# mt-stress's threads race, so its count varies a little between runs
	a=$(q "$TMP/$name.db" 'SELECT count(*) FROM chunk')
	b=$(q "$TMP/$name-np.db" 'SELECT count(*) FROM chunk')
	check "$name: as many chunks within 1% ($a, $b)" yes \
		"$([ $((b * 100)) -ge $((a * 99)) ] && [ $((b * 100)) -le $((a * 101)) ] && echo yes || echo no)"
done
finish
