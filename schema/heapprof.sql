-- SPDX-License-Identifier: MIT
-- heapprof database schema, version 11 (PRAGMA user_version below).
--
-- The contract between the recorder and the analyzer, and what users query
-- with the sqlite3 shell. The views at the end (processes, chunks, frames,
-- snapshots, sites) are the stable interface; the tables may change with
-- the version. Addresses and sizes are bytes; times are nanoseconds of
-- CLOCK_MONOTONIC (the recorder's within ~1 us: preload/clock.c),
-- comparable within one run. Within a process no two
-- events share a time, and times follow the exact order in which the
-- allocator did things (where two threads' clock readings disagree with
-- that order, the later event is moved to 1 ns after the earlier), so
-- ordering by time replays the heap exactly.
--
-- A database is one of two kinds (meta key "recording"):
--   full       every chunk the program obtained is a row of chunk_packed,
--              and the allocator's own doings are rows of heap_event: any
--              instant can be replayed. Grows with the number of chunks.
--   snapshots  the collector keeps each process's heaps as they are
--              and writes them whole at chosen instants (snapshot,
--              snapshot_chunk, snapshot_former): its end, its peak heap
--              extent, its worst untrimmable instant, every interval and on
--              demand. Grows with the heap and the distinct stacks, not
--              with the run. chunk_packed and heap_event stay empty.
-- Both kinds have the process tree, modules, stacks, symbols, sites,
-- heap_summary and heap_timeline.
--
-- The collector (analyzer/db.c) runs the statements before the marker
-- "-- @indexes" and those after "-- @views" first, in one transaction
-- before the first row (so that a run cut off has its tables and views),
-- loads the data, then builds the indexes (between the two markers).

-- @tables
PRAGMA application_id = 1213222470;  -- 0x48505246, "HPRF": a heapprof database
PRAGMA user_version = 11;            -- this schema's version

-- Facts about the run, as key/value text.
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,  -- heapprof_version, command, started, complete, ...
  value TEXT               -- its value
) STRICT, WITHOUT ROWID;

-- Codes used by other tables. Values are never renumbered or reused; the
-- names are distinct too, though not declared UNIQUE: every table and
-- index takes a page of its own (8 KiB), and an index of four names is no
-- use. Tables with a key of several columns are WITHOUT ROWID for the
-- same reason: else the key is an index beside the table.
CREATE TABLE backing (
  code INTEGER PRIMARY KEY,  -- 1, 2, 3
  name TEXT NOT NULL         -- brk: the main heap; mmap: its own mapping;
                             -- arena: a thread arena's mapped heap
) STRICT;
INSERT INTO backing VALUES (1, 'brk'), (2, 'mmap'), (3, 'arena');

CREATE TABLE fate (
  code INTEGER PRIMARY KEY,  -- 1..5
  name TEXT NOT NULL,  -- where a freed chunk went
  occupies INTEGER NOT NULL  -- 1: still occupies the heap (cached), 0: free
) STRICT;
INSERT INTO fate VALUES (1, 'tcache', 1), (2, 'fastbin', 1), (3, 'bin', 0),
  (4, 'top', 0), (5, 'unmapped', 0);

CREATE TABLE call (
  code INTEGER PRIMARY KEY,  -- 1..4
  name TEXT NOT NULL  -- the allocation function family
) STRICT;
INSERT INTO call VALUES (1, 'malloc'), (2, 'calloc'), (3, 'realloc'), (4, 'memalign');

CREATE TABLE event_kind (
  code INTEGER PRIMARY KEY,  -- 1..7
  name TEXT NOT NULL  -- see heap_event
) STRICT;
INSERT INTO event_kind VALUES (1, 'brk'), (2, 'map'), (3, 'unmap'), (4, 'madvise'),
  (5, 'state'), (6, 'resize'), (7, 'inherited_free');

-- heap_events.value of a state row: what the allocator made of the range.
CREATE TABLE range_state (
  code INTEGER PRIMARY KEY,  -- 0..3
  name TEXT NOT NULL  -- free; tcache, fastbin: cached there; live
) STRICT;
INSERT INTO range_state VALUES (0, 'free'), (1, 'tcache'), (2, 'live'), (3, 'fastbin');

