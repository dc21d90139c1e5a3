-- Where chunks came from: the brk heap, their own mapping, or a thread
-- arena's heap; and how the freed ones ended. In a snapshot recording the
-- chunks are those of the processes' exit snapshots: live, or freed and
-- still cached.
SELECT backing, coalesce(fate, 'live at exit') AS fate, count(*) AS chunks,
       sum(chunk_bytes) AS chunk_bytes
FROM chunks
WHERE snapshot_id IS NULL
   OR snapshot_id IN (SELECT snapshot_id FROM snapshots WHERE reason = 'exit')
GROUP BY backing, fate
ORDER BY backing, chunks DESC;
