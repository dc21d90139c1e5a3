#!/bin/sh
# SPDX-License-Identifier: MIT
# check-verbose.sh C_TEST LIB_SH - VERBOSE is the one switch of the test
# harnesses: with VERBOSE=1 a C test (tests/harness.h) and a shell test
# (tests/record/lib.sh) print "ok - ..." for each check that holds; unset,
# empty or 0, they print only failures and their summary line.
set -u
ctest=$1 lib=$2
dir=$(mktemp -d) || exit 99
trap 'rm -rf "$dir"' EXIT
fail=0

# expect WHAT WANT GOT
expect() {
	[ "$2" = "$3" ] || { echo "FAIL - $1: want $2, got $3"; fail=1; }
}

# oks VERBOSE-VALUE|unset CMD...: the number of "ok - " lines CMD prints
oks() {
	v=$1
	shift
	if [ "$v" = unset ]; then
		(unset VERBOSE; "$@") >"$dir/out" 2>&1
	else
		VERBOSE=$v "$@" >"$dir/out" 2>&1
	fi
	grep -c '^ok - ' "$dir/out"
}

# a shell test with two checks that hold and one that fails
cat >"$dir/shell-test.sh" <<EOF
. "$lib"
check one 1 1
check two 2 2
check three 3 4
finish
EOF
shell_test() {
	sh "$dir/shell-test.sh" /bin/true "$dir"
}

for v in unset "" 0; do
	expect "C harness, VERBOSE=$v: no ok lines" 0 "$(oks "$v" "$ctest")"
	expect "shell harness, VERBOSE=$v: no ok lines" 0 "$(oks "$v" shell_test)"
	expect "shell harness, VERBOSE=$v: the failure is shown" 1 \
		"$(grep -c '^FAIL - three' "$dir/out")"
done
n=$(oks 1 "$ctest")
expect "C harness, VERBOSE=1: an ok line for every check" \
	"$(sed -n 's/^\([0-9]*\) checks, 0 failed$/\1/p' "$dir/out")" "$n"
expect "shell harness, VERBOSE=1: an ok line for each check that holds" 2 "$(oks 1 shell_test)"
[ "$fail" -eq 0 ] && echo "ok: VERBOSE=1 shows every check ($n of $ctest), else only failures"
exit "$fail"
