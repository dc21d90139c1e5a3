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
 *              | free chunks fd_nextsize,      |    memory (selfmem.h)
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
 * A stretch is what an arena's chunks tile: a segment of the main heap
 * (the sbrk region, or a region it fell back to mmap for), or one mapped
 * heap of a thread arena (tarena.h). When top moves to a new stretch, the
 * old one is closed with fenceposts: in-use chunks that belong to nobody.
 *
 * Invariants. check.c verifies 1-9 (hp_check_heaps) and 11, the _locked
 * functions assert 10; a failure names the number (hp_fatal):
 *  1. Every chunk is 16-aligned and, but for fenceposts (8), at least
 *     MINSIZE; the chunks tile each stretch from its first chunk to top or
 *     to its fenceposts. A thread arena's in-use chunks carry A.
 *  2. No two free (binned) chunks are adjacent, and a free chunk never
 *     borders top: they would have been coalesced.
 *  3. A binned chunk's successor has P clear and prev_size equal to its
 *     size; an in-use or cached chunk's successor has P set.
 *  4. Every chunk in a bin has a size belonging to that bin; bins are
 *     well-formed doubly-linked lists; large bins are sorted by decreasing
 *     size, and their skip list (fd_nextsize, bk_nextsize) is a circular
 *     doubly-linked list of the first chunk of each size, in decreasing
 *     size. Every other chunk of a large bin, and every chunk of large-bin
 *     size in the unsorted bin, has both skip links NULL.
 *  5. Every fastbin chunk has that fastbin's size and is not binned.
 *  6. top lies in the stretch opened last (the main arena's last segment,
 *     the newest heap of a thread arena), ends it, has P set and is at
 *     least MINSIZE.
 *  7. system_mem equals the bytes obtained for the arena: in the main
 *     arena, the sum over its segments of the bytes from where each was
 *     obtained (a foreign sbrk's gap and alignment before its first chunk
 *     count) to its end; in a thread arena, the sum of its heaps' sizes.
 *     The binmap bit of every non-empty bin is set.
 *  8. Fenceposts close every stretch but top's, and appear nowhere else:
 *     a main-arena segment ends in (at least) two 16-byte chunks with P
 *     set; a thread heap ends in a chunk of size 0 with P set in its last
 *     16 bytes, after a 16-byte chunk or, when the old top had less than
 *     MINSIZE left, an in-use chunk of the rest.
 *  9. A thread's tcache list i holds exactly counts[i] entries, at most
 *     tcache_count; each is the user area of a 16-aligned heap chunk of
 *     bin i's size whose successor has P set (so it is in no bin), that is
 *     in no fastbin, and whose key is the process's tcache key. (Checked
 *     for the calling thread's own tcache: others change theirs without a
 *     lock.)
 * 10. Shared allocator state changes only under its lock: an arena's
 *     bins, fastbins, top and system_mem under the arena's (which nobody
 *     takes while the process has one thread), the list of free arenas
 *     under tarena.c's free_list_lock, the registry of tcaches under its
 *     lock. Every function of these files whose name ends in _locked
 *     asserts it (HP_ASSERT).
 * 11. At -Ddebug_checks=3, freed memory keeps its poison: from the end of
 *     its links (a tcache entry's next and key, a fastbin chunk's fd) to
 *     its successor, a cached chunk holds HP_POISON_FREE bytes only:
 *     nothing wrote to it since it was freed. (Checked as it leaves its
 *     tcache or fastbin.)
 */
#ifndef HP_HEAP_H
#define HP_HEAP_H

#include <malloc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"
#include "observe.h"

#ifndef HP_DEBUG_CHECKS
#define HP_DEBUG_CHECKS 0 /* meson sets it from -Ddebug_checks */
#endif

/* 1 in the copy of the heap code that heapprof advise replays recordings
 * through (preload/os-sim.h), which keeps no data in its chunks. */
#ifndef HP_OS_SIM
#define HP_OS_SIM 0
#endif

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

/* A contiguous stretch of the main heap: the sbrk region (possibly grown
 * many times) or one region the heap fell back to mmap for. Kept for
 * walking; glibc has no such list (it cannot walk a non-contiguous main
 * arena). Thread arenas are walked through their heaps (tarena.h). */
struct hp_segment {
	uintptr_t from;  /* where the bytes system_mem counts for it begin: a
			  * foreign sbrk's gap and alignment come before start */
	uintptr_t start; /* first chunk */
	uintptr_t end;   /* end of the memory obtained */
	bool mapped;     /* an mmap fallback region */
};

#define HP_NONCONTIGUOUS 2 /* glibc's NONCONTIGUOUS_BIT in flags */

