#!/bin/sh
# SPDX-License-Identifier: MIT
# real-programs.sh LIBHEAPPROF WORKLOAD [HEAPPROF]
#
# With HEAPPROF (the heapprof command), the second run is `heapprof run`
# instead of a bare LD_PRELOAD: the program's output and status must still
# be the native ones (heapprof's own summary lines, "heapprof: ...", on
# stderr are set aside), and the database must be complete and intact.
#
# End-to-end differential test on real programs: runs one allocation-heavy
# WORKLOAD (python3, sqlite3, perl, gcc or sh) twice, natively and with
# LD_PRELOAD=LIBHEAPPROF, and requires the same exit status, byte-identical
# stdout and byte-identical stderr (for gcc also a byte-identical object
# file). Children inherit LD_PRELOAD, so for gcc (cc1, as) and sh (sort,
# awk, sed, ...) every process of the run uses heapprof. This proves that
# heapprof is a drop-in malloc for unmodified programs, across fork/exec.
#
# The native run must itself succeed (status 0, non-empty stdout), so the
# test cannot pass vacuously. A missing tool is a skip (exit 77); a bad
# argument or a library that does not load is a hard error (exit 99).
# Inputs are generated deterministically (fixed seeds, LC_ALL=C).
set -u

if [ $# -ne 2 ] && [ $# -ne 3 ]; then
	echo "usage: $0 LIBHEAPPROF python3|sqlite3|perl|gcc|sh [HEAPPROF]" >&2
	exit 99
fi
lib=$1 workload=$2 heapprof=${3:-}
if [ -n "$heapprof" ]; then
	heapprof=$(readlink -f "$heapprof") || exit 99
fi
wl=$(cd "$(dirname "$0")/workloads" && pwd -P) || exit 99
if [ ! -f "$lib" ]; then
	echo "error: $lib: no such library" >&2
	exit 99
fi
# an absolute, canonical path: the runs change directory, and the check
# below compares it with /proc/self/maps (which shows symlinks resolved)
lib=$(readlink -f "$lib") || exit 99

need() {
	for tool; do
		if ! command -v "$tool" >/dev/null 2>&1; then
			echo "skip: $workload: $tool not found"
			exit 77
		fi
	done
}

case $workload in
python3) need python3 ;;
sqlite3) need sqlite3 ;;
perl) need perl ;;
gcc) need gcc awk cmp ;;
sh) need sh awk sed sort uniq tr wc head ;;
*)
	echo "error: unknown workload '$workload'" >&2
	exit 99 ;;
esac
need timeout date diff cmp

tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The same environment for both runs; only LD_PRELOAD differs.
LC_ALL=C TZ=UTC TMPDIR=$tmp
PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0
export LC_ALL TZ TMPDIR PYTHONMALLOC PYTHONHASHSEED PYTHONDONTWRITEBYTECODE
export PERL_HASH_SEED PERL_PERTURB_KEYS
unset LD_PRELOAD

# Is the library really mapped into a preloaded process? (ld.so only warns
# when it cannot preload, which would make the comparison meaningless.)
if ! env LD_PRELOAD="$lib" cat /proc/self/maps 2>"$tmp/maps.err" |
		grep -qF "$lib"; then
	echo "error: $lib is not mapped under LD_PRELOAD:" >&2
	head -n 5 "$tmp/maps.err" >&2
	exit 99
fi

if [ "$workload" = gcc ]; then
	awk -v n=800 -f "$wl/gen-big-c.awk" >"$tmp/big.c" || exit 99
fi

# run MODE: the workload in its own directory $tmp/MODE; leaves MODE.out,
# MODE.err, MODE.rc and MODE.ns (wall time in nanoseconds) in $tmp.
run() {
	mode=$1
	mkdir "$tmp/$mode" || exit 99
	if [ "$mode" = preload ] && [ -n "$heapprof" ]; then
		set -- env HEAPPROF_LIB="$lib" "$heapprof" run -o "$tmp/rec.db" --
	elif [ "$mode" = preload ]; then
		set -- env LD_PRELOAD="$lib"
	else
		set -- env
	fi
	case $workload in
	python3) set -- "$@" python3 "$wl/alloc.py" ;;
	sqlite3) set -- "$@" sqlite3 -bail -batch :memory: ".read $wl/sqlite.sql" ;;
	perl) set -- "$@" perl "$wl/text.pl" ;;
	gcc) set -- "$@" gcc -O2 -Wall -c ../big.c -o big.o ;;
	sh) set -- "$@" sh "$wl/pipeline.sh" ;;
	esac
	# heapprof run finishes the database after the program, and with
	# HEAPPROF_SELFCHECK (the suites') replays it: python3's 16.8M chunks
	# take it past two minutes on a loaded machine
	limit=120
	[ "$mode" = preload ] && [ -n "$heapprof" ] && limit=400
	t0=$(date +%s%N)
	(cd "$tmp/$mode" && exec timeout $limit "$@") \
		</dev/null >"$tmp/$mode.out" 2>"$tmp/$mode.err"
	echo $? >"$tmp/$mode.rc"
	t1=$(date +%s%N)
	echo $((t1 - t0)) >"$tmp/$mode.ns"
}

