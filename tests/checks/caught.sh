#!/bin/sh
# SPDX-License-Identifier: MIT
# caught.sh LIBHEAPPROF INVARIANT PATTERN CMD... - the self-checks of a
# -Ddebug_checks=3 libheapprof.so catch a heap bug that glibc does not
# notice: CMD exits 0 natively; under the library it is aborted at the call
# after the bug, with one line naming INVARIANT (heap.h), and its output
# (stdout and stderr) has a line matching PATTERN (where it was).
set -u
lib=$1 inv=$2 pattern=$3
shift 3
dir=$(mktemp -d) || exit 99
trap 'rm -rf "$dir"' EXIT
fail=0
"$@" >"$dir/native" 2>&1
ns=$?
[ "$ns" -eq 0 ] || { echo "FAIL - natively, the bug goes unnoticed: status $ns"; fail=1; }
LD_PRELOAD=$lib "$@" >"$dir/checked" 2>&1
ps=$?
[ "$ps" -eq 134 ] || { echo "FAIL - under $lib, it is aborted (status $ps, want 134)"; fail=1; }
grep -q "^heapprof\[[0-9]*\]: fatal: .*invariant $inv)$" "$dir/checked" ||
	{ echo "FAIL - the message names invariant $inv"; fail=1; }
grep -q -- "$pattern" "$dir/checked" || { echo "FAIL - the output says where: $pattern"; fail=1; }
if [ "$fail" -eq 0 ]; then
	echo "ok: caught: $(grep -e 'fatal:' -e "$pattern" "$dir/checked" | tr '\n' ' ')"
else
	echo "output natively:"
	tail -n 5 "$dir/native"
	echo "output under $lib:"
	tail -n 10 "$dir/checked"
fi
exit "$fail"
