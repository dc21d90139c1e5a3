# SPDX-License-Identifier: MIT
# lib.sh - helpers for the recording tests (sourced).
#   HEAPPROF  the heapprof command       PROGS  the directory of test programs
# check DESC WANT GOT: a line "FAIL - ..." for a check that fails, and with
# VERBOSE=1 (unset, empty or 0 is quiet) "ok - ..." for one that holds;
# `finish` exits 1 if any failed.
set -u
HEAPPROF=$(realpath "$1")
PROGS=$(realpath "$2")
SRC=$(cd "$(dirname "$0")/../progs" && pwd)
TMP=$(mktemp -d) || exit 99
trap 'rm -rf "$TMP"' EXIT
failures=0
checks=0

command -v sqlite3 >/dev/null 2>&1 || { echo "skip: sqlite3 not installed"; exit 77; }

check() {
	checks=$((checks + 1))
	if [ "$2" = "$3" ]; then
		case ${VERBOSE:-0} in
		0) ;;
		*) echo "ok - $1" ;;
		esac
	else
		failures=$((failures + 1))
		echo "FAIL - $1: want [$2], got [$3]"
	fi
	return 0
}

# q DB SQL: one query, its rows.
q() {
	sqlite3 -batch -bail "$1" "$2" 2>&1
}

# line FILE TAG: the line number of the marker in a source file.
line() {
	grep -n "$2" "$1" | head -n 1 | cut -d: -f1
}

# wait_complete DB: wait (30 s at most) for a collector that runs on its
# own (HEAPPROF_OUTPUT) to mark DB complete.
wait_complete() {
	_w=0
	while [ "$(q "$1" "SELECT value FROM meta WHERE key = 'complete'" 2>/dev/null)" != 1 ] &&
		[ $_w -lt 300 ]; do
		sleep 0.1
		_w=$((_w + 1))
	done
}

finish() {
	echo "$checks checks, $failures failed"
	[ "$failures" -eq 0 ]
	exit $?
}
