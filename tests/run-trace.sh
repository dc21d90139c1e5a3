#!/bin/sh
# SPDX-License-Identifier: MIT
# run-trace.sh HP_TRACE LIBHEAPPROF SCRIPT
#
# Differential test: replay SCRIPT with hp-trace under the real glibc and
# under libheapprof.so, and require byte-identical output (every chunk's
# offset, usable size, the break and mallinfo2 after every step). Lines
# "# env: A=1 B=2" set the environment of both runs; "# setarch: -R" runs
# both under setarch (for address-dependent policy such as THP alignment).
set -u
trace=$1 lib=$2 script=$3
envs=$(sed -n 's/^# env: //p' "$script" | tr '\n' ' ')
arch=$(sed -n 's/^# setarch: //p' "$script" | head -n 1)
out=${TMPDIR:-/tmp}/hp-trace.$$
trap 'rm -f "$out".native "$out".preload' EXIT

run() {
	if [ -n "$arch" ]; then
		env $envs "$@" setarch "$(uname -m)" $arch "$trace" "$script"
	else
		env $envs "$@" "$trace" "$script"
	fi
}

# a run that fails: its last lines (the step it was at, hp-trace's and the
# allocator's messages)
run > "$out.native" 2>&1 || { echo "native run failed: $?"; tail -n 30 "$out.native"; exit 1; }
run LD_PRELOAD="$lib" > "$out.preload" 2>&1 ||
	{ echo "preload run failed: $?"; tail -n 30 "$out.preload"; exit 1; }
if grep -q -e CONTENT-LOST -e NOT-ZERO -e MISALIGNED -e MEMPTR-CHANGED "$out.native" "$out.preload"; then
	echo "a content/alignment check failed:"
	grep -e CONTENT-LOST -e NOT-ZERO -e MISALIGNED -e MEMPTR-CHANGED "$out.native" "$out.preload" | head
	exit 1
fi
if ! cmp -s "$out.native" "$out.preload"; then
	echo "glibc and heapprof disagree (< glibc, > heapprof):"
	diff "$out.native" "$out.preload" | head -40
	exit 1
fi
steps=$(wc -l < "$out.native")
echo "ok: $steps lines identical ($(sed -n 's/^# seed /seed /p' "$out.native" | head -n 1))"
