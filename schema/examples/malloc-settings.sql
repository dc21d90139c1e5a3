-- The allocator settings each process ran with, in the order they were
-- made: the environment lines it read at start (GLIBC_TUNABLES, MALLOC_*_)
-- and the mallopt() calls (param as <malloc.h>: M_ARENA_MAX is -8);
-- "defaults" where there were none. heapprof advise replays with them.
SELECT p.pid, p.exe,
       coalesce((SELECT group_concat(setting, ' ')
                 FROM (SELECT coalesce(m.line, 'mallopt(' || m.param || ', ' || m.value || ')')
                                AS setting
                       FROM malloc_setting m
                       WHERE m.process_id = p.process_id
                       ORDER BY m.rowid)),
                'defaults') AS settings
FROM processes p
ORDER BY p.process_id;
