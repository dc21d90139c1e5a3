#!/bin/sh
# SPDX-License-Identifier: MIT
# known.sh HEAPPROF PROGS - heapprof run on rec-known: every count, size,
# backing, call and allocation site in the database is what the program
# did, stacks are symbolized to the right function, file and line, and the
# process row has the exit status.
. "$(dirname "$0")/lib.sh"
DB=$TMP/known.db
out=$("$HEAPPROF" run -o "$DB" "$PROGS/rec-known" 2>"$TMP/err")
rc=$?
check "exit status passed through" 7 "$rc"
check "program output" "kept 56" "$out"
check "summary names the database" 1 "$(grep -c "wrote $DB" "$TMP/err")"
check "integrity" ok "$(q "$DB" 'PRAGMA integrity_check')"
check "complete" 1 "$(q "$DB" "SELECT value FROM meta WHERE key = 'complete'")"
check "one process" 1 "$(q "$DB" 'SELECT count(*) FROM processes')"
check "exit recorded" "exit|7|" "$(q "$DB" 'SELECT end_reason, exit_status, exit_signal FROM process')"
check "nothing dropped or truncated" "0|0" "$(q "$DB" 'SELECT dropped_events, truncated_records FROM process')"

site() { # FUNCTION: chunks whose innermost frame is FUNCTION
	echo "SELECT count(*) FROM chunks c JOIN frames f ON f.stack_id = c.stack_id AND f.depth = 0 WHERE f.function = '$1'"
}
src=$SRC/rec-known.c
check "site_a: 100 chunks" 100 "$(q "$DB" "$(site site_a)")"
check "site_a: all 48 bytes, 64-byte chunks" "48|64|100" \
	"$(q "$DB" "SELECT min(size), max(chunk_bytes), count(*) FROM chunks c JOIN frames f ON f.stack_id = c.stack_id AND f.depth = 0 WHERE f.function = 'site_a'")"
check "site_a: 60 freed, 40 live" "60|40" \
	"$(q "$DB" "SELECT sum(free_ns IS NOT NULL), sum(free_ns IS NULL) FROM chunks c JOIN frames f ON f.stack_id = c.stack_id AND f.depth = 0 WHERE f.function = 'site_a'")"
check "site_a: file and line" "rec-known.c|$(line "$src" SITE_A)" \
	"$(q "$DB" "SELECT DISTINCT replace(file, rtrim(file, replace(file, '/', '')), ''), line FROM frames f JOIN chunks c ON c.stack_id = f.stack_id AND f.depth = 0 WHERE f.function = 'site_a'")"
check "site_a: called from main" "main" \
	"$(q "$DB" "SELECT DISTINCT f.function FROM frames f JOIN chunks c ON c.stack_id = f.stack_id AND f.depth = 1 WHERE c.size = 48")"
check "site_b: 10 calloc chunks of 1000, live" "10|calloc|1000|10" \
	"$(q "$DB" "SELECT count(*), min(call), max(size), sum(free_ns IS NULL) FROM chunks c JOIN frames f ON f.stack_id = c.stack_id AND f.depth = 0 WHERE f.function = 'site_b'")"
check "site_b: line" "$(line "$src" SITE_B)" \
	"$(q "$DB" "SELECT DISTINCT line FROM frames f JOIN chunks c ON c.stack_id = f.stack_id AND f.depth = 0 WHERE f.function = 'site_b'")"
check "200 KiB is mmap" "mmap|unmapped" "$(q "$DB" 'SELECT backing, fate FROM chunks WHERE size = 204800')"
check "40 KiB is brk" "brk" "$(q "$DB" 'SELECT backing FROM chunks WHERE size = 40960')"
check "chunk bytes: 40 KiB + 16 for brk, whole pages for mmap (a slack kept in chunk_slack)" \
	"40976 208896|$(q "$DB" 'SELECT chunk_id FROM chunks WHERE size = 204800')|4096|" \
	"$(q "$DB" "SELECT group_concat(chunk_bytes, ' ') FROM (SELECT chunk_bytes FROM chunks WHERE size IN (40960, 204800) ORDER BY size)")|$(q "$DB" 'SELECT chunk_id, slack, align_log2 FROM chunk_slack WHERE align_log2 IS NULL')"
check "site_e: memalign(4096, 1000) keeps its alignment (a chunk_slack row, the chunk view)" \
	"$(q "$DB" 'SELECT chunk_id FROM chunks WHERE size = 1000 AND call = '"'"'memalign'"'"'')|8|12|4096|1" \
	"$(q "$DB" 'SELECT s.chunk_id, s.slack, s.align_log2, c.alignment, (SELECT count(*) FROM chunk_slack WHERE align_log2 IS NOT NULL) FROM chunk_slack s JOIN chunk c USING (chunk_id) WHERE s.align_log2 IS NOT NULL')"
