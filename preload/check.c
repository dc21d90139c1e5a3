/* SPDX-License-Identifier: MIT */
/*
 * check.c - the heap walk and the heap check (see check.h).
 *
 * Reads the arenas' chunks, bins and tcaches under each arena's lock and
 * changes nothing: no allocation from the tracked heaps (the walk's scratch
 * comes from heapprof's own memory), no stdio, no lock but the arenas' and the
 * tcache registry's.
 */
#include "config.h"

#include "selfmem.h"
#include "check.h"
#include "heap.h"
#include "log.h"
#include "tarena.h"
#include "tcache.h"
#include "thread.h"

#define main_arena(av) ((av) == &hp_main_arena)

/* The next chunk of a fastbin list (safe-linked). */
static inline struct hp_chunk *
next_fast(struct hp_chunk *p)
{
	return hp_protect_ptr(&p->fd, p->fd);
}

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
 * main arena's segments, or a thread arena's heaps; with the bytes the
 * arena counts in system_mem for each, and which one holds top. */
struct stretch {
	uintptr_t start, end;
	size_t counted;
	bool holds_top;
};

static unsigned
arena_stretches(struct hp_mstate *av, struct stretch *out, unsigned cap)
{
	unsigned n = 0;

	if (main_arena(av)) {
		unsigned nseg = hp_main.nsegments < HP_MAX_SEGMENTS ? hp_main.nsegments
								    : HP_MAX_SEGMENTS;
		for (unsigned i = 0; i < nseg && n < cap; i++) {
			const struct hp_segment *g = &hp_main.segments[i];

			out[n++] = (struct stretch){ g->start, g->end, g->end - g->from,
						     i + 1 == hp_main.nsegments };
		}
	} else {
		struct hp_mapped_heap *top_heap = hp_mapped_heap_of(av->top);

		for (struct hp_mapped_heap *h = top_heap; h && n < cap; h = h->prev) {
			uintptr_t start = (uintptr_t)(h + 1);

			if (h->ar_ptr == (struct hp_mstate *)(h + 1)) {
				/* the first heap holds the malloc_state */
				start += sizeof(struct hp_mstate);
				if ((start + HP_CHUNK_HDR_SZ) & HP_ALIGN_MASK)
					start += HP_MALLOC_ALIGNMENT -
						 ((start + HP_CHUNK_HDR_SZ) & HP_ALIGN_MASK);
			}
			out[n++] = (struct stretch){ start, (uintptr_t)h + h->size, h->size,
						     h == top_heap };
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
				fn((uintptr_t)p, st[s].end - (uintptr_t)p, HP_STATE_LIVE, false,
				   arg);
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
			if (is_top || !hp_chunk_inuse_bit_at(p, size))
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
		for (struct hp_chunk *p = av->fastbins[i]; p != NULL; p = next_fast(p))
			fn(p, arg);
}

size_t
hp_check_walk(hp_walk_fn fn, void *arg)
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
	set.v = hp_selfmem_alloc(set.cap * sizeof(uintptr_t), 16, false);
	if (set.v == NULL)
		set.cap = 0;
	fast.cap = nfast + 64;
	fast.v = hp_selfmem_alloc(fast.cap * sizeof(uintptr_t), 16, false);
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
		if (hp_heap_started(av))
			walked += walk_arena(av, &set, &fast, fn, arg);
		hp_mstate_unlock(av, locked);
		av = av->next;
	} while (av != &hp_main_arena);
	if (set.v)
		hp_selfmem_free(set.v);
	if (fast.v)
		hp_selfmem_free(fast.v);
	return walked;
}

#define CHECK(cond, what, p, inv) HP_CHECK(cond, "heap_check: " what, p, inv)

/* 6: top (2 and 3 hold for it as for any chunk: P set, nothing free
 * before it). */
static void
check_top(struct hp_mstate *av)
{
	struct hp_chunk *top = av->top;

	CHECK(hp_chunk_prev_inuse(top), "top without P", top, 6);
	CHECK(hp_chunksize(top) >= HP_MINSIZE, "top below MINSIZE", top, 6);
	if (main_arena(av) && hp_main.nsegments >= 1 && hp_main.nsegments <= HP_MAX_SEGMENTS) {
		const struct hp_segment *g = &hp_main.segments[hp_main.nsegments - 1];

		CHECK((uintptr_t)top >= g->start &&
			      (uintptr_t)top + hp_chunksize(top) == g->end,
		      "top does not end the last segment", top, 6);
	} else if (!main_arena(av)) {
		struct hp_mapped_heap *h = hp_mapped_heap_of(top);

		CHECK(h->ar_ptr == av && (uintptr_t)top + hp_chunksize(top) ==
						 (uintptr_t)h + h->size,
		      "top does not end its heap", top, 6);
	}
}

/* 4: the skip list of large bin b, whose chunks are sorted (checked by
 * the caller): the first chunk of each size, circular, doubly linked, in
 * decreasing size; the other chunks are not in it. */
