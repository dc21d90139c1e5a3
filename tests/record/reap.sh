#!/bin/sh
# SPDX-License-Identifier: MIT
# reap.sh HEAPPROF PROGS LIBHEAPPROF - a tree of fork, exec, vfork and
# posix_spawn children, grandchildren and daemons ending by exit, _exit,
# _Exit, a signal and exec, each reaped by its own parent with another
# call of the wait family (rec-reap): every process row's end is the true
# one, under heapprof run and with HEAPPROF_OUTPUT, and the program sees
# what it sees without heapprof (statuses, errno, EINTR, rusage).
. "$(dirname "$0")/lib.sh"
LIB=$(realpath "$3")
PROG=$PROGS/rec-reap

# what the waiters see, natively
cat >"$TMP/want.out" <<'EOF'
1: exit 11
1: waitpid returned the child: 1, errno 1234
2: wait(NULL) returned the child: 1
3: exit 13
3: wait3 returned the child: 1, its CPU time in rusage: 1
4: signal 10
5/6 (WNOWAIT): exit 16
5/6: waitid(NULL siginfo) 0
5/6: gone: 1
7: signal 1
8: exit 18
10: exit 20
11: signal 9
12/13: signal 15
9: exit 19
14: exit 14
17: wait -1 ECHILD
17: exit 27
21: stopped 19
21: continued
21: signal 15
22: waitpid -1, EINTR
22: signal 9
23: exit 23
0: waitpid -1 ECHILD
EOF
"$PROG" >"$TMP/native.out" 2>&1
check "natively: status 0 and what the waiters saw" "0|" \
	"$?|$(diff "$TMP/want.out" "$TMP/native.out")"

# role: the end of the process whose chunk is 2000+role bytes
# (end_reason|exit_status|exit_signal)
ends="0:exit|0| 1:exit|11| 2:exit|12| 3:exit|13| 4:signal||10 5:exec|| 6:exit|16|
7:signal||1 8:exit|18| 9:exit|19| 10:exit|20| 11:signal||9 12:exec|| 13:signal||15
14:exit|14| 15:exit|25| 16:signal||12 17:exit|27| 18:exit|28| 19:exit|29| 20:signal||15
21:signal||15 22:signal||9 23:exit|23|"
# How a child ends whose parent ignores SIGCHLD (the kernel reaps it at
# once) is known for an exit from its EXIT record, for a signal only where
# the kernel keeps the end for pidfds (Linux 6.15); likewise a daemon
# killed by a signal when heapprof is not its subreaper.
pidfd_info=$("$PROG" pidfd-exit-info)
[ "$pidfd_info" = yes ] || echo "note: no PIDFD_INFO_EXIT here (Linux < 6.15): roles 20 and 16 may be unknown"

# check_ends DB HOW [ROLES THAT MAY BE unknown]
check_ends() {
	db=$1 how=$2 maybe=$3
	for e in $ends; do
		role=${e%%:*} want=${e#*:}
		got=$(q "$db" "SELECT group_concat(end_reason || '|' || ifnull(exit_status, '') || '|' || ifnull(exit_signal, ''), ' ') FROM process p WHERE EXISTS (SELECT 1 FROM chunk c WHERE c.process_id = p.process_id AND c.size = 2000 + $role)")
		if [ "$got" = "unknown||" ] && [ "$pidfd_info" != yes ] &&
			echo " $maybe " | grep -q " $role "; then
			got=$want
		fi
		check "$how: role $role ended $want" "$want" "$got"
	done
	check "$how: 24 processes, one per role" "24|24" \
		"$(q "$db" 'SELECT count(*), count(DISTINCT (SELECT min(size) FROM chunk c WHERE c.process_id = p.process_id AND size BETWEEN 2000 AND 2023)) FROM process p')"
	check "$how: the daemons are the children of the process that forked them" "2" \
		"$(q "$db" 'SELECT count(*) FROM process d JOIN process p ON d.parent_id = p.process_id AND d.ppid = p.pid WHERE EXISTS (SELECT 1 FROM chunk c WHERE c.process_id = d.process_id AND c.size IN (2015, 2016)) AND EXISTS (SELECT 1 FROM chunk c WHERE c.process_id = p.process_id AND c.size = 2014)')"
	check "$how: nothing dropped or truncated" 0 \
		"$(q "$db" 'SELECT sum(dropped_events) + sum(truncated_records) FROM process')"
}

"$HEAPPROF" run -o "$TMP/run.db" "$PROG" >"$TMP/run.out" 2>"$TMP/run.err"
check "heapprof run: the program's status and output, unchanged" "0|" \
	"$?|$(diff "$TMP/native.out" "$TMP/run.out")"
check_ends "$TMP/run.db" "heapprof run" 20

# bash reaps its background children in its SIGCHLD handler, which may
# interrupt it inside heapprof's recorder (where no record can be written):
# those reaps are written once it is out, not dropped (13-30 of them were,
# in each run of this script, before)
cat >"$TMP/spawn.sh" <<'EOF'
s=
i=0
while [ $i -lt 300 ]; do
	i=$((i + 1))
	true &
	for j in 1 2 3 4 5 6 7 8 9 10; do s="$s$i-$j,"; done
	[ $((i % 50)) -eq 0 ] && s=
done
wait
echo done
EOF
for ring in 8192 64; do
	HEAPPROF_RING_KB=$ring "$HEAPPROF" run -o "$TMP/bash$ring.db" bash "$TMP/spawn.sh" \
		>"$TMP/bash.out" 2>"$TMP/bash.err"
	check "bash reaping in its SIGCHLD handler ($ring KiB rings): its status and output" "0|done" \
		"$?|$(cat "$TMP/bash.out")"
	check "bash reaping in its SIGCHLD handler ($ring KiB rings): 301 processes, nothing lost" "301|0" \
		"$(q "$TMP/bash$ring.db" 'SELECT count(*), sum(dropped_events + truncated_records + bad_records) FROM process' | tr ' ' '|')"
done

# standalone: the collector is no one's parent, and the daemons are
# reaped by init (or whichever subreaper), not by heapprof
LD_PRELOAD=$LIB HEAPPROF_OUTPUT=$TMP/alone.db "$PROG" >"$TMP/alone.out" 2>"$TMP/alone.err"
check "HEAPPROF_OUTPUT: the program's status and output, unchanged" "0|" \
	"$?|$(diff "$TMP/native.out" "$TMP/alone.out")"
wait_complete "$TMP/alone.db"
check "HEAPPROF_OUTPUT: the database is complete" 1 \
	"$(q "$TMP/alone.db" "SELECT value FROM meta WHERE key = 'complete'")"
check_ends "$TMP/alone.db" "HEAPPROF_OUTPUT" "16 20"
finish
