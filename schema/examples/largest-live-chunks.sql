-- The 20 largest chunks still live when their process ended, with the
-- function that allocated each (depth 0 is the caller of malloc).
SELECT c.pid, c.size, c.backing, f.function, f.file || ':' || f.line AS location
FROM chunks c
LEFT JOIN frames f ON f.stack_id = c.stack_id AND f.depth = 0
WHERE c.free_ns IS NULL
ORDER BY c.size DESC
LIMIT 20;
