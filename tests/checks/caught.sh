#!/bin/sh
# SPDX-License-Identifier: MIT
# caught.sh LIBHEAPPROF HEAP_BREAKER MODE INVARIANT - the self-checks of a
# -Ddebug_checks=3 libheapprof.so catch a heap bug glibc does not notice:
# heap-breaker MODE exits 0 natively, and under the library it is aborted
# at the call after the bug with one line naming INVARIANT (heap.h).
set -u
lib=$1 prog=$2 mode=$3 inv=$4
dir=$(mktemp -d) || exit 99
trap 'rm -rf "$dir"' EXIT
fail=0
"$prog" "$mode" >"$dir/n.out" 2>"$dir/n.err"
ns=$?
[ "$ns" -eq 0 ] && grep -q '^not caught$' "$dir/n.out" ||
	{ echo "FAIL - natively, $mode goes unnoticed: status $ns"; cat "$dir/n.err"; fail=1; }
LD_PRELOAD=$lib "$prog" "$mode" >"$dir/p.out" 2>"$dir/p.err"
ps=$?
[ "$ps" -eq 134 ] || { echo "FAIL - under $lib, $mode is aborted (status $ps, want 134)"; fail=1; }
grep -q "^heapprof\[[0-9]*\]: fatal: .*invariant $inv)$" "$dir/p.err" ||
	{ echo "FAIL - the message names invariant $inv"; fail=1; }
grep -q '^not caught$' "$dir/p.out" && { echo "FAIL - it is caught at the next call"; fail=1; }
if [ "$fail" -eq 0 ]; then
	echo "ok: $mode caught: $(cat "$dir/p.err")"
else
	echo "stderr:"
	cat "$dir/p.err"
fi
exit "$fail"
