#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/build.sh [BUILDDIR] - configure (warnings are errors) and build.
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}
if [ -f "$dir/build.ninja" ]; then
	meson setup --reconfigure -Dwerror=true "$dir" >/dev/null
else
	meson setup -Dwerror=true "$dir" >/dev/null
fi
meson compile -C "$dir" >/dev/null
