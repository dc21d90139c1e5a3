#!/bin/sh
# SPDX-License-Identifier: MIT
# run-same.sh LIBHEAPPROF PROGRAM [ARGS...]
#
# Run PROGRAM natively and under libheapprof.so; stdout, stderr and exit
# status must be identical, and the native run must succeed.
set -u
lib=$1
shift
dir=$(mktemp -d) || exit 99
trap 'rm -rf "$dir"' EXIT
"$@" > "$dir/n.out" 2> "$dir/n.err"
ns=$?
LD_PRELOAD="$lib" "$@" > "$dir/p.out" 2> "$dir/p.err"
ps=$?
if [ "$ns" -ne 0 ]; then
	echo "native run failed with status $ns"; cat "$dir/n.err"; exit 1
fi
fail=0
[ "$ns" -eq "$ps" ] || { echo "exit status: glibc $ns, heapprof $ps"; fail=1; }
cmp -s "$dir/n.out" "$dir/p.out" || { echo "stdout differs:"; diff "$dir/n.out" "$dir/p.out" | head -20; fail=1; }
cmp -s "$dir/n.err" "$dir/p.err" || { echo "stderr differs:"; diff "$dir/n.err" "$dir/p.err" | head -20; fail=1; }
[ "$fail" -eq 0 ] && echo "ok: identical ($(wc -c < "$dir/n.out") + $(wc -c < "$dir/n.err") bytes, status $ns)"
exit "$fail"
