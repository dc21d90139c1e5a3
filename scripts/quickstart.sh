#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/quickstart.sh - install what is missing, build, and run the
# bundled example: a program whose heap stays ~40 MiB after it freed
# everything but one 100-byte string, under heapprof's allocator, printing
# glibc-style malloc_stats() (the same numbers glibc prints natively).
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
sh scripts/build.sh build
echo "== build/tests/pin-demo under LD_PRELOAD=build/preload/libheapprof.so"
LD_PRELOAD="$PWD/build/preload/libheapprof.so" build/tests/pin-demo
