#!/bin/sh
# SPDX-License-Identifier: MIT
# space.sh HEAPPROF PROGS - the program is not killed, nor heapprof, when
# the spool's filesystem is small or full (a container's /dev/shm) or the
# file size limit is low (ulimit -f): the rings get the blocks they need
# before they are used (no SIGBUS), shrink to fit or go elsewhere, and stay
# within the limit (no SIGXFSZ); nothing is lost.
. "$(dirname "$0")/lib.sh"

# run_ns "MOUNTS" TMPDIR ARGS...: heapprof run ARGS in a private mount
# namespace where each "SIZE:DIR" of MOUNTS is a fresh tmpfs of that size,
# with TMPDIR set if not empty.
run_ns() {
	mounts=$1 tmpdir=$2
	shift 2
	unshare -m sh -c '
		for m in $1; do
			mount -t tmpfs -o "size=${m%%:*}" tmpfs "${m#*:}" || exit 99
		done
		[ -n "$2" ] && export TMPDIR="$2"
		shift 2
		exec "$@"' sh "$mounts" "$tmpdir" "$HEAPPROF" run "$@"
}

if [ "$(id -u)" -ne 0 ] || ! unshare -m true 2>/dev/null; then
	echo "skip: needs root and unshare -m (private mounts)"
	exit 77
fi
# outputs go where no test mount hides them
OUT=$PROGS/space.d
rm -rf "$OUT" && mkdir -p "$OUT/td" || exit 99
trap 'rm -rf "$TMP" "$OUT"' EXIT

# threads' chunks: THREADS x PAIRS churned + one kept each
churned() {
	q "$1" "SELECT count(*) FROM chunks c JOIN processes p USING (process_id)
		WHERE c.alloc_tid != p.pid AND (c.size BETWEEN 40 AND 103 OR c.size >= 3000)"
}

# the issue's case: a 4 MiB /dev/shm (the spool goes elsewhere)
run_ns "4m:/dev/shm" "" -o "$OUT/shm4.db" "$PROGS/rec-churn" 8 20000 >"$TMP/out" 2>"$TMP/err"
check "4 MiB /dev/shm: the program ends normally" "0|churned 8 x 20000" "$?|$(cat "$TMP/out")"
check "and every chunk is recorded, none dropped" "160008|0|1" \
	"$(churned "$OUT/shm4.db")|$(q "$OUT/shm4.db" 'SELECT sum(dropped_events) FROM processes')|$(q "$OUT/shm4.db" "SELECT value FROM meta WHERE key = 'complete'")"

# a container's 64 MiB /dev/shm and 64 threads
run_ns "64m:/dev/shm" "" -o "$OUT/shm64.db" "$PROGS/rec-churn" 64 10000 >"$TMP/out" 2>"$TMP/err"
check "64 MiB /dev/shm, 64 threads: the program ends normally" "0|churned 64 x 10000" \
	"$?|$(cat "$TMP/out")"
check "and every chunk is recorded" "640064|0" \
	"$(churned "$OUT/shm64.db")|$(q "$OUT/shm64.db" 'SELECT sum(dropped_events) FROM processes')"

# The next two mount a tmpfs on /tmp: not when the build is there (a
# checkout in /tmp), which the mount would hide.
case $(cd "$PROGS" && pwd -P)/ in
/tmp/*)
	echo "skip: two cases with a small /tmp (the build is under /tmp)"
	tmp_ok=no
	;;
*) tmp_ok=yes ;;
esac

# nowhere much room: /dev/shm, $TMPDIR and /tmp small; the rings shrink
# so that each of 16 threads gets one
if [ $tmp_ok = yes ]; then
	run_ns "4m:/dev/shm 8m:/tmp 24m:$OUT/td" "$OUT/td" -o "$OUT/small.db" \
		"$PROGS/rec-churn" 16 20000 >"$TMP/out" 2>"$TMP/err"
	check "every spool base small: the program ends normally" "0|churned 16 x 20000" \
		"$?|$(cat "$TMP/out")"
	check "and every chunk is recorded, none dropped" "320016|0" \
		"$(churned "$OUT/small.db")|$(q "$OUT/small.db" 'SELECT sum(dropped_events) FROM processes')"
fi

# a program that forks much (from threads, from signal handlers) with a
# 4 MiB /dev/shm: it is not killed, nor is heapprof, which finishes the
# database (its views are there). The spool goes to /tmp, here a tmpfs
# too: fork-stress's threads make thousands of rings, slow to make on a
# disk of a busy machine, and its deadlock guard is a timeout.
if [ $tmp_ok = yes ]; then
	run_ns "4m:/dev/shm 512m:/tmp" "" -o "$OUT/fork.db" "$PROGS/fork-stress" >"$TMP/out" \
		2>"$TMP/err"
	check "a forking program, 4 MiB /dev/shm: its status, no check of its failed" "0|0" \
		"$?|$(grep -c 'checks, [1-9]' "$TMP/out")"
	grep -q 'checks, [1-9]' "$TMP/out" && grep -v '^ok' "$TMP/out"
	check "and heapprof finished the database" "1|3" \
		"$(q "$OUT/fork.db" "SELECT value FROM meta WHERE key = 'complete'")|$(q "$OUT/fork.db" "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name IN ('processes', 'chunks', 'frames')")"
fi

# standalone recording (HEAPPROF_OUTPUT) in a small /dev/shm
unshare -m sh -c 'mount -t tmpfs -o size=4m tmpfs /dev/shm &&
	LD_PRELOAD="$1/../preload/libheapprof.so" HEAPPROF_OUTPUT="$2" exec "$3" 4 20000' \
	sh "$(dirname "$HEAPPROF")" "$OUT/alone.db" "$PROGS/rec-churn" >"$TMP/out" 2>"$TMP/err"
check "standalone, 4 MiB /dev/shm: the program ends normally" "0|churned 4 x 20000" \
	"$?|$(cat "$TMP/out")"
wait_complete "$OUT/alone.db"
check "and every chunk is recorded" "80004|0" \
	"$(churned "$OUT/alone.db")|$(q "$OUT/alone.db" 'SELECT sum(dropped_events) FROM processes')"

# the file size limit (sh's ulimit -f counts 512-byte blocks): 4 MiB, the
# issue's case, and 8 MiB with threads (rings of 4 MiB)
(ulimit -f 8192 && exec "$HEAPPROF" run -o "$OUT/fsize.db" /bin/echo hi) >"$TMP/out" 2>"$TMP/err"
check "a 4 MiB file size limit: echo prints and exits 0" "0|hi" "$?|$(cat "$TMP/out")"
check "and its chunks are recorded" "1|1" \
	"$(q "$OUT/fsize.db" "SELECT value FROM meta WHERE key = 'complete'")|$(q "$OUT/fsize.db" 'SELECT count(*) > 0 FROM chunks')"
(ulimit -f 16384 && exec "$HEAPPROF" run -o "$OUT/fsize2.db" "$PROGS/rec-churn" 4 20000) \
	>"$TMP/out" 2>"$TMP/err"
check "an 8 MiB file size limit, 4 threads: the program ends normally" "0|churned 4 x 20000" \
	"$?|$(cat "$TMP/out")"
check "and every chunk is recorded" "80004|0" \
	"$(churned "$OUT/fsize2.db")|$(q "$OUT/fsize2.db" 'SELECT sum(dropped_events) FROM processes')"
finish
