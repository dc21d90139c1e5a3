#!/bin/sh
# SPDX-License-Identifier: MIT
# hostile.sh HEAPPROF PROGS - report and check on databases made to hurt:
# what a file says never decides how much memory or time they take (a
# view with an endless query in place of a table, a stack id of 2^28,
# addresses no process can have, a heap of 2^50 bytes, a million process
# rows, a chain of a million forks), nor what reaches the terminal (escape
# sequences); its text comes out as the UTF-8 it is. Every run is bounded:
# 2 GB of address space, 120 s.
. "$(dirname "$0")/../record/lib.sh"
DB=$TMP/good.db
"$HEAPPROF" run -o "$DB" "$PROGS/pattern" live-pin >/dev/null 2>&1 || { echo "setup failed"; exit 99; }
command -v timeout >/dev/null || { echo "skip: no timeout command"; exit 77; }

# bounded CMD...: its exit status, within 2 GB and 120 s (124: too long)
bounded() {
	(ulimit -v 2000000 && exec timeout 120 "$@") >"$TMP/out" 2>"$TMP/err"
	echo $?
}

# a view with a query that never ends, in place of a table
cp "$DB" "$TMP/view.db"
sqlite3 "$TMP/view.db" "ALTER TABLE stack_own_frame RENAME TO old_frame;
	CREATE VIEW stack_own_frame AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)
	SELECT n AS stack_id, 0 AS depth, 1 AS image_id, n AS offset FROM r;"
check "a recursive view for a table: exit 2, damaged, at once" "2|1" \
	"$(bounded "$HEAPPROF" report "$TMP/view.db")|$(grep -c 'view.db: damaged' "$TMP/err")"

# one stack id of 2^28 (an array by stack id would take 2 GiB)
cp "$DB" "$TMP/stack.db"
# (the live pin's: keep_config's)
sqlite3 "$TMP/stack.db" "UPDATE stack SET stack_id = 268435456 WHERE stack_id = 2;
	UPDATE stack SET tail_stack = 268435456 WHERE tail_stack = 2;
	UPDATE stack_own_frame SET stack_id = 268435456 WHERE stack_id = 2;
	UPDATE chunk_origin SET stack_id = 268435456 WHERE stack_id = 2;"
check "a stack id of 2^28: the report, within bounds" 0 "$(bounded "$HEAPPROF" report "$TMP/stack.db")"
check "and its function is still known" 1 \
	"$(bounded "$HEAPPROF" report "$TMP/stack.db" --format json >/dev/null; python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(int(any(l["function"] == "keep_config" for p in r["processes"] for l in p["leaks"])))' "$TMP/out")"

# addresses no process can have: damaged, exit 2
cp "$DB" "$TMP/addr.db"
sqlite3 "$TMP/addr.db" "UPDATE chunk_packed SET address = 1 << 60
	WHERE chunk_id = (SELECT min(chunk_id) FROM chunk_packed)"
check "a chunk at 2^60: exit 2, damaged" "2|1" \
	"$(bounded "$HEAPPROF" report "$TMP/addr.db")|$(grep -c 'damaged: chunk [0-9]* has an address or size no process can have' "$TMP/err")"
cp "$DB" "$TMP/neg.db"
# (an address is stored in 16s relative to a base: far enough below any)
sqlite3 "$TMP/neg.db" "UPDATE chunk_packed SET address = -(1 << 52)
	WHERE chunk_id = (SELECT min(chunk_id) FROM chunk_packed)"
check "a negative address: exit 2, damaged" "2|1" \
	"$(bounded "$HEAPPROF" check "$TMP/neg.db" --max-leaked 1G)|$(grep -c 'damaged' "$TMP/err")"
cp "$DB" "$TMP/brk.db"
sqlite3 "$TMP/brk.db" "UPDATE heap_event SET bytes = 1 << 60
	WHERE rowid = (SELECT min(rowid) FROM heap_event WHERE what = 1)"
check "a break at 2^60: exit 2, damaged" "2|1" \
	"$(bounded "$HEAPPROF" report "$TMP/brk.db")|$(grep -c 'damaged: a heap event of process' "$TMP/err")"
