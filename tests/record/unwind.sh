#!/bin/sh
# SPDX-License-Identifier: MIT
# unwind.sh HEAPPROF PROGS LIB_A LIB_B - the capture-equality test.
#
# Runs programs under `heapprof run` with HEAPPROF_UNWIND_CHECK set to a
# directory: every stack capture is then made by heapprof's unwinder and by
# libunwind's unw_backtrace, compared frame by frame (the frames a stack
# keeps), and each process writes its counts there at exit. Any difference
# fails the test, and so does a run where heapprof's unwinder did not make
# at least 80% of the captures itself (the comparison would then say
# little). The programs: unwind-check (random call depths through frames of
# every shape, threads, a thread on its own stack, signal handlers on the
# thread's and on an alternate stack, longjmp, and a library unloaded and
# replaced at the same address by one whose frame differs: LIB_A, LIB_B),
# unwind-check-cxx (C++ exceptions: throw, catch, rethrow, destructors that
# allocate during unwinding, threads), mt-stress (threads allocating as they
# end), python3, and gcc (driver, cc1, as).
. "$(dirname "$0")/lib.sh"
LIB_A=$(realpath "$3")
LIB_B=$(realpath "$4")
WL=$(cd "$(dirname "$0")/../e2e/workloads" && pwd)

# run NAME MIN_PROCS CMD...: CMD under heapprof run with the check on, in
# its own directory; then the checks on its processes' reports.
run() {
	name=$1 min=$2
	shift 2
	mkdir "$TMP/$name" "$TMP/$name.rep" || exit 99
	(cd "$TMP/$name" && HEAPPROF_UNWIND_CHECK="$TMP/$name.rep" \
		"$HEAPPROF" run -o "$TMP/$name.db" -- "$@") >"$TMP/$name.out" 2>"$TMP/$name.err"
	check "$name: exit status" 0 "$?"
	check "$name: no difference logged" "" "$(grep 'unwind check: frame' "$TMP/$name.err" | head -n 3)"
	cat "$TMP/$name.rep"/unwind.* >"$TMP/$name.counts" 2>/dev/null
	check "$name: processes that reported" 1 \
		"$(awk -v min="$min" 'END { print (NR >= min) }' "$TMP/$name.counts")"
	# per process: every capture compared, none differs, >= 80% ours
	bad=$(awk '{
		for (i = 1; i <= NF; i++) {
			split($i, kv, "=")
			v[kv[1]] = kv[2]
		}
		if (v["captures"] + 0 == 0 || v["compared"] != v["captures"] || v["differ"] != 0 ||
		    v["libunwind"] * 5 > v["captures"])
			print
	}' "$TMP/$name.counts")
	check "$name: every capture equal to libunwind's, most made by heapprof" "" "$bad"
	[ -n "${VERBOSE:-}" ] && cat "$TMP/$name.counts"
	return 0
}

run unwind-check 1 "$PROGS/unwind-check" 1 3000 "$LIB_A" "$LIB_B"
check "unwind-check: output" "dl: same address
ok" "$(cat "$TMP/unwind-check.out")"
check "unwind-check: captures" 1 "$(sed -n 's/.* captures=\([0-9]*\) .*/\1/p' \
	"$TMP/unwind-check.counts" | awk '{ print ($1 > 10000) }')"

run unwind-check-cxx 1 "$PROGS/unwind-check-cxx" 7 400
check "unwind-check-cxx: output" ok "$(cat "$TMP/unwind-check-cxx.out")"

# threads re-created every round, allocating in their TSD destructors: the
# captures of an ending thread are walked too (libunwind's per-thread cache,
# made that late, would never be freed)
run mt-stress 1 "$PROGS/mt-stress" 4 4
check "mt-stress: none left to libunwind" 0 "$(sed -n 's/.* libunwind=\([0-9]*\) .*/\1/p' \
	"$TMP/mt-stress.counts")"

# the interpreter itself, not a wrapper script (pyenv's shims are shell)
if py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) && [ -x "$py" ]; then
	# a quarter of alloc.py's work (every capture is made twice)
	sed -e 's/churn(200000)/churn(50000)/' -e 's/records(30000)/records(7500)/' \
		-e 's/strings(100000)/strings(25000)/' -e 's/tuples(120000)/tuples(30000)/' \
		"$WL/alloc.py" >"$TMP/alloc.py" || exit 99
	PYTHONMALLOC=malloc PYTHONHASHSEED=0 run python3 1 "$py" "$TMP/alloc.py"
	check "python3: output" 1 "$(grep -c '^sha256: ' "$TMP/python3.out")"
fi
if command -v gcc >/dev/null 2>&1; then
	awk -v n=60 -f "$WL/gen-big-c.awk" >"$TMP/big.c" || exit 99
	run gcc 3 gcc -O2 -c "$TMP/big.c" -o "$TMP/big.o"
	check "gcc: object written" 1 "$(test -s "$TMP/big.o" && echo 1)"
fi
finish
