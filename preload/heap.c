/* SPDX-License-Identifier: MIT */
/*
 * heap.c - the brk heap: glibc 2.36's main-arena policy (see heap.h).
 *
 * Every decision here (which bin, which chunk, when to split, coalesce,
 * consolidate, grow or trim) is glibc 2.36's malloc/malloc.c, so a program
 * gets the same addresses under heapprof as without it. Corruption checks
 * abort with glibc's messages. Runs inside malloc with the heap lock held
 * (or single-threaded): no stdio, no allocation from this heap, no other
 * lock but the arena's (heap walk only).
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena.h"
#include "heap.h"
#include "large.h"
#include "log.h"
#include "observe.h"
#include "os.h"
#include "tarena.h"
#include "tcache.h"
#include "tune.h"

struct hp_mstate hp_main_arena = { .lock = HP_MUTEX_INIT, .next = &hp_main_arena,
				   .attached_threads = 1 };
struct hp_main_heap hp_main;
const struct hp_observer *hp_observer;

/* glibc's initial_top: a chunk of size 0 until the main arena's first
 * sysmalloc. */
static struct hp_chunk initial_top;

/* ---- bins ---- */

#define bin_at(av, i)                                                          \
	((struct hp_chunk *)((char *)&(av)->bins[((i)-1) * 2] -               \
			     offsetof(struct hp_chunk, fd)))
#define unsorted_chunks(av) bin_at(av, 1)
#define contiguous(av) (((av)->flags & HP_NONCONTIGUOUS) == 0)
#define main_arena(av) ((av) == &hp_main_arena)
/* The A bit for chunks handed out by a thread arena. */
#define arena_bit(av) (main_arena(av) ? 0 : HP_NON_MAIN_ARENA)
#define next_bin(b) ((struct hp_chunk *)((char *)(b) + (sizeof(void *) << 1)))
#define first(b) ((b)->fd)
#define last(b) ((b)->bk)

static inline bool
in_smallbin_range(size_t sz)
{
	return sz < HP_MIN_LARGE_SIZE;
}

static inline unsigned
smallbin_index(size_t sz)
{
	return (unsigned)sz >> 4;
}

static inline unsigned
largebin_index(size_t sz)
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
bin_index(size_t sz)
{
	return in_smallbin_range(sz) ? smallbin_index(sz) : largebin_index(sz);
}

static inline unsigned
fastbin_index(size_t sz)
{
	return ((unsigned)sz >> 4) - 2;
}

#define idx2block(i) ((i) >> 5)
#define idx2bit(i) (1U << ((i)&31))

static inline void
mark_bin(struct hp_mstate *av, unsigned i)
{
	av->binmap[idx2block(i)] |= idx2bit(i);
}

/* ---- chunk helpers ---- */

static inline bool
misaligned(const void *p)
{
	return (uintptr_t)p & HP_ALIGN_MASK;
}

static inline bool
prev_inuse(const struct hp_chunk *p)
{
	return p->size & HP_PREV_INUSE;
}

static inline bool
inuse_bit_at(const struct hp_chunk *p, size_t off)
{
	return hp_chunk_at(p, off)->size & HP_PREV_INUSE;
}

static inline void
set_inuse_bit_at(struct hp_chunk *p, size_t off)
{
	hp_chunk_at(p, off)->size |= HP_PREV_INUSE;
}

static inline void
clear_inuse_bit_at(struct hp_chunk *p, size_t off)
{
	hp_chunk_at(p, off)->size &= ~(size_t)HP_PREV_INUSE;
}

static inline void
set_head(struct hp_chunk *p, size_t s)
{
	p->size = s;
}

static inline void
set_head_size(struct hp_chunk *p, size_t s)
{
	p->size = (p->size & HP_SIZE_BITS) | s;
}

static inline void
set_foot(struct hp_chunk *p, size_t s)
{
	hp_chunk_at(p, s)->prev_size = s;
}

static inline void
set_non_main(struct hp_mstate *av, struct hp_chunk *p)
{
	if (!main_arena(av))
		p->size |= HP_NON_MAIN_ARENA;
}

static inline struct hp_chunk *
reveal(struct hp_chunk **pos)
{
	return hp_protect_ptr(pos, *pos);
}

void
hp_heap_perturb_alloc(void *p, size_t n)
{
	if (__builtin_expect(hp_mp.perturb_byte, 0))
		memset(p, hp_mp.perturb_byte ^ 0xff, n);
}

static inline void
free_perturb(void *p, size_t n)
{
	if (__builtin_expect(hp_mp.perturb_byte, 0))
		memset(p, hp_mp.perturb_byte, n);
}

static inline void
report(struct hp_chunk *p, size_t bytes, enum hp_state state)
{
	HP_OBSERVE(chunk, (uintptr_t)p, bytes, state);
}

void
hp_heap_unlink_chunk(struct hp_chunk *p)
{
	if (hp_chunksize(p) != hp_chunk_at(p, hp_chunksize(p))->prev_size)
		hp_corrupt("corrupted size vs. prev_size");
	struct hp_chunk *fd = p->fd, *bk = p->bk;
	if (__builtin_expect(fd->bk != p || bk->fd != p, 0))
		hp_corrupt("corrupted double-linked list");
	fd->bk = bk;
	bk->fd = fd;
	if (!in_smallbin_range(p->size) && p->fd_nextsize != NULL) {
		if (p->fd_nextsize->bk_nextsize != p || p->bk_nextsize->fd_nextsize != p)
			hp_corrupt("corrupted double-linked list (not small)");
		if (fd->fd_nextsize == NULL) {
			if (p->fd_nextsize == p) {
				fd->fd_nextsize = fd->bk_nextsize = fd;
			} else {
				fd->fd_nextsize = p->fd_nextsize;
				fd->bk_nextsize = p->bk_nextsize;
				p->fd_nextsize->bk_nextsize = fd;
				p->bk_nextsize->fd_nextsize = fd;
			}
		} else {
			p->fd_nextsize->bk_nextsize = p->bk_nextsize;
			p->bk_nextsize->fd_nextsize = p->fd_nextsize;
		}
	}
}

/* Put a chunk at the head of the unsorted list. */
static inline void
unsorted_push(struct hp_mstate *av, struct hp_chunk *p, size_t size, const char *errmsg)
{
	struct hp_chunk *bck = unsorted_chunks(av), *fwd = bck->fd;

	if (__builtin_expect(fwd->bk != bck, 0))
		hp_corrupt(errmsg);
	p->bk = bck;
	p->fd = fwd;
	if (!in_smallbin_range(size)) {
		p->fd_nextsize = NULL;
		p->bk_nextsize = NULL;
	}
	bck->fd = p;
	fwd->bk = p;
}

void
hp_heap_init_state(struct hp_mstate *av)
{
	for (unsigned i = 1; i < HP_NBINS; ++i) {
		struct hp_chunk *bin = bin_at(av, i);
		bin->fd = bin->bk = bin;
	}
	if (main_arena(av))
		av->flags &= ~HP_NONCONTIGUOUS;
	else
		av->flags |= HP_NONCONTIGUOUS;
	av->have_fastchunks = false;
	av->top = &initial_top;
}

/* ---- segments (for walking; glibc keeps none) ---- */

