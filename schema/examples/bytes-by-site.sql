-- Bytes and chunks allocated at each site: the first frame of the stack
-- that is no allocation wrapper (operator new, xmalloc, sqlite3Malloc, ...:
-- the table alloc_wrapper), biggest first.
SELECT s.function, s.file, s.line,
       count(*) AS chunks,
       sum(c.size) AS bytes,
       sum(c.free_ns IS NULL) AS live_chunks
FROM chunks c
JOIN sites s ON s.stack_id = c.stack_id
GROUP BY s.function, s.file, s.line
ORDER BY bytes DESC
LIMIT 30;