/*
 * glibc's struct malloc_state, field for field and byte for byte (2200
 * bytes on x86_64): a thread arena keeps it at the start of its first
 * mapped heap, so its size decides where that arena's first chunk lies.
 */
struct hp_mstate {
	struct hp_mutex lock;
	int flags;
	int have_fastchunks;
	struct hp_chunk *fastbins[HP_NFASTBINS];
	struct hp_chunk *top;
	struct hp_chunk *last_remainder;
	struct hp_chunk *bins[HP_NBINS * 2 - 2];
	unsigned binmap[HP_BINMAPSIZE];
	struct hp_mstate *next;      /* circular list of all arenas */
	struct hp_mstate *next_free; /* free list of unattached arenas */
	size_t attached_threads;
	size_t system_mem;
	size_t max_system_mem;
};

_Static_assert(sizeof(struct hp_mstate) == 2200, "glibc 2.36's malloc_state size");

/* What only the main arena has. */
struct hp_main_heap {
	char *sbrk_base;
	unsigned nsegments; /* HP_MAX_SEGMENTS + 1: more than can be followed */
	struct hp_segment segments[HP_MAX_SEGMENTS];
};

extern struct hp_mstate hp_main_arena;
extern struct hp_main_heap hp_main;

/*
 * -Ddebug_checks=3 poisons memory: what malloc hands out is filled with
 * HP_POISON_ALLOC, what free takes back with HP_POISON_FREE (in place of
 * MALLOC_PERTURB_'s bytes), so that code reading memory nobody wrote, or
 * writing memory it freed, shows (invariant 11).
 */
#define HP_POISON (HP_DEBUG_CHECKS >= 3)
#define HP_POISON_ALLOC 0xa5
#define HP_POISON_FREE 0x5a

/*
 * Invariant 11 for a cached chunk leaving its tcache or fastbin: its bytes
 * from `from` (past its links) to its successor still hold HP_POISON_FREE.
 * In check.c, which libheapprof.so has from level 2 on: call it as
 * HP_POISON_CHECK, nothing below level 3.
 * Lock: its arena's for a fastbin chunk. Allocates: no.
 */
void hp_check_poison(const struct hp_chunk *p, size_t from);
#if HP_POISON
#define HP_POISON_CHECK(p, from) hp_check_poison(p, from)
#else
#define HP_POISON_CHECK(p, from) ((void)0)
#endif

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

static inline bool
hp_chunk_prev_inuse(const struct hp_chunk *p)
{
	return p->size & HP_PREV_INUSE;
}

/* Whether the chunk at p + off has P set: p is in use (or cached). */
static inline bool
hp_chunk_inuse_bit_at(const struct hp_chunk *p, size_t off)
{
	return hp_chunk_at(p, off)->size & HP_PREV_INUSE;
}