static void
segment_open(uintptr_t start, uintptr_t end, bool mapped)
{
	if (hp_main.nsegments < HP_MAX_SEGMENTS)
		hp_main.segments[hp_main.nsegments++] =
			(struct hp_segment){ start, end, mapped };
}

static void
segment_set_end(uintptr_t end)
{
	if (hp_main.nsegments > 0 && hp_main.nsegments <= HP_MAX_SEGMENTS)
		hp_main.segments[hp_main.nsegments - 1].end = end;
}

/* ---- the system: MORECORE, sysmalloc, systrim ---- */

static char *
morecore(intptr_t incr)
{
	char *p;

	if (hp_mp.always_fail_morecore)
		return NULL;
	p = hp_os_sbrk(incr);
	if (p && incr != 0)
		HP_OBSERVE(brk, (uintptr_t)p, (uintptr_t)p + incr);
	return p;
}

/* sysmalloc_mmap_fallback: a region for the heap when brk fails. */
static char *
mmap_fallback(struct hp_mstate *av, size_t *s, size_t nb, size_t old_size, size_t pagesize, size_t minsize,
	      int extra_flags)
{
	size_t size = *s;
	char *mbrk;

	if (contiguous(av))
		size = (size + old_size + pagesize - 1) & ~(pagesize - 1);
	if (size < minsize)
		size = minsize;
	if (size <= nb)
		return NULL;
	mbrk = hp_os_map(size, extra_flags);
	if (mbrk == HP_MAP_FAILED)
		return NULL;
	if (!(extra_flags & MAP_HUGETLB))
		hp_tune_madvise_thp(mbrk, size);
	av->flags |= HP_NONCONTIGUOUS;
	HP_OBSERVE(map, (uintptr_t)mbrk, size, false);
	*s = size;
	return mbrk;
}

static void *
sysmalloc(struct hp_mstate *av, size_t nb)
{
	size_t pagesize = hp_mp.pagesize;
	struct hp_chunk *old_top, *p, *remainder;
	size_t old_size, size;
	char *old_end, *brk, *snd_brk;
	bool snd_brk_failed = true, mapped_region = false, tried_mmap = false;

	if (av == NULL || (nb >= hp_mp.mmap_threshold &&
			   __atomic_load_n(&hp_mp.n_mmaps, __ATOMIC_RELAXED) < hp_mp.n_mmaps_max)) {
		void *mm;

		if (hp_mp.hp_pagesize > 0 && nb >= hp_mp.hp_pagesize) {
			mm = hp_large_alloc(nb, hp_mp.hp_pagesize, hp_mp.hp_flags);
			if (mm)
				return mm;
		}
		mm = hp_large_alloc(nb, pagesize, 0);
		if (mm)
			return mm;
		tried_mmap = true;
	}
	if (av == NULL)
		return NULL;

	if (!main_arena(av)) {
		if (!hp_tarena_grow_locked(av, nb) && !tried_mmap) {
			void *mm = hp_large_alloc(nb, pagesize, 0);
			if (mm)
				return mm;
		}
		goto allocate;
	}

	old_top = av->top;
	old_size = hp_chunksize(old_top);
	old_end = (char *)hp_chunk_at(old_top, old_size);
	brk = snd_brk = NULL;

	size = nb + hp_mp.top_pad + HP_MINSIZE;
	if (contiguous(av))
		size -= old_size;
	if (hp_mp.thp_pagesize != 0) {
		uintptr_t cur = (uintptr_t)sbrk(0);
		uintptr_t top = (cur + size + hp_mp.thp_pagesize - 1) &
				~(uintptr_t)(hp_mp.thp_pagesize - 1);
		size = top - cur;
	} else {
		size = (size + pagesize - 1) & ~(pagesize - 1);
	}

	if ((intptr_t)size > 0) {
		brk = morecore((intptr_t)size);
		if (brk)
			hp_tune_madvise_thp(brk, size);
	}
	if (brk == NULL) {
		char *mbrk = NULL;

		if (hp_mp.hp_pagesize > 0)
			mbrk = mmap_fallback(av, &size, nb, old_size, hp_mp.hp_pagesize,
					     hp_mp.hp_pagesize, hp_mp.hp_flags);
		if (mbrk == NULL)
			mbrk = mmap_fallback(av, &size, nb, old_size, pagesize,
					     HP_MMAP_AS_MORECORE_SIZE, 0);
		if (mbrk) {
			brk = mbrk;
			snd_brk = brk + size;
			snd_brk_failed = false;
			mapped_region = true;
		}
	}

	if (brk != NULL) {
		if (hp_main.sbrk_base == NULL)
			hp_main.sbrk_base = brk;
		av->system_mem += size;

		if (brk == old_end && snd_brk_failed) {
			set_head(old_top, (size + old_size) | HP_PREV_INUSE);
			segment_set_end((uintptr_t)brk + size);
		} else if (contiguous(av) && old_size && brk < old_end) {
			hp_corrupt("break adjusted to free malloc space");
		} else {
			size_t front_misalign, end_misalign, correction = 0;
			char *aligned_brk = brk;

			if (contiguous(av)) {
				/* Count foreign sbrk as system_mem. */
				if (old_size)
					av->system_mem += (size_t)(brk - old_end);
				front_misalign = (uintptr_t)hp_chunk2mem((struct hp_chunk *)brk) &
						 HP_ALIGN_MASK;
				if (front_misalign > 0) {
					correction = HP_MALLOC_ALIGNMENT - front_misalign;
					aligned_brk += correction;
				}
				correction += old_size;
				end_misalign = (uintptr_t)(brk + size + correction);
				correction += ((end_misalign + pagesize - 1) & ~(pagesize - 1)) -
					      end_misalign;
				snd_brk = morecore((intptr_t)correction);
				if (snd_brk == NULL) {
					correction = 0;
					snd_brk = morecore(0);
				} else {
					hp_tune_madvise_thp(snd_brk, correction);
				}
				snd_brk_failed = snd_brk == NULL;
			} else if (snd_brk_failed) {
				snd_brk = morecore(0);
				snd_brk_failed = snd_brk == NULL;
			}

			if (!snd_brk_failed) {
				av->top = (struct hp_chunk *)aligned_brk;
				set_head(av->top,
					 ((size_t)(snd_brk - aligned_brk) + correction) |
						 HP_PREV_INUSE);
				av->system_mem += correction;
				segment_open((uintptr_t)aligned_brk,
					     (uintptr_t)snd_brk + correction, mapped_region);
				/* Memory between the old top and the new space
				 * (a foreign sbrk, alignment) belongs to
				 * neither: account it in use, as mallinfo does. */
				if (old_size != 0 && (uintptr_t)aligned_brk > (uintptr_t)old_end &&
				    (uintptr_t)aligned_brk - (uintptr_t)old_end < ((size_t)1 << 40))
					report((struct hp_chunk *)old_end,
					       (size_t)(aligned_brk - old_end), HP_STATE_LIVE);

				if (old_size != 0) {
					/* Double fencepost at the end of the old
					 * top; free what is left of it. */
					old_size = (old_size - 2 * HP_CHUNK_HDR_SZ) &
						   ~(size_t)HP_ALIGN_MASK;
					set_head(old_top, old_size | HP_PREV_INUSE);
					set_head(hp_chunk_at(old_top, old_size),
						 HP_CHUNK_HDR_SZ | HP_PREV_INUSE);
					set_head(hp_chunk_at(old_top, old_size + HP_CHUNK_HDR_SZ),
						 HP_CHUNK_HDR_SZ | HP_PREV_INUSE);
					if (old_size >= HP_MINSIZE) {
						report(hp_chunk_at(old_top, old_size),
						       2 * HP_CHUNK_HDR_SZ, HP_STATE_LIVE);
						hp_heap_free_locked(av, old_top, true);
					} else {
						report(old_top, old_size + 2 * HP_CHUNK_HDR_SZ,
						       HP_STATE_LIVE);
					}
				}
			}
		}
	}

allocate:
	if (av->system_mem > av->max_system_mem)
		av->max_system_mem = av->system_mem;

	p = av->top;
	size = hp_chunksize(p);
	if (size >= nb + HP_MINSIZE) {
		remainder = hp_chunk_at(p, nb);
		av->top = remainder;
		set_head(p, nb | HP_PREV_INUSE | arena_bit(av));
		set_head(remainder, (size - nb) | HP_PREV_INUSE);
		return hp_chunk2mem(p);
	}
	errno = ENOMEM;
	return NULL;
}