check "mmap chunk line" "$(line "$src" SITE_C_MMAP)" \
	"$(q "$DB" "SELECT line FROM frames f JOIN chunks c ON c.stack_id = f.stack_id AND f.depth = 0 WHERE c.size = 204800")"
check "site_d: in-place realloc keeps its row, moving one makes a new row" "4000|realloc|1" \
	"$(q "$DB" "SELECT size, call, realloc_from IS NOT NULL FROM chunks WHERE size = 4000")"
check "site_d: the moved-from chunk was the resized one (now 60 bytes)" "60" \
	"$(q "$DB" "SELECT size FROM chunks WHERE chunk_id = (SELECT realloc_from FROM chunks WHERE size = 4000)")"
check "site_e: memalign, 4096-aligned user pointer" "memalign|0" \
	"$(q "$DB" "SELECT call, (address + 16) % 4096 FROM chunks WHERE size = 1000 AND call = 'memalign'")"
in_site() { # FUNCTION: the chunks view restricted to FUNCTION's chunks
	echo "(SELECT c.* FROM chunks c JOIN frames f ON f.stack_id = c.stack_id AND f.depth = 0 WHERE f.function = '$1')"
}
check "site_a: the first 7 freed went to the tcache, the rest to a fastbin" "7|53" \
	"$(q "$DB" "SELECT sum(fate = 'tcache'), sum(fate = 'fastbin') FROM $(in_site site_a)")"
check "site_a: the fastbin chunks were released by the consolidation in the 200 KiB malloc" 53 \
	"$(q "$DB" "SELECT count(*) FROM $(in_site site_a) WHERE fate = 'fastbin' AND released_ns > free_ns AND released_ns < (SELECT alloc_ns FROM chunks WHERE size = 204800)")"
check "site_f: reused two tcache chunks of site_a: same address, released as it was allocated" 2 \
	"$(q "$DB" "SELECT count(*) FROM $(in_site site_a) a JOIN $(in_site site_f) f ON f.address = a.address AND f.alloc_ns = a.released_ns WHERE a.fate = 'tcache'")"
check "site_a: the other 5 tcache chunks were still cached at the end" 5 \
	"$(q "$DB" "SELECT count(*) FROM $(in_site site_a) WHERE fate = 'tcache' AND released_ns IS NULL")"
check "times are unique within the process" 0 \
	"$(q "$DB" "SELECT count(*) - count(DISTINCT t) FROM (SELECT alloc_ns AS t FROM chunk UNION ALL SELECT free_ns FROM chunk WHERE free_ns IS NOT NULL UNION ALL SELECT ns FROM heap_events)")"
check "each process's heap events are in time order by rowid (the report reads them so)" 0 \
	"$(q "$DB" "SELECT count(*) FROM (SELECT ns, lag(ns) OVER (PARTITION BY process_id ORDER BY event_id) AS prev FROM heap_events) WHERE ns <= prev")"
check "every chunk has a stack" 0 "$(q "$DB" 'SELECT count(*) FROM chunk WHERE stack_id IS NULL')"
check "freed by the thread that allocated it" 0 \
	"$(q "$DB" "SELECT count(*) FROM chunk WHERE free_ns IS NOT NULL AND (free_tid IS NULL OR free_tid <> alloc_tid)")"
check "site_g: an inlined function is a frame of its own, then the one it is in" \
	"0|site_g_inner|$(line "$src" SITE_G)|1 1|site_g|$(line "$src" SITE_G_CALL)|0 2|main" \
	"$(q "$DB" "SELECT group_concat(r, ' ') FROM (SELECT f.depth || '|' || f.function || CASE WHEN f.depth < 2 THEN '|' || f.line || '|' || f.inlined ELSE '' END AS r FROM frames f JOIN chunks c ON c.stack_id = f.stack_id WHERE c.size = 3210 AND f.depth < 3 ORDER BY f.depth)")"
check "frames of every stack start at depth 0" 0 \
	"$(q "$DB" 'SELECT count(*) FROM stack s WHERE NOT EXISTS (SELECT 1 FROM frames f WHERE f.stack_id = s.stack_id AND f.depth = 0)')"
check "modules recorded with build-ids" 1 \
	"$(q "$DB" "SELECT count(*) > 0 FROM image WHERE path LIKE '%rec-known' AND build_id IS NOT NULL")"
check "database is private (0600)" 600 "$(stat -c %a "$DB")"

# a program that never touches its heap: its figures are 0 B from the start
"$HEAPPROF" run -o "$TMP/none.db" true 2>"$TMP/none.err"
check "no heap: the run's summary puts the worst instant at the start" 1 \
	"$(grep -c 'worst untrimmable 0 B at 0.000 s$' "$TMP/none.err")"
check "no heap: so does the report" 3 \
	"$("$HEAPPROF" report "$TMP/none.db" | grep -Ec '^  (peak live|peak extent|worst untrimmable) +0 B  at 0\.000 s$')"
finish
