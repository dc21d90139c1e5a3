-- The 20 largest chunks still live when their process ended, with the
-- function that allocated each (depth 0 is the caller of malloc). In a
-- snapshot recording: the live chunks of the exit snapshots, which for a
-- forked child include those it inherited and never freed (a full
-- recording has their rows under the parent that allocated them).
SELECT c.pid, c.size, c.backing, f.function, f.file || ':' || f.line AS location
FROM chunks c
LEFT JOIN frames f ON f.stack_id = c.stack_id AND f.depth = 0
WHERE c.free_ns IS NULL
  AND (c.snapshot_id IS NULL
       OR c.snapshot_id IN (SELECT snapshot_id FROM snapshots WHERE reason = 'exit'))
ORDER BY c.size DESC
LIMIT 20;