static int
systrim(struct hp_mstate *av, size_t pad)
{
	size_t top_size = hp_chunksize(av->top);
	long top_area = (long)top_size - HP_MINSIZE - 1;
	long extra;
	char *current_brk, *new_brk;

	if (top_area <= (long)pad)
		return 0;
	if (hp_mp.thp_pagesize != 0)
		extra = (long)(((size_t)top_area - pad) & ~(hp_mp.thp_pagesize - 1));
	else
		extra = (long)(((size_t)top_area - pad) & ~(hp_mp.pagesize - 1));
	if (extra == 0)
		return 0;
	current_brk = morecore(0);
	if (current_brk == (char *)av->top + top_size) {
		char *before = current_brk;

		if (hp_mp.always_fail_morecore)
			return 0;
		hp_os_sbrk(-extra);
		new_brk = morecore(0);
		if (new_brk != NULL) {
			long released = (long)(current_brk - new_brk);

			if (released != 0) {
				HP_OBSERVE(brk, (uintptr_t)before, (uintptr_t)new_brk);
				av->system_mem -= (size_t)released;
				set_head(av->top, (top_size - (size_t)released) | HP_PREV_INUSE);
				segment_set_end((uintptr_t)new_brk);
				return 1;
			}
		}
	}
	return 0;
}

/* ---- coalescing (shared by free and malloc_consolidate) ---- */

/*
 * p, of `size` bytes, is being freed: merge it with a free chunk before and
 * after it, then put the result at the head of the unsorted bin or make it
 * the new top. Returns the size of the merged chunk; *into_top says where
 * it went. The messages are glibc's, which differ between the two callers.
 */
static size_t
coalesce(struct hp_mstate *av, struct hp_chunk *p, size_t size, const char *prev_msg,
	 const char *unsorted_msg, bool *into_top)
{
	struct hp_chunk *nextchunk = hp_chunk_at(p, size);
	size_t nextsize = hp_chunksize(nextchunk);

	if (!prev_inuse(p)) {
		size_t prevsize = p->prev_size;
		size += prevsize;
		p = hp_chunk_at(p, -prevsize);
		if (hp_chunksize(p) != prevsize)
			hp_corrupt(prev_msg);
		hp_heap_unlink_chunk(p);
	}
	*into_top = nextchunk == av->top;
	if (!*into_top) {
		if (!inuse_bit_at(nextchunk, nextsize)) {
			hp_heap_unlink_chunk(nextchunk);
			size += nextsize;
		} else {
			clear_inuse_bit_at(nextchunk, 0);
		}
		unsorted_push(av, p, size, unsorted_msg);
		set_head(p, size | HP_PREV_INUSE);
		set_foot(p, size);
	} else {
		size += nextsize;
		set_head(p, size | HP_PREV_INUSE);
		av->top = p;
	}
	return size;
}

/* ---- malloc_consolidate ---- */

void
hp_heap_consolidate_locked(struct hp_mstate *av)
{
	av->have_fastchunks = false;
	for (unsigned i = 0; i < HP_NFASTBINS; i++) {
		struct hp_chunk *p = av->fastbins[i], *nextp;

		av->fastbins[i] = NULL;
		for (; p != NULL; p = nextp) {
			if (misaligned(p))
				hp_corrupt("malloc_consolidate(): unaligned fastbin chunk detected");
			if (fastbin_index(hp_chunksize(p)) != i)
				hp_corrupt("malloc_consolidate(): invalid chunk size");
			nextp = reveal(&p->fd);

			bool into_top;
			report(p, hp_chunksize(p), HP_STATE_FREE);
			coalesce(av, p, hp_chunksize(p), "corrupted size vs. prev_size in fastbins",
				 "malloc(): corrupted unsorted chunks", &into_top);
		}
	}
}

/* ---- _int_malloc ---- */

/*
 * Chunks the unsorted scan put into the tcache, reported when the malloc
 * call ends: the last one is usually handed out right away (glibc's
 * return_cached), and a chunk that goes from free to live within one call
 * needs no report of its own; the allocation event says it all.
 */
struct stashed {
	struct hp_chunk *p[16];
	size_t bytes;
	unsigned n;
};

static void
stash_flush(struct stashed *s, const struct hp_chunk *except)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->p[i] != except)
			report(s->p[i], s->bytes, HP_STATE_CACHED);
	s->n = 0;
}

static inline void
stash_add(struct stashed *s, struct hp_chunk *p, size_t bytes)
{
	if (__builtin_expect(hp_observer == NULL, 1))
		return;
	if (s->n == sizeof(s->p) / sizeof(s->p[0]))
		stash_flush(s, NULL);
	s->bytes = bytes;
	s->p[s->n++] = p;
}

static void *int_malloc(struct hp_mstate *av, size_t bytes, struct stashed *st);

void *
hp_heap_malloc_locked(struct hp_mstate *av, size_t bytes)
{
	struct stashed st;
	void *mem;

	st.n = 0;
	st.bytes = 0;
	mem = int_malloc(av, bytes, &st);
	if (st.n)
		stash_flush(&st, mem ? hp_mem2chunk(mem) : NULL);
	return mem;
}

