-- Every process of the run: who forked it or which process it replaced
-- by exec, how it ended, and how many chunks it allocated (from its sites).
SELECT p.process_id, p.pid, p.parent_id, p.exec_from, p.exe, p.end_reason,
       p.exit_status, p.exit_signal,
       (SELECT coalesce(sum(s.allocs), 0) FROM sites s
        WHERE s.process_id = p.process_id) AS chunks
FROM process p
ORDER BY p.process_id;
