#!/bin/sh
# SPDX-License-Identifier: MIT
# badinput.sh HEAPPROF PROGS - report and check on what is not a good
# heapprof database, or with bad arguments: one line "heapprof: ...: what
# is wrong" on stderr, exit 2, no crash, and the file untouched.
. "$(dirname "$0")/../record/lib.sh"
DB=$TMP/good.db
"$HEAPPROF" run -o "$DB" "$PROGS/pattern" live-pin >/dev/null 2>&1 || { echo "setup failed"; exit 99; }
sum=$(md5sum <"$DB")

# expect2 DESC PATTERN CMD...: exit 2, one line matching PATTERN on stderr
expect2() {
	desc=$1 pattern=$2
	shift 2
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	check "$desc: exit 2" 2 "$rc"
	check "$desc: one line on stderr" 1 "$(wc -l <"$TMP/err" | tr -d ' ')"
	check "$desc: says what is wrong" 1 "$(grep -c -- "$pattern" "$TMP/err")"
}
for mode in report check html; do
	cmd=$mode lim=
	[ $mode = check ] && lim="--max-untrimmable 1G"
	[ $mode = html ] && cmd=report lim="--format html -o $TMP/page.html"
	expect2 "$mode: missing file" "heapprof: $TMP/nope.db: No such file or directory" \
		"$HEAPPROF" $cmd "$TMP/nope.db" $lim
	expect2 "$mode: a directory" "heapprof: $TMP: is a directory" "$HEAPPROF" $cmd "$TMP" $lim
	printf 'hello, not a database\n' >"$TMP/text"
	expect2 "$mode: a text file" "not a SQLite database" "$HEAPPROF" $cmd "$TMP/text" $lim
	sqlite3 "$TMP/other.db" 'CREATE TABLE t (x); INSERT INTO t VALUES (1);'
	expect2 "$mode: someone else's SQLite database" "not heapprof's" \
		"$HEAPPROF" $cmd "$TMP/other.db" $lim
	cp "$DB" "$TMP/newer.db"
	newer=$(($(sqlite3 "$DB" 'PRAGMA user_version') + 1))
	sqlite3 "$TMP/newer.db" "PRAGMA user_version = $newer"
	expect2 "$mode: a newer schema" "schema version $newer is newer" "$HEAPPROF" $cmd "$TMP/newer.db" $lim
	# version 4 stored chunk_packed differently (who, info): refused, not misread
	cp "$DB" "$TMP/older.db"
	sqlite3 "$TMP/older.db" 'PRAGMA user_version = 4'
	expect2 "$mode: an older schema" "schema version 4 is not one this heapprof reads" \
		"$HEAPPROF" $cmd "$TMP/older.db" $lim
	head -c 100000 "$DB" >"$TMP/truncated.db"
	expect2 "$mode: a truncated database" "heapprof: $TMP/truncated.db: " \
		"$HEAPPROF" $cmd "$TMP/truncated.db" $lim
	cp "$DB" "$TMP/corrupt.db"
	# scribble over the pages after the first two (the schema stays readable)
	dd if=/dev/urandom of="$TMP/corrupt.db" bs=65536 seek=2 count=4 conv=notrunc 2>/dev/null
	"$HEAPPROF" $cmd "$TMP/corrupt.db" $lim >/dev/null 2>"$TMP/err"
	rc=$?
	check "$mode: a corrupt database: no crash (exit 0, 1 or 2, not a signal)" yes \
		"$([ $rc -le 2 ] && echo yes || echo no)"
	expect2 "$mode: an unknown pid" "no process with pid 999999" \
		"$HEAPPROF" $cmd "$DB" --pid 999999 $lim
	expect2 "$mode: a bad pid" "heapprof: abc: not a pid" "$HEAPPROF" $cmd "$DB" --pid abc $lim
	expect2 "$mode: a bad instant" "heapprof: later: --at takes" "$HEAPPROF" $cmd "$DB" --at later $lim
	expect2 "$mode: an unknown option" "heapprof: --frobnicate: unknown option" \
		"$HEAPPROF" $cmd "$DB" --frobnicate 1 $lim
done
expect2 "check: a bad size" "heapprof: 12XB: not a size" \
	"$HEAPPROF" check "$DB" --max-retained 12XB
expect2 "check: no limit" "no limit to check" "$HEAPPROF" check "$DB"
expect2 "check: a mark's occurrence must be a number from 1" "takes #N (N from 1)" \
	"$HEAPPROF" check "$DB" --at 'mark:x#0' --max-retained 1G
expect2 "report: a mark no process made" "heapprof: mark:x: no process has this mark" \
	"$HEAPPROF" report "$DB" --at mark:x
expect2 "report: an instant after the process ended" \
	"heapprof: 999: --at is past the end: pid [0-9]* ran 0\\.[0-9]* s" \
	"$HEAPPROF" report "$DB" --at 999
rm -f "$TMP/page.html"
# output that cannot be written (a full disk): one line naming stdout and
# exit 2, not 0 over a report that was lost
if [ -w /dev/full ]; then
	for args in "report $DB" "report $DB --format json" "report $DB --format html" \
		"check $DB --max-peak 1G --format json" "diff $DB $DB" "advise $DB --no-policies"; do
		"$HEAPPROF" $args >/dev/full 2>"$TMP/err"
		check "$args > /dev/full: exit 2, one line names stdout" "2|1|1" \
			"$?|$(wc -l <"$TMP/err" | tr -d ' ')|$(grep -c 'heapprof: stdout: No space left on device' "$TMP/err")"
	done
	"$HEAPPROF" check "$DB" --max-peak 1 >/dev/full 2>"$TMP/err"
	check "check over its limit > /dev/full: its exit 1 stands, stdout named" "1|1" \
		"$?|$(grep -c 'heapprof: stdout: No space left on device' "$TMP/err")"
else
	echo "note: no /dev/full: output errors not checked"
fi
expect2 "report: a bad format" "--format takes text, json or html" \
	"$HEAPPROF" report "$DB" --format xml
expect2 "report: a bad --top" "--top takes a number" "$HEAPPROF" report "$DB" --top -3
expect2 "report: -o without html" "-o is for --format html" \
	"$HEAPPROF" report "$DB" -o "$TMP/page.html"
check "no page was written by any of it" no "$([ -e "$TMP/page.html" ] && echo yes || echo no)"
check "the database was not changed by any of it" "$sum" "$(md5sum <"$DB")"
check "and still reports" 0 "$("$HEAPPROF" report "$DB" >/dev/null 2>&1; echo $?)"
finish