static void *
int_malloc(struct hp_mstate *av, size_t bytes, struct stashed *st)
{
	size_t nb, size, remainder_size;
	unsigned idx, block, bit, map;
	struct hp_chunk *victim, *bin, *remainder, *fwd, *bck;
	struct hp_tcache *tc = hp_self.tcache;
	void *mem;

	nb = hp_request2size(bytes);
	if (nb == 0) {
		errno = ENOMEM;
		return NULL;
	}
	size_t tc_idx = hp_csize2tidx(nb);

	/* No usable arena: mmap is all there is. */
	if (__builtin_expect(av == NULL, 0)) {
		mem = sysmalloc(NULL, nb);
		if (mem)
			hp_heap_perturb_alloc(mem, bytes);
		return mem;
	}

	if (nb <= hp_mp.max_fast) {
		idx = fastbin_index(nb);
		struct hp_chunk **fb = &av->fastbins[idx];

		victim = *fb;
		if (victim != NULL) {
			if (misaligned(victim))
				hp_corrupt("malloc(): unaligned fastbin chunk detected 2");
			*fb = reveal(&victim->fd);
			if (fastbin_index(hp_chunksize(victim)) != idx)
				hp_corrupt("malloc(): memory corruption (fast)");
			if (tc && tc_idx < hp_mp.tcache_bins) {
				struct hp_chunk *tc_victim;

				while (tc->counts[tc_idx] < hp_mp.tcache_count &&
				       (tc_victim = *fb) != NULL) {
					if (misaligned(tc_victim))
						hp_corrupt("malloc(): unaligned fastbin chunk detected 3");
					*fb = reveal(&tc_victim->fd);
					hp_tcache_put(tc, tc_victim, tc_idx);
					/* from a fastbin into the tcache: still
					 * cached, but out of malloc_consolidate's
					 * reach */
					report(tc_victim, nb, HP_STATE_CACHED);
				}
			}
			mem = hp_chunk2mem(victim);
			hp_heap_perturb_alloc(mem, bytes);
			return mem;
		}
	}

	if (in_smallbin_range(nb)) {
		idx = smallbin_index(nb);
		bin = bin_at(av, idx);
		if ((victim = last(bin)) != bin) {
			bck = victim->bk;
			if (bck->fd != victim)
				hp_corrupt("malloc(): smallbin double linked list corrupted");
			set_inuse_bit_at(victim, nb);
			bin->bk = bck;
			bck->fd = bin;
			set_non_main(av, victim);
			if (tc && tc_idx < hp_mp.tcache_bins) {
				struct hp_chunk *tc_victim;

				while (tc->counts[tc_idx] < hp_mp.tcache_count &&
				       (tc_victim = last(bin)) != bin) {
					bck = tc_victim->bk;
					set_inuse_bit_at(tc_victim, nb);
					set_non_main(av, tc_victim);
					bin->bk = bck;
					bck->fd = bin;
					hp_tcache_put(tc, tc_victim, tc_idx);
					report(tc_victim, nb, HP_STATE_CACHED);
				}
			}
			mem = hp_chunk2mem(victim);
			hp_heap_perturb_alloc(mem, bytes);
			return mem;
		}
	} else {
		idx = largebin_index(nb);
		if (av->have_fastchunks)
			hp_heap_consolidate_locked(av);
	}

	size_t tcache_nb = 0;
	if (tc && tc_idx < hp_mp.tcache_bins)
		tcache_nb = nb;
	bool return_cached = false;
	size_t tcache_unsorted_count = 0;

	for (;;) {
		int iters = 0;

		while ((victim = unsorted_chunks(av)->bk) != unsorted_chunks(av)) {
			bck = victim->bk;
			size = hp_chunksize(victim);
			struct hp_chunk *next = hp_chunk_at(victim, size);

			if (size <= HP_CHUNK_HDR_SZ || size > av->system_mem)
				hp_corrupt("malloc(): invalid size (unsorted)");
			if (next->size < HP_CHUNK_HDR_SZ || next->size > av->system_mem)
				hp_corrupt("malloc(): invalid next size (unsorted)");
			if ((next->prev_size & ~(size_t)HP_SIZE_BITS) != size)
				hp_corrupt("malloc(): mismatching next->prev_size (unsorted)");
			if (bck->fd != victim || victim->fd != unsorted_chunks(av))
				hp_corrupt("malloc(): unsorted double linked list corrupted");
			if (prev_inuse(next))
				hp_corrupt("malloc(): invalid next->prev_inuse (unsorted)");

			/* The last remainder, alone in the unsorted bin: split
			 * it for a small request (locality). */
			if (in_smallbin_range(nb) && bck == unsorted_chunks(av) &&
			    victim == av->last_remainder && size > nb + HP_MINSIZE) {
				remainder_size = size - nb;
				remainder = hp_chunk_at(victim, nb);
				unsorted_chunks(av)->bk = unsorted_chunks(av)->fd = remainder;
				av->last_remainder = remainder;
				remainder->bk = remainder->fd = unsorted_chunks(av);
				if (!in_smallbin_range(remainder_size)) {
					remainder->fd_nextsize = NULL;
					remainder->bk_nextsize = NULL;
				}
				set_head(victim, nb | HP_PREV_INUSE | arena_bit(av));
				set_head(remainder, remainder_size | HP_PREV_INUSE);
				set_foot(remainder, remainder_size);
				mem = hp_chunk2mem(victim);
				hp_heap_perturb_alloc(mem, bytes);
				return mem;
			}

			if (bck->fd != victim)
				hp_corrupt("malloc(): corrupted unsorted chunks 3");
			unsorted_chunks(av)->bk = bck;
			bck->fd = unsorted_chunks(av);

			if (size == nb) {
				set_inuse_bit_at(victim, size);
				set_non_main(av, victim);
				if (tcache_nb && tc->counts[tc_idx] < hp_mp.tcache_count) {
					hp_tcache_put(tc, victim, tc_idx);
					stash_add(st, victim, nb);
					return_cached = true;
					continue;
				}
				mem = hp_chunk2mem(victim);
				hp_heap_perturb_alloc(mem, bytes);
				return mem;
			}

			unsigned victim_index;
			if (in_smallbin_range(size)) {
				victim_index = smallbin_index(size);
				bck = bin_at(av, victim_index);
				fwd = bck->fd;
			} else {
				victim_index = largebin_index(size);
				bck = bin_at(av, victim_index);
				fwd = bck->fd;
				if (fwd != bck) {
					size |= HP_PREV_INUSE;
					if (size < bck->bk->size) {
						fwd = bck;
						bck = bck->bk;
						victim->fd_nextsize = fwd->fd;
						victim->bk_nextsize = fwd->fd->bk_nextsize;
						fwd->fd->bk_nextsize = victim->bk_nextsize->fd_nextsize =
							victim;
					} else {
						while (size < fwd->size)
							fwd = fwd->fd_nextsize;
						if (size == fwd->size) {
							fwd = fwd->fd;
						} else {
							victim->fd_nextsize = fwd;
							victim->bk_nextsize = fwd->bk_nextsize;
							if (fwd->bk_nextsize->fd_nextsize != fwd)
								hp_corrupt("malloc(): largebin double linked list corrupted (nextsize)");
							fwd->bk_nextsize = victim;
							victim->bk_nextsize->fd_nextsize = victim;
						}
						bck = fwd->bk;
						if (bck->fd != fwd)
							hp_corrupt("malloc(): largebin double linked list corrupted (bk)");
					}
				} else {
					victim->fd_nextsize = victim->bk_nextsize = victim;
				}
			}
			mark_bin(av, victim_index);
			victim->bk = bck;
			victim->fd = fwd;
			fwd->bk = victim;
			bck->fd = victim;

			++tcache_unsorted_count;
			if (return_cached && hp_mp.tcache_unsorted_limit > 0 &&
			    tcache_unsorted_count > hp_mp.tcache_unsorted_limit)
				return hp_tcache_get(tc, tc_idx);

			if (++iters >= HP_MAX_ITERS)
				break;
		}

		if (return_cached)
			return hp_tcache_get(tc, tc_idx);

		/* Large request: best fit in its own bin via the skip list. */
		if (!in_smallbin_range(nb)) {
			bin = bin_at(av, idx);
			if ((victim = first(bin)) != bin && victim->size >= nb) {
				victim = victim->bk_nextsize;
				while ((size = hp_chunksize(victim)) < nb)
					victim = victim->bk_nextsize;
				/* Avoid removing the first entry for a size so
				 * the skip list need not be rerouted. */
				if (victim != last(bin) && victim->size == victim->fd->size)
					victim = victim->fd;
				remainder_size = size - nb;
				hp_heap_unlink_chunk(victim);
				if (remainder_size < HP_MINSIZE) {
					set_inuse_bit_at(victim, size);
					set_non_main(av, victim);
				} else {
					remainder = hp_chunk_at(victim, nb);
					unsorted_push(av, remainder, remainder_size,
						      "malloc(): corrupted unsorted chunks");
					set_head(victim, nb | HP_PREV_INUSE | arena_bit(av));
					set_head(remainder, remainder_size | HP_PREV_INUSE);
					set_foot(remainder, remainder_size);
				}
				mem = hp_chunk2mem(victim);
				hp_heap_perturb_alloc(mem, bytes);
				return mem;
			}
		}

		/* Scan larger bins through the binmap: smallest fitting chunk
		 * of the next non-empty bin. */
		++idx;
		bin = bin_at(av, idx);
		block = idx2block(idx);
		map = av->binmap[block];
		bit = idx2bit(idx);

		for (;;) {
			if (bit > map || bit == 0) {
				do {
					if (++block >= HP_BINMAPSIZE)
						goto use_top;
				} while ((map = av->binmap[block]) == 0);
				bin = bin_at(av, block << 5);
				bit = 1;
			}
			while ((bit & map) == 0) {
				bin = next_bin(bin);
				bit <<= 1;
			}
			victim = last(bin);
			if (victim == bin) {
				av->binmap[block] = map &= ~bit;
				bin = next_bin(bin);
				bit <<= 1;
				continue;
			}
			size = hp_chunksize(victim);
			remainder_size = size - nb;
			hp_heap_unlink_chunk(victim);
			if (remainder_size < HP_MINSIZE) {
				set_inuse_bit_at(victim, size);
				set_non_main(av, victim);
			} else {
				remainder = hp_chunk_at(victim, nb);
				unsorted_push(av, remainder, remainder_size,
					      "malloc(): corrupted unsorted chunks 2");
				if (in_smallbin_range(nb))
					av->last_remainder = remainder;
				set_head(victim, nb | HP_PREV_INUSE | arena_bit(av));
				set_head(remainder, remainder_size | HP_PREV_INUSE);
				set_foot(remainder, remainder_size);
			}
			mem = hp_chunk2mem(victim);
			hp_heap_perturb_alloc(mem, bytes);
			return mem;
		}

use_top:
		victim = av->top;
		size = hp_chunksize(victim);
		if (size > av->system_mem)
			hp_corrupt("malloc(): corrupted top size");
		if (size >= nb + HP_MINSIZE) {
			remainder = hp_chunk_at(victim, nb);
			av->top = remainder;
			set_head(victim, nb | HP_PREV_INUSE | arena_bit(av));
			set_head(remainder, (size - nb) | HP_PREV_INUSE);
			mem = hp_chunk2mem(victim);
			hp_heap_perturb_alloc(mem, bytes);
			return mem;
		} else if (av->have_fastchunks) {
			hp_heap_consolidate_locked(av);
			idx = in_smallbin_range(nb) ? smallbin_index(nb) : largebin_index(nb);
		} else {
			mem = sysmalloc(av, nb);
			if (mem)
				hp_heap_perturb_alloc(mem, bytes);
			return mem;
		}
	}
}

