/* SPDX-License-Identifier: MIT */
/*
 * heap.h - the brk heap: glibc 2.36's main arena, chunk for chunk.
 *
 * Chunk layout (x86_64, SIZE_SZ 8, 16-byte alignment), as malloc.c:
 *
 *     chunk -> +-------------------------------+
 *              | prev_size: size of the previous chunk if it is free,
 *              |   else the last 8 bytes of its user data
 *              +-------------------------------+
 *              | size | A | M | P              |  bit 0 P: previous chunk in use
 *     mem   -> +-------------------------------+  bit 1 M: mmap chunk
 *              | user data (in use), or        |  bit 2 A: non-main arena; M|A
 *              | fd, bk (free), and for large  |    together mark heapprof's own
 *              | free chunks fd_nextsize,      |    memory (arena.h)
 *              | bk_nextsize                   |
 *              +-------------------------------+
 *              | (next chunk's prev_size)      |
 *
 * An in-use heap chunk owns the next chunk's prev_size word, so a request of
 * n bytes takes request2size(n) = max(32, (n + 8 + 15) & ~15) bytes and its
 * usable size is chunksize - 8. mem = chunk + 16, always 16-aligned.
 *
 * Free lists, as glibc: per-thread tcache (tcache.h: 64 singly-linked
 * lists by exact size 32..1040, 7 deep, entries keep the in-use bit);
 * fastbins (10 singly-linked LIFO lists by exact size up to max_fast, in-use
 * bit kept); bin 1 the unsorted list; bins 2..63 small bins of one size
 * each (32..1008); bins 64..126 large bins, each sorted by decreasing size
 * with a skip list (fd_nextsize) over distinct sizes; a binmap of possibly
 * non-empty bins; the top chunk, never in a bin, always at least MINSIZE
 * once the heap exists, bordering the break.
 *
 * Invariants (heap_check() verifies each and cites its number):
 *  1. Every chunk in a heap segment is 16-aligned, at least MINSIZE, and
 *     the chunks tile the segment from its first chunk to top (or to the
 *     segment's closing fenceposts).
 *  2. No two free (binned) chunks are adjacent, and a free chunk never
 *     borders top: they would have been coalesced.
 *  3. A binned chunk's successor has P clear and prev_size equal to its
 *     size; an in-use or cached chunk's successor has P set.
 *  4. Every chunk in a bin has a size belonging to that bin; bins are
 *     well-formed doubly-linked lists; large bins are sorted by decreasing
 *     size and their skip list holds the first chunk of each size.
 *  5. Every fastbin chunk has that fastbin's size and is not binned.
 *  6. top lies in the last segment, borders its end, and has P set.
 *  7. system_mem equals the bytes obtained for the heap (all segments),
 *     and the binmap bit of every non-empty bin is set.
 */
#ifndef HP_HEAP_H
#define HP_HEAP_H

#include <malloc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"
#include "observe.h"

#define HP_SIZE_SZ 8
#define HP_CHUNK_HDR_SZ 16
#define HP_MALLOC_ALIGNMENT 16
#define HP_ALIGN_MASK 15
#define HP_MINSIZE 32
#define HP_PREV_INUSE 0x1
#define HP_IS_MMAPPED 0x2
#define HP_NON_MAIN_ARENA 0x4
#define HP_SIZE_BITS 0x7
#define HP_NBINS 128
#define HP_NSMALLBINS 64
#define HP_MIN_LARGE_SIZE 1024
#define HP_NFASTBINS 10
#define HP_BINMAPSIZE 4
#define HP_FASTBIN_CONSOLIDATION_THRESHOLD 65536
#define HP_MAX_ITERS 10000
#define HP_MAX_SEGMENTS 64

struct hp_chunk {
	size_t prev_size;
	size_t size;
	struct hp_chunk *fd;
	struct hp_chunk *bk;
	struct hp_chunk *fd_nextsize;
	struct hp_chunk *bk_nextsize;
};

/* A contiguous stretch of the heap: the sbrk region (possibly grown many
 * times) or one region the heap fell back to mmap for. Kept for walking;
 * glibc has no such list (it cannot walk a non-contiguous main arena). */
struct hp_segment {
	uintptr_t start; /* first chunk */
	uintptr_t end;   /* end of the memory obtained */
	bool mapped;     /* an mmap fallback region */
};

/* glibc's struct malloc_state for the main arena, with the mp_ statistics
 * that belong to the heap. */
struct hp_heap {
	struct hp_mutex lock;
	bool noncontiguous;
	bool have_fastchunks;
	struct hp_chunk *fastbins[HP_NFASTBINS];
	struct hp_chunk *top;
	struct hp_chunk *last_remainder;
	struct hp_chunk *bins[HP_NBINS * 2 - 2];
	unsigned binmap[HP_BINMAPSIZE];
	size_t system_mem;
	size_t max_system_mem;
	char *sbrk_base;
	unsigned nsegments;
	struct hp_segment segments[HP_MAX_SEGMENTS];
};

extern struct hp_heap hp_heap;

/* ---- chunk arithmetic (malloc.c's macros) ---- */

static inline size_t
hp_chunksize(const struct hp_chunk *p)
{
	return p->size & ~(size_t)HP_SIZE_BITS;
}

static inline struct hp_chunk *
hp_mem2chunk(const void *mem)
{
	return (struct hp_chunk *)((char *)mem - HP_CHUNK_HDR_SZ);
}

