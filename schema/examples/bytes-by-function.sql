-- Bytes and chunks allocated by each function (all chunks, and those still
-- live at the end), biggest first.
SELECT f.function,
       count(*) AS chunks,
       sum(c.size) AS bytes,
       sum(c.free_ns IS NULL) AS live_chunks,
       sum(CASE WHEN c.free_ns IS NULL THEN c.size ELSE 0 END) AS live_bytes
FROM chunks c
JOIN frames f ON f.stack_id = c.stack_id AND f.depth = 0
GROUP BY f.function
ORDER BY bytes DESC
LIMIT 30;