/* ---- _int_free ---- */

/* The checks every _int_free starts with. */
static inline size_t
free_checks(struct hp_chunk *p)
{
	size_t size = hp_chunksize(p);

	if (__builtin_expect((uintptr_t)p > (uintptr_t)-size, 0) || misaligned(p))
		hp_corrupt("free(): invalid pointer");
	if (__builtin_expect(size < HP_MINSIZE || (size & HP_ALIGN_MASK), 0))
		hp_corrupt("free(): invalid size");
	return size;
}

bool
hp_tcache_try_free(struct hp_chunk *p, size_t size)
{
	struct hp_tcache *tc = hp_self.tcache;
	size_t tc_idx = hp_csize2tidx(size);

	if (tc == NULL || tc_idx >= hp_mp.tcache_bins)
		return false;
	struct hp_tcache_entry *e = hp_chunk2mem(p);
	if (__builtin_expect(e->key == hp_tcache_key, 0)) {
		size_t cnt = 0;

		for (struct hp_tcache_entry *tmp = tc->entries[tc_idx]; tmp;
		     tmp = hp_protect_ptr(&tmp->next, tmp->next), ++cnt) {
			if (cnt >= hp_mp.tcache_count)
				hp_corrupt("free(): too many chunks detected in tcache");
			if (misaligned(tmp))
				hp_corrupt("free(): unaligned chunk detected in tcache 2");
			if (tmp == e)
				hp_corrupt("free(): double free detected in tcache 2");
		}
	}
	if (tc->counts[tc_idx] < hp_mp.tcache_count) {
		hp_tcache_put(tc, p, tc_idx);
		return true;
	}
	return false;
}

/* _int_free after the tcache step. */
static enum hp_fate
free_tail_locked(struct hp_mstate *av, struct hp_chunk *p, size_t size, bool rep)
{
	enum hp_fate fate;

	if (size <= hp_mp.max_fast) {
		struct hp_chunk *next = hp_chunk_at(p, size);

		if (next->size <= HP_CHUNK_HDR_SZ || hp_chunksize(next) >= av->system_mem)
			hp_corrupt("free(): invalid next size (fast)");
		free_perturb(hp_chunk2mem(p), size - HP_CHUNK_HDR_SZ);
		av->have_fastchunks = true;
		unsigned idx = fastbin_index(size);
		struct hp_chunk **fb = &av->fastbins[idx], *old = *fb;
		if (__builtin_expect(old == p, 0))
			hp_corrupt("double free or corruption (fasttop)");
		p->fd = hp_protect_ptr(&p->fd, old);
		*fb = p;
		if (old != NULL && fastbin_index(hp_chunksize(old)) != idx)
			hp_corrupt("invalid fastbin entry (free)");
		if (rep)
			report(p, size, HP_STATE_FASTBIN);
		return HP_FATE_FASTBIN;
	}

	struct hp_chunk *nextchunk = hp_chunk_at(p, size);
	if (__builtin_expect(p == av->top, 0))
		hp_corrupt("double free or corruption (top)");
	if (contiguous(av) &&
	    (char *)nextchunk >= (char *)av->top + hp_chunksize(av->top))
		hp_corrupt("double free or corruption (out)");
	if (!prev_inuse(nextchunk))
		hp_corrupt("double free or corruption (!prev)");
	size_t nextsize = hp_chunksize(nextchunk);
	if (nextchunk->size <= HP_CHUNK_HDR_SZ || nextsize >= av->system_mem)
		hp_corrupt("free(): invalid next size (normal)");
	free_perturb(hp_chunk2mem(p), size - HP_CHUNK_HDR_SZ);
	if (rep)
		report(p, size, HP_STATE_FREE);

	bool into_top;
	size = coalesce(av, p, size, "corrupted size vs. prev_size while consolidating",
			"free(): corrupted unsorted chunks", &into_top);
	fate = into_top ? HP_FATE_TOP : HP_FATE_BIN;

	if (size >= HP_FASTBIN_CONSOLIDATION_THRESHOLD) {
		if (av->have_fastchunks)
			hp_heap_consolidate_locked(av);
		if (main_arena(av)) {
			if (hp_chunksize(av->top) >= hp_mp.trim_threshold)
				systrim(av, hp_mp.top_pad);
		} else {
			/* Always: the top's heap may go away entirely. */
			hp_tarena_heap_trim_locked(hp_heap_for_ptr(av->top), hp_mp.top_pad);
		}
	}
	return fate;
}