static inline void *
hp_chunk2mem(const struct hp_chunk *p)
{
	return (char *)p + HP_CHUNK_HDR_SZ;
}

static inline struct hp_chunk *
hp_chunk_at(const struct hp_chunk *p, size_t off)
{
	return (struct hp_chunk *)((char *)p + off);
}

static inline bool
hp_chunk_is_mmapped(const struct hp_chunk *p)
{
	return p->size & HP_IS_MMAPPED;
}

/* request2size(); 0 for requests above PTRDIFF_MAX (checked_request2size). */
static inline size_t
hp_request2size(size_t req)
{
	if (__builtin_expect(req > PTRDIFF_MAX, 0))
		return 0;
	return req + HP_SIZE_SZ + HP_ALIGN_MASK < HP_MINSIZE
		       ? HP_MINSIZE
		       : (req + HP_SIZE_SZ + HP_ALIGN_MASK) & ~(size_t)HP_ALIGN_MASK;
}

/* Bytes the program may use in an in-use chunk (glibc's musable). */
static inline size_t
hp_usable(const struct hp_chunk *p)
{
	if (hp_chunk_is_mmapped(p))
		return hp_chunksize(p) - HP_CHUNK_HDR_SZ;
	if (hp_chunk_at(p, hp_chunksize(p))->size & HP_PREV_INUSE)
		return hp_chunksize(p) - HP_SIZE_SZ;
	return 0;
}

/* ---- the heap lock: taken only once the process has threads ---- */

extern char __libc_single_threaded;

static inline bool
hp_heap_lock(void)
{
	if (__builtin_expect(__libc_single_threaded, 1))
		return false;
	hp_mutex_lock(&hp_heap.lock);
	return true;
}

static inline void
hp_heap_unlock(bool locked)
{
	if (locked)
		hp_mutex_unlock(&hp_heap.lock);
}

/* ---- operations (glibc's _int_* functions) ---- */

/*
 * Initialise the heap's bins (malloc_init_state). The heap itself appears
 * on the first sysmalloc. Lock: single-threaded init. Allocates: no.
 */
void hp_heap_init(void);

/*
 * _int_malloc: a chunk for `bytes` from fastbins, bins, top, or the system
 * (sbrk, or mmap above the threshold). NULL with errno ENOMEM on failure.
 * May stash chunks into the calling thread's tcache.
 * Lock: held. Allocates: this is the allocator. AS-safe: no.
 */
void *hp_heap_malloc_locked(size_t bytes);

/*
 * _int_free for a heap chunk that missed the tcache: fastbin or coalesce
 * into the unsorted bin or top, then consolidate and trim when the
 * coalesced chunk reaches 64 KiB. Returns the fate. With `report`, the
 * resulting state is sent to the observer (internal frees).
 * Lock: held. Allocates: no.
 */
enum hp_fate hp_heap_free_locked(struct hp_chunk *p, bool report);

/*
 * _int_free's tcache step, then hp_heap_free_locked under the lock.
 * Returns the fate. Lock: none (takes it). Allocates: no.
 */
enum hp_fate hp_heap_free(struct hp_chunk *p);

/*
 * _int_realloc for a heap chunk: shrink in place, grow into top or the
 * next free chunk, else malloc-copy-free. Returns the new mem or NULL
 * (old chunk intact). When it moved, *old_fate says where the old chunk
 * went; otherwise *old_fate is 0. Lock: held.
 */
void *hp_heap_realloc_locked(struct hp_chunk *oldp, size_t oldsize, size_t nb,
			     enum hp_fate *old_fate);

/*
 * _int_memalign: alignment is a power of two > 16. NULL + ENOMEM on failure.
 * Lock: held.
 */
void *hp_heap_memalign_locked(size_t alignment, size_t bytes);

/* malloc_consolidate. Lock: held. */
void hp_heap_consolidate_locked(void);

/* malloc_trim's mtrim: consolidate, madvise whole free pages, systrim.
 * Returns 1 if memory was released. Lock: held. */
int hp_heap_trim_locked(size_t pad);

/* int_mallinfo for the main arena plus mmap statistics. Lock: held. */
void hp_heap_mallinfo_locked(struct mallinfo2 *m);

/* Per-bin statistics for malloc_info(). Lock: held. */
struct hp_bin_stats {
	size_t from, to, total, count;
};
void hp_heap_bin_stats_locked(struct hp_bin_stats fast[HP_NFASTBINS],
			      struct hp_bin_stats bins[HP_NBINS]);

/* alloc_perturb / free_perturb (MALLOC_PERTURB_). */
void hp_heap_perturb_alloc(void *p, size_t n);

/*
 * Walk every chunk of the heap in address order: fn(chunk, bytes, state,
 * arg) where state is live, cached (tcache of any registered thread, or
 * fastbin) or free (bins and top). The top chunk is reported free with
 * is_top. Fenceposts are skipped. Exact only while no other thread
 * allocates. Returns the number of chunks walked.
 * Lock: held. Allocates: arena (scratch).
 */
typedef void (*hp_walk_fn)(uintptr_t chunk, size_t bytes, enum hp_state state, bool is_top,
			   void *arg);
size_t hp_heap_walk_locked(hp_walk_fn fn, void *arg);

/*
 * Verify invariants 1-7; on a violation call hp_fatal with the invariant
 * number. Lock: held. Allocates: no.
 */
void hp_heap_check_locked(void);

/* For fork: the child resets the lock. */
void hp_heap_fork_child(void);

#endif
