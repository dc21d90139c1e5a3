#!/bin/sh
# SPDX-License-Identifier: MIT
# output.sh HEAPPROF PROGS - the output's filesystem full, or the file size
# limit reached, during a run: the program's status stands, one line says
# what was lost, and what is left is a database that reads (what was
# written before, marked incomplete) or nothing. A journal heapprof did not
# make is never written into.
. "$(dirname "$0")/lib.sh"

# ONE: stderr holds one line of heapprof's, matching the pattern
one_line() {
	echo "$(grep -c '^heapprof' "$TMP/err")|$(grep -c -- "$1" "$TMP/err")"
}

# a database kept after a failure: intact, incomplete, with its views, no
# journal beside it, and heapprof report reads it
kept() {
	echo "$(q "$1" 'PRAGMA integrity_check')|$(q "$1" "SELECT value FROM meta WHERE key = 'complete'")|$(q "$1" "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name IN ('processes', 'chunks', 'frames')")|$([ -e "$1-journal" ] && echo journal)|$("$HEAPPROF" report "$1" >/dev/null 2>&1; echo $?)"
}

# the file size limit (sh's ulimit -f: 512-byte blocks, so 4 MiB) reached
# during the run: the program goes on, its status stands. It starts its
# threads after half a second, by when heapprof has committed its row.
(ulimit -f 8192 && exec "$HEAPPROF" run -o "$TMP/fsize.db" "$PROGS/rec-churn" 2 150000 500) \
	>"$TMP/out" 2>"$TMP/err"
check "file size limit: the program's status and output" "0|churned 2 x 150000" \
	"$?|$(cat "$TMP/out")"
check "file size limit: one line says so and what is kept" "1|1" \
	"$(one_line 'disk I/O error (File too large): the rest of the recording is lost; what was written before is kept, marked incomplete')"
check "file size limit: what is kept is a database that reads" "ok|0|3||0" "$(kept "$TMP/fsize.db")"
# room for the tables (as large as a recording of `true`), and rarely for
# more (the program floods at once): whatever is left reads, or nothing is
"$HEAPPROF" run -o "$TMP/empty.db" true >/dev/null 2>&1
blocks=$(( $(wc -c <"$TMP/empty.db") / 512 + 256 ))
(ulimit -f $blocks && exec "$HEAPPROF" run -o "$TMP/fsize1.db" "$PROGS/rec-churn" 2 150000) \
	>"$TMP/out" 2>"$TMP/err"
check "a lower limit: the program's status" 0 "$?"
if [ -e "$TMP/fsize1.db" ]; then
	check "a lower limit: what is kept reads" "1|1|ok|0|3||0" \
		"$(one_line 'what was written before is kept, marked incomplete')|$(kept "$TMP/fsize1.db")"
else
	check "a lower limit: nothing kept (no process was written), and said so" "1|1|no" \
		"$(one_line 'the recording is lost; no database was kept')|$([ -e "$TMP/fsize1.db-journal" ] && echo yes || echo no)"
fi

# the limit reached with --snapshots while the exit snapshot (20000 chunks,
# more than a batch of rows) is written: the rows that follow the failure
# are dropped, not written past their buffer (which crashed the collector)
"$HEAPPROF" run --snapshots -o "$TMP/empty-s.db" true >/dev/null 2>&1
blocks=$(( $(wc -c <"$TMP/empty-s.db") / 512 + 128 ))
(ulimit -f $blocks && exec "$HEAPPROF" run --snapshots -o "$TMP/fsize2.db" "$PROGS/snap-pattern" steady 1) \
	>"$TMP/out" 2>"$TMP/err"
check "--snapshots, the limit at the exit snapshot: the program's status and output" "0|yes" \
	"$?|$(grep -q '^[0-9][0-9]*$' "$TMP/out" && echo yes)"
check "--snapshots, the limit at the exit snapshot: one line says so" 1 \
	"$(grep -c 'disk I/O error (File too large): the re' "$TMP/err")"
if [ -e "$TMP/fsize2.db" ]; then
	# (no exit snapshot in it: report at the exit says so, exit 2)
	check "--snapshots, the limit at the exit snapshot: what is kept reads" "ok|0|3||2|0" \
		"$(kept "$TMP/fsize2.db")|$("$HEAPPROF" report "$TMP/fsize2.db" --list-snapshots >/dev/null 2>&1; echo $?)"
	check "--snapshots, the limit at the exit snapshot: report says there is no exit snapshot" 1 \
		"$("$HEAPPROF" report "$TMP/fsize2.db" 2>&1 >/dev/null | grep -c 'no exit snapshot')"
fi

# a journal of another user's, where SQLite would have written its pages:
# refused, before the program runs
mkdir -m 1777 "$TMP/shared"
touch "$TMP/shared/o.db-journal"
chmod 666 "$TMP/shared/o.db-journal"
if [ "$(id -u)" -eq 0 ]; then
	chown 65534 "$TMP/shared/o.db-journal"
	"$HEAPPROF" run -o "$TMP/shared/o.db" "$PROGS/rec-known" >"$TMP/out" 2>"$TMP/err"
	check "another user's journal: refused, the program not run" "125|" "$?|$(cat "$TMP/out")"
	check "another user's journal: one line names it" "1|1" \
		"$(one_line "o.db: its journal o.db-journal already exists and is not heapprof's")"
	check "another user's journal: untouched, no database left" "65534 0|no" \
		"$(stat -c '%u %s' "$TMP/shared/o.db-journal")|$([ -e "$TMP/shared/o.db" ] && echo yes || echo no)"
	echo precious >"$TMP/shared/o.db"
	"$HEAPPROF" run --force -o "$TMP/shared/o.db" "$PROGS/rec-known" >"$TMP/out" 2>"$TMP/err"
	check "and with --force: refused, the file kept, nothing added" "125|precious|2" \
		"$?|$(cat "$TMP/shared/o.db")|$(ls "$TMP/shared" | grep -c .)"
	rm -f "$TMP/shared/o.db"
