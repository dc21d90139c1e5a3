-- kinds: snapshots
-- A snapshot recording's snapshots: when (seconds since its process
-- started), why, and the heaps' figures then. (A full recording has none:
-- heapprof report --at SECONDS rebuilds any instant.)
SELECT pid, snapshot_id, reason, round(since_start_ns / 1e9, 3) AS at_s,
       extent_bytes, live_bytes, untrimmable_bytes, trim_reclaimable_bytes,
       live_chunks
FROM snapshots
ORDER BY pid, ns;
