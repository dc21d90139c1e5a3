#!/bin/sh
# SPDX-License-Identifier: MIT
# valgrind.sh HEAPPROF PROGS - what valgrind misses: a program that frees
# everything before it exits, after its heap was pinned for most of its
# run. valgrind finds no leak; heapprof report --at worst shows the
# untrimmable megabytes and names the function that pinned them.
. "$(dirname "$0")/../record/lib.sh"
command -v valgrind >/dev/null 2>&1 || { echo "skip: valgrind not installed"; exit 77; }
valgrind --leak-check=full "$PROGS/pattern" freed-all >"$TMP/vg.out" 2>"$TMP/vg.err"
check "valgrind: the program succeeds" 0 "$?"
check "valgrind: no leaks are possible" 1 \
	"$(grep -c 'All heap blocks were freed -- no leaks are possible' "$TMP/vg.err")"
DB=$TMP/freed.db
"$HEAPPROF" run -o "$DB" "$PROGS/pattern" freed-all 2>"$TMP/run.err"
check "heapprof run: the program succeeds" 0 "$?"
"$HEAPPROF" report "$DB" --at worst >"$TMP/report" 2>&1
check "report: exit 0" 0 "$?"
untrim=$(awk '$1 == "untrimmable" { print $2, $3 }' "$TMP/report")
case $untrim in
*MiB) mib=${untrim% MiB}; mib=${mib%.*} ;;
*) mib=0 ;;
esac
check "report --at worst: tens of MiB untrimmable (got $untrim)" yes \
	"$([ "$mib" -ge 38 ] && echo yes || echo no)"
check "report --at worst: the top pin is keep_config's config string" 1 \
	"$(grep -c '^      keep_config (pattern.c:' "$TMP/report")"
# (the sentence is wrapped: its lines joined)
check "report --at worst: the sentence says what pins it" 1 \
	"$(tr '\n' ' ' <"$TMP/report" | tr -s ' ' |
		grep -o 'cannot be given back while the top pin, a 112-byte chunk from keep_config (pattern.c:[0-9]*), is live: freeing it would let free() trim' |
		wc -l)"
check "at exit nothing of the program's is live" 0 \
	"$("$HEAPPROF" report "$DB" --format json | python3 -c 'import json,sys; print(sum(l["bytes"] for l in json.load(sys.stdin)["processes"][0]["leaks"] if l["function"] == "keep_config"))')"
finish
