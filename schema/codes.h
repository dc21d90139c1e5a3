/* SPDX-License-Identifier: MIT */
/*
 * codes.h - the one definition of every integer code that crosses a
 * process boundary: what the allocator (preload) reports, what travels in
 * the event stream (events.h), what the collector writes and what the
 * reader reads back, and the bit layout of chunk_packed's packed columns.
 *
 * Each list below is the single source: the enums are made from it, and
 * tests/unit/test-codes.c runs schema/heapprof.sql in an in-memory SQLite
 * and checks that each lookup table holds exactly these codes and names,
 * and that the `chunk` view decodes what hp_chunk_pack() encodes. Values
 * are never renumbered or reused. The schema version is generated from
 * heapprof.sql's PRAGMA user_version (schema_version.h, HP_SCHEMA_VERSION).
 *
 * Included by code that runs inside malloc: only constants and inline
 * arithmetic, no declarations of objects, nothing that allocates.
 */
#ifndef HP_CODES_H
#define HP_CODES_H

#include <stdbool.h>
#include <stdint.h>

/* Lists of (enum name, value, SQL name): X(NAME, VALUE, "name"). */

/* Where a chunk's memory comes from (table backing). */
#define HP_BACKING_CODES(X)                                                                  \
	X(HP_BACKING_BRK, 1, "brk")     /* the main arena's heap, grown with brk */          \
	X(HP_BACKING_MMAP, 2, "mmap")   /* an mmap chunk: a mapping of its own */            \
	X(HP_BACKING_ARENA, 3, "arena") /* a thread arena's heap (mapped, 64 MiB-aligned) */

/* Where a freed chunk went, a user-level free's outcome (table fate; its
 * `occupies` column is hp_fate_occupies()). */
#define HP_FATE_CODES(X)                                                                     \
	X(HP_FATE_TCACHE, 1, "tcache")    /* cached in the thread's tcache */                \
	X(HP_FATE_FASTBIN, 2, "fastbin")  /* cached in a fastbin */                          \
	X(HP_FATE_BIN, 3, "bin")          /* coalesced into the unsorted bin: free */        \
	X(HP_FATE_TOP, 4, "top")          /* merged into the top chunk: free */              \
	X(HP_FATE_UNMAPPED, 5, "unmapped") /* an mmap chunk, returned to the kernel */

/* Which allocation call made a chunk (table call). memalign stands for
 * memalign, aligned_alloc, posix_memalign, valloc and pvalloc. */
#define HP_CALL_CODES(X)                                                                     \
	X(HP_CALL_MALLOC, 1, "malloc")                                                       \
	X(HP_CALL_CALLOC, 2, "calloc")                                                       \
	X(HP_CALL_REALLOC, 3, "realloc")                                                     \
	X(HP_CALL_MEMALIGN, 4, "memalign")

/* The state of a range of a heap, as the allocator reports a change it
 * made on its own (hp_ev_state.state; heap_event.value of a `state` row;
 * table range_state). */
#define HP_STATE_CODES(X)                                                                    \
	X(HP_STATE_FREE, 0, "free")       /* in a bin, in top, or never handed out */        \
	X(HP_STATE_CACHED, 1, "tcache")   /* in a tcache: freed, still occupied */           \
	X(HP_STATE_LIVE, 2, "live")       /* owned by the program (or the tcache control     \
					   * block) */                                       \
	X(HP_STATE_FASTBIN, 3, "fastbin") /* in a fastbin: freed, still occupied until a     \
					   * malloc_consolidate merges it into free space */

/* What a mapping is (hp_ev_map.kind; heap_event.value of a map or unmap
 * row, which are never `program`; table map_kind). */
#define HP_MAP_CODES(X)                                                                      \
	X(HP_MAP_CHUNK, 1, "chunk")    /* an mmap chunk */                                   \
	X(HP_MAP_HEAP, 2, "heap")      /* heap memory (a thread arena's heap, or where the   \
					* main heap goes when brk fails) */                  \
	X(HP_MAP_PROGRAM, 3, "program") /* the program's own mmap (anonymous) or munmap */