enum hp_fate
hp_heap_free_locked(struct hp_mstate *av, struct hp_chunk *p, bool rep)
{
	size_t size = free_checks(p);

	if (hp_tcache_try_free(p, size)) {
		if (rep)
			report(p, size, HP_STATE_CACHED);
		return HP_FATE_TCACHE;
	}
	return free_tail_locked(av, p, size, rep);
}

enum hp_fate
hp_heap_free(struct hp_chunk *p)
{
	size_t size = free_checks(p);
	enum hp_fate fate;
	bool locked;

	if (hp_tcache_try_free(p, size))
		return HP_FATE_TCACHE;
	struct hp_mstate *av = hp_heap_arena_for_chunk(p);
	locked = hp_mstate_lock(av);
	fate = free_tail_locked(av, p, size, false);
	hp_mstate_unlock(av, locked);
	return fate;
}

struct hp_mstate *
hp_heap_arena_for_chunk(const struct hp_chunk *p)
{
	return hp_chunk_main_arena(p) ? &hp_main_arena : hp_heap_for_ptr(p)->ar_ptr;
}

/* ---- _int_realloc ---- */

void *
hp_heap_realloc_locked(struct hp_mstate *av, struct hp_chunk *oldp, size_t oldsize, size_t nb,
		       enum hp_fate *old_fate)
{
	struct hp_chunk *newp, *next, *remainder;
	size_t newsize, nextsize, remainder_size;
	void *newmem;

	*old_fate = 0;
	if (oldp->size <= HP_CHUNK_HDR_SZ || oldsize >= av->system_mem)
		hp_corrupt("realloc(): invalid old size");
	next = hp_chunk_at(oldp, oldsize);
	nextsize = hp_chunksize(next);
	if (next->size <= HP_CHUNK_HDR_SZ || nextsize >= av->system_mem)
		hp_corrupt("realloc(): invalid next size");

	if (oldsize >= nb) {
		newp = oldp;
		newsize = oldsize;
	} else if (next == av->top && (newsize = oldsize + nextsize) >= nb + HP_MINSIZE) {
		set_head_size(oldp, nb | arena_bit(av));
		av->top = hp_chunk_at(oldp, nb);
		set_head(av->top, (newsize - nb) | HP_PREV_INUSE);
		return hp_chunk2mem(oldp);
	} else if (next != av->top && !inuse_bit_at(next, nextsize) &&
		   (newsize = oldsize + nextsize) >= nb) {
		newp = oldp;
		hp_heap_unlink_chunk(next);
	} else {
		newmem = hp_heap_malloc_locked(av, nb - HP_ALIGN_MASK);
		if (newmem == NULL)
			return NULL;
		newp = hp_mem2chunk(newmem);
		newsize = hp_chunksize(newp);
		if (newp == next) {
			newsize += oldsize;
			newp = oldp;
		} else {
			memcpy(newmem, hp_chunk2mem(oldp), oldsize - HP_SIZE_SZ);
			*old_fate = hp_heap_free_locked(av, oldp, false);
			return newmem;
		}
	}

	remainder_size = newsize - nb;
	if (remainder_size < HP_MINSIZE) {
		set_head_size(newp, newsize | arena_bit(av));
		set_inuse_bit_at(newp, newsize);
	} else {
		remainder = hp_chunk_at(newp, nb);
		set_head_size(newp, nb | arena_bit(av));
		set_head(remainder, remainder_size | HP_PREV_INUSE | arena_bit(av));
		set_inuse_bit_at(remainder, remainder_size);
		hp_heap_free_locked(av, remainder, true);
	}
	return hp_chunk2mem(newp);
}

/* ---- _int_memalign ---- */

