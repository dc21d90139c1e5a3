#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/build.sh [BUILDDIR [-DOPTION=VALUE...]] - configure (warnings are
# errors) and build. Quiet when all goes well; when configuring or
# compiling fails, what meson and the compiler said goes to stderr (all but
# ninja's progress lines) and the status is 1.
set -u
cd "$(dirname "$0")/.."
dir=${1:-build}
[ $# -gt 0 ] && shift
log=$(mktemp) || exit 1
trap 'rm -f "$log"' EXIT
if [ -f "$dir/build.ninja" ]; then
	set -- --reconfigure "$@"
fi
if ! meson setup "$@" -Dwerror=true "$dir" >"$log" 2>&1; then
	echo "build.sh: meson setup of $dir failed:" >&2
	cat "$log" >&2
	exit 1
fi
if ! meson compile -C "$dir" >"$log" 2>&1; then
	echo "build.sh: building $dir failed:" >&2
	grep -v '^\[[0-9]*/[0-9]*\] ' "$log" >&2
	exit 1
fi
exit 0