fi
ln -s "$TMP/nowhere" "$TMP/shared/p.db-journal"
"$HEAPPROF" run -o "$TMP/shared/p.db" "$PROGS/rec-known" >"$TMP/out" 2>"$TMP/err"
check "a symbolic link for a journal: refused, not followed" "125|no" \
	"$?|$([ -e "$TMP/nowhere" ] && echo yes || echo no)"
# one of ours (a killed run's) is replaced; the new one is ours, 0600
touch "$TMP/shared/q.db-journal"
"$HEAPPROF" run -o "$TMP/shared/q.db" "$PROGS/rec-known" >"$TMP/out" 2>"$TMP/err"
check "a stale journal of ours: the run goes on, nothing left beside the database" "7|ok|" \
	"$?|$(q "$TMP/shared/q.db" 'PRAGMA integrity_check')|$(ls "$TMP/shared" | grep '^q' | grep -v '^q.db$')"

# the rest needs a small filesystem of its own
if [ "$(id -u)" -ne 0 ] || ! unshare -m true 2>/dev/null; then
	echo "note: not root or no unshare -m: the full filesystem is not checked"
	finish
fi
# run_full SIZE ARGS...: heapprof run ARGS with $TMP/full a tmpfs of SIZE
mkdir "$TMP/full"
run_full() {
	size=$1
	shift
	unshare -m sh -c 'mount -t tmpfs -o "size=$1" tmpfs "$2" || exit 99
		echo precious >"$2/old.db"
		shift 2
		"$@"
		rc=$?
		cp -a "${0%/*}/full/." "${0%/*}/after/" 2>/dev/null
		exit $rc' "$TMP/x" "$size" "$TMP/full" "$HEAPPROF" run "$@"
}

# full during the run
mkdir "$TMP/after"
run_full 4m -o "$TMP/full/x.db" "$PROGS/rec-churn" 2 100000 500 >"$TMP/out" 2>"$TMP/err"
check "disk full: the program's status and output" "0|churned 2 x 100000" "$?|$(cat "$TMP/out")"
check "disk full: one line says so and what is kept" "1|1" \
	"$(one_line 'database or disk is full: the rest of the recording is lost; what was written before is kept, marked incomplete')"
check "disk full: what is kept is a database that reads" "ok|0|3||0" "$(kept "$TMP/after/x.db")"

# full during a --snapshots run: its snapshots of 20000 chunks fill it
rm -rf "$TMP/after" && mkdir "$TMP/after"
run_full 3m --snapshots --snapshot-every 0.3 -o "$TMP/full/x.db" "$PROGS/snap-pattern" steady 2 \
	>"$TMP/out" 2>"$TMP/err"
check "disk full, --snapshots: the program's status and output" "0|yes" \
	"$?|$(grep -q '^[0-9][0-9]*$' "$TMP/out" && echo yes)"
if [ -e "$TMP/after/x.db" ]; then
	# (report at the exit, the default, has no exit snapshot to read: 2)
	check "disk full, --snapshots: one line, and what is kept reads" "1|1|ok|0|3||2" \
		"$(one_line 'database or disk is full: the rest of the recording is lost; what was written before is kept, marked incomplete')|$(kept "$TMP/after/x.db")"
	check "disk full, --snapshots: --list-snapshots reads what was kept, says it is incomplete" "0|1" \
		"$("$HEAPPROF" report "$TMP/after/x.db" --list-snapshots >/dev/null 2>"$TMP/err2"; echo $?)|$(grep -c 'did not finish' "$TMP/err2")"
	check "disk full, --snapshots: report at the exit: no exit snapshot, in one line" "2|1" \
		"$("$HEAPPROF" report "$TMP/after/x.db" >/dev/null 2>"$TMP/err2"; echo $?)|$(grep -c 'no exit snapshot' "$TMP/err2")"
else
	check "disk full, --snapshots: nothing kept, and said so in one line" "1|1" \
		"$(one_line 'the recording is lost; no database was kept')"
fi

# full from the start: heapprof says so before the program runs
rm -rf "$TMP/after" && mkdir "$TMP/after"
# (a database's tables and indexes take ~0.8 MB before the first row)
run_full 256k -o "$TMP/full/x.db" "$PROGS/rec-churn" 2 100000 >"$TMP/out" 2>"$TMP/err"
check "no room for a database: 125, the program not run" "125|" "$?|$(cat "$TMP/out")"
check "no room for a database: one line" "1|1" "$(one_line 'x.db: cannot create the schema: database or disk is full')"
check "no room for a database: nothing left" "old.db" "$(ls "$TMP/after")"

# full while replacing a file (--force): the file stays as it was
rm -rf "$TMP/after" && mkdir "$TMP/after"
run_full 4m --force -o "$TMP/full/old.db" "$PROGS/rec-churn" 2 100000 >"$TMP/out" 2>"$TMP/err"
check "disk full with --force: the program's status" 0 "$?"
check "disk full with --force: one line" "1|1" \
	"$(one_line 'old.db: database or disk is full: the recording is lost; the file was left as it was')"
check "disk full with --force: the old file as it was, nothing else" "old.db|precious" \
	"$(ls "$TMP/after" | tr '\n' ' ' | sed 's/ $//')|$(cat "$TMP/after/old.db")"
finish
