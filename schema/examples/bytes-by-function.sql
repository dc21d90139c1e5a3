-- Bytes and chunks allocated by each function over the whole run (all
-- chunks), and what was still live at the end, biggest first. From the
-- sites, which both kinds of recording have (a snapshot recording keeps no
-- row per chunk).
SELECT f.function,
       sum(s.allocs) AS chunks,
       sum(s.alloc_bytes) AS bytes,
       sum(s.allocs) - sum(s.frees) AS live_chunks,
       sum(s.live_bytes) AS live_bytes
FROM sites s
JOIN frames f ON f.stack_id = s.stack_id AND f.depth = 0
GROUP BY f.function
ORDER BY bytes DESC
LIMIT 30;
