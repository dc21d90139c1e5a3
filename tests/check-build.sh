#!/bin/sh
# SPDX-License-Identifier: MIT
# check-build.sh BUILD_SH SCRATCH - scripts/build.sh shows what the compiler
# said when a build fails. It configures a scratch build of this tree with
# a macro defined on the command line that heap.h defines again (with
# warnings as errors, every preload file fails to compile) and requires:
# status 1, the compiler's error on stderr, and none of ninja's progress
# lines.
set -u
build_sh=$1 dir=$2
rm -rf "$dir"
mkdir -p "$dir" || exit 99
sh "$build_sh" "$dir/b" -Dc_args=-DHP_MINSIZE=1 >"$dir/out" 2>"$dir/err"
rc=$?
fail=0
[ "$rc" -eq 1 ] || { echo "FAIL - a failed build exits 1, not $rc"; fail=1; }
grep -q 'heap.h:[0-9]*: error: "HP_MINSIZE" redefined' "$dir/err" ||
	{ echo "FAIL - the compiler's error is on stderr"; fail=1; }
grep -q '^build.sh: building .* failed:$' "$dir/err" ||
	{ echo "FAIL - build.sh says the build failed"; fail=1; }
if grep -q '^\[[0-9]*/[0-9]*\] ' "$dir/err"; then
	echo "FAIL - ninja's progress lines are left out"
	fail=1
fi
[ -s "$dir/out" ] && { echo "FAIL - nothing on stdout"; fail=1; }
if [ "$fail" -ne 0 ]; then
	echo "stderr of build.sh:"
	head -n 40 "$dir/err"
else
	echo "ok: a failed build shows $(grep -c 'error:' "$dir/err") compiler errors"
	rm -rf "$dir"
fi
exit "$fail"
