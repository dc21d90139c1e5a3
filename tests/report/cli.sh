#!/bin/sh
# SPDX-License-Identifier: MIT
# cli.sh HEAPPROF PROGS - the command line as a user meets it: --help of
# every command on stdout (saying what --at takes), every option also as
# --opt=VALUE, check --format json, and reports that fit 100 columns with a
# table of the processes first when there are several.
. "$(dirname "$0")/../record/lib.sh"

for cmd in "" run report check collect; do
	"$HEAPPROF" $cmd --help >"$TMP/out" 2>"$TMP/err"
	rc=$?
	check "heapprof $cmd --help: exit 0, on stdout, nothing on stderr" "0 yes 0" \
		"$rc $([ -s "$TMP/out" ] && echo yes || echo no) $(wc -c <"$TMP/err" | tr -d ' ')"
done
for cmd in "" report check; do
	"$HEAPPROF" $cmd --help >"$TMP/out"
	check "heapprof $cmd --help says what --at takes" 1 \
		"$(grep -c 'mark:NAME' "$TMP/out" | awk '{ print ($1 > 0) }')"
done
"$HEAPPROF" report --help | grep -q 'worst: the instant with the most untrimmable bytes'
check "report --help explains worst" 0 $?

# --opt=VALUE, everywhere
DB=$TMP/fork.db
"$HEAPPROF" run --output="$TMP/fork.db" --max-depth=32 -- "$PROGS/pattern" fastbins >/dev/null 2>&1
check "run --output=FILE --max-depth=N" "0 yes" "$? $([ -s "$DB" ] && echo yes || echo no)"
check "--max-depth=32 was used" 32 "$(q "$DB" 'SELECT max(depth) FROM stack' | awk '{ print ($1 <= 32 ? 32 : $1) }')"
a=$("$HEAPPROF" report "$DB" --at worst --format json --top 1 --pid "$(q "$DB" 'SELECT pid FROM process WHERE process_id = 1')")
b=$("$HEAPPROF" report "$DB" --at=worst --format=json --top=1 --pid="$(q "$DB" 'SELECT pid FROM process WHERE process_id = 1')")
check "report: --opt=VALUE is --opt VALUE" yes "$([ -n "$a" ] && [ "$a" = "$b" ] && echo yes || echo no)"
"$HEAPPROF" report "$DB" --by=stack --skip=keep_config >/dev/null
check "report --by=stack --skip=PATTERN" 0 $?
"$HEAPPROF" check "$DB" --max-retained=1G --max-leaked=1K --at=exit >/dev/null
check "check --max-retained=1G --max-leaked=1K --at=exit" 0 $?

# check --format json
"$HEAPPROF" check "$DB" --max-untrimmable 1K --max-leaked 1M --format json >"$TMP/check.json"
rc=$?
check "check --format json: exit 1 (a limit fails)" 1 "$rc"
check "check --format json: one entry per limit and process, pass false" "4 False" \
	"$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(len(d["checks"]), d["pass"])' "$TMP/check.json")"

# several processes (the pattern and its trimming child): a table first
"$HEAPPROF" report "$DB" >"$TMP/report"
check "several processes: a table of them first" "$DB: 2 processes, at exit" "$(head -n 1 "$TMP/report")"
check "... one row each" 2 "$(sed -n '3,4p' "$TMP/report" | grep -c 'pattern')"
"$HEAPPROF" report "$DB" --pid "$(q "$DB" 'SELECT pid FROM process WHERE process_id = 1')" >"$TMP/one"
check "one process: no table" "process" "$(head -n 1 "$TMP/one" | cut -d' ' -f1)"

# lines fit 100 columns, C++ names too
"$HEAPPROF" run -o "$TMP/cxx.db" "$PROGS/cxx-new" >/dev/null 2>&1
for args in "" "--by stack" "--top 30"; do
	# shellcheck disable=SC2086
	"$HEAPPROF" report "$TMP/cxx.db" $args >"$TMP/cxx.txt"
	check "cxx-new report $args: lines fit 100 columns" 0 \
		"$(awk 'length($0) > 100' "$TMP/cxx.txt" | wc -l | tr -d ' ')"
done
"$HEAPPROF" report "$DB" >"$TMP/fastbins.txt"
check "fastbins report: lines fit 100 columns" 0 \
	"$(awk 'length($0) > 100' "$TMP/fastbins.txt" | wc -l | tr -d ' ')"
finish
