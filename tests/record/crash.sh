#!/bin/sh
# SPDX-License-Identifier: MIT
# crash.sh HEAPPROF PROGS - programs that end abruptly (SIGSEGV, abort,
# _exit from a thread, SIGKILL from outside) lose nothing they recorded,
# and the process row says how they ended.
. "$(dirname "$0")/lib.sh"
for mode in segv abort thread-exit kill; do
	DB=$TMP/$mode.db
	if [ "$mode" = kill ]; then
		"$HEAPPROF" run -o "$DB" "$PROGS/rec-crash" kill "$TMP/pid" >/dev/null 2>&1 &
		hp=$!
		i=0
		while [ ! -s "$TMP/pid" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
		kill -9 "$(cat "$TMP/pid")"
		wait $hp
		rc=$?
	else
		"$HEAPPROF" run -o "$DB" "$PROGS/rec-crash" $mode >/dev/null 2>&1
		rc=$?
	fi
	case $mode in
	segv) want_rc=139 want_end="signal||11" ;;
	abort) want_rc=134 want_end="signal||6" ;;
	thread-exit) want_rc=9 want_end="exit|9|" ;;
	kill) want_rc=137 want_end="signal||9" ;;
	esac
	check "$mode: heapprof's exit status" "$want_rc" "$rc"
	check "$mode: all 250 chunks recorded" 250 "$(q "$DB" 'SELECT count(*) FROM chunk WHERE size = 4321')"
	check "$mode: how it ended" "$want_end" "$(q "$DB" 'SELECT end_reason, exit_status, exit_signal FROM process')"
	check "$mode: database intact" ok "$(q "$DB" 'PRAGMA integrity_check')"
done
finish