/* What a heap_event row says happened (table event_kind). */
#define HP_EVENT_KIND_CODES(X)                                                               \
	X(HP_HEV_BRK, 1, "brk")         /* the break moved: address old, bytes new */       \
	X(HP_HEV_MAP, 2, "map")         /* a mapping appeared (value: HP_MAP_*) */          \
	X(HP_HEV_UNMAP, 3, "unmap")     /* a mapping went (value: HP_MAP_*) */              \
	X(HP_HEV_MADVISE, 4, "madvise") /* malloc_trim released a free chunk's pages */     \
	X(HP_HEV_STATE, 5, "state")     /* the allocator moved a range (value: HP_STATE_*) */ \
	X(HP_HEV_RESIZE, 6, "resize")   /* realloc in place (value: the old chunk bytes) */ \
	X(HP_HEV_INHERITED_FREE, 7, "inherited_free") /* a free of a chunk inherited by fork \
						       * (value: its fate) */

/* What occupies a range of a heap at a snapshot (table occupant). */
#define HP_OCCUPANT_CODES(X)                                                                 \
	X(HP_OCC_LIVE, 1, "live")               /* a live chunk of the program's */          \
	X(HP_OCC_CACHED, 2, "cached")           /* one it freed that a cache still holds */  \
	X(HP_OCC_CACHED_FREE, 3, "cached_free") /* free space the allocator cached */        \
	X(HP_OCC_ALLOCATOR, 4, "allocator")     /* the allocator's own bookkeeping */

#define HP_CODE_ENUM_(name, value, text) name = value,
enum hp_backing { HP_BACKING_CODES(HP_CODE_ENUM_) };
enum hp_fate { HP_FATE_CODES(HP_CODE_ENUM_) };
enum hp_call { HP_CALL_CODES(HP_CODE_ENUM_) };
enum hp_state { HP_STATE_CODES(HP_CODE_ENUM_) };
enum hp_map_kind { HP_MAP_CODES(HP_CODE_ENUM_) };
enum hp_event_kind { HP_EVENT_KIND_CODES(HP_CODE_ENUM_) };
enum hp_occupant { HP_OCCUPANT_CODES(HP_CODE_ENUM_) };
#undef HP_CODE_ENUM_

/* A freed chunk still occupies the heap (cached) with these fates. */
static inline bool
hp_fate_occupies(int fate)
{
	return fate == HP_FATE_TCACHE || fate == HP_FATE_FASTBIN;
}

/* ---- chunk_packed's columns ----
 *
 * A row stores what cannot be derived, in as few bytes as SQLite's
 * integers allow (1 byte up to 127, 2 to 32767, 3 to 2^23, 4 to 2^31, 6 to
 * 2^47; 0 and 1 take none):
 *
 * address = chunk address - the process's heap_start for a brk chunk (the
 *           main heap is near its start: 3-4 bytes, not 6); else absolute
 * alloc_rel = alloc_ns - chunk_epoch.base_ns of the row's block (chunk_id >>
 *           HP_EPOCH_SHIFT): the base is the end of the block's first row,
 *           and rows come in the order of ends, so 2-3 bytes, not 6-8
 * what    = backing (bits 0-1) + (call - 1) << 2 (2 bits) + fate << 4
 *           (3 bits; 0: not freed, or its end was not seen)
 *           + HP_WHAT_SLACK (bit 7: chunk bytes - size is in chunk_slack;
 *           clear: the chunk bytes are hp_chunk_bytes_derived(size), as for
 *           nearly every brk and arena chunk) + stack_id << 8 (0: none)
 * whose   = (process_id - 1) (bits 0-19) + allocating thread << 20 (0: the
 *           process's main thread, whose id is its pid) + freeing thread
 *           << 42 (0: not freed, or freed by the allocating thread)
 * heap_event likewise: ns_after = ns - the process's started_ns, address
 * (and a brk row's bytes, the new break) - the process's heap_start.
 *
 * Thread ids fit 22 bits (Linux's PID_MAX_LIMIT is 2^22), stack ids 32,
 * process ids 20. In the common case (one process, the main thread) whose
 * is 0 and takes no byte.
 */
