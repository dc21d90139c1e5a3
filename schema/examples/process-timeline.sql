-- One process's timeline (the first one recorded): its heaps over its run
-- as the collector saw them (at most every millisecond, ~4000 points), in
-- milliseconds since it started. Both kinds of recording have it.
WITH p AS (SELECT process_id, started_ns FROM process ORDER BY process_id LIMIT 1)
SELECT (t.ns - p.started_ns) / 1000000 AS ms, t.extent_bytes, t.live_bytes,
       t.cached_bytes, t.untrimmable_bytes
FROM heap_timeline t JOIN p USING (process_id)
ORDER BY t.ns;
