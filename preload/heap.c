/* SPDX-License-Identifier: MIT */
/*
 * heap.c - the brk heap: glibc 2.36's main-arena policy (see heap.h).
 *
 * Every decision here (which bin, which chunk, when to split, coalesce,
 * consolidate, grow or trim) is glibc 2.36's malloc/malloc.c, so a program
 * gets the same addresses under heapprof as without it. Corruption checks
 * abort with glibc's messages. Runs inside malloc with the arena's lock
 * held (or single-threaded): no stdio, no allocation from this heap, no
 * other lock. The heap walk and check are check.c's.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "selfmem.h"
#include "check.h"
#include "heap.h"
#include "large.h"
#include "log.h"
#include "observe.h"
#include "os.h"
#include "tarena.h"
#include "tcache.h"
#include "thread.h"
#include "tune.h"

struct hp_mstate hp_main_arena = { .lock = HP_MUTEX_INIT, .next = &hp_main_arena,
				   .attached_threads = 1 };
struct hp_main_heap hp_main;
const struct hp_observer *hp_observer; /* observe.h's */

/* glibc's initial_top: a chunk of size 0 until the main arena's first
 * sysmalloc. */
static struct hp_chunk initial_top;

/* ---- bins ---- */

/* malloc.c's names for heap.h's bin arithmetic, so this file reads like it. */
#define bin_at(av, i) hp_bin_at(av, i)
#define in_smallbin_range(sz) hp_in_smallbin_range(sz)
#define smallbin_index(sz) hp_smallbin_index(sz)
#define largebin_index(sz) hp_largebin_index(sz)
#define bin_index(sz) hp_bin_index(sz)
#define fastbin_index(sz) hp_fastbin_index(sz)
#define unsorted_chunks(av) bin_at(av, 1)
#define contiguous(av) (((av)->flags & HP_NONCONTIGUOUS) == 0)
#define main_arena(av) ((av) == &hp_main_arena)
/* The A bit for chunks handed out by a thread arena. */
#define arena_bit(av) (main_arena(av) ? 0 : HP_NON_MAIN_ARENA)
#define next_bin(b) ((struct hp_chunk *)((char *)(b) + (sizeof(void *) << 1)))
#define first(b) ((b)->fd)
#define last(b) ((b)->bk)
#define idx2block(i) ((i) >> 5)
#define idx2bit(i) (1U << ((i)&31))

static inline void
mark_bin(struct hp_mstate *av, unsigned i)
{
	av->binmap[idx2block(i)] |= idx2bit(i);
}

/* ---- chunk helpers ---- */

#define misaligned(p) hp_misaligned(p)
#define prev_inuse(p) hp_chunk_prev_inuse(p)
#define inuse_bit_at(p, off) hp_chunk_inuse_bit_at(p, off)

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
	if (HP_POISON)
		memset(p, HP_POISON_ALLOC, n);
	else if (__builtin_expect(hp_mp.perturb_byte, 0))
		memset(p, hp_mp.perturb_byte ^ 0xff, n);
}

static inline void
free_perturb(void *p, size_t n)
{
	if (HP_POISON)
		memset(p, HP_POISON_FREE, n);
	else if (__builtin_expect(hp_mp.perturb_byte, 0))
		memset(p, hp_mp.perturb_byte, n);
}

/* Invariant 11 (debug level 3): a chunk leaving a fastbin kept its free
 * poison past its fd. */