#define HP_TID_LIMIT (1LL << 22)
#define HP_STACK_ID_LIMIT (1LL << 32)
#define HP_PROCESS_ID_LIMIT (1LL << 20)
#define HP_WHAT_SLACK 128
#define HP_EPOCH_SHIFT 10 /* chunk ids in a block of chunk_epoch */

/* The chunk bytes glibc gives a request of `size` bytes from a heap
 * (request2size: 8 bytes of header, 16-byte steps, at least 32). */
static inline uint64_t
hp_chunk_bytes_derived(uint64_t size)
{
	return size + 23 < 32 ? 32 : (size + 23) & ~(uint64_t)15;
}

struct hp_chunk_fields {
	int64_t process_id, alloc_tid, free_tid, stack_id;
	int backing, call, fate;
	bool freed;
	bool slack_stored; /* chunk bytes are not hp_chunk_bytes_derived(size) */
};

/* Whether the fields fit the packing (ids and codes within their limits). */
static inline bool
hp_chunk_fits(const struct hp_chunk_fields *f)
{
	return f->process_id >= 1 && f->process_id <= HP_PROCESS_ID_LIMIT && f->alloc_tid >= 0 &&
	       f->alloc_tid < HP_TID_LIMIT && f->free_tid >= 0 && f->free_tid < HP_TID_LIMIT &&
	       f->stack_id >= 0 && f->stack_id < HP_STACK_ID_LIMIT && f->backing >= 0 &&
	       f->backing <= 3 && f->call >= 1 && f->call <= 4 && f->fate >= 0 && f->fate <= 7;
}

static inline int64_t
hp_chunk_what(const struct hp_chunk_fields *f)
{
	uint64_t w = (uint64_t)f->backing | (uint64_t)(f->call - 1) << 2 |
		     (uint64_t)f->stack_id << 8;
	if (f->freed)
		w |= (uint64_t)f->fate << 4;
	if (f->slack_stored)
		w |= HP_WHAT_SLACK;
	return (int64_t)w;
}

/* pid: the process's (its main thread's id). */
static inline int64_t
hp_chunk_whose(const struct hp_chunk_fields *f, int64_t pid)
{
	uint64_t w = (uint64_t)(f->process_id - 1);
	if (f->alloc_tid != pid)
		w |= (uint64_t)f->alloc_tid << 20;
	if (f->freed && f->free_tid != f->alloc_tid)
		w |= (uint64_t)f->free_tid << 42;
	return (int64_t)w;
}

/* The process id of a row (to find its pid for hp_chunk_unpack). */
static inline int64_t
hp_chunk_process_id(int64_t whose)
{
	return (int64_t)((uint64_t)whose & (HP_PROCESS_ID_LIMIT - 1)) + 1;
}

/* Decode what and whose; free_tid is meaningful only for a freed chunk. */
static inline struct hp_chunk_fields
hp_chunk_unpack(int64_t what, int64_t whose, int64_t pid, bool freed)
{
	uint64_t w = (uint64_t)what, o = (uint64_t)whose;
	struct hp_chunk_fields f = {
		.process_id = hp_chunk_process_id(whose),
		.alloc_tid = (int64_t)(o >> 20 & (HP_TID_LIMIT - 1)),
		.stack_id = (int64_t)(w >> 8),
		.backing = (int)(w & 3),
		.call = (int)(w >> 2 & 3) + 1,
		.fate = (int)(w >> 4 & 7),
		.freed = freed,
		.slack_stored = (w & HP_WHAT_SLACK) != 0,
	};
	if (f.alloc_tid == 0)
		f.alloc_tid = pid;
	f.free_tid = !freed ? 0 : o >> 42 ? (int64_t)(o >> 42) : f.alloc_tid;
	return f;
}

#endif