static inline bool
hp_misaligned(const void *p)
{
	return (uintptr_t)p & HP_ALIGN_MASK;
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

/* ---- bins (malloc.c's bin_at, bin_index, fastbin_index, binmap) ---- */

/* Bin i (1 unsorted, 2..63 small, 64..126 large) as a fake chunk whose fd
 * and bk are the list heads in av->bins. */
static inline struct hp_chunk *
hp_bin_at(struct hp_mstate *av, unsigned i)
{
	return (struct hp_chunk *)((char *)&av->bins[(i - 1) * 2] -
				   offsetof(struct hp_chunk, fd));
}

static inline bool
hp_in_smallbin_range(size_t sz)
{
	return sz < HP_MIN_LARGE_SIZE;
}

static inline unsigned
hp_smallbin_index(size_t sz)
{
	return (unsigned)sz >> 4;
}

static inline unsigned
hp_largebin_index(size_t sz)
{
	if ((sz >> 6) <= 48)
		return 48 + (unsigned)(sz >> 6);
	if ((sz >> 9) <= 20)
		return 91 + (unsigned)(sz >> 9);
	if ((sz >> 12) <= 10)
		return 110 + (unsigned)(sz >> 12);
	if ((sz >> 15) <= 4)
		return 119 + (unsigned)(sz >> 15);
	if ((sz >> 18) <= 2)
		return 124 + (unsigned)(sz >> 18);
	return 126;
}

static inline unsigned
hp_bin_index(size_t sz)
{
	return hp_in_smallbin_range(sz) ? hp_smallbin_index(sz) : hp_largebin_index(sz);
}

static inline unsigned
hp_fastbin_index(size_t sz)
{
	return ((unsigned)sz >> 4) - 2;
}

/* The binmap bit of bin i: set when the bin may be non-empty. */
static inline bool
hp_binmap_bit(const struct hp_mstate *av, unsigned i)
{
	return av->binmap[i >> 5] & (1U << (i & 31));
}

/* ---- arena locks: taken only once the process has threads ---- */

extern char __libc_single_threaded;

static inline bool
hp_mstate_lock(struct hp_mstate *av)
{
	if (__builtin_expect(__libc_single_threaded, 1))
		return false;
	hp_mutex_lock(&av->lock);
	return true;
}

static inline void
hp_mstate_unlock(struct hp_mstate *av, bool locked)
{
	if (locked)
		hp_mutex_unlock(&av->lock);
}

/* Invariant 10 for av, as a _locked function asserts it: its lock is held,
 * or the process has one thread (then nobody takes it). */
static inline bool
hp_mstate_held(const struct hp_mstate *av)
{
	return __libc_single_threaded || hp_mutex_held(&av->lock);
}

static inline bool
hp_chunk_main_arena(const struct hp_chunk *p)
{
	return !(p->size & HP_NON_MAIN_ARENA);
}

/* ---- operations (glibc's _int_* functions), on one arena ---- */

/*
 * Initialise an arena's bins (malloc_init_state). The main arena's heap
 * appears on its first sysmalloc. Lock: none needed. Allocates: no.
 */
void hp_heap_init_state(struct hp_mstate *av);

/*
 * _int_malloc: a chunk for `bytes` from fastbins, bins, top, or the system
 * (sbrk or a thread arena's heap, or mmap above the threshold). NULL with
 * errno ENOMEM on failure. May stash chunks into the calling thread's
 * tcache. Lock: av held. Allocates: this is the allocator. AS-safe: no.
 */
void *hp_heap_malloc_locked(struct hp_mstate *av, size_t bytes);

/*
 * _int_free for a heap chunk, internal callers: the tcache step, then
 * fastbin or coalesce into the unsorted bin or top, consolidating and
 * trimming when the coalesced chunk reaches 64 KiB. Returns the fate. With
 * `report`, the resulting state goes to the observer.
 * Lock: av held. Allocates: no.
 */
enum hp_fate hp_heap_free_locked(struct hp_mstate *av, struct hp_chunk *p, bool report);

/*
 * free() of a heap chunk: its arena, the tcache step without a lock, then
 * the rest under the arena's lock. Returns the fate.
 * Lock: none (takes it). Allocates: no.
 */
enum hp_fate hp_heap_free(struct hp_chunk *p);

/*
 * _int_realloc for a heap chunk: shrink in place, grow into top or the
 * next free chunk, else malloc-copy-free. Returns the new mem or NULL
 * (old chunk intact). When it moved, *old_fate says where the old chunk
 * went; otherwise *old_fate is 0. Lock: av held.
 */
void *hp_heap_realloc_locked(struct hp_mstate *av, struct hp_chunk *oldp, size_t oldsize,
			     size_t nb, enum hp_fate *old_fate);

/*
 * _int_memalign: alignment is a power of two > 16. NULL + ENOMEM on failure.
 * Lock: av held.
 */
void *hp_heap_memalign_locked(struct hp_mstate *av, size_t alignment, size_t bytes);

/* unlink_chunk: take a free chunk off its bin list (aborts like glibc on
 * corrupted links). Lock: its arena held. */
void hp_heap_unlink_chunk(struct hp_chunk *p);

/* malloc_consolidate. Lock: av held. */
void hp_heap_consolidate_locked(struct hp_mstate *av);

/* malloc_trim's mtrim: consolidate, madvise whole free pages, and for the
 * main arena systrim. Returns 1 if memory was released. Lock: av held. */
int hp_heap_trim_locked(struct hp_mstate *av, size_t pad);

/* int_mallinfo: add the arena's figures to *m (main arena: also the mmap
 * statistics and keepcost). Lock: av held. */
void hp_heap_mallinfo_locked(struct hp_mstate *av, struct mallinfo2 *m);

/* Per-bin statistics for malloc_info(). Lock: av held. */
struct hp_bin_stats {
	size_t from, to, total, count;
};
void hp_heap_bin_stats_locked(struct hp_mstate *av, struct hp_bin_stats fast[HP_NFASTBINS],
			      struct hp_bin_stats bins[HP_NBINS]);

/* alloc_perturb (MALLOC_PERTURB_; HP_POISON_ALLOC at debug level 3). */
void hp_heap_perturb_alloc(void *p, size_t n);

/* The arena a heap chunk belongs to (glibc's arena_for_chunk). */
struct hp_mstate *hp_heap_arena_for_chunk(const struct hp_chunk *p);

/* Whether av has a heap yet: false until the main arena's first sysmalloc
 * (its top is then glibc's initial_top, a chunk of size 0). Lock: av held. */
bool hp_heap_started(const struct hp_mstate *av);

#endif
