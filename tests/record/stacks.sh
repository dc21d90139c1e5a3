#!/bin/sh
# SPDX-License-Identifier: MIT
# stacks.sh HEAPPROF PROGS - heapprof run on rec-stacks: most of its 254
# stacks store only their inner frames and name another stack for the rest
# (schema: table stack); every stack read back, through the view
# stack_frame and through the report's own query, is the calls the program
# made, frame by frame.
. "$(dirname "$0")/lib.sh"
DB=$TMP/stacks.db
out=$("$HEAPPROF" run -o "$DB" "$PROGS/rec-stacks" 2>"$TMP/err")
check "exit status" 0 "$?"
check "program output" "kept 254" "$out"
check "integrity" ok "$(q "$DB" 'PRAGMA integrity_check')"
check "most stacks name a tail (so the test reads both kinds)" 1 \
	"$(q "$DB" 'SELECT count(tail_stack) > 200 AND count(*) - count(tail_stack) > 10 FROM stack')"
check "a tail is a stack that stores all its frames" 0 \
	"$(q "$DB" 'SELECT count(*) FROM stack s JOIN stack t ON t.stack_id = s.tail_stack
		WHERE t.tail_stack IS NOT NULL OR s.tail_from < 0 OR s.tail_from >= t.depth
		OR s.depth - s.tail_at != t.depth - s.tail_from')"
check "every stack has depths 0 to depth - 1, once each" 0 \
	"$(q "$DB" 'SELECT count(*) FROM stack s WHERE s.depth != (SELECT count(DISTINCT depth)
		FROM stack_frame f WHERE f.stack_id = s.stack_id AND f.depth BETWEEN 0 AND s.depth - 1)
		OR s.depth != (SELECT count(*) FROM stack_frame f WHERE f.stack_id = s.stack_id)')"

# expect.py: reads "size|depth|function" rows (or a report's JSON with -j)
# and prints one line per stack that is not the calls rec-stacks made for
# its size, then "checked N"
cat >"$TMP/expect.py" <<'PYEOF'
import json, sys

def expected(size):
    leaf, v = size % 16, size // 16
    n = v.bit_length() - 1
    bits = v - (1 << n)
    want = ["leaf_b" if leaf else "leaf_a", "walk"]
    for j in range(n - 1, -1, -1):
        want += ["step_%d" % (bits >> j & 1), "walk"]
    return want + ["main"]

def upto_main(fns):
    return fns[:fns.index("main") + 1] if "main" in fns else fns

stacks = {}
if sys.argv[1:] == ["-j"]:
    for p in json.load(sys.stdin)["processes"]:
        for l in p["leaks"]:
            if l["chunks"] == 1 and l["bytes"] >= 16:
                stacks[l["bytes"]] = [f["function"] for f in l["stack"]]
else:
    for row in sys.stdin.read().splitlines():
        size, depth, fn = row.split("|", 2)
        stacks.setdefault(int(size), []).append(fn)
bad = 0
for size, fns in sorted(stacks.items()):
    if upto_main(fns) != expected(size):
        bad += 1
        print("size %d: %s, not %s" % (size, " ".join(upto_main(fns)), " ".join(expected(size))))
print("checked %d" % (len(stacks) - bad))
PYEOF
check "the view: every stack frame by frame" "checked 254" \
	"$(q "$DB" "SELECT c.size, f.depth, f.function FROM chunks c JOIN frames f
		ON f.stack_id = c.stack_id WHERE c.size >= 16 AND c.size < 2048 AND c.free_ns IS NULL
		ORDER BY c.chunk_id, f.depth" | python3 "$TMP/expect.py" | tail -n 1)"
"$HEAPPROF" report "$DB" --format json --by stack --top 1000 >"$TMP/r.json" 2>"$TMP/err"
check "report --format json" 0 "$?"
check "the report: every leak's stack frame by frame" "checked 254" \
	"$(python3 "$TMP/expect.py" -j <"$TMP/r.json" | tail -n 1)"
finish
