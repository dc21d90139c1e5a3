-- The sites whose chunks live shortest: chunks freed within 10 us of their
-- allocation, and their share of the site's frees. Both kinds of recording.
SELECT s.pid, f.function, s.backing, s.allocs, s.frees,
       s.freed_in_1us + s.freed_in_10us AS freed_within_10us,
       round(100.0 * (s.freed_in_1us + s.freed_in_10us) / max(s.frees, 1), 1) AS pct,
       s.peak_live_bytes
FROM sites s
LEFT JOIN frames f ON f.stack_id = s.stack_id AND f.depth = 0
ORDER BY freed_within_10us DESC
LIMIT 20;