# a heap of 2^50 bytes (possible) with a chunk at its top: the report
# takes memory for the chunks, not for the heap's extent (a brk chunk's
# address and the heap events' are stored relative to heap_start)
cp "$DB" "$TMP/huge.db"
sqlite3 "$TMP/huge.db" "UPDATE heap_event SET bytes = address + (1 << 50)
		WHERE rowid = (SELECT min(rowid) FROM heap_event WHERE what = 1);
	UPDATE chunk_packed SET address = ((SELECT address + (1 << 50) - 65536 FROM heap_event
		WHERE what = 1 ORDER BY rowid LIMIT 1) + (SELECT p.heap_start - o.base
		FROM chunk_origin o JOIN process p USING (process_id)
		WHERE o.origin_id = chunk_packed.origin)) / 16
		WHERE chunk_id = (SELECT max(chunk_id) FROM chunk_packed);"
check "a heap of 2^50 bytes: the report, within bounds" 0 "$(bounded "$HEAPPROF" report "$TMP/huge.db")"

# a million processes: linear, not quadratic
cp "$DB" "$TMP/many.db"
sqlite3 "$TMP/many.db" "WITH RECURSIVE r(n) AS (SELECT 2 UNION ALL SELECT n + 1 FROM r WHERE n < 1000001)
	INSERT INTO process (process_id, pid, exe, started_ns, ended_ns)
	SELECT n * 7, 100000 + n, 'x', 1, 2 FROM r"
check "a million processes (ids not 1..n): check, within bounds" "0|1000001" \
	"$(bounded "$HEAPPROF" check "$TMP/many.db" --max-leaked 1G)|$(grep -c '^PASS' "$TMP/out")"
check "and a report of one of them" "0|1" \
	"$(bounded "$HEAPPROF" report "$TMP/many.db" --pid 1100001)|$(grep -c '^process 1100001 (x)' "$TMP/out")"
# a chain of a million forks, each the parent of the next
cp "$DB" "$TMP/chain.db"
sqlite3 "$TMP/chain.db" "WITH RECURSIVE r(n) AS (SELECT 2 UNION ALL SELECT n + 1 FROM r WHERE n < 1000001)
	INSERT INTO process (process_id, pid, parent_id, fork_ns, exe, started_ns, ended_ns)
	SELECT n, 100000 + n, n - 1, 1, 'x', 1, 2 FROM r"
check "a chain of a million forks: a report of the last one, within bounds" "0|1" \
	"$(bounded "$HEAPPROF" report "$TMP/chain.db" --pid 1100001)|$(grep -c '^process 1100001' "$TMP/out")"

# what the database says reaches the terminal as text, not as commands;
# JSON has it as the UTF-8 it is
cp "$DB" "$TMP/text.db"
sqlite3 "$TMP/text.db" "UPDATE process SET exe = '/tmp/caf' || char(233) || char(27) || '[2J';
	UPDATE symbol SET function = char(27) || ']0;owned' || char(7) || function || char(155) || '31m'"
check "escape sequences from the database: report text, without them" "0|0|1" \
	"$(bounded "$HEAPPROF" report "$TMP/text.db")|$(tr -d '\n' <"$TMP/out" | grep -c "$(printf '\033')")|$(grep -c '^process [0-9]* (/tmp/café?\[2J)' "$TMP/out")"
check "nor in check's lines" "1|0" \
	"$(bounded "$HEAPPROF" check "$TMP/text.db" --max-untrimmable 1)|$(tr -d '\n' <"$TMP/out" | grep -c "$(printf '\033')")"
check "in JSON, the exe as it is, UTF-8" "'/tmp/café\\x1b[2J'" \
	"$(bounded "$HEAPPROF" report "$TMP/text.db" --format json >/dev/null; python3 -c '
import json, sys
print(repr(json.load(open(sys.argv[1], encoding="utf-8"))["processes"][0]["exe"]))' "$TMP/out")"
# and a program's arguments, as the collector stores them
"$HEAPPROF" run -o "$TMP/argv.db" /bin/echo "café" >/dev/null 2>&1
check "an argument in UTF-8, stored so" "café" "$(q "$TMP/argv.db" "SELECT json_extract(argv, '\$[1]') FROM processes")"
finish
