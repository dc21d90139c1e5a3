-- kinds: snapshots
-- At each process's worst instant (most untrimmable bytes), which
-- functions' live chunks occupied the heap, and how much of it. A snapshot
-- recording only: its worst snapshot holds every chunk of that instant.
SELECT c.pid, f.function, count(*) AS chunks, sum(c.chunk_bytes) AS chunk_bytes,
       max(c.address) AS highest_address
FROM chunks c
JOIN snapshots s ON s.snapshot_id = c.snapshot_id AND s.reason = 'worst'
LEFT JOIN frames f ON f.stack_id = c.stack_id AND f.depth = 0
WHERE c.free_ns IS NULL
GROUP BY c.pid, f.function
ORDER BY c.pid, chunk_bytes DESC;
