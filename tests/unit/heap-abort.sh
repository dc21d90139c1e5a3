#!/bin/sh
# SPDX-License-Identifier: MIT
# heap-abort.sh TEST_HEAP - when a heap check stops test-heap, its last
# line says where: test-heap breaks its heap after step 120 of the first
# phase (break-at), and must abort with the check's message naming the
# invariant and a line giving the phase, the seed and that step.
set -u
out=$(mktemp) || exit 99
trap 'rm -f "$out"' EXIT
"$1" 5 300 break-at 120 >"$out" 2>&1
rc=$?
fail=0
[ "$rc" -eq 134 ] || { echo "FAIL - test-heap is aborted (status $rc, want 134)"; fail=1; }
grep -q 'fatal: heap_check: .*(invariant 7)$' "$out" ||
	{ echo "FAIL - the check's message names invariant 7"; fail=1; }
grep -q '^test-heap: aborted in random: seed 5, step 120 ([a-z_-]*)$' "$out" ||
	{ echo "FAIL - a line gives the phase, the seed and the step"; fail=1; }
if [ "$fail" -eq 0 ]; then
	echo "ok: $(grep -e '^test-heap: aborted' "$out")"
else
	tail -n 10 "$out"
fi
exit "$fail"
