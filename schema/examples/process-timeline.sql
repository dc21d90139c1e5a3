-- One process's timeline (the first one recorded): in every 10 ms, the
-- chunks it allocated and freed and the bytes live at the end of the slice.
WITH p AS (SELECT process_id, started_ns FROM process ORDER BY process_id LIMIT 1),
     events AS (
       SELECT (c.alloc_ns - p.started_ns) / 10000000 AS slice, 1 AS allocs, 0 AS frees,
              c.chunk_bytes AS delta
       FROM chunk c JOIN p USING (process_id)
       UNION ALL
       SELECT (c.free_ns - p.started_ns) / 10000000, 0, 1, -c.chunk_bytes
       FROM chunk c JOIN p USING (process_id) WHERE c.free_ns IS NOT NULL),
     slices AS (
       SELECT slice, sum(allocs) AS allocs, sum(frees) AS frees, sum(delta) AS delta
       FROM events GROUP BY slice)
SELECT slice * 10 AS ms, allocs, frees,
       sum(delta) OVER (ORDER BY slice) AS live_bytes
FROM slices
ORDER BY slice;
