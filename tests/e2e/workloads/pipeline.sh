#!/bin/sh
# SPDX-License-Identifier: MIT
# pipeline.sh - fork/exec-heavy, deterministic shell workload for
# real-programs.sh: a loop spawning sort, uniq -c, awk, sed, tr, subshells
# and command substitutions; everything it prints is a function of the loop
# counter only. Run with LC_ALL=C; the argument is the number of rounds.
set -eu
rounds=${1:-100}
i=0
total=0
seen=
while [ "$i" -lt "$rounds" ]; do
	i=$((i + 1))
	# a block of text that varies with the round
	words=$(awk -v r="$i" 'BEGIN {
		s = r * 7919
		for (k = 0; k < 400; k++) {
			s = (s * 1103515245 + 12345) % 2147483648
			printf "w%d%s ", int(s / 65536) % 37, (k % 5 ? "" : "\n")
		}
	}')
	top=$(printf '%s\n' "$words" | tr ' ' '\n' | sed '/^$/d; s/^w//' |
		sort -n | uniq -c | sort -k1,1nr -k2,2n | head -n 3 |
		awk '{ printf "%s%s:%s", (NR > 1 ? "," : ""), $2, $1 }')
	n=$( (printf '%s\n' "$words" | wc -w) | tr -d ' ')
	lines=$(echo "$words" | sed -n '/w1[0-9]/p' | wc -l | tr -d ' ')
	total=$((total + n + lines))
	if [ $((i % 10)) -eq 0 ]; then
		echo "round $i: words=$n lines-with-w1x=$lines top=$top"
	fi
	seen="$seen$top,"
done
echo "total: $total"
all=$(printf '%s' "$seen" | tr ',' '\n' | sort)
printf '%s\n' "$all" | uniq -c | sort -k1,1nr -k2 | head -n 5 | sed 's/^ *//'
echo "summary: $(printf '%s\n' "$all" | wc -l | tr -d ' ') lines," \
	"$(printf '%s\n' "$all" | sort -u | wc -l | tr -d ' ') distinct"
