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

/* ---- chunk_packed's packed columns ----
 *
 * who  = allocating thread (bits 0-21) + stack_id << 22 (0: none)
 * info = backing (bits 0-1) + call << 2 (3 bits) + fate << 5 (3 bits; 0: not
 *        freed, or its end was not seen) + slack << 8 (9 bits: chunk bytes -
 *        size; HP_SLACK_ESCAPE: the slack is in chunk_slack) + process_id << 17
 *        (24 bits) + freeing thread << 41 (0: not freed, or freed by the
 *        allocating thread)
 * Thread ids fit 22 bits (Linux's PID_MAX_LIMIT is 2^22); stack ids 32.
 */
#define HP_TID_LIMIT (1LL << 22)
#define HP_STACK_ID_LIMIT (1LL << 32)
#define HP_PROCESS_ID_LIMIT (1LL << 24)
#define HP_SLACK_ESCAPE 511

struct hp_chunk_fields {
	int64_t process_id, alloc_tid, free_tid, stack_id;
	uint64_t slack; /* chunk bytes - size */
	int backing, call, fate;
	bool freed;
};

/* Whether the fields fit the packing (ids within their limits). */
static inline bool
hp_chunk_fits(const struct hp_chunk_fields *f)
{
	return f->process_id >= 0 && f->process_id < HP_PROCESS_ID_LIMIT && f->alloc_tid >= 0 &&
	       f->alloc_tid < HP_TID_LIMIT && f->free_tid >= 0 && f->free_tid < HP_TID_LIMIT &&
	       f->stack_id >= 0 && f->stack_id < HP_STACK_ID_LIMIT;
}

static inline int64_t
hp_chunk_who(const struct hp_chunk_fields *f)
{
	return (int64_t)((uint64_t)f->alloc_tid | (uint64_t)f->stack_id << 22);
}

static inline int64_t
hp_chunk_info(const struct hp_chunk_fields *f)
{
	uint64_t info = (uint64_t)f->backing | (uint64_t)f->call << 2 |
			(uint64_t)f->process_id << 17 |
			(f->slack < HP_SLACK_ESCAPE ? f->slack : HP_SLACK_ESCAPE) << 8;
	if (f->freed) {
		if (f->free_tid != f->alloc_tid)
			info |= (uint64_t)f->free_tid << 41;
		info |= (uint64_t)f->fate << 5;
	}
	return (int64_t)info;
}

/* Decode who and info; slack is HP_SLACK_ESCAPE where chunk_slack has it,
 * free_tid is meaningful only for a freed chunk. */
static inline struct hp_chunk_fields
hp_chunk_unpack(int64_t who, int64_t info, bool freed)
{
	uint64_t w = (uint64_t)who, i = (uint64_t)info;
	struct hp_chunk_fields f = {
		.alloc_tid = (int64_t)(w & (HP_TID_LIMIT - 1)),
		.stack_id = (int64_t)(w >> 22),
		.backing = (int)(i & 3),
		.call = (int)(i >> 2 & 7),
		.fate = (int)(i >> 5 & 7),
		.slack = i >> 8 & 511,
		.process_id = (int64_t)(i >> 17 & (HP_PROCESS_ID_LIMIT - 1)),
		.freed = freed,
	};
	f.free_tid = !freed ? 0 : i >> 41 ? (int64_t)(i >> 41) : f.alloc_tid;
	return f;
}

#endif
