#!/bin/sh
# SPDX-License-Identifier: MIT
# sweep.sh HEAPPROF PROGS - each heapprof run removes the spools that killed
# collectors left, and never one whose collector runs: a run started
# alongside another survives the other's sweep with nothing lost, also when
# the sweeper sees start times shifted (a time namespace).
#
# Other heapprof runs may run on this machine meanwhile (other test suites):
# the spools this test plants are in its own TMPDIR, which only its own
# runs sweep, and it looks at no spool but its own.
. "$(dirname "$0")/lib.sh"
SPOOLS=$TMP/spools
mkdir "$SPOOLS" || exit 99
ns=$(stat -L -c %i /proc/self/ns/pid)
ticks() { # PID: its start time, field 22 of /proc/PID/stat
	sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f20
}

# plant NAME MARK: a spool directory of ours with one ring file and a mark
plant() {
	mkdir "$SPOOLS/heapprof-test-$1" || exit 99
	touch "$SPOOLS/heapprof-test-$1/P1.0.proc"
	[ -n "$2" ] && printf '%s\n' "$2" >"$SPOOLS/heapprof-test-$1/collector"
}
kept() { # NAME...: yes/no for each planted spool still there
	for n; do
		[ -e "$SPOOLS/heapprof-test-$n/P1.0.proc" ] && printf 'yes ' || printf 'no '
	done
}

# B: a recording that waits (on a fifo: no process to record meanwhile),
# then forks, execs, vforks and spawns, so it makes new files in its spool
# after the sweeps below
mkfifo "$TMP/go" || exit 99
b= holder=
trap 'kill $b $holder 2>/dev/null; rm -rf "$TMP"' EXIT
"$HEAPPROF" run -o "$TMP/b.db" sh -c 'read go <"$0"; exec "$1"' "$TMP/go" "$PROGS/rec-tree" \
	>"$TMP/b.out" 2>"$TMP/b.err" &
b=$!
# its spool, once its program has files there
i=0 spool=
while [ $i -lt 200 ]; do
	prog=$(pgrep -P $b | head -n 1)
	[ -n "$prog" ] && spool=$(tr '\0' '\n' <"/proc/$prog/environ" 2>/dev/null |
		sed -n 's/^HEAPPROF_SPOOL=//p')
	[ -n "$spool" ] && ls "$spool" 2>/dev/null | grep -q '^P.*\.proc$' && break
	sleep 0.05
	i=$((i + 1))
done
check "the recording alongside has its spool ($spool)" yes \
	"$([ -n "$spool" ] && [ -e "$spool/collector" ] && echo yes)"

# spools to sweep: a heapprof's whose collector is gone (its lock is free),
# and an older heapprof's (no lock) whose collector's pid is gone or reused
sh -c 'echo $$' >"$TMP/gone"
plant dead "$(cat "$TMP/gone") 1 $ns lock"
plant dead-old "$(cat "$TMP/gone") 1 $ns"
# spools to keep: a collector that holds its lock (its pid and start time
# as a sweeper in another time namespace might read them); an older
# heapprof's that runs (this shell); one without a mark; another pid
# namespace's
plant locked "1 1 $ns lock"
sh -c 'exec 9<"$0"; flock -x 9; echo >"$1"; exec sleep 300' \
	"$SPOOLS/heapprof-test-locked/collector" "$TMP/locked" </dev/null >/dev/null 2>&1 &
holder=$!
i=0
while [ ! -s "$TMP/locked" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
plant live-old "$$ $(ticks $$) $ns"
plant unmarked ""
plant elsewhere "2147483647 1 1"

# A: a run that sweeps, while B runs
TMPDIR=$SPOOLS "$HEAPPROF" run -o "$TMP/a.db" true 2>/dev/null
check "a run swept the dead collectors' spools" "no no" "$(kept dead dead-old | sed 's/ $//')"
check "and kept a locked one, a live old one, an unmarked one, another pid namespace's" \
	"yes yes yes yes" "$(kept locked live-old unmarked elsewhere | sed 's/ $//')"
check "and the spool of the recording alongside" yes "$([ -e "$spool/collector" ] && echo yes)"

# A sweeper whose start times are shifted (a time namespace with another
# boot time) cannot judge an older heapprof's mark by its start time, and
# needs none for the others: it still keeps what runs.
plant dead2 "$(cat "$TMP/gone") 1 $ns lock"
if unshare -T --boottime 100000 true 2>/dev/null; then
	TMPDIR=$SPOOLS unshare -T --boottime 100000 "$HEAPPROF" run -o "$TMP/a2.db" true 2>/dev/null
	check "a sweeper in another time namespace removed what is dead" no "$(kept dead2 | sed 's/ $//')"
	check "and kept all that runs" "yes yes yes" "$(kept locked live-old | sed 's/ $//') $([ -e "$spool/collector" ] && echo yes)"
else
	echo "note: no time namespace here (unshare -T needs root and Linux 5.6): not checked"
fi
kill $holder
wait $holder 2>/dev/null
holder=
TMPDIR=$SPOOLS "$HEAPPROF" run -o "$TMP/a3.db" true 2>/dev/null
check "once its lock is free, the locked spool is swept too" no "$(kept locked | sed 's/ $//')"

# B goes on: everything it did after the sweeps is recorded
echo go >"$TMP/go"
wait $b
rc=$?
b=
check "the recording alongside: its program's status and output" "0|children: 3 4 4 4" \
	"$rc|$(cat "$TMP/b.out")"
check "its database is complete and intact" "1|ok" \
	"$(q "$TMP/b.db" "SELECT value FROM meta WHERE key = 'complete'")|$(q "$TMP/b.db" 'PRAGMA integrity_check')"
check "nothing lost: sh, then rec-tree's six images, all 12 leaf chunks" "7|12" \
	"$(q "$TMP/b.db" 'SELECT count(*) FROM process')|$(q "$TMP/b.db" 'SELECT count(*) FROM chunk WHERE size = 1004')"
check "nothing dropped or truncated" 0 \
	"$(q "$TMP/b.db" 'SELECT sum(dropped_events) + sum(truncated_records) FROM process')"
check "and its spool is gone" no "$([ -e "$spool" ] && echo yes || echo no)"
finish
