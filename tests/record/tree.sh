#!/bin/sh
# SPDX-License-Identifier: MIT
# tree.sh HEAPPROF PROGS - fork, exec, vfork and posix_spawn are followed
# into one database: every process has its row, linked to its parent (fork)
# or to the process it replaced (exec), with its own chunks and end.
. "$(dirname "$0")/lib.sh"
DB=$TMP/tree.db
out=$("$HEAPPROF" run -o "$DB" "$PROGS/rec-tree" 2>"$TMP/err")
check "exit status" 0 "$?"
check "children's statuses as seen by the program" "children: 3 4 4 4" "$out"
check "integrity" ok "$(q "$DB" 'PRAGMA integrity_check')"
# processes: root; forked child (k=2, exit 3); forked child (k=3) exec'd into
# leaf (k=4); vfork leaf; posix_spawn leaf
check "six processes (an exec starts one)" 6 "$(q "$DB" 'SELECT count(*) FROM processes')"
root=$(q "$DB" 'SELECT process_id FROM process WHERE parent_id IS NULL AND exec_from IS NULL')
check "the root process is the first and the only one without a parent" 1 "$root"
check "the root started four children, two by fork (a fork point)" "4|2" \
	"$(q "$DB" "SELECT count(*), sum(fork_ns IS NOT NULL) FROM process WHERE parent_id = $root")"
check "each fork point is in the parent's life, before the child's start" 2 \
	"$(q "$DB" "SELECT count(*) FROM process c JOIN process p ON p.process_id = c.parent_id
		WHERE c.fork_ns BETWEEN p.started_ns AND c.started_ns")"
role() { # processes whose chunks are all 1000+K bytes: their count
	echo "SELECT count(*) FROM process p WHERE (SELECT min(size) FROM chunk c WHERE c.process_id = p.process_id AND size BETWEEN 1001 AND 1004) = $((1000 + $1))"
}
check "root allocated k=1" 1 "$(q "$DB" "$(role 1)")"
check "the forked child k=2 exited 3, linked to the root with its fork point" "exit|3|1|1" \
	"$(q "$DB" "SELECT end_reason, exit_status, parent_id, fork_ns > 0 FROM process p WHERE EXISTS (SELECT 1 FROM chunk c WHERE c.process_id = p.process_id AND size = 1002)")"
check "k=2 process has exactly its 2 chunks of 1002" 2 "$(q "$DB" 'SELECT count(*) FROM chunk WHERE size = 1002')"
check "the forked child k=3 ended by exec" "exec" \
	"$(q "$DB" "SELECT end_reason FROM process p WHERE EXISTS (SELECT 1 FROM chunk c WHERE c.process_id = p.process_id AND size = 1003)")"
check "three leaf processes, each 4 chunks of 1004" "3|12" \
	"$(q "$DB" "SELECT count(DISTINCT process_id), count(*) FROM chunk WHERE size = 1004")"
check "one leaf replaced the k=3 process by exec (same pid)" 1 \
	"$(q "$DB" "SELECT count(*) FROM process l JOIN process o ON l.exec_from = o.process_id WHERE l.pid = o.pid AND EXISTS (SELECT 1 FROM chunk c WHERE c.process_id = l.process_id AND size = 1004)")"
check "the process replaced by exec ends when the new one starts" 1 \
	"$(q "$DB" "SELECT count(*) FROM process l JOIN process o ON l.exec_from = o.process_id WHERE o.ended_ns = l.started_ns")"
check "leaves exited 4" "4|4|4" \
	"$(q "$DB" "SELECT group_concat(exit_status, '|') FROM (SELECT DISTINCT p.process_id, p.exit_status FROM process p JOIN chunk c USING (process_id) WHERE c.size = 1004)")"
check "the root exited 0" "exit|0" "$(q "$DB" "SELECT end_reason, exit_status FROM process WHERE process_id = $root")"
check "argv of a leaf" '["'"$PROGS"'/rec-tree","leaf"]' \
	"$(q "$DB" "SELECT DISTINCT argv FROM process WHERE argv LIKE '%leaf%' LIMIT 1")"
check "nothing truncated anywhere" 0 "$(q "$DB" 'SELECT sum(truncated_records) + sum(dropped_events) FROM process')"
check "heap events of several processes: each one's in time order by rowid" "0 1" \
	"$(q "$DB" "SELECT count(*) FILTER (WHERE ns <= prev), count(DISTINCT process_id) > 1 FROM (SELECT process_id, ns, lag(ns) OVER (PARTITION BY process_id ORDER BY event_id) AS prev FROM heap_events)" | tr '|' ' ')"
finish