-- heap_events.value of a map or unmap row: what the mapping is.
CREATE TABLE map_kind (
  code INTEGER PRIMARY KEY,  -- 1..3
  name TEXT NOT NULL  -- chunk: an mmap chunk; heap: heap memory (a
                             -- thread arena's heap); program: the program's
                             -- own mmap (in program_mmap, never in heap_event)
) STRICT;
INSERT INTO map_kind VALUES (1, 'chunk'), (2, 'heap'), (3, 'program');

-- Allocation wrappers: frames that allocate on behalf of their caller
-- (operator new, xmalloc, Perl_safesysmalloc, sqlite3Malloc, ...). A
-- chunk's site is the first frame of its stack that is none of these (the
-- view site_frames, and heapprof report). Patterns are GLOB patterns (* ? [...])
-- on the function's name (demangled), on the basename of the module the
-- frame is in, or on its source file. Rows may be added to a database to
-- skip more.
CREATE TABLE alloc_wrapper (
  pattern TEXT NOT NULL,  -- e.g. 'xmalloc', 'operator new*', 'libc.so.6'
  kind    TEXT NOT NULL CHECK (kind IN ('function', 'module', 'file')),
  PRIMARY KEY (pattern, kind)
) STRICT, WITHOUT ROWID;
INSERT INTO alloc_wrapper (pattern, kind) VALUES
  -- whatever the C and C++ runtimes allocate is for their caller, and so
  -- is what the standard C++ library's templates inlined into it allocate
  ('libc.so.6', 'module'), ('libstdc++.so.6', 'module'),
  ('/usr/include/c++/*', 'file'),
  -- a frame named so is an inlined wrapper (ld.so's __rtld_malloc)
  ('malloc', 'function'), ('calloc', 'function'), ('realloc', 'function'),
  -- C++ (also where libstdc++ is linked in statically, as in cc1)
  ('operator new*', 'function'),
  ('__gnu_cxx::new_allocator<*>::allocate*', 'function'),
  ('std::__new_allocator<*>::allocate*', 'function'),
  ('std::allocator<*>::allocate*', 'function'),
  ('std::allocator_traits<*>::allocate*', 'function'),
  ('std::_Vector_base<*>::_M_allocate*', 'function'),
  -- libiberty (gcc, binutils), gnulib
  ('xmalloc', 'function'), ('xcalloc', 'function'), ('xrealloc', 'function'),
  ('xstrdup', 'function'), ('xstrndup', 'function'), ('xmemdup', 'function'),
  ('xzalloc', 'function'), ('xnmalloc', 'function'), ('xcharalloc', 'function'),
  ('xasprintf', 'function'), ('xvasprintf', 'function'),
  -- gmp (gcc)
  ('__gmp_default_allocate', 'function'), ('__gmp_default_reallocate', 'function'),
  -- perl
  ('Perl_safesys*', 'function'),
  -- SQLite (its symbols: a libsqlite3 without them needs its module skipped)
  ('sqlite3Malloc*', 'function'), ('sqlite3Realloc', 'function'),
  ('sqlite3MemMalloc', 'function'), ('sqlite3MemRealloc', 'function'),
  ('sqlite3DbMalloc*', 'function'), ('sqlite3DbRealloc*', 'function'),
  ('sqlite3DbStrDup', 'function'), ('sqlite3DbStrNDup', 'function'),
  ('dbReallocFinish', 'function'), ('mallocWithAlarm', 'function'),
  ('sqlite3_malloc*', 'function'), ('sqlite3_realloc*', 'function'),
  -- CPython
  ('PyMem_*', 'function'), ('_PyMem_*', 'function'),
  ('PyObject_Malloc', 'function'), ('PyObject_Calloc', 'function'),
  ('PyObject_Realloc', 'function'), ('_PyObject_Malloc', 'function'),
  ('_PyObject_Calloc', 'function'), ('_PyObject_Realloc', 'function'),
  ('pymalloc_*', 'function'), ('gc_alloc', 'function'),
  ('_PyObject_GC_New*', 'function'), ('_PyObject_New*', 'function'),
  ('PyType_GenericAlloc', 'function'), ('_PyType_AllocNoTrack', 'function'),
  -- GLib
  ('g_malloc*', 'function'), ('g_realloc*', 'function'), ('g_try_malloc*', 'function'),
  ('g_try_realloc*', 'function'), ('g_slice_alloc*', 'function'),
  ('g_strdup*', 'function'), ('g_strndup', 'function'), ('g_memdup*', 'function');

-- One row per process: a fork makes a new row (parent_id set), and
-- so does every successful exec (same pid, exec_from set).
CREATE TABLE process (
  process_id        INTEGER PRIMARY KEY,  -- this process, from 1
  pid               INTEGER NOT NULL,     -- its process id
  ppid              INTEGER,              -- its parent's process id
  parent_id         INTEGER REFERENCES process,  -- the process that forked it
  exec_from         INTEGER REFERENCES process,  -- the process it replaced by exec
  fork_ns           INTEGER,              -- the parent's time at the fork: the child
                                          -- inherited the chunks live then
  exe               TEXT,                 -- executable path
  argv              TEXT,                 -- arguments, a JSON array of strings
  started_ns        INTEGER,              -- first event, ns
  ended_ns          INTEGER,              -- end (exit, signal or exec), ns
  end_reason        TEXT,                 -- exit, signal, exec, or unknown
  exit_status       INTEGER,              -- exit status, if it exited
  exit_signal       INTEGER,              -- signal number, if a signal ended it
  heap_start        INTEGER,              -- the break when recording began (address)
  dropped_events    INTEGER NOT NULL DEFAULT 0,  -- events the program could not record
  truncated_records INTEGER NOT NULL DEFAULT 0,  -- records cut short by a sudden end
  bad_records       INTEGER NOT NULL DEFAULT 0   -- records that failed their checks (the
                                                 -- program wrote over its rings): dropped
) STRICT;

CREATE TABLE thread (
  process_id INTEGER NOT NULL REFERENCES process,
  tid        INTEGER NOT NULL,  -- kernel thread id
  started_ns INTEGER,           -- its first event, ns
  ended_ns   INTEGER,           -- its exit, ns (NULL: ran until the process ended)
  PRIMARY KEY (process_id, tid)
) STRICT, WITHOUT ROWID;

-- An object file (executable or shared library) as found on disk.
CREATE TABLE image (
  image_id INTEGER PRIMARY KEY,
  path     TEXT NOT NULL,  -- path as loaded
  build_id TEXT,           -- GNU build-id, hex
  UNIQUE (path, build_id)
) STRICT;

-- An image loaded into a process (a module: one mapping of an image).
CREATE TABLE module (
  module_id   INTEGER PRIMARY KEY,
  process_id  INTEGER NOT NULL REFERENCES process,
  image_id    INTEGER NOT NULL REFERENCES image,
  base        INTEGER NOT NULL,  -- load bias: file address + base = run-time address
  lo          INTEGER NOT NULL,  -- lowest run-time address of its segments
  hi          INTEGER NOT NULL,  -- end of its segments
  loaded_ns   INTEGER,           -- when it appeared, ns
  unloaded_ns INTEGER            -- when dlclose removed it, ns
) STRICT;

-- A distinct call stack (the same frames in the same images share a row,
-- across processes). Stacks share their outer frames (main, the
-- interpreter's loop, the compiler's passes), so most store only their
-- inner frames and name the rest in another stack, one that stores all of
-- its own: frames tail_at and deeper of this stack are frames tail_from and
-- deeper of tail_stack. The view stack_frame puts them together. (cc1:
-- 55 K stored frames for 161 K, 1.8 bytes a chunk less; a trie, as
-- heaptrack stores stacks, would store fewer but needs a recursive view,
-- which every query of frames would walk whole.)
CREATE TABLE stack (
  stack_id   INTEGER PRIMARY KEY,
  depth      INTEGER NOT NULL,  -- physical frames
  tail_stack INTEGER REFERENCES stack,  -- NULL: stack_own_frame holds every
                                        -- frame; else a stack whose own are
                                        -- all its frames (tail_stack NULL)
  tail_from  INTEGER,  -- the depth in tail_stack where the shared frames begin
  tail_at    INTEGER   -- their depth in this stack: its own frames are 0 to
                       -- tail_at - 1
) STRICT;

-- The frames a stack stores itself: all of them, or those above tail_at.
-- Query stack_frame instead.
CREATE TABLE stack_own_frame (
  stack_id INTEGER NOT NULL REFERENCES stack,
  depth    INTEGER NOT NULL,
  image_id INTEGER REFERENCES image,
  offset   INTEGER NOT NULL,
  PRIMARY KEY (stack_id, depth)
) STRICT, WITHOUT ROWID;  -- the rows are their key's B-tree: no second copy in
                          -- an index (python3, gcc: 2-3 bytes a chunk less)

-- Physical frames: return addresses as (image, file offset), so ASLR does
-- not matter. depth 0 is the caller of malloc. A query for one stack
-- (WHERE stack_id = ?) reads its rows by key: its own, then its tail's.
CREATE VIEW stack_frame AS
  SELECT s.stack_id,
         CASE WHEN f.stack_id = s.stack_id THEN f.depth
              ELSE s.tail_at + f.depth - s.tail_from END AS depth,  -- 0 innermost
         f.image_id,  -- NULL: in no known object
         f.offset     -- address relative to the image's base (or absolute)
  FROM stack s
  JOIN stack_own_frame f ON f.stack_id IN (s.stack_id, s.tail_stack)
                        AND (f.stack_id = s.stack_id OR f.depth >= s.tail_from);

-- What the code at a return address is, after symbolization: one row per
-- logical frame, level 0 the innermost (an inlined function), the last the
-- function the others were inlined into. One row set per distinct address,
-- not per stack: stacks share most of their frames (a python3 run: 5000
-- addresses in a million stack frames). The frames view joins them.
CREATE TABLE symbol (
  image_id INTEGER NOT NULL REFERENCES image,
  offset   INTEGER NOT NULL,  -- address relative to the image's base
  level    INTEGER NOT NULL,  -- 0 innermost
  function TEXT,              -- demangled function name, NULL if unknown
  file     TEXT,              -- source file, NULL if unknown
  line     INTEGER,           -- source line, NULL if unknown
  inlined  INTEGER NOT NULL DEFAULT 0,  -- 1: inlined into the next level
  PRIMARY KEY (image_id, offset, level)
) STRICT, WITHOUT ROWID;

-- Anonymous memory the program mapped itself with mmap, not through malloc:
-- where small-object allocators keep their objects (CPython's pymalloc
-- arenas, 256 KiB or 1 MiB each), which heapprof does not see as chunks.
-- Written when the mapping goes, or at the end of the process.
CREATE TABLE program_mmap (
  process_id  INTEGER NOT NULL REFERENCES process,
  address     INTEGER NOT NULL,  -- start
  bytes       INTEGER NOT NULL,  -- length (what is left of it if part was unmapped)
  mapped_ns   INTEGER NOT NULL,  -- when mmap made it, ns
  unmapped_ns INTEGER,           -- when munmap took the last of it; NULL: never
  stack_id    INTEGER REFERENCES stack  -- the mmap call's stack (NULL: none)
) STRICT;

-- Instants the program marked with heapprof_mark(NAME) (heapprof.h), for
-- heapprof report --at mark:NAME.
CREATE TABLE mark (
  process_id INTEGER NOT NULL REFERENCES process,
  ns         INTEGER NOT NULL,  -- when, ns (ordered with the process's events)
  name       TEXT NOT NULL      -- the name the program gave it
) STRICT;

-- The allocator's settings in each process, in the order they were made
-- (rowid): first the environment lines it read at start, as glibc reads
-- them (GLIBC_TUNABLES and the MALLOC_*_ variables such as
-- MALLOC_ARENA_MAX=2, in the environment's order; none in a set-user-id
-- program), then each mallopt(param, value) the program called. A forked child
-- has its start-up lines again; the calls its parent made before the fork
-- are the parent's rows. heapprof advise replays a process with them.
CREATE TABLE malloc_setting (
  process_id INTEGER NOT NULL REFERENCES process,
  ns         INTEGER NOT NULL,  -- when, ns (ordered with the process's events)
  param      INTEGER,           -- mallopt's param, as <malloc.h>: M_MXFAST 1,
                                -- M_TRIM_THRESHOLD -1, M_TOP_PAD -2,
                                -- M_MMAP_THRESHOLD -3, M_MMAP_MAX -4,
                                -- M_CHECK_ACTION -5, M_PERTURB -6,
                                -- M_ARENA_TEST -7, M_ARENA_MAX -8 (NULL: a line)
  value      INTEGER,           -- mallopt's value (NULL: a line)
  line       TEXT               -- the environment line NAME=VALUE (NULL: mallopt)
) STRICT;

-- One row per chunk the program obtained, written when the chunk ends (so
-- chunk_id follows the order of ends, not of allocations). A realloc that
-- moves makes a new chunk (chunk_realloc names the old one); one that stays
-- keeps the row and its final size.
--
-- A chunk's bytes are live from alloc_ns to free_ns; if fate is tcache or
-- fastbin they still occupy the heap (cached) until released_ns (or the
-- end of the process if that is NULL); then they are free. Free space the
-- allocator caches without a chunk of the program's in it is in heap_event.
--
-- Query the view chunk (every column decoded) or chunks (the stable
-- interface). This table stores only what cannot be derived, in as few
-- bytes as SQLite's integers allow, because a run writes one row per chunk,
-- millions a second: a row's cost in time grows with its columns (~30 ns
-- each) and its size with the bytes of its values (1 byte up to 127, 2 up to
-- 32767, 3 up to 2^23, 4 up to 2^31, 6 up to 2^47; 0 and 1 take none; NULL
-- takes none), plus SQLite's own ~7 bytes a row and one a column. What a
-- chunk shares with many others (process, threads, stack, codes) is one
-- row of chunk_origin, named by one small number. Measured, the file is
-- 26-32 bytes a chunk (version 11) against 33-52 with version 5's
-- (README, "Benchmark"). schema/codes.h holds the packing
-- (hp_chunk_address_rel), the view chunk decodes it, and a test checks
-- that both agree.
--
-- Columns marked "always" are never NULL, but say so only here: a NOT NULL
-- constraint is checked for every row written (~5% of the time a row
-- takes).
CREATE TABLE chunk_packed (
  chunk_id       INTEGER PRIMARY KEY,
  address        INTEGER,  -- always: (chunk address (the user pointer is 16
                           -- bytes on) - its origin's base) / 16: chunks are
                           -- 16-byte aligned (3 bytes, not 6)
  free_rel       INTEGER,  -- always: free_ns (alloc_ns if not freed) - the
                           -- base_ns of its block in chunk_epoch: rows come
                           -- in the order of ends, so 2-3 bytes, not 6-8
  free_after     INTEGER,  -- ns from the allocation to the free; NULL: live
                           -- when its process ended
  released_after INTEGER,  -- cached (fate tcache or fastbin): ns from the free
                           -- until it stopped occupying the heap, by reuse at
                           -- the same address or by being merged into free space
                           -- (in chunk_released instead if that came after
                           -- the row was written)
  origin         INTEGER   -- always: its chunk_origin row (0 or 1 take no byte)
) STRICT;

-- What chunks share: their process, backing, call, stack, threads, fate,
-- requested size and whether chunk_slack has their bytes, and the base
-- their addresses are stored against. Ids from 0, in the order first seen
-- (the common ones early, so small: a few hundred to a few ten thousand a
-- run; a site allocates few distinct sizes).
CREATE TABLE chunk_origin (
  origin_id    INTEGER PRIMARY KEY,  -- from 0
  process_id   INTEGER NOT NULL REFERENCES process,
  backing      INTEGER NOT NULL REFERENCES backing,
  call         INTEGER NOT NULL REFERENCES call,
  size         INTEGER NOT NULL,          -- requested bytes
  fate         INTEGER REFERENCES fate,   -- NULL: not freed, or its end not seen
  stack_id     INTEGER REFERENCES stack,  -- NULL: no stack recorded
  alloc_tid    INTEGER NOT NULL,          -- allocating thread
  free_tid     INTEGER,                   -- freeing thread; NULL: not freed
  slack_stored INTEGER NOT NULL,          -- 1: the chunk bytes are in chunk_slack;
                                          -- 0: what glibc gives the size:
                                          -- max(32, (size + 23) & ~15)
  base         INTEGER NOT NULL           -- chunk_packed.address is (address -
                                          -- base) / 16: the process's heap_start
                                          -- (rounded down to 16) for brk chunks,
                                          -- its first arena chunk's address for
                                          -- arena chunks, 0 for mmap chunks
) STRICT;

-- The base time of each block of 256 chunk ids (chunk_id >> 8): the free
-- time (the allocation time if not freed) of its first row. Rows come in
-- the order of the chunks' ends, so the block's free times are near it:
-- small differences from it.
CREATE TABLE chunk_epoch (
  block   INTEGER PRIMARY KEY,  -- chunk_id >> 8
  base_ns INTEGER NOT NULL      -- ns
) STRICT;

-- A cached chunk's released_after when its row was written before the
-- release (the old chunk of a realloc that moved, whose id the new one
-- names) and the release came after the row had gone to the file. An
-- UPDATE of chunk_packed would grow a row in a full page and split it: a
-- gcc run left 1.6 MB (6%) of chunk_packed's pages empty that way.
CREATE TABLE chunk_released (
  chunk_id       INTEGER PRIMARY KEY REFERENCES chunk_packed,
  released_after INTEGER NOT NULL  -- as chunk_packed.released_after
) STRICT;

-- A chunk made by a realloc that moved: the chunk it replaced.
CREATE TABLE chunk_realloc (
  chunk_id     INTEGER PRIMARY KEY REFERENCES chunk_packed,
  realloc_from INTEGER NOT NULL  -- the chunk_id of the old chunk
) STRICT;

-- A chunk whose bytes are not what glibc gives its size, or made by
-- memalign (its origin's slack_stored is 1): mmap chunks (whole pages),
-- memalign's, and those realloc resized in place.
CREATE TABLE chunk_slack (
  chunk_id   INTEGER PRIMARY KEY REFERENCES chunk_packed,
  slack      INTEGER NOT NULL,  -- chunk bytes - size
  align_log2 INTEGER            -- memalign (and aligned_alloc, posix_memalign,
                                -- valloc, pvalloc): log2 of the alignment
                                -- asked for, rounded up as glibc does (a power
                                -- of two; 4: one malloc gives anyway); else NULL
) STRICT;

-- Every column of a chunk, decoded; cheap to read (SQLite flattens it).
CREATE VIEW chunk AS
  SELECT c.chunk_id, o.process_id, o.base + c.address * 16 AS address, o.size,
         CASE WHEN o.slack_stored = 0 THEN max(32, (o.size + 23) & ~15)
              ELSE o.size + (SELECT s.slack FROM chunk_slack s
                             WHERE s.chunk_id = c.chunk_id) END AS chunk_bytes,
         o.backing, o.call,
         e.base_ns + c.free_rel - coalesce(c.free_after, 0) AS alloc_ns, o.alloc_tid,
         CASE WHEN c.free_after IS NOT NULL THEN e.base_ns + c.free_rel END AS free_ns,
         o.free_tid, o.fate,
         e.base_ns + c.free_rel +
           coalesce(c.released_after, (SELECT r.released_after FROM chunk_released r
                                       WHERE r.chunk_id = c.chunk_id)) AS released_ns,
         o.stack_id,
         (SELECT r.realloc_from FROM chunk_realloc r
          WHERE r.chunk_id = c.chunk_id) AS realloc_from,
         CASE WHEN o.call = 4 THEN (SELECT 1 << s.align_log2 FROM chunk_slack s
                                    WHERE s.chunk_id = c.chunk_id) END AS alignment
  FROM chunk_packed c
  LEFT JOIN chunk_origin o ON o.origin_id = c.origin
  LEFT JOIN chunk_epoch e ON e.block = c.chunk_id >> 8;

-- What the allocator did on its own, and the heap's shape over time: what a
-- replay needs besides the chunks to say what is live, cached or free.
-- Query the view heap_events (every column decoded). Stored like
-- chunk_packed: as few columns and bytes as can be (a perl run writes 0.7
-- of these a chunk); "always" marks a column never NULL.
CREATE TABLE heap_event (
  process_id INTEGER,  -- always: its process (references process)
  ns_rel     INTEGER,  -- always: ns - the base_ns of its block in
                       -- heap_event_epoch (rowid >> 10); a process's rows
                       -- are in time order (by rowid), none at the same ns
  address    INTEGER,  -- always: brk: old break; others: start of the range;
                       -- both minus the process's heap_start
  bytes      INTEGER,  -- always: brk: new break, minus the process's
                       -- heap_start; others: length of the range
  what       INTEGER   -- always: kind (an event_kind code, bits 0-2) +
                       -- value << 3; the value (none for brk and madvise):
                       -- map, unmap: a map_kind code;
                       -- state (a range that is no chunk of the
                       -- program's, or a cached chunk of the program's
                       -- moving between a tcache and a fastbin): a
                       -- range_state code;
                       -- resize: the chunk's old bytes;
                       -- inherited_free: the fate code
) STRICT;

-- The sizes the program asked for of a resize heap_event (a realloc that
-- kept its chunk), apart: two columns of every heap_event row cost a byte
-- each even when NULL (cc1: 0.2 bytes a chunk, net of this table).
CREATE TABLE heap_event_resize (
  event_id INTEGER PRIMARY KEY REFERENCES heap_event,  -- its rowid
  size     INTEGER,  -- the size asked for (the chunk's bytes may be more: a
                     -- chunk of 64 bytes can hold a request of 25 when the
                     -- 16 left over were too few to split off)
  old_size INTEGER   -- the size asked for before it; NULL: unknown
) STRICT;

-- The base time of each block of 1024 heap_event rowids (rowid >> 10): the
-- time of its first row (2-3 bytes a row, not 4-6).
CREATE TABLE heap_event_epoch (
  block   INTEGER PRIMARY KEY,  -- rowid >> 10
  base_ns INTEGER NOT NULL      -- ns
) STRICT;

-- heap_event decoded: times and addresses absolute (stored relative to a
-- base, as they take fewer bytes so), the kind and value apart.
CREATE VIEW heap_events AS
  SELECT e.rowid AS event_id, e.process_id, x.base_ns + e.ns_rel AS ns, e.what & 7 AS kind,
         coalesce(p.heap_start, 0) + e.address AS address,
         CASE WHEN e.what & 7 = 1 THEN coalesce(p.heap_start, 0) + e.bytes ELSE e.bytes END
           AS bytes,
         CASE WHEN e.what & 7 IN (1, 4) THEN NULL ELSE e.what >> 3 END AS value,
         z.size, z.old_size  -- resize: the sizes asked for; NULL for the other kinds
  FROM heap_event e
  LEFT JOIN process p USING (process_id)
  LEFT JOIN heap_event_epoch x ON x.block = e.rowid >> 10
  LEFT JOIN heap_event_resize z ON z.event_id = e.rowid;

-- What the collector computed of each process's heaps while it loaded
-- the recording: the figures at its end and over its run (words as in the
-- README: extent, live, cached, top free, untrimmable, retained).
-- `heapprof report` computes the same for any instant, with the pins and
-- holes. In a full recording a forked process has no row: its heap starts as
-- its parent's at the fork, which only a replay of the parent shows (the
-- reports do that); in a snapshot recording the collector copies its
-- parent's model at the fork, and it has one.
CREATE TABLE heap_summary (
  process_id              INTEGER PRIMARY KEY REFERENCES process,
  extent_bytes            INTEGER NOT NULL,  -- at the end: heap extent, all heaps
  live_bytes              INTEGER NOT NULL,  -- live chunks in the heaps
  cached_bytes            INTEGER NOT NULL,  -- freed chunks a tcache or fastbin holds
  allocator_bytes         INTEGER NOT NULL,  -- the allocator's own bytes in the heaps
  top_free_bytes          INTEGER NOT NULL,  -- free above the top pin: trimmable
  untrimmable_bytes       INTEGER NOT NULL,  -- free below the top pin: holes (README)
  trim_reclaimable_bytes  INTEGER NOT NULL,  -- what malloc_trim(0) would give back: the
                                             -- resident whole pages of the free chunks
                                             -- (with what fastbins hold) and of the top
  mmap_bytes              INTEGER NOT NULL,  -- live mmap chunks
  retained_bytes          INTEGER NOT NULL,  -- extent - live (README's words)
  peak_live_bytes         INTEGER NOT NULL,  -- the most live (heap and mmap) at once
  peak_live_ns            INTEGER,           -- when
  peak_extent_bytes       INTEGER NOT NULL,  -- the largest heap extent
  peak_extent_ns          INTEGER,           -- when
  worst_untrimmable_bytes INTEGER NOT NULL,  -- the most untrimmable bytes at once
  worst_untrimmable_ns    INTEGER,           -- when
  top_pin_address         INTEGER,           -- at the end: the top pin (NULL: none)
  top_pin_bytes           INTEGER,           -- its chunk bytes
  top_pin_state           TEXT,              -- live, cached (freed by the program, held by
                                             -- a tcache or fastbin), stashed (free space the
                                             -- allocator put into one: no chunk of the
                                             -- program's), or allocator (its own)
  top_pin_stack_id        INTEGER REFERENCES stack, -- its allocation stack
  resident_bytes          INTEGER            -- of the extent, resident pages: used by
                                             -- chunks and not given back since
) STRICT;

-- The same figures over time, at most every millisecond (more sparsely for
-- long runs: at most ~4000 points per process).
CREATE TABLE heap_timeline (
  process_id        INTEGER NOT NULL REFERENCES process,
  ns                INTEGER NOT NULL,  -- when
  extent_bytes      INTEGER NOT NULL,
  live_bytes        INTEGER NOT NULL,  -- live chunks, heap and mmap
  cached_bytes      INTEGER NOT NULL,
  untrimmable_bytes INTEGER NOT NULL,
  PRIMARY KEY (process_id, ns)
) STRICT, WITHOUT ROWID;


-- ---- snapshots (a "snapshots" recording) ----

-- The state of a process's heaps at one instant, written whole: its
-- figures (words as in the README), its heaps (snapshot_heap), every chunk
-- and range occupying them and every live mmap chunk (snapshot_chunk), and
-- who last held each free range below the top pin (snapshot_former).
--   exit      the end of the process
--   peak      the instant of its largest heap extent
--   worst     the instant of its most untrimmable bytes
--   interval  every --snapshot-every seconds of its run (thinned: at most
--             16 per process are kept, evenly spread, as the run goes on)
--   demand    asked for while it ran (heapprof snapshot FILE)
-- peak and worst are kept exact: the collector holds an undo record of the
-- heap from the instant a new peak (worst) began; it writes that instant's
-- state when the process ends, or once the undo record has grown half as
-- large as the heap (and past 4096 entries) and the new figure beats the
-- stored one by 1/16 (and 64 KiB) -
-- so a slowly creeping figure costs a rewrite now and then, not one per
-- step. heap_summary always holds the exact peak and worst figures.
CREATE TABLE snapshot (
  snapshot_id            INTEGER PRIMARY KEY,
  process_id             INTEGER NOT NULL REFERENCES process,
  ns                     INTEGER NOT NULL,  -- the instant
  reason                 TEXT NOT NULL,     -- exit, peak, worst, interval, demand
  extent_bytes           INTEGER NOT NULL,  -- heap extent, all heaps
  live_bytes             INTEGER NOT NULL,  -- live chunks in the heaps
  cached_bytes           INTEGER NOT NULL,  -- freed, still held by a tcache or fastbin
  allocator_bytes        INTEGER NOT NULL,  -- the allocator's own bytes in the heaps
  top_free_bytes         INTEGER NOT NULL,  -- free above the top pin: trimmable
  untrimmable_bytes      INTEGER NOT NULL,  -- free below the top pin: holes (README)
  trim_reclaimable_bytes INTEGER NOT NULL,  -- of those, whole pages malloc_trim(0) returns
  mmap_bytes             INTEGER NOT NULL,  -- live mmap chunks
  retained_bytes         INTEGER NOT NULL,  -- extent - live (README's words)
  live_chunks            INTEGER NOT NULL,
  cached_chunks          INTEGER NOT NULL,
  mmap_chunks            INTEGER NOT NULL,
  first_chunk_id         INTEGER,  -- its rows of snapshot_chunk: chunk_id from
  last_chunk_id          INTEGER,  -- ... to (NULL: none)
  first_former_id        INTEGER,  -- its rows of snapshot_former: former_id from
  last_former_id         INTEGER,  -- ... to (NULL: none)
  rows_of                INTEGER REFERENCES snapshot
                                   -- NULL: the rows above (and of snapshot_heap
                                   -- and snapshot_resident) are its own; else
                                   -- its heaps were in the same state as at
                                   -- that snapshot (a peak or worst that lasted
                                   -- to the exit), whose rows they are
) STRICT;

-- A heap of the snapshot: the brk heap or a thread arena's mapped heap.
CREATE TABLE snapshot_heap (
  snapshot_id INTEGER NOT NULL REFERENCES snapshot,
  start       INTEGER NOT NULL,  -- first address
  end_address INTEGER NOT NULL,  -- one past the last (for brk: the break)
  backing     INTEGER NOT NULL REFERENCES backing  -- 1 brk, 3 arena
) STRICT;

CREATE TABLE occupant (
  code INTEGER PRIMARY KEY,  -- 1..4
  name TEXT NOT NULL  -- what occupies a range of a heap
) STRICT;
INSERT INTO occupant VALUES (1, 'live'), (2, 'cached'), (3, 'cached_free'), (4, 'allocator');

-- The resident pages of a snapshot's heaps (used by chunks and not given
-- back since), as runs.
CREATE TABLE snapshot_resident (
  snapshot_id INTEGER NOT NULL REFERENCES snapshot,
  address     INTEGER NOT NULL,  -- first byte of the run (page-aligned)
  bytes       INTEGER NOT NULL   -- whole pages
) STRICT;

-- What occupied the heaps at a snapshot (and every live mmap chunk): a chunk
-- of the program's, live (1) or freed into a tcache or fastbin that still
-- holds it (2); or a range that is no chunk of the program's: free space the
-- allocator moved into a cache (3), or its own bookkeeping (4).
--
-- Query the view snapshot_chunk (every column) or chunks. Stored as
-- chunk_packed is: what many rows share (their sizes, codes, threads and
-- stack) is one row of snapshot_origin, so a row is 6 columns, not 14
-- (SQLite alone writes 1.4 M rows of 6 columns in 0.50 s, of 14 in 1.13 s:
-- perl's peak snapshot). Columns marked "always" are never NULL.
CREATE TABLE snapshot_chunk_packed (
  chunk_id    INTEGER PRIMARY KEY,
  snapshot_id INTEGER,  -- always: its snapshot (references snapshot)
  address     INTEGER,  -- always: chunk address (the user pointer is 16 bytes on)
  alloc_ns    INTEGER,  -- NULL for a range
  free_ns     INTEGER,  -- cached: when the program freed it; else NULL
  origin      INTEGER   -- always: its snapshot_origin row
) STRICT;

-- What snapshot chunks share, numbered from 0 in the order first written.
CREATE TABLE snapshot_origin (
  origin_id   INTEGER PRIMARY KEY,
  size        INTEGER NOT NULL,  -- requested bytes (0 for a range)
  chunk_bytes INTEGER NOT NULL,
  occupant    INTEGER NOT NULL REFERENCES occupant,
  backing     INTEGER NOT NULL REFERENCES backing,
  call        INTEGER REFERENCES call,   -- NULL for a range
  fate        INTEGER REFERENCES fate,   -- cached (also a cached_free range): the
                                         -- cache that holds it, tcache or fastbin
  alloc_tid   INTEGER,                   -- NULL for a range
  free_tid    INTEGER,                   -- cached: the thread that freed it
  stack_id    INTEGER REFERENCES stack   -- NULL: none recorded
) STRICT;

CREATE VIEW snapshot_chunk AS
  SELECT c.chunk_id, c.snapshot_id, c.address, o.size, o.chunk_bytes, o.occupant,
         o.backing, o.call, o.fate, c.alloc_ns, o.alloc_tid, c.free_ns, o.free_tid,
         o.stack_id
  FROM snapshot_chunk_packed c
  JOIN snapshot_origin o ON o.origin_id = c.origin;

-- Who last held the free bytes below each heap's top pin at a snapshot:
-- for each hole (a free range below the top pin) and each stack whose
-- chunks last held some of it, one row: how many of its bytes, how many
-- chunks, and when the last of them left. (One row per hole and stack, not
-- per chunk: python3's exit snapshot has 505 K such pieces in 11 K rows.)
CREATE TABLE snapshot_former (
  former_id   INTEGER PRIMARY KEY,
  snapshot_id INTEGER NOT NULL REFERENCES snapshot,
  address     INTEGER NOT NULL,          -- the hole's first byte
  bytes       INTEGER NOT NULL,          -- of the hole's bytes, the stack's
  stack_id    INTEGER REFERENCES stack,  -- NULL: none recorded
  vacated_ns  INTEGER NOT NULL,          -- when the last of them left
  chunks      INTEGER NOT NULL           -- how many chunks (told apart by when
                                         -- each left; one whose range a chunk
                                         -- of the same stack split counts twice)
) STRICT;

-- ---- sites (both kinds) ----

-- A slice of a process's run: every --snapshot-every seconds (60 by
-- default), thinned as snapshots are (neighbours merged, at most 16 kept).
CREATE TABLE interval (
  interval_id INTEGER PRIMARY KEY,
  process_id  INTEGER NOT NULL REFERENCES process,
  start_ns    INTEGER NOT NULL,
  end_ns      INTEGER NOT NULL
) STRICT;

-- What each allocation site (stack and backing) did in an interval: chunks
-- allocated and freed, their requested bytes (a realloc in place counts its
-- growth as allocated bytes, its shrinking as freed), the most bytes of the
-- site live at once, and how long the chunks freed in the interval had
-- lived. A site with no allocation or free in an interval has no row there.
-- A forked process's frees of chunks it inherited count; their allocations are
-- its parent's.
CREATE TABLE site (
  interval_id     INTEGER NOT NULL REFERENCES interval,
  stack_id        INTEGER NOT NULL,  -- 0: none recorded
  backing         INTEGER NOT NULL REFERENCES backing,
  allocs          INTEGER NOT NULL,
  alloc_bytes     INTEGER NOT NULL,
  frees           INTEGER NOT NULL,
  free_bytes      INTEGER NOT NULL,
  peak_live_bytes INTEGER NOT NULL,  -- the most live at once in the interval
  freed_in_1us    INTEGER NOT NULL,  -- lifetimes of the chunks freed: at most 1 us,
  freed_in_10us   INTEGER NOT NULL,  -- 10 us, ...
  freed_in_100us  INTEGER NOT NULL,
  freed_in_1ms    INTEGER NOT NULL,
  freed_in_10ms   INTEGER NOT NULL,
  freed_in_100ms  INTEGER NOT NULL,
  freed_in_1s     INTEGER NOT NULL,
  freed_in_10s    INTEGER NOT NULL,
  freed_in_100s   INTEGER NOT NULL,
  freed_later     INTEGER NOT NULL,  -- more than 100 s
  PRIMARY KEY (interval_id, stack_id, backing)
) STRICT, WITHOUT ROWID;

-- @indexes
-- None on chunk_packed: each would cost a sort of every row at the end of every
-- run (~6 s an index for 17M chunks), and the questions asked of chunk
-- (live at exit, bytes by stack, by backing) read the whole table anyway.
-- None on heap_event either: each process's events are written in time
-- order, so a replay reads them in rowid order; the index cost ~30 ms at the
-- end of a run with 150k events, for nothing.
CREATE INDEX module_by_process ON module (process_id);

-- @views
-- The stable interface.
CREATE VIEW processes AS
  SELECT pid, ppid, exe, argv, started_ns, ended_ns, exit_status, exit_signal,
         process_id, parent_id, exec_from, end_reason, dropped_events,
         truncated_records, bad_records
  FROM process;

-- The program's chunks: in a full recording one row per chunk it obtained
-- (snapshot_id NULL); in a snapshot recording the chunks of each snapshot,
-- live or cached at its instant (free_ns NULL: live then), with the
-- snapshot they belong to (released_ns and realloc_from NULL).
CREATE VIEW chunks AS
  SELECT p.pid, c.chunk_id, c.address, c.size, c.chunk_bytes, b.name AS backing,
         c.alloc_ns, c.alloc_tid, c.free_ns, c.stack_id, c.process_id,
         f.name AS fate, k.name AS call, c.free_tid, c.released_ns, c.realloc_from,
         NULL AS snapshot_id
  FROM chunk c
  JOIN process p USING (process_id)
  JOIN backing b ON b.code = c.backing
  JOIN call k ON k.code = c.call
  LEFT JOIN fate f ON f.code = c.fate
  UNION ALL
  -- a snapshot's rows are its own, or those of the one it shares them with
  -- (rows_of), whose chunk_id range its own row repeats; the unary + keeps
  -- SQLite on that range (an automatic index on snapshot_id instead made
  -- perl's 1.7 M rows take 1.76 s, not 0.23)
  SELECT p.pid, c.chunk_id, c.address, c.size, c.chunk_bytes, b.name AS backing,
         c.alloc_ns, c.alloc_tid, c.free_ns, c.stack_id, s.process_id,
         f.name AS fate, k.name AS call, c.free_tid, NULL AS released_ns,
         NULL AS realloc_from, s.snapshot_id
  FROM snapshot s
  JOIN snapshot_chunk c ON c.chunk_id BETWEEN s.first_chunk_id AND s.last_chunk_id
                       AND +c.snapshot_id = coalesce(s.rows_of, s.snapshot_id)
  JOIN process p ON p.process_id = s.process_id
  JOIN backing b ON b.code = c.backing
  LEFT JOIN call k ON k.code = c.call
  LEFT JOIN fate f ON f.code = c.fate
  WHERE c.occupant <= 2;

-- The snapshots of a snapshot recording, with their figures; since_start_ns
-- is the instant's time since the process started. (The view chunks has
-- each snapshot's chunks, those it shares with another (rows_of) too.)
CREATE VIEW snapshots AS
  SELECT s.snapshot_id, p.pid, s.process_id, s.reason, s.ns,
         s.ns - p.started_ns AS since_start_ns,
         s.extent_bytes, s.live_bytes, s.cached_bytes, s.allocator_bytes,
         s.top_free_bytes, s.untrimmable_bytes, s.trim_reclaimable_bytes,
         s.mmap_bytes, s.retained_bytes, s.live_chunks, s.cached_chunks,
         s.mmap_chunks
  FROM snapshot s
  JOIN process p USING (process_id);

-- Each allocation site (stack and backing) of each process over its
-- whole run: the sums of its intervals; peak_live_bytes the most of its
-- bytes live at once, live_bytes what was live at the end.
CREATE VIEW sites AS
  SELECT p.pid, i.process_id, t.stack_id, b.name AS backing,
         sum(t.allocs) AS allocs, sum(t.alloc_bytes) AS alloc_bytes,
         sum(t.frees) AS frees, sum(t.free_bytes) AS free_bytes,
         sum(t.alloc_bytes) - sum(t.free_bytes) AS live_bytes,
         max(t.peak_live_bytes) AS peak_live_bytes,
         sum(t.freed_in_1us) AS freed_in_1us, sum(t.freed_in_10us) AS freed_in_10us,
         sum(t.freed_in_100us) AS freed_in_100us, sum(t.freed_in_1ms) AS freed_in_1ms,
         sum(t.freed_in_10ms) AS freed_in_10ms, sum(t.freed_in_100ms) AS freed_in_100ms,
         sum(t.freed_in_1s) AS freed_in_1s, sum(t.freed_in_10s) AS freed_in_10s,
         sum(t.freed_in_100s) AS freed_in_100s, sum(t.freed_later) AS freed_later
  FROM site t
  JOIN interval i USING (interval_id)
  JOIN process p ON p.process_id = i.process_id
  JOIN backing b ON b.code = t.backing
  GROUP BY i.process_id, t.stack_id, t.backing;

-- The same per interval (start_ns, end_ns since the process started).
CREATE VIEW site_intervals AS
  SELECT p.pid, i.process_id, i.interval_id, i.start_ns - p.started_ns AS start_ns,
         i.end_ns - p.started_ns AS end_ns, t.stack_id, b.name AS backing,
         t.allocs, t.alloc_bytes, t.frees, t.free_bytes, t.peak_live_bytes,
         t.freed_in_1us, t.freed_in_10us, t.freed_in_100us, t.freed_in_1ms,
         t.freed_in_10ms, t.freed_in_100ms, t.freed_in_1s, t.freed_in_10s,
         t.freed_in_100s, t.freed_later
  FROM site t
  JOIN interval i USING (interval_id)
  JOIN process p ON p.process_id = i.process_id
  JOIN backing b ON b.code = t.backing;

CREATE VIEW frames AS
  SELECT sf.stack_id,
         row_number() OVER (PARTITION BY sf.stack_id ORDER BY sf.depth, y.level) - 1
           AS depth,
         y.function, y.file, y.line, i.path AS module, sf.offset,
         coalesce(y.inlined, 0) AS inlined
  FROM stack_frame sf
  LEFT JOIN symbol y ON y.image_id = sf.image_id AND y.offset = sf.offset
  LEFT JOIN image i ON i.image_id = sf.image_id;

-- Each stack's site frame: its first frame that is no allocation wrapper
-- (alloc_wrapper), or its innermost if all are. Group by
-- site_frames.function (or by the whole row) to ask which code allocated.
CREATE VIEW site_frames AS
  SELECT stack_id, depth, function, file, line, module, offset FROM (
    SELECT f.*, row_number() OVER (
             PARTITION BY f.stack_id
             ORDER BY EXISTS (
               SELECT 1 FROM alloc_wrapper w
               WHERE (w.kind = 'function' AND f.function GLOB w.pattern)
                  OR (w.kind = 'file' AND f.file GLOB w.pattern)
                  OR (w.kind = 'module' AND
                      replace(f.module, rtrim(f.module, replace(f.module, '/', '')), '')
                        GLOB w.pattern)),
             f.depth) AS k
    FROM frames f)
  WHERE k = 1;
