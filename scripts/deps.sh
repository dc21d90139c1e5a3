#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/deps.sh - install what heapprof needs on Debian 12, as root:
# the compilers and meson to build it, the -dev packages it links with,
# and the programs its tests run. Installs only what is missing (apt-get
# install is idempotent); runs apt-get update once per hour at most.
set -eu

packages="gcc g++ libc6-dev make meson ninja-build pkg-config
	libunwind-dev libdw-dev libelf-dev libsqlite3-dev
	sqlite3 python3 perl valgrind heaptrack util-linux coreutils
	binutils gdb file"

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
