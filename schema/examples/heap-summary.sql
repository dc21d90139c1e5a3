-- Each process's heaps at its end, as the collector computed them: how much
-- free memory sits below the top pin (untrimmable), how much of that
-- malloc_trim(0) could return, the worst moment, and the top pin's function.
-- (heapprof report FILE shows the same, with the pins and holes.)
SELECT p.pid, p.exe,
       s.extent_bytes, s.live_bytes, s.untrimmable_bytes, s.trim_reclaimable_bytes,
       s.worst_untrimmable_bytes,
       round((s.worst_untrimmable_ns - p.started_ns) / 1e9, 3) AS worst_at_s,
       s.top_pin_state, f.function AS top_pin_function
FROM heap_summary s
JOIN process p USING (process_id)
LEFT JOIN frames f ON f.stack_id = s.top_pin_stack_id AND f.depth = 0
ORDER BY s.untrimmable_bytes DESC;
