-- Bytes and chunks allocated at each site: the first frame of the stack
-- that is no allocation wrapper (operator new, xmalloc, sqlite3Malloc, ...:
-- the table alloc_wrapper), biggest first; from the sites, which both kinds
-- of recording have.
SELECT f.function, f.file, f.line,
       sum(s.allocs) AS chunks,
       sum(s.alloc_bytes) AS bytes,
       sum(s.allocs) - sum(s.frees) AS live_chunks
FROM sites s
JOIN site_frames f ON f.stack_id = s.stack_id
GROUP BY f.function, f.file, f.line
ORDER BY bytes DESC
LIMIT 30;