static void
check_skip_list(struct hp_chunk *b)
{
	struct hp_chunk *first = b->fd, *head = NULL;
	size_t prev_sz = 0;

	for (struct hp_chunk *p = first; p != b; p = p->fd) {
		size_t sz = hp_chunksize(p);

		if (p == first || sz != prev_sz) {
			CHECK(p->fd_nextsize != NULL && p->bk_nextsize != NULL,
			      "first chunk of its size not in the skip list", p, 4);
			CHECK(p->fd_nextsize->bk_nextsize == p && p->bk_nextsize->fd_nextsize == p,
			      "skip list links broken", p, 4);
			if (head != NULL)
				CHECK(head->fd_nextsize == p, "skip list misses a size", head, 4);
			head = p;
		} else {
			CHECK(p->fd_nextsize == NULL && p->bk_nextsize == NULL,
			      "skip list holds a chunk that is not the first of its size", p, 4);
		}
		prev_sz = sz;
	}
	if (head != NULL)
		CHECK(head->fd_nextsize == first, "skip list not circular", head, 4);
}

/* 2, 3, 4 and the binmap of 7: every bin. */
static void
check_bins(struct hp_mstate *av)
{
	for (unsigned i = 1; i < HP_NBINS; ++i) {
		struct hp_chunk *b = hp_bin_at(av, i);
		size_t prev = ~(size_t)0;

		for (struct hp_chunk *p = b->fd; p != b; p = p->fd) {
			size_t sz = hp_chunksize(p);

			CHECK(p->fd->bk == p && p->bk->fd == p, "bin links broken", p, 4);
			CHECK(!hp_misaligned(p) && sz >= HP_MINSIZE, "binned chunk misaligned", p,
			      1);
			if (i == 1) {
				if (!hp_in_smallbin_range(sz))
					CHECK(p->fd_nextsize == NULL && p->bk_nextsize == NULL,
					      "unsorted chunk in a skip list", p, 4);
			} else {
				CHECK(hp_bin_index(sz) == i, "chunk in the wrong bin", p, 4);
				CHECK(hp_binmap_bit(av, i), "binmap bit clear", p, 7);
			}
			if (i >= HP_NSMALLBINS) {
				CHECK(sz <= prev, "large bin not sorted", p, 4);
				prev = sz;
			}
			/* 3 */
			struct hp_chunk *next = hp_chunk_at(p, sz);
			CHECK(!hp_chunk_prev_inuse(next) && next->prev_size == sz,
			      "binned chunk footer", p, 3);
			/* 2 */
			CHECK(hp_chunk_prev_inuse(p), "two free chunks adjacent", p, 2);
			CHECK(next != av->top, "free chunk borders top", p, 2);
			CHECK(hp_chunksize(next) == 0 ||
				      hp_chunk_inuse_bit_at(next, hp_chunksize(next)),
			      "two free chunks adjacent", next, 2);
		}
		if (i >= HP_NSMALLBINS)
			check_skip_list(b);
	}
}

/* Whether chunk p is in the calling thread's tcache list idx. */
static bool
in_own_tcache(const struct hp_chunk *p, size_t idx)
{
	struct hp_tcache *tc = hp_self.tcache;

	if (tc == NULL || idx >= HP_TCACHE_MAX_BINS)
		return false;
	for (struct hp_tcache_entry *e = tc->entries[idx]; e != NULL;
	     e = hp_protect_ptr(&e->next, e->next))
		if (hp_mem2chunk(e) == p)
			return true;
	return false;
}

/* 5, and of 9 that no chunk is in a fastbin and the caller's tcache. */
static void
check_fastbins(struct hp_mstate *av)
{
	for (unsigned i = 0; i < HP_NFASTBINS; ++i)
		for (struct hp_chunk *p = av->fastbins[i]; p != NULL; p = next_fast(p)) {
			size_t sz = hp_chunksize(p);

			CHECK(!hp_misaligned(p), "fastbin chunk misaligned", p, 5);
			CHECK(hp_fastbin_index(sz) == i, "fastbin chunk size", p, 5);
			CHECK(hp_chunk_inuse_bit_at(p, sz), "fastbin chunk not in use", p, 5);
			CHECK(!in_own_tcache(p, hp_csize2tidx(sz)),
			      "chunk both in a fastbin and in the tcache", p, 9);
		}
}

/* 1, 8 and the A bit: the chunks of one stretch, from its first chunk to
 * top or to its closing fenceposts. Returns whether top was met. */