static inline void
fastbin_leave(const struct hp_chunk *p)
{
	(void)p;
	HP_POISON_CHECK(p, HP_CHUNK_HDR_SZ + sizeof(void *));
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

bool
hp_heap_started(const struct hp_mstate *av)
{
	return av->top != &initial_top;
}

/* ---- segments (for walking; glibc keeps none) ---- */

static void
segment_open(uintptr_t from, uintptr_t start, uintptr_t end, bool mapped)
{
	if (hp_main.nsegments < HP_MAX_SEGMENTS)
		hp_main.segments[hp_main.nsegments] =
			(struct hp_segment){ from, start, end, mapped };
	if (hp_main.nsegments <= HP_MAX_SEGMENTS)
		hp_main.nsegments++;
}

static void
segment_set_end(uintptr_t end)
{
	if (hp_main.nsegments > 0 && hp_main.nsegments <= HP_MAX_SEGMENTS)
		hp_main.segments[hp_main.nsegments - 1].end = end;
}

/* Invariant 6: top ends the stretch opened last (while the main heap has
 * segments to follow). */
static bool
top_ends_its_stretch(const struct hp_mstate *av)
{
	uintptr_t end = (uintptr_t)av->top + hp_chunksize(av->top);

	if (!main_arena(av)) {
		const struct hp_mapped_heap *h = hp_mapped_heap_of(av->top);
		return end == (uintptr_t)h + h->size;
	}
	if (hp_main.nsegments == 0 || hp_main.nsegments > HP_MAX_SEGMENTS)
		return true;
	return end == hp_main.segments[hp_main.nsegments - 1].end;
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
			char *aligned_brk = brk, *counted_from = brk;

			if (contiguous(av)) {
				/* Count foreign sbrk as system_mem. */
				if (old_size) {
					av->system_mem += (size_t)(brk - old_end);
					counted_from = old_end;
				}
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
				segment_open((uintptr_t)counted_from, (uintptr_t)aligned_brk,
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
	HP_ASSERT(top_ends_its_stretch(av), av->top, 6);
	if (av->system_mem > av->max_system_mem)
		av->max_system_mem = av->system_mem;

	p = av->top;
	size = hp_chunksize(p);
	if (size >= nb + HP_MINSIZE) {
		remainder = hp_chunk_at(p, nb);
		av->top = remainder;
		set_head(p, nb | HP_PREV_INUSE | arena_bit(av));
		set_head(remainder, (size - nb) | HP_PREV_INUSE);
		HP_CHECK_SLOW_PATH(av);
		return hp_chunk2mem(p);
	}
	HP_CHECK_SLOW_PATH(av);
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
				HP_ASSERT(hp_chunksize(av->top) >= HP_MINSIZE &&
						  top_ends_its_stretch(av),
					  av->top, 6);
				HP_CHECK_SLOW_PATH(av);
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
		HP_ASSERT(!inuse_bit_at(p, size), p, 3);
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
	HP_ASSERT(hp_mstate_held(av), av, 10);
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
			fastbin_leave(p);

			bool into_top;
			report(p, hp_chunksize(p), HP_STATE_FREE);
			coalesce(av, p, hp_chunksize(p), "corrupted size vs. prev_size in fastbins",
				 "malloc(): corrupted unsorted chunks", &into_top);
		}
	}
	HP_CHECK_SLOW_PATH(av);
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

	HP_ASSERT(av == NULL || hp_mstate_held(av), av, 10);
	st.n = 0;
	st.bytes = 0;
	mem = int_malloc(av, bytes, &st);
	if (st.n)
		stash_flush(&st, mem ? hp_mem2chunk(mem) : NULL);
	HP_ASSERT(mem == NULL || !misaligned(mem), mem, 1);
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
			fastbin_leave(victim);
			if (tc && tc_idx < hp_mp.tcache_bins) {
				struct hp_chunk *tc_victim;

				while (tc->counts[tc_idx] < hp_mp.tcache_count &&
				       (tc_victim = *fb) != NULL) {
					if (misaligned(tc_victim))
						hp_corrupt("malloc(): unaligned fastbin chunk detected 3");
					*fb = reveal(&tc_victim->fd);
					fastbin_leave(tc_victim);
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

/* _int_free after the tcache step. */
static enum hp_fate
free_tail_locked(struct hp_mstate *av, struct hp_chunk *p, size_t size, bool rep)
{
	enum hp_fate fate;

	HP_ASSERT(hp_mstate_held(av), p, 10);
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
			hp_tarena_heap_trim_locked(hp_mapped_heap_of(av->top), hp_mp.top_pad);
		}
	}
	return fate;
}

enum hp_fate
hp_heap_free_locked(struct hp_mstate *av, struct hp_chunk *p, bool rep)
{
	size_t size = free_checks(p);

	HP_ASSERT(hp_mstate_held(av), p, 10);
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
	return hp_chunk_main_arena(p) ? &hp_main_arena : hp_mapped_heap_of(p)->ar_ptr;
}

/* ---- _int_realloc ---- */

void *
hp_heap_realloc_locked(struct hp_mstate *av, struct hp_chunk *oldp, size_t oldsize, size_t nb,
		       enum hp_fate *old_fate)
{
	struct hp_chunk *newp, *next, *remainder;
	size_t newsize, nextsize, remainder_size;
	void *newmem;

	HP_ASSERT(hp_mstate_held(av), oldp, 10);
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
		/* next in use: a chunk the program freed into a fastbin (a
		 * fastbin chunk keeps its in-use bit), if malloc hands it out */
		bool next_cached = next != av->top && inuse_bit_at(next, nextsize);

		newmem = hp_heap_malloc_locked(av, nb - HP_ALIGN_MASK);
		if (newmem == NULL)
			return NULL;
		newp = hp_mem2chunk(newmem);
		newsize = hp_chunksize(newp);
		if (newp == next) {
			/* it leaves its cache, to become part of oldp (the
			 * resize says so): no allocation reports it */
			if (next_cached)
				report(next, newsize, HP_STATE_FREE);
			newsize += oldsize;
			newp = oldp;
		} else {
			/* The replay of heapprof advise (os-sim.h) keeps no
			 * data in its chunks: copying would only touch pages. */
			if (!HP_OS_SIM)
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

	HP_ASSERT(hp_mstate_held(av), av, 10);
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

	HP_ASSERT(hp_mstate_held(av), av, 10);
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
	result |= main_arena(av) ? systrim(av, pad) : 0;
	HP_CHECK_SLOW_PATH(av);
	return result;
}

/* ---- statistics ---- */

void
hp_heap_mallinfo_locked(struct hp_mstate *av, struct mallinfo2 *m)
{
	size_t avail = hp_chunksize(av->top), fastavail = 0;
	size_t nblocks = 1, nfastblocks = 0;

	HP_ASSERT(hp_mstate_held(av), av, 10);
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
	HP_ASSERT(hp_mstate_held(av), av, 10);
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
