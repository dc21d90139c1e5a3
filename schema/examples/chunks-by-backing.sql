-- Where chunks came from: the brk heap, their own mapping, or a thread
-- arena's heap; and how the freed ones ended.
SELECT backing, coalesce(fate, 'live at exit') AS fate, count(*) AS chunks,
       sum(chunk_bytes) AS chunk_bytes
FROM chunks
GROUP BY backing, fate
ORDER BY backing, chunks DESC;