void *
hp_heap_memalign_locked(struct hp_mstate *av, size_t alignment, size_t bytes)
{
	size_t nb = hp_request2size(bytes), size, leadsize, newsize;
	struct hp_chunk *p, *newp;
	char *m, *brk;

	if (nb == 0 || alignment > PTRDIFF_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	m = hp_heap_malloc_locked(av, nb + alignment + HP_MINSIZE);
	if (m == NULL)
		return NULL;
	p = hp_mem2chunk(m);

	if ((uintptr_t)m % alignment != 0) {
		brk = (char *)hp_mem2chunk(
			(void *)(((uintptr_t)m + alignment - 1) & -(uintptr_t)alignment));
		if ((size_t)(brk - (char *)p) < HP_MINSIZE)
			brk += alignment;
		newp = (struct hp_chunk *)brk;
		leadsize = (size_t)(brk - (char *)p);
		newsize = hp_chunksize(p) - leadsize;
		if (hp_chunk_is_mmapped(p)) {
			newp->prev_size = p->prev_size + leadsize;
			set_head(newp, newsize | HP_IS_MMAPPED);
			return hp_chunk2mem(newp);
		}
		set_head(newp, newsize | HP_PREV_INUSE | arena_bit(av));
		set_inuse_bit_at(newp, newsize);
		set_head_size(p, leadsize | arena_bit(av));
		hp_heap_free_locked(av, p, true);
		p = newp;
	}

	if (!hp_chunk_is_mmapped(p)) {
		size = hp_chunksize(p);
		if (size > nb + HP_MINSIZE) {
			struct hp_chunk *remainder = hp_chunk_at(p, nb);

			set_head(remainder, (size - nb) | HP_PREV_INUSE | arena_bit(av));
			set_head_size(p, nb);
			hp_heap_free_locked(av, remainder, true);
		}
	}
	return hp_chunk2mem(p);
}

/* ---- malloc_trim ---- */

int
hp_heap_trim_locked(struct hp_mstate *av, size_t pad)
{
	const size_t ps = hp_mp.pagesize, psm1 = ps - 1;
	const unsigned psindex = bin_index(ps);
	int result = 0;

	hp_heap_consolidate_locked(av);
	for (unsigned i = 1; i < HP_NBINS; ++i) {
		if (i != 1 && i < psindex)
			continue;
		struct hp_chunk *bin = bin_at(av, i);
		for (struct hp_chunk *p = last(bin); p != bin; p = p->bk) {
			size_t size = hp_chunksize(p);

			if (size > psm1 + sizeof(struct hp_chunk)) {
				char *paligned = (char *)(((uintptr_t)p + sizeof(struct hp_chunk) +
							   psm1) &
							  ~psm1);
				size -= (size_t)(paligned - (char *)p);
				if (size > psm1) {
					hp_os_madvise(paligned, size & ~psm1, MADV_DONTNEED);
					HP_OBSERVE(madvise, (uintptr_t)paligned, size & ~psm1);
					result = 1;
				}
			}
		}
	}
	return result | (main_arena(av) ? systrim(av, pad) : 0);
}

/* ---- statistics ---- */

void
hp_heap_mallinfo_locked(struct hp_mstate *av, struct mallinfo2 *m)
{
	size_t avail = hp_chunksize(av->top), fastavail = 0;
	size_t nblocks = 1, nfastblocks = 0;

	for (unsigned i = 0; i < HP_NFASTBINS; ++i) {
		for (struct hp_chunk *p = av->fastbins[i]; p != NULL; p = reveal(&p->fd)) {
			if (misaligned(p))
				hp_corrupt("int_mallinfo(): unaligned fastbin chunk detected");
			++nfastblocks;
			fastavail += hp_chunksize(p);
		}
	}
	avail += fastavail;
	for (unsigned i = 1; i < HP_NBINS; ++i) {
		struct hp_chunk *b = bin_at(av, i);
		for (struct hp_chunk *p = last(b); p != b; p = p->bk) {
			++nblocks;
			avail += hp_chunksize(p);
		}
	}
	m->smblks += nfastblocks;
	m->ordblks += nblocks;
	m->fordblks += avail;
	m->uordblks += av->system_mem - avail;
	m->arena += av->system_mem;
	m->fsmblks += fastavail;
	if (main_arena(av)) {
		m->hblks = (size_t)__atomic_load_n(&hp_mp.n_mmaps, __ATOMIC_RELAXED);
		m->hblkhd = __atomic_load_n(&hp_mp.mmapped_mem, __ATOMIC_RELAXED);
		m->usmblks = 0;
		m->keepcost = hp_chunksize(av->top);
	}
}

void
hp_heap_bin_stats_locked(struct hp_mstate *av, struct hp_bin_stats fast[HP_NFASTBINS],
			 struct hp_bin_stats bins[HP_NBINS])
{
	for (unsigned i = 0; i < HP_NFASTBINS; ++i) {
		struct hp_chunk *p = av->fastbins[i];

		fast[i] = (struct hp_bin_stats){ 0 };
		if (p == NULL)
			continue;
		size_t n = 0, thissize = hp_chunksize(p);
		for (; p != NULL; p = reveal(&p->fd)) {
			if (misaligned(p))
				hp_corrupt("__malloc_info(): unaligned fastbin chunk detected");
			++n;
		}
		fast[i].from = thissize - (HP_MALLOC_ALIGNMENT - 1);
		fast[i].to = thissize;
		fast[i].count = n;
		fast[i].total = n * thissize;
	}
	bins[0] = (struct hp_bin_stats){ 0 };
	for (unsigned i = 1; i < HP_NBINS; ++i) {
		struct hp_chunk *b = bin_at(av, i);

		bins[i] = (struct hp_bin_stats){ .from = ~(size_t)0 };
		for (struct hp_chunk *r = b->fd; r != b; r = r->fd) {
			size_t rs = r->size;
			++bins[i].count;
			bins[i].total += rs;
			if (rs < bins[i].from)
				bins[i].from = rs;
			if (rs > bins[i].to)
				bins[i].to = rs;
		}
		if (bins[i].count == 0)
			bins[i].from = 0;
	}
}

/* ---- walking and checking ---- */

struct cached_set {
	uintptr_t *v;
	size_t n, cap;
	bool overflow;
};

static void
collect_cached(struct hp_chunk *p, void *arg)
{
	struct cached_set *s = arg;

	if (s->n < s->cap)
		s->v[s->n++] = (uintptr_t)p;
	else
		s->overflow = true;
}

static int
cmp_uptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

static bool
in_set(const struct cached_set *s, uintptr_t v)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->v[mid] < v)
			lo = mid + 1;
		else if (s->v[mid] > v)
			hi = mid;
		else
			return true;
	}
	return false;
}

static void
sort_uptr(uintptr_t *v, size_t n)
{
	/* Shell sort: no libc qsort (it may allocate). */
	for (size_t gap = n / 2; gap > 0; gap /= 2)
		for (size_t i = gap; i < n; i++)
			for (size_t j = i; j >= gap && cmp_uptr(&v[j - gap], &v[j]) > 0; j -= gap) {
				uintptr_t t = v[j];
				v[j] = v[j - gap];
				v[j - gap] = t;
			}
}

static void
count_one(struct hp_chunk *p, void *arg)
{
	(void)p;
	++*(size_t *)arg;
}

/* The stretches of memory an arena's chunks tile, in address order: the
 * main arena's segments, or a thread arena's heaps. */
struct stretch {
	uintptr_t start, end;
};

