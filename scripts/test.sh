#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/test.sh [MESON-TEST-ARGS...] - install what is missing, build with
# warnings as errors, run the whole test suite, and end with one line
# "N passed, N failed". VERBOSE=1 shows every test's output, with every
# check that holds ("ok - ..."), not only the failures.
set -u
cd "$(dirname "$0")/.."
sh scripts/deps.sh || exit 1
sh scripts/build.sh build || { echo "0 passed, 1 failed"; exit 1; }
case ${VERBOSE:-0} in
0) ;;
*) set -- --verbose "$@" ;;
esac
meson test -C build --num-processes "$(nproc)" --print-errorlogs "$@"
status=$?
python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
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
