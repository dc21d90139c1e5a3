/* SPDX-License-Identifier: MIT */
/*
 * codes.h - the one definition of every integer code that crosses a
 * process boundary: what the allocator (preload) reports, what travels in
 * the event stream (events.h), what the collector writes and what the
 * reader reads back, and how chunk_packed's columns are stored.
 *
 * Each list below is the single source: the enums are made from it, and
 * tests/unit/test-codes.c runs schema/heapprof.sql in an in-memory SQLite
 * and checks that each lookup table holds exactly these codes and names,
 * and that the `chunk` view decodes what hp_chunk_address_rel() encodes. Values
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
 * made on its own (hp_ev_state.state; heap_events.value of a `state` row;
 * table range_state). */
#define HP_STATE_CODES(X)                                                                    \
	X(HP_STATE_FREE, 0, "free")       /* in a bin, in top, or never handed out */        \
	X(HP_STATE_CACHED, 1, "tcache")   /* in a tcache: freed, still occupied */           \
	X(HP_STATE_LIVE, 2, "live")       /* owned by the program (or the tcache control     \
					   * block) */                                       \
	X(HP_STATE_FASTBIN, 3, "fastbin") /* in a fastbin: freed, still occupied until a     \
					   * malloc_consolidate merges it into free space */

/* What a mapping is (hp_ev_map.kind; heap_events.value of a map or unmap
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
 * address = (chunk address - its origin's base) >> HP_ADDRESS_SHIFT: chunks
 *           are 16-byte aligned; the base is the process's heap_start
 *           rounded down to 16 for a brk chunk, the process's first arena
 *           chunk's address for an arena chunk, 0 for an mmap chunk
 * free_rel = free_ns (alloc_ns if not freed) - chunk_epoch.base_ns of the
 *           row's block (chunk_id >> HP_EPOCH_SHIFT): the base is the same
 *           of the block's first row, and rows come in the order of ends,
 *           so 2-3 bytes, not 6-8; alloc_ns = free_ns - free_after
 * origin  = a chunk_origin row: (process, backing, call, requested size,
 *           fate, stack, allocating and freeing thread, slack stored, base),
 *           numbered from 0 in the order first seen
 *
 * heap_event likewise: ns_rel = ns - heap_event_epoch.base_ns of the row's
 * block (rowid >> HP_EVENT_EPOCH_SHIFT, the time of the block's first row);
 * address (and a brk row's bytes, the new break) - the process's
 * heap_start; what = kind + value << HP_EVENT_VALUE_SHIFT (brk and madvise
 * have no value: their what is the kind).
 */
#define HP_TID_LIMIT (1LL << 22) /* Linux's PID_MAX_LIMIT */
#define HP_EPOCH_SHIFT 8	 /* chunk ids in a block of chunk_epoch */
#define HP_EVENT_EPOCH_SHIFT 10	 /* heap_event rowids in a block of heap_event_epoch */
#define HP_ADDRESS_SHIFT 4	 /* chunk addresses are multiples of 16 */
#define HP_EVENT_VALUE_SHIFT 3	 /* heap_event.what: the kind below, the value above */
#define HP_EVENT_VALUE_LIMIT (1LL << 60)

/* Whether a heap_event of `kind` has a value. */
static inline bool
hp_event_has_value(int kind)
{
	return kind != HP_HEV_BRK && kind != HP_HEV_MADVISE;
}

/* heap_event.what of an event (value: 0 <= value < HP_EVENT_VALUE_LIMIT,
 * ignored without one), and back. */
static inline int64_t
hp_event_what(int kind, int64_t value)
{
	return hp_event_has_value(kind) ? kind | value << HP_EVENT_VALUE_SHIFT : kind;
}

static inline int
hp_event_kind(int64_t what)
{
	return (int)(what & ((1 << HP_EVENT_VALUE_SHIFT) - 1));
}

static inline int64_t
hp_event_value(int64_t what)
{
	return what >> HP_EVENT_VALUE_SHIFT;
}

/* The chunk bytes glibc gives a request of `size` bytes from a heap
 * (request2size: 8 bytes of header, 16-byte steps, at least 32). */
static inline uint64_t
hp_chunk_bytes_derived(uint64_t size)
{
	return size + 23 < 32 ? 32 : (size + 23) & ~(uint64_t)15;
}

/* The base a brk chunk's address is stored against. */
static inline uint64_t
hp_brk_base(uint64_t heap_start)
{
	return heap_start & ~(uint64_t)15;
}

/* chunk_packed.address of a chunk at `address` (a multiple of 16) with its
 * origin's `base`, and back. */
static inline int64_t
hp_chunk_address_rel(uint64_t address, uint64_t base)
{
	return (int64_t)(address - base) >> HP_ADDRESS_SHIFT;
}

static inline uint64_t
hp_chunk_address(int64_t rel, uint64_t base)
{
	return base + ((uint64_t)rel << HP_ADDRESS_SHIFT);
}

#endif