static unsigned
arena_stretches(struct hp_mstate *av, struct stretch *out, unsigned cap)
{
	unsigned n = 0;

	if (main_arena(av)) {
		unsigned nseg = hp_main.nsegments < HP_MAX_SEGMENTS ? hp_main.nsegments
								    : HP_MAX_SEGMENTS;
		for (unsigned i = 0; i < nseg && n < cap; i++)
			out[n++] = (struct stretch){ hp_main.segments[i].start,
						     hp_main.segments[i].end };
	} else {
		for (struct hp_heap_info *h = hp_heap_for_ptr(av->top); h && n < cap; h = h->prev) {
			uintptr_t start = (uintptr_t)(h + 1);

			if (h->ar_ptr == (struct hp_mstate *)(h + 1)) {
				/* the first heap holds the malloc_state */
				start += sizeof(struct hp_mstate);
				if ((start + HP_CHUNK_HDR_SZ) & HP_ALIGN_MASK)
					start += HP_MALLOC_ALIGNMENT -
						 ((start + HP_CHUNK_HDR_SZ) & HP_ALIGN_MASK);
			}
			out[n++] = (struct stretch){ start, (uintptr_t)h + h->size };
		}
	}
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && out[j - 1].start > out[j].start; j--) {
			struct stretch t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

#define MAX_STRETCHES 256

static size_t
walk_arena(struct hp_mstate *av, const struct cached_set *set, const struct cached_set *fast,
	   hp_walk_fn fn, void *arg)
{
	struct stretch st[MAX_STRETCHES];
	unsigned n = arena_stretches(av, st, MAX_STRETCHES);
	size_t walked = 0;

	for (unsigned s = 0; s < n; s++) {
		struct hp_chunk *p = (struct hp_chunk *)st[s].start;

		while ((uintptr_t)p < st[s].end) {
			size_t size = hp_chunksize(p);
			bool is_top = p == av->top;
			enum hp_state state;

			if (size == 0) {
				/* a thread heap's closing fencepost */
				fn((uintptr_t)p, st[s].end - (uintptr_t)p, HP_STATE_LIVE, false, arg);
				break;
			}
			if (size == HP_CHUNK_HDR_SZ) {
				/* fencepost: in use, as mallinfo counts it */
				fn((uintptr_t)p, size, HP_STATE_LIVE, false, arg);
				p = hp_chunk_at(p, size);
				continue;
			}
			if ((uintptr_t)p + size > st[s].end)
				break;
			if (is_top || !inuse_bit_at(p, size))
				state = HP_STATE_FREE;
			else if (in_set(fast, (uintptr_t)p))
				state = HP_STATE_FASTBIN;
			else if (in_set(set, (uintptr_t)p))
				state = HP_STATE_CACHED;
			else
				state = HP_STATE_LIVE;
			fn((uintptr_t)p, size, state, is_top, arg);
			walked++;
			if (is_top)
				break;
			p = hp_chunk_at(p, size);
		}
	}
	return walked;
}

static void
collect_fastbins(struct hp_mstate *av, void (*fn)(struct hp_chunk *p, void *arg), void *arg)
{
	for (unsigned i = 0; i < HP_NFASTBINS; ++i)
		for (struct hp_chunk *p = av->fastbins[i]; p != NULL; p = reveal(&p->fd))
			fn(p, arg);
}

size_t
hp_heap_walk(hp_walk_fn fn, void *arg)
{
	struct cached_set set = { 0 }, fast = { 0 };
	size_t n = 0, nfast = 0, walked = 0;
	struct hp_mstate *av = &hp_main_arena;
	bool locked;

	/* Everything cached, in every arena's fastbins and every tcache. */
	do {
		locked = hp_mstate_lock(av);
		collect_fastbins(av, count_one, &nfast);
		hp_mstate_unlock(av, locked);
		av = av->next;
	} while (av != &hp_main_arena);
	hp_tcache_each(count_one, &n);
	set.cap = n + 64;
	set.v = hp_arena_alloc(set.cap * sizeof(uintptr_t), 16, false);
	if (set.v == NULL)
		set.cap = 0;
	fast.cap = nfast + 64;
	fast.v = hp_arena_alloc(fast.cap * sizeof(uintptr_t), 16, false);
	if (fast.v == NULL)
		fast.cap = 0;
	do {
		locked = hp_mstate_lock(av);
		collect_fastbins(av, collect_cached, &fast);
		hp_mstate_unlock(av, locked);
		av = av->next;
	} while (av != &hp_main_arena);
	hp_tcache_each(collect_cached, &set);
	sort_uptr(set.v, set.n);
	sort_uptr(fast.v, fast.n);

	do {
		locked = hp_mstate_lock(av);
		if (av->top != &initial_top)
			walked += walk_arena(av, &set, &fast, fn, arg);
		hp_mstate_unlock(av, locked);
		av = av->next;
	} while (av != &hp_main_arena);
	if (set.v)
		hp_arena_free(set.v);
	if (fast.v)
		hp_arena_free(fast.v);
	return walked;
}

#define CHECK(cond, what, p, inv) HP_CHECK(cond, "heap_check: " what, p, inv)

static void
check_arena(struct hp_mstate *av)
{
	struct stretch st[MAX_STRETCHES];
	unsigned n;
	size_t bytes = 0;
	bool top_seen = false;

	if (av->top == &initial_top)
		return;
	/* 6 */
	CHECK(prev_inuse(av->top), "top without P", av->top, 6);
	CHECK(hp_chunksize(av->top) >= HP_MINSIZE, "top below MINSIZE", av->top, 6);

	/* 4: bins */
	for (unsigned i = 1; i < HP_NBINS; ++i) {
		struct hp_chunk *b = bin_at(av, i);
		size_t prev = ~(size_t)0;

		for (struct hp_chunk *p = b->fd; p != b; p = p->fd) {
			size_t sz = hp_chunksize(p);

			CHECK(p->fd->bk == p && p->bk->fd == p, "bin links broken", p, 4);
			CHECK(!misaligned(p) && sz >= HP_MINSIZE, "binned chunk misaligned", p, 1);
			if (i > 1) {
				CHECK(bin_index(sz) == i, "chunk in the wrong bin", p, 4);
				CHECK(av->binmap[idx2block(i)] & idx2bit(i), "binmap bit clear", p,
				      7);
			}
			if (i >= HP_NSMALLBINS) {
				CHECK(sz <= prev, "large bin not sorted", p, 4);
				prev = sz;
			}
			/* 3 */
			struct hp_chunk *next = hp_chunk_at(p, sz);
			CHECK(!prev_inuse(next) && next->prev_size == sz, "binned chunk footer", p, 3);
			/* 2 */
			CHECK(prev_inuse(p), "two free chunks adjacent", p, 2);
			CHECK(next != av->top, "free chunk borders top", p, 2);
			CHECK(hp_chunksize(next) == 0 ||
				      prev_inuse(hp_chunk_at(next, hp_chunksize(next))),
			      "two free chunks adjacent", next, 2);
		}
	}
	/* 5 */
	for (unsigned i = 0; i < HP_NFASTBINS; ++i)
		for (struct hp_chunk *p = av->fastbins[i]; p != NULL; p = reveal(&p->fd)) {
			CHECK(!misaligned(p), "fastbin chunk misaligned", p, 5);
			CHECK(fastbin_index(hp_chunksize(p)) == i, "fastbin chunk size", p, 5);
			CHECK(prev_inuse(hp_chunk_at(p, hp_chunksize(p))), "fastbin chunk not in use",
			      p, 5);
		}
	/* 1: tiling, stretch by stretch */
	if (main_arena(av) && hp_main.nsegments > HP_MAX_SEGMENTS)
		return; /* too many segments to follow */
	n = arena_stretches(av, st, MAX_STRETCHES);
	for (unsigned s = 0; s < n; s++) {
		struct hp_chunk *p = (struct hp_chunk *)st[s].start;

		bytes += st[s].end - st[s].start;
		while ((uintptr_t)p < st[s].end) {
			size_t sz = hp_chunksize(p);

			CHECK(!misaligned(p), "chunk misaligned", p, 1);
			if (sz == 0) {
				CHECK(!main_arena(av), "size-0 fencepost in the main arena", p, 1);
				break;
			}
			if (sz == HP_CHUNK_HDR_SZ) {
				p = hp_chunk_at(p, sz);
				continue;
			}
			CHECK(sz >= HP_MINSIZE && (uintptr_t)p + sz <= st[s].end,
			      "chunk size out of its stretch", p, 1);
			if (p == av->top) {
				CHECK((uintptr_t)p + sz == st[s].end, "top does not end its stretch",
				      p, 6);
				top_seen = true;
				break;
			}
			if (!main_arena(av) && prev_inuse(hp_chunk_at(p, sz)))
				CHECK(p->size & HP_NON_MAIN_ARENA, "thread arena chunk in use without A",
				      p, 1);
			p = hp_chunk_at(p, sz);
		}
	}
	CHECK(top_seen, "top not found", av->top, 6);
	/* 7: the stretches (plus foreign sbrk gaps in the main arena) are the
	 * memory obtained */
	CHECK(bytes <= av->system_mem, "system_mem below the memory walked", NULL, 7);
}

void
hp_heap_check(void)
{
	struct hp_mstate *av = &hp_main_arena;

	do {
		bool locked = hp_mstate_lock(av);
		check_arena(av);
		hp_mstate_unlock(av, locked);
		av = av->next;
	} while (av != &hp_main_arena);
}