static bool
check_stretch(struct hp_mstate *av, const struct stretch *st)
{
	struct hp_chunk *p = (struct hp_chunk *)st->start;
	unsigned fences = 0; /* 16-byte chunks met since the last chunk */
	struct hp_chunk *prev = NULL;

	while ((uintptr_t)p < st->end) {
		size_t sz = hp_chunksize(p);

		CHECK(!hp_misaligned(p), "chunk misaligned", p, 1);
		if (sz == 0) {
			/* a thread heap's closing fencepost, after the rest of
			 * the old top: a 16-byte fencepost or an in-use chunk */
			CHECK(!main_arena(av), "size-0 chunk in the main arena", p, 8);
			CHECK(!st->holds_top, "size-0 fencepost in the heap of top", p, 8);
			CHECK(p->size == HP_PREV_INUSE && (uintptr_t)p + HP_CHUNK_HDR_SZ == st->end,
			      "size-0 fencepost not in its heap's last 16 bytes, with P", p, 8);
			CHECK(prev != NULL, "size-0 fencepost without the old top before it", p, 8);
			return false;
		}
		if (sz == HP_CHUNK_HDR_SZ) {
			CHECK(!st->holds_top, "fencepost in the stretch of top", p, 8);
			CHECK((uintptr_t)p + sz <= st->end, "fencepost out of its stretch", p, 8);
			fences++;
			prev = p;
			p = hp_chunk_at(p, sz);
			continue;
		}
		CHECK(fences == 0, "a chunk after a fencepost", p, 8);
		CHECK(sz >= HP_MINSIZE && (uintptr_t)p + sz <= st->end,
		      "chunk size out of its stretch", p, 1);
		if (p == av->top) {
			CHECK(st->holds_top, "top in a stretch that is not the last", p, 6);
			CHECK((uintptr_t)p + sz == st->end, "top does not end its stretch", p, 6);
			return true;
		}
		if (!main_arena(av) && hp_chunk_inuse_bit_at(p, sz))
			CHECK(p->size & HP_NON_MAIN_ARENA, "thread arena chunk in use without A", p,
			      1);
		prev = p;
		p = hp_chunk_at(p, sz);
	}
	/* a main-arena segment that top left: two 16-byte fenceposts */
	CHECK(!st->holds_top, "top not found in its stretch", av->top, 6);
	CHECK(main_arena(av) && fences >= 2 && (uintptr_t)p == st->end,
	      "stretch does not end in fenceposts", prev, 8);
	return false;
}

/* 9: the calling thread's tcache (other threads change theirs without a
 * lock). */
static void
check_own_tcache(void)
{
	struct hp_tcache *tc = hp_self.tcache;

	if (tc == NULL)
		return;
	for (size_t i = 0; i < HP_TCACHE_MAX_BINS; i++) {
		size_t n = 0;

		CHECK(tc->counts[i] <= hp_mp.tcache_count, "tcache count above tcache_count", tc,
		      9);
		for (struct hp_tcache_entry *e = tc->entries[i]; e != NULL;
		     e = hp_protect_ptr(&e->next, e->next)) {
			struct hp_chunk *p = hp_mem2chunk(e);

			CHECK(++n <= tc->counts[i], "tcache list longer than its count", p, 9);
			CHECK(!hp_misaligned(e), "tcache entry misaligned", p, 9);
			CHECK(!hp_chunk_is_mmapped(p) && hp_chunksize(p) >= HP_MINSIZE &&
				      hp_csize2tidx(hp_chunksize(p)) == i,
			      "tcache entry of another bin's size", p, 9);
			CHECK(hp_chunk_inuse_bit_at(p, hp_chunksize(p)), "tcache entry not in use",
			      p, 9);
			CHECK(e->key == hp_tcache_key, "tcache entry without the key", p, 9);
		}
		CHECK(n == tc->counts[i], "tcache list shorter than its count", tc, 9);
	}
}

static void
check_arena(struct hp_mstate *av)
{
	struct stretch st[MAX_STRETCHES];
	unsigned n;
	size_t counted = 0;
	bool top_seen = false;

	if (!hp_heap_started(av))
		return;
	check_top(av);
	check_bins(av);
	check_fastbins(av);
	if (main_arena(av) && hp_main.nsegments > HP_MAX_SEGMENTS)
		return; /* too many segments to follow */
	n = arena_stretches(av, st, MAX_STRETCHES);
	if (n == MAX_STRETCHES)
		return; /* perhaps more heaps than can be followed */
	for (unsigned s = 0; s < n; s++) {
		top_seen |= check_stretch(av, &st[s]);
		counted += st[s].counted;
	}
	CHECK(top_seen, "top not found", av->top, 6);
	CHECK(counted == av->system_mem, "system_mem is not the memory obtained", NULL, 7);
}

void
hp_check_poison(const struct hp_chunk *p, size_t from)
{
	const uint64_t word = 0x0101010101010101ULL * HP_POISON_FREE;
	const unsigned char *b = (const unsigned char *)p + from;
	const unsigned char *end = (const unsigned char *)p + hp_chunksize(p);

	/* from and the chunk size are multiples of 8 */
	for (; b < end; b += sizeof(word))
		CHECK(*(const uint64_t *)b == word, "a cached chunk written after it was freed", p,
		      11);
}

void
hp_check_arena_locked(struct hp_mstate *av)
{
	HP_ASSERT(hp_mstate_held(av), av, 10);
	check_arena(av);
	check_own_tcache();
}

void
hp_check_heaps(void)
{
	struct hp_mstate *av = &hp_main_arena;

	do {
		bool locked = hp_mstate_lock(av);
		check_arena(av);
		hp_mstate_unlock(av, locked);
		av = av->next;
	} while (av != &hp_main_arena);
	check_own_tcache();
}
