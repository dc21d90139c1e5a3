#!/bin/sh
# SPDX-License-Identifier: MIT
# check-commands.sh COMMANDS - the first test of the suite: every external
# command that the build and the tests call (scripts/commands.txt) is an
# executable file in PATH (a shell builtin of the same name does not count:
# tests run some of them by path, or from programs that are not shells).
# For each one missing, one line names its Debian package; then the rest of
# the suite's failures are explained. Commands needed only by bench/ are
# reported as a note.
set -u
list=$1
[ -r "$list" ] || { echo "error: $list: cannot read" >&2; exit 99; }

# in_path CMD: whether PATH has an executable file CMD
in_path() {
	old_ifs=$IFS
	IFS=:
	for d in $PATH; do
		if [ -f "${d:-.}/$1" ] && [ -x "${d:-.}/$1" ]; then
			IFS=$old_ifs
			return 0
		fi
	done
	IFS=$old_ifs
	return 1
}

fail=0 n=0 packages=
while read -r cmd package use rest; do
	case $cmd in '' | '#'*) continue ;; esac
	if [ -z "$package" ] || [ -n "$rest" ]; then
		echo "error: $list: '$cmd $package $use $rest': want COMMAND PACKAGE build|test|bench" >&2
		exit 99
	fi
	case $use in
	build | test | bench) ;;
	*)
		echo "error: $list: $cmd: '$use' is not build, test or bench" >&2
		exit 99 ;;
	esac
	n=$((n + 1))
	in_path "$cmd" && continue
	if [ "$use" = bench ]; then
		echo "note: $cmd not found (only bench/ needs it): install the Debian package $package"
		continue
	fi
	echo "missing: $cmd, needed to $use: install the Debian package $package"
	fail=1
	case " $packages " in *" $package "*) ;; *) packages="$packages $package" ;; esac
done <"$list"
if [ "$fail" -ne 0 ]; then
	echo "sh scripts/deps.sh (as root) installs them; or: apt-get install$packages"
	exit 1
fi
echo "ok: all $n commands of $list found in PATH"
