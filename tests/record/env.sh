#!/bin/sh
# SPDX-License-Identifier: MIT
# env.sh HEAPPROF PROGS LIBHEAPPROF - heapprof's environment variables are
# taken with care: a number too large for its type is not wrapped, a spool
# directory that is not heapprof's gets no files, and a standalone spool
# left behind by a program killed too early is swept; a standalone program
# whose collector died does not wait for it.
. "$(dirname "$0")/lib.sh"
LIB=$3

# bounded CMD...: run it in the background, killed after 60 s (the preload
# would record a timeout command too). Sets pid and rc.
bounded() {
	"$@" &
	pid=$!
	i=0
	while kill -0 $pid 2>/dev/null && [ $i -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -9 $pid 2>/dev/null
	wait $pid
	rc=$?
}

# HEAPPROF_RING_KB=2^54 wrapped to rings of 0 bytes: the program hung
bounded env LD_PRELOAD="$LIB" HEAPPROF_OUTPUT="$TMP/ring.db" \
	HEAPPROF_RING_KB=18014398509481984 "$PROGS/rec-known" >"$TMP/out" 2>"$TMP/err"
check "HEAPPROF_RING_KB=2^54: the program ends with its status" 7 "$rc"
wait_complete "$TMP/ring.db"
check "and it is recorded" 1 "$(q "$TMP/ring.db" 'SELECT count(*) > 100 FROM chunks')"

# a spool directory that is not heapprof's: nothing is written there
mkdir "$TMP/etc" && chmod 755 "$TMP/etc"
LD_PRELOAD=$LIB HEAPPROF_SPOOL=$TMP/etc "$PROGS/rec-known" >"$TMP/out" 2>"$TMP/err"
check "HEAPPROF_SPOOL=a directory of others': the program's status" 7 "$?"
check "no file of heapprof's there" "" "$(ls -A "$TMP/etc")"
check "one line says why" 1 "$(grep -c "HEAPPROF_SPOOL=$TMP/etc is not a spool directory of heapprof's: not recording" "$TMP/err")"
mkdir -m 700 "$TMP/heapprof-x" && chmod 777 "$TMP/heapprof-x"
LD_PRELOAD=$LIB HEAPPROF_SPOOL=$TMP/heapprof-x "$PROGS/rec-known" >"$TMP/out" 2>"$TMP/err"
check "and not into one that others can write" "" "$(ls -A "$TMP/heapprof-x")"

# a fake heapprof whose "collect" kills the program that starts it: the
# program dies before any collector marks its spool
printf '#!/bin/sh\nkill -9 $PPID\n' >"$TMP/killer"
chmod 755 "$TMP/killer"
LD_PRELOAD=$LIB HEAPPROF_OUTPUT=$TMP/killed.db HEAPPROF_BIN=$TMP/killer \
	"$PROGS/rec-known" >/dev/null 2>&1 &
pid=$!
wait $pid
check "a program killed starting its collector" 137 "$?"
# (another heapprof of another test may sweep it first)
"$HEAPPROF" run -o "$TMP/next.db" true 2>/dev/null
check "leaves a spool that the next heapprof sweeps" 0 \
	"$(ls -d /dev/shm/heapprof-"$pid"-* /tmp/heapprof-"$pid"-* ${TMPDIR:+"$TMPDIR"/heapprof-"$pid"-*} 2>/dev/null | wc -l)"

# a fake collector that marks the spool as a process that has ended: the
# program, whose 64 KiB ring fills, finds it gone and runs on unrecorded
cat >"$TMP/dead-collector" <<'SCRIPT'
#!/bin/sh
# heapprof collect --spool DIR --attach PID -- OUTPUT
( : ) & dead=$!
wait
echo "$dead 1 $(stat -L -c %i /proc/self/ns/pid)" >"$3/collector.new" && mv -f "$3/collector.new" "$3/collector"
SCRIPT
chmod 755 "$TMP/dead-collector"
bounded env LD_PRELOAD="$LIB" HEAPPROF_OUTPUT="$TMP/dead.db" HEAPPROF_BIN="$TMP/dead-collector" \
	HEAPPROF_RING_KB=64 "$PROGS/rec-churn" 2 20000 >"$TMP/out" 2>"$TMP/err"
check "a dead standalone collector: the program runs to its end" "0|churned 2 x 20000" \
	"$rc|$(cat "$TMP/out")"
check "and removes its files (the mark stays for the next heapprof)" 0 \
	"$(ls /dev/shm/heapprof-"$pid"-*/P* /tmp/heapprof-"$pid"-*/P* 2>/dev/null | wc -l)"
"$HEAPPROF" run -o "$TMP/next2.db" true 2>/dev/null
check "which sweeps the rest" 0 \
	"$(ls -d /dev/shm/heapprof-"$pid"-* /tmp/heapprof-"$pid"-* 2>/dev/null | wc -l)"
finish
