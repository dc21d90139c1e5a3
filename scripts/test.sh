#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/test.sh [MESON-TEST-ARGS...] - install what is missing, build with
# warnings as errors, run the whole test suite, then the allocator's tests
# again against a build with every self-check on (build-checks,
# -Ddebug_checks=3), and end with one line "N passed, N failed" counting
# both. With arguments, they go to meson test for ./build only, and the
# second run is left out. VERBOSE=1 shows every test's output, with every
# check that holds ("ok - ..."), not only the failures.
set -u
cd "$(dirname "$0")/.."
sh scripts/deps.sh || exit 1
sh scripts/build.sh build || { echo "0 passed, 1 failed"; exit 1; }
checked=yes
[ $# -gt 0 ] && checked=no
case ${VERBOSE:-0} in
0) ;;
*) set -- --verbose "$@" ;;
esac
meson test -C build --num-processes "$(nproc)" --print-errorlogs "$@"
status=$?
logs=build/meson-logs/testlog.json

# Level 3 checks every arena after every call of the malloc family and
# poisons memory: a call costs as much as the heap has chunks, so only the
# tests whose programs make few calls on small heaps run so:
#   trace-*     every differential trace: byte for byte glibc's heap still
#               (the checks and the poison move nothing), checked at every
#               step of bins, tcache, threads, brk failure, foreign sbrk,
#               hugetlb and the tunables;
#   api-edge-heapprof, pin-demo-glibc-vs-heapprof, exports
#               every entry point's edge cases, and the same output and
#               exports;
#   fork-stress-heapprof
#               forks from threads and from signal handlers (18 s here,
#               4 s at level 0);
#   suite checks (tests/meson.build, only in such a build)
#               mt-stress at 2 threads for 1 round (cross-thread frees,
#               threads' ends, arenas reused), and heap bugs glibc does not
#               notice, which the library must catch;
#   record-known, record-threads, record-tree, record-crash
#               recordings with the checks on: the observer sees the same.
# Left out: the full mt-stress (1.6 M calls: minutes) and cxx-new (47 s; its
# new and delete are malloc, free and aligned_alloc, covered above), the e2e
# programs (python3 alone would take hours), the unit tests (their
# allocator is at level 3 already), everything else (no allocator in it).
if [ "$checked" = yes ]; then
	names=
	if sh scripts/build.sh build-checks -Ddebug_checks=3; then
		names=$(meson test -C build-checks --list 2>/dev/null |
			sed -n 's|^heapprof:[a-z]* / ||p' |
			grep -E '^(trace-.*|api-edge-heapprof|pin-demo-glibc-vs-heapprof|exports|fork-stress-heapprof|mt-stress-checked|checks-catch-.*|record-(known|threads|tree|crash))$')
		[ -n "$names" ] || echo "build-checks (-Ddebug_checks=3): no test to run"
	else
		echo "build-checks (-Ddebug_checks=3): the build failed"
	fi
	if [ -n "$names" ]; then
		# shellcheck disable=SC2086
		meson test -C build-checks --num-processes "$(nproc)" --print-errorlogs "$@" $names
		cstatus=$?
		[ "$status" -eq 0 ] && status=$cstatus
		logs="$logs build-checks/meson-logs/testlog.json"
	else
		status=1
		logs="$logs -"
	fi
fi
python3 - $logs <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    if path == "-":  # a build that failed
        failed += 1
        continue
    for line in open(path):
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
if skipped:
    print(f"{skipped} skipped")
print(f"{passed} passed, {failed} failed")
PY
exit $status
