#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/deps.sh - install what heapprof needs on Debian 12, as root:
# the -dev packages it links with, and the package of every command its
# build, tests and benchmarks call (scripts/commands.txt: the compilers,
# meson, and the programs the tests run, down to procps for pgrep).
# Installs only what is missing (apt-get install is idempotent); runs
# apt-get update once per hour at most.
set -eu

commands=$(dirname "$0")/commands.txt
[ -r "$commands" ] || { echo "deps.sh: $commands: cannot read" >&2; exit 1; }
packages="libc6-dev libunwind-dev libdw-dev libelf-dev libsqlite3-dev make gdb file
	$(sed -n 's/^[^#[:space:]][^[:space:]]*[[:space:]]\{1,\}\([^[:space:]]\{1,\}\).*/\1/p' "$commands" | sort -u)"

missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if [ -z "$missing" ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
stamp=/var/lib/apt/periodic/heapprof-update-stamp
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +60 2>/dev/null)" ]; then
	apt-get update -qq
	mkdir -p "$(dirname "$stamp")" && touch "$stamp"
fi
# libunwind-dev replaces LLVM's libunwind-14-dev, which heapprof does not use.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