bytes() {
	if [ -f "$tmp/$1" ]; then wc -c <"$tmp/$1" | tr -d ' '; else echo 0; fi
}

secs() {
	awk '{ printf "%.2f", $1 / 1e9 }' "$tmp/$1.ns"
}

# what the native run must produce: gcc prints nothing, but writes big.o
product=native.out what=stdout
if [ "$workload" = gcc ]; then
	product=native/big.o what=big.o
fi
run native
rc=$(cat "$tmp/native.rc")
if [ "$rc" -ne 0 ] || [ ! -s "$tmp/$product" ]; then
	echo "FAIL: $workload: the native run itself failed (status $rc," \
		"$(bytes "$product") B of $what)" \
		"- nothing to compare"
	head -n 30 "$tmp/native.err"
	exit 1
fi
run preload
if [ -n "$heapprof" ]; then
	# heapprof's own lines are not the program's
	grep -v '^heapprof: ' "$tmp/preload.err" >"$tmp/preload.err.prog"
	grep '^heapprof: ' "$tmp/preload.err" >"$tmp/heapprof.lines"
	mv "$tmp/preload.err.prog" "$tmp/preload.err"
fi

fail=0
report() {
	echo "FAIL: $workload: $1 differs (< native, > LD_PRELOAD=$lib)"
	fail=1
}
if ! cmp -s "$tmp/native.rc" "$tmp/preload.rc"; then
	report "exit status"
	echo "native $rc, preload $(cat "$tmp/preload.rc") (124 is timeout)"
fi
for stream in out err; do
	if ! cmp -s "$tmp/native.$stream" "$tmp/preload.$stream"; then
		report "std$stream"
		diff "$tmp/native.$stream" "$tmp/preload.$stream" | head -n 30
	fi
done
extra=
if [ "$workload" = gcc ]; then
	if ! cmp -s "$tmp/native/big.o" "$tmp/preload/big.o"; then
		report "big.o"
		cmp "$tmp/native/big.o" "$tmp/preload/big.o" 2>&1 | head -n 3
	fi
	extra=", big.o $(bytes native/big.o) B identical"
fi
if [ -n "$heapprof" ]; then
	check_db() {
		sqlite3 -batch "$tmp/rec.db" "$1" 2>&1
	}
	if ! command -v sqlite3 >/dev/null 2>&1; then
		echo "skip: $workload: sqlite3 not found to check the database"
		exit 77
	fi
	if [ "$(check_db 'PRAGMA integrity_check')" != ok ] ||
		[ "$(check_db "SELECT value FROM meta WHERE key = 'complete'")" != 1 ]; then
		echo "FAIL: $workload: the database is not complete and intact"
		cat "$tmp/heapprof.lines"
		fail=1
	fi
	chunks=$(check_db 'SELECT count(*) FROM chunk')
	lost=$(check_db 'SELECT sum(dropped_events + truncated_records + bad_records) FROM process')
	if [ "${chunks:-0}" -lt 100 ] || [ "$lost" != 0 ]; then
		echo "FAIL: $workload: $chunks chunks recorded, $lost events lost" \
			"(pid|dropped|truncated|bad: $(check_db "SELECT group_concat(pid || '|' || dropped_events || '|' || truncated_records || '|' || bad_records, ' ') FROM process"))"
		fail=1
	fi
	extra="$extra, $chunks chunks in $(check_db 'SELECT count(*) FROM process') process(es)"
	# a cached chunk released after its row was written has its release in
	# chunk_released, and the chunk view shows it
	late=$(check_db "SELECT count(*) FROM chunk_released r JOIN chunk c USING (chunk_id)
		WHERE c.released_ns IS NOT NULL AND c.fate IN (1, 2)
		  AND c.released_ns = c.free_ns + r.released_after
		  AND (SELECT p.released_after FROM chunk_packed p WHERE p.chunk_id = r.chunk_id) IS NULL")
	if [ "$late" != "$(check_db 'SELECT count(*) FROM chunk_released')" ]; then
		echo "FAIL: $workload: of $(check_db 'SELECT count(*) FROM chunk_released') late releases, the chunk view shows $late"
		fail=1
	fi
	extra="$extra, $late released late"
	# every pin is a chunk of the program's, or labelled as the
	# allocator's (its own memory, or free space it keeps cached)
	if ! "$heapprof" report "$tmp/rec.db" --top 100000 --format json >"$tmp/report.json" ||
		! python3 - "$tmp/report.json" <<'PY'
import json, sys
procs = json.load(open(sys.argv[1]))["processes"]
pins = [p for r in procs for p in r["pins"]]
bad = [p for p in pins if p["chunk_id"] == 0 and p["state"] not in ("stashed", "allocator")]
for p in bad[:5]:
    print("pin without a chunk:", p)
sys.exit(1 if bad else 0)
PY
	then
		echo "FAIL: $workload: the report has pins that are no chunk and not labelled so"
		fail=1
	fi
fi
if [ "$fail" -ne 0 ]; then
	echo "reproduce: sh $0 $lib $workload $heapprof"
	exit 1
fi

echo "ok: $workload: status 0, stdout $(bytes native.out) B," \
	"stderr $(bytes native.err) B identical$extra;" \
	"native $(secs native) s, $( [ -n "$heapprof" ] && echo heapprof run || echo preload) $(secs preload) s"
