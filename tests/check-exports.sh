#!/bin/sh
# SPDX-License-Identifier: MIT
# check-exports.sh LIBHEAPPROF MAPFILE
#
# libheapprof.so must export exactly the names its version script lists
# (the malloc family, _exit, _Exit and the wait family, heapprof_*), all
# unversioned, and nothing else: a stray export could interpose on the
# program's own symbols. The process-end names must be among them: without
# them a child reaped by its own parent has no recorded end.
set -u
lib=$1 map=$2
ends="_exit _Exit wait __wait waitpid __waitpid wait3 wait4 waitid"
# the names between "global:" and "local:" (heapprof_mark is listed by name,
# so it must be there; the wildcard heapprof_* would let later ones in)
want=$(awk '/global:/ {on = 1; next} /local:/ {on = 0} on' "$map" | tr ' ;\t' '\n\n\n' |
	grep -E '^[A-Za-z_][A-Za-z0-9_]*$' | sort -u)
pattern=$(awk '/global:/ {on = 1; next} /local:/ {on = 0} on' "$map" | tr ' ;\t' '\n\n\n' |
	grep -E '\*$' | sed 's/\*$//')
have=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort -u)
versioned=$(nm -D --defined-only "$lib" | awk '$3 ~ /@/ {print $3}')
fail=0
for s in $have; do
	echo "$want" | grep -qx "$s" && continue
	ok=0
	for p in $pattern; do
		case $s in "$p"*) ok=1 ;; esac
	done
	[ $ok -eq 1 ] || { echo "unexpected export: $s"; fail=1; }
done
for s in $want; do
	echo "$have" | grep -qx "$s" || { echo "missing export: $s"; fail=1; }
done
for s in $ends; do
	echo "$want" | grep -qx "$s" || { echo "not in $map: $s"; fail=1; }
done
[ -z "$versioned" ] || { echo "versioned exports: $versioned"; fail=1; }
[ $fail -eq 0 ] && echo "ok: $(echo "$have" | wc -l) exports, all unversioned"
exit $fail
