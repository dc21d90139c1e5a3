/* SPDX-License-Identifier: MIT */
/*
 * test-replay - the heap model and the replay on made-up recordings.
 *
 * 1. heapmodel against brute force: random chunks occupy and vacate a
 *    heap; after every step untrimmable bytes, the top pin and top free
 *    must be what a walk of a plain array says, and the bitmap's
 *    previous/next searches must agree with a linear scan.
 * 2. replay on small recordings whose answers are worked out by hand:
 *    figures at the end, at the worst instant and at a given time; the pin
 *    chain and its weights; holes, malloc_trim's pages and former sites;
 *    a forked child that starts from its parent's heap; what
 *    malloc_trim(0) would give back (fastbins consolidated, resident
 *    pages only, the top).
 *
 * Usage: test-replay [seed] [steps]
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../harness.h"
#include "../progs/rng.h"
#include "chunkmap.h"
#include "heapmodel.h"
#include "replay.h"

#define HEAP (256u << 10) /* 256 KiB of heap: 16384 granules */
#define G 16

/* No chunk of the array overlaps [g, g + bytes / G) granules. */
static int
room_at(const uint32_t *size_at, uint32_t g, uint32_t bytes)
{
	for (uint32_t k = g >= 64 ? g - 64 : 0; k < g + bytes / G; k++)
		if (size_at[k] && k + size_at[k] / G > g)
			return 0;
	return 1;
}

static void
model_vs_brute_force(uint64_t seed, unsigned steps)
{
	static uint32_t size_at[HEAP / G]; /* granule -> chunk bytes, 0: none */
	struct chunkmap *map = chunkmap_new();
	struct hm m;
	const uint64_t base = 0x555555560000ULL;
	unsigned bad_untrim = 0, bad_top = 0, bad_search = 0, peak = 0, live = 0;

	memset(size_at, 0, sizeof(size_at));
	hm_init(&m, map);
	hm_brk(&m, base, base + HEAP);
	for (unsigned step = 0; step < steps; step++) {
		uint64_t x = rng_next(&seed);
		/* chunks of 32..1024 bytes at 32-byte steps, never overlapping */
		uint32_t bytes = (uint32_t)(32 + 32 * ((x >> 32) % 32));
		uint32_t g = (uint32_t)((x >> 8) % (HEAP / G - 64)) & ~1u;
		struct chunk_entry *c = chunkmap_slot(map, base + (uint64_t)g * G);

		if (c && c->addr == base + (uint64_t)g * G) {
			hm_vacate(&m, c);
			chunkmap_remove(map, c);
			size_at[g] = 0;
		} else if (!c && room_at(size_at, g, bytes)) {
			c = chunkmap_add(map, base + (uint64_t)g * G);
			c->chunk_bytes = bytes;
			c->kind = HM_CHUNK;
			c->cached = (x & 7) == 0;
			hm_occupy(&m, c);
			size_at[g] = bytes;
		}
		/* brute force: occupied, top end */
		uint64_t occupied = 0, top_end = base;
		live = 0;
		for (uint32_t k = 0; k < HEAP / G; k++)
			if (size_at[k]) {
				occupied += size_at[k];
				top_end = base + (uint64_t)k * G + size_at[k];
				live++;
			}
		if (live > peak)
			peak = live;
		uint64_t untrimmable = top_end > base ? top_end - base - occupied : 0;
		bad_untrim += m.untrimmable != untrimmable;
		bad_top += hm_top_free(&m) != base + HEAP - top_end;
		if (step % 64 == 0) {
			uint32_t probe = (uint32_t)(rng_next(&seed) % (HEAP / G));
			long long prev = -1, next = -1;
			for (uint32_t k = 0; k < probe; k++)
				if (size_at[k])
					prev = k;
			for (uint32_t k = probe; k < HEAP / G; k++)
				if (size_at[k]) {
					next = k;
					break;
				}
			bad_search += hm_prev(&m.heaps[0], probe) != prev;
			bad_search += hm_next(&m.heaps[0], probe) != next;
		}
	}
	CHECK(bad_untrim == 0, "untrimmable bytes agree after every step (%u wrong)", bad_untrim);
	CHECK(bad_top == 0, "top free agrees after every step (%u wrong)", bad_top);
	CHECK(bad_search == 0, "previous/next occupied granule agree (%u wrong)", bad_search);
	CHECK(peak > 100, "the heap filled up (%u chunks at most)", peak);
	hm_free(&m);
	chunkmap_free(map);
}

/* ---- made-up recordings ---- */

#define B 0x500000000000ULL /* heap base */
#define KB 1024ULL

static struct rp_chunk
chunk(uint64_t off, uint64_t bytes, int64_t alloc, int64_t free_, uint8_t fate, int64_t released,
      int64_t stack)
{
	static int64_t id;
	return (struct rp_chunk){ .addr = B + off, .bytes = bytes, .size = bytes - 16,
				  .alloc_ns = alloc, .free_ns = free_, .released_ns = released,
				  .chunk_id = ++id, .stack_id = stack, .backing = HP_BACKING_BRK,
				  .fate = fate };
}

static void
recordings(void)
{
	/* The heap grows to 1 MiB at t=1. Ten 64 KiB chunks at 0..640 KiB
	 * (t=10..19, stack 1), a 48-byte pin above them at 640 KiB (t=20,
	 * stack 2, live to the end); chunks 0..4 freed at t=30..34 (bins),
	 * 5..9 at t=40..44: one hole of 640 KiB below the pin by t=44. A
	 * 4 KiB chunk (stack 3) at 128 KiB reuses part of the hole at t=50
	 * and lives on: the worst instant is t=44. */
	struct rp_chunk c[16];
	size_t n = 0;
	for (int i = 0; i < 10; i++)
		c[n++] = chunk((uint64_t)i * 64 * KB, 64 * KB, 10 + i, i < 5 ? 30 + i : 35 + i, HP_FATE_BIN,
			       0, 1);
	c[n++] = chunk(640 * KB, 48, 20, 0, 0, 0, 2);
	c[n++] = chunk(128 * KB, 4 * KB, 50, 0, 0, 0, 3);
	/* a cached chunk: freed into the tcache at t=60, still held */
	c[n++] = chunk(640 * KB + 48, 48, 55, 60, HP_FATE_TCACHE, 0, 4);
	struct rp_event ev[] = {
		{ .ns = 1, .kind = HP_HEV_BRK, .addr = B, .bytes = B + 1024 * KB },
	};
	struct rp_input in = { .chunks = c, .nchunks = n, .events = ev, .nevents = 1,
			       .heap_start = B, .started_ns = 0, .ended_ns = 100 };
	struct rp_options opt = { .at = RP_AT_EXIT, .top = 10 };
	struct rp_result *r = rp_analyze(&in, &opt);

	uint64_t top_end = 640 * KB + 96;
	CHECK(r->at.extent == 1024 * KB, "extent 1 MiB (%llu)", (unsigned long long)r->at.extent);
	CHECK(r->at.live == 48 + 4 * KB, "live: the pin and the 4 KiB chunk");
	CHECK(r->at.cached == 48 && r->at.cached_chunks == 1, "cached: the tcache chunk");
	CHECK(r->at.top_free == 1024 * KB - top_end, "top free: above the cached chunk");
	CHECK(r->at.untrimmable == 640 * KB - 4 * KB, "untrimmable: the hole less the 4 KiB (%llu)",
	      (unsigned long long)r->at.untrimmable);
	CHECK(r->npins == 3 && r->pins[0].state == RP_CACHED && r->pins[0].stack_id == 4 &&
		      r->pins[0].weight == 48,
	      "the top pin is the cached chunk, weight its own 48 bytes");
	CHECK(r->npins == 3 && r->pins[1].state == RP_LIVE && r->pins[1].stack_id == 2 &&
		      r->pins[1].weight == 48 + (640 - 132) * KB,
	      "then the live pin, weight itself and the hole below it");
	CHECK(r->npins == 3 && r->pins[2].stack_id == 3 && r->pins[2].weight == (4 + 128) * KB,
	      "then the 4 KiB chunk over the lowest hole; no pin below the last hole");
	CHECK(r->nholes == 2 && r->holes[0].bytes == (640 - 132) * KB &&
		      r->holes[1].bytes == 128 * KB,
	      "two holes, largest first");
	/* malloc_trim: whole pages past 48 bytes of header */
	CHECK(r->holes[0].trim_reclaimable == (640 - 132) * KB - 4 * KB,
	      "the big hole gives back all its pages but the first");
	CHECK(r->at.trim_reclaimable == (640 - 132 - 4 + 128 - 4) * KB,
	      "reclaimable bytes are the sum over holes");
	CHECK(r->holes[0].nsites == 1 && r->holes[0].sites[0].stack_id == 1 &&
		      r->holes[0].sites[0].chunks == 8,
	      "the big hole was last held by 8 of stack 1's chunks (%zu sites, %llu chunks)",
	      r->holes[0].nsites, r->holes[0].nsites ? (unsigned long long)r->holes[0].sites[0].chunks : 0);
	CHECK(r->worst_untrimmable == 640 * KB && r->worst_ns == 44,
	      "worst: 640 KiB at t=44 (%llu at %lld)", (unsigned long long)r->worst_untrimmable,
	      (long long)r->worst_ns);
	CHECK(r->peak_live == 640 * KB + 48 && r->peak_live_ns == 20, "peak live at t=20");
	CHECK(r->leaked_chunks == 2, "leaks: the two chunks never freed");
	rp_free(r);

	opt.at = RP_AT_WORST;
	r = rp_analyze(&in, &opt);
	CHECK(r->at.at_ns == 44 && r->at.untrimmable == 640 * KB && r->at.live == 48,
	      "at worst: the whole hole, only the pin live");
	CHECK(r->npins == 1 && r->pins[0].stack_id == 2, "at worst: the pin is the live 48 bytes");
	rp_free(r);

	opt.at = RP_AT_TIME;
	opt.at_ns = 32;
	r = rp_analyze(&in, &opt);
	CHECK(r->at.untrimmable == 3 * 64 * KB && r->at.live == 7 * 64 * KB + 48,
	      "at t=32: three blocks freed below the rest");
	rp_free(r);

	/* A forked child (fork at t=25: blocks and pin live) frees the pin
	 * it inherited and allocates nothing: its heap is the parent's. */
	struct rp_event cev[] = {
		{ .ns = 30, .kind = HP_HEV_INHERITED_FREE, .addr = B + 640 * KB, .bytes = 48,
		  .value = HP_FATE_BIN, .has_value = true },
	};
	struct rp_input child = { .events = cev, .nevents = 1, .heap_start = B + 1024 * KB,
				  .started_ns = 26, .ended_ns = 40, .parent = &in, .fork_ns = 25 };
	opt.at = RP_AT_EXIT;
	r = rp_analyze(&child, &opt);
	CHECK(r->at.extent == 1024 * KB && r->at.live == 640 * KB,
	      "child: the parent's heap at the fork, less the freed pin");
	CHECK(r->at.untrimmable == 0, "child: nothing pinned once the pin is gone");
	rp_free(r);
}

/* ---- rp_frames and the visit: the same as rp_analyze at each instant ---- */

static bool
same_result(const struct rp_result *a, const struct rp_result *b)
{
	const struct rp_figures *f = &a->at, *g = &b->at;

	if (f->at_ns != g->at_ns || f->extent != g->extent || f->live != g->live ||
	    f->cached != g->cached || f->allocator != g->allocator || f->top_free != g->top_free ||
	    f->untrimmable != g->untrimmable || f->trim_reclaimable != g->trim_reclaimable ||
	    f->mmap != g->mmap || f->retained != g->retained || f->live_chunks != g->live_chunks ||
	    f->cached_chunks != g->cached_chunks || f->mmap_chunks != g->mmap_chunks ||
	    a->npins != b->npins || a->nholes != b->nholes || a->nheaps != b->nheaps)
		return false;
	for (size_t i = 0; i < a->npins; i++) {
		const struct rp_pin *x = &a->pins[i], *y = &b->pins[i];
		if (x->addr != y->addr || x->bytes != y->bytes || x->weight != y->weight ||
		    x->alloc_ns != y->alloc_ns || x->chunk_id != y->chunk_id ||
		    x->stack_id != y->stack_id || x->state != y->state || x->heap != y->heap)
			return false;
	}
	for (size_t i = 0; i < a->nheaps; i++) {
		const struct rp_heap *x = &a->heaps[i], *y = &b->heaps[i];
		if (x->start != y->start || x->end != y->end || x->kind != y->kind ||
		    x->occupied != y->occupied || x->top_end != y->top_end)
			return false;
	}
	for (size_t i = 0; i < a->nholes; i++) {
		const struct rp_hole *x = &a->holes[i], *y = &b->holes[i];
		if (x->addr != y->addr || x->bytes != y->bytes || x->nsites != y->nsites ||
		    x->trim_reclaimable != y->trim_reclaimable || x->heap != y->heap)
			return false;
		for (size_t k = 0; k < x->nsites; k++)
			if (x->sites[k].stack_id != y->sites[k].stack_id ||
			    x->sites[k].bytes != y->sites[k].bytes ||
			    x->sites[k].chunks != y->sites[k].chunks)
				return false;
	}
	return true;
}

/* What the visit saw: bytes by state, the free gaps below each heap's top
 * (its holes), ranges in address order, mmap chunks. */
struct seen {
	uint64_t bytes[4], gaps, ngaps, mmap, nmmap;
	uint64_t next;     /* end of the last range */
	unsigned heap;
	bool ordered, first;
};

static void
seen_range(void *arg, const struct rp_result *r, const struct rp_range *x)
{
	struct seen *s = arg;

	if (s->first || x->heap != s->heap) {
		s->heap = x->heap;
		s->next = r->heaps[x->heap].start;
		s->first = false;
	}
	if (x->addr < s->next)
		s->ordered = false;
	else if (x->addr > s->next) {
		s->gaps += x->addr - s->next;
		s->ngaps++;
	}
	s->next = x->addr + x->bytes;
	s->bytes[x->state] += x->bytes;
}

static void
seen_mmap(void *arg, const struct rp_result *r, const struct rp_range *x)
{
	struct seen *s = arg;

	(void)r;
	s->mmap += x->bytes;
	s->nmmap++;
}

/* The sites of each hole by brute force: each granule's last occupant is
 * the chunk covering it that was vacated last by `at`; per stack, the
 * bytes and the chunks. */
static bool
sites_by_brute_force(const struct rp_input *in, const struct rp_result *r, int64_t at)
{
	for (size_t k = 0; k < r->nholes; k++) {
		const struct rp_hole *h = &r->holes[k];
		uint64_t bytes[8] = { 0 }, chunks[8] = { 0 };
		bool *seen = calloc(in->nchunks + 1, sizeof(bool)); /* by chunk index */
		for (uint64_t a = h->addr; a < h->addr + h->bytes; a += 16) {
			const struct rp_chunk *best = NULL;
			size_t best_j = 0;
			int64_t best_v = 0;
			for (size_t j = 0; j < in->nchunks; j++) {
				const struct rp_chunk *c = &in->chunks[j];
				int64_t v = c->free_ns == 0 ? 0
					    : c->fate == HP_FATE_TCACHE || c->fate == HP_FATE_FASTBIN ? c->released_ns
											     : c->free_ns;
				if (c->backing == HP_BACKING_MMAP || !v || v > at || a < c->addr ||
				    a >= c->addr + c->bytes)
					continue;
				if (!best || v > best_v) {
					best = c;
					best_j = j;
					best_v = v;
				}
			}
			if (!best)
				continue;
			bytes[best->stack_id] += 16;
			if (!seen[best_j]) {
				chunks[best->stack_id]++;
				seen[best_j] = true;
			}
		}
		free(seen);
		for (size_t s = 0; s < h->nsites; s++) {
			int64_t id = h->sites[s].stack_id;
			if (id < 0 || id > 7 || bytes[id] != h->sites[s].bytes ||
			    chunks[id] != h->sites[s].chunks) {
				printf("hole %zu at +%llu: stack %lld: %llu bytes in %llu chunks, brute force "
				       "%llu in %llu\n", k, (unsigned long long)(h->addr - B), (long long)id,
				       (unsigned long long)h->sites[s].bytes,
				       (unsigned long long)h->sites[s].chunks,
				       (unsigned long long)bytes[id < 0 || id > 7 ? 0 : id],
				       (unsigned long long)chunks[id < 0 || id > 7 ? 0 : id]);
				return false;
			}
			bytes[id] = 0;
		}
		for (int i = 0; i < 8; i++)
			if (bytes[i])
				return false;
	}
	return true;
}

struct frames_got {
	struct rp_result *r[4];
	struct seen seen[4];
	struct seen *cur;
};

static void
got_frame(void *arg, size_t k, struct rp_result *r)
{
	struct frames_got *g = arg;

	g->r[k] = r;
}

static void
frames_against_analyze(uint64_t seed)
{
	/* A random recording: 400 chunks in 64 KiB of one brk heap, each at a
	 * random place free for as long as it occupies it (so a byte has many
	 * occupants over time, one at a time), with random lives and fates,
	 * and a few mmap chunks; the frames at four instants must be
	 * rp_analyze's at each. */
	enum { N = 400 };
	static struct rp_chunk c[N];
	const uint64_t seed0 = seed;
	const uint64_t off = 64 * KB;
	for (size_t i = 0; i < N; i++) {
		uint64_t x = rng_next(&seed);
		uint64_t bytes = 32 + 16 * (x % 32);
		int64_t alloc = 10 + (int64_t)i * 10;
		int64_t free_ = x >> 40 & 3 ? alloc + 1 + (int64_t)(x >> 20 & 2047) : 0;
		uint8_t fate = free_ ? (x >> 50 & 3) == 0 ? HP_FATE_TCACHE : HP_FATE_BIN : 0;
		int64_t released = fate == HP_FATE_TCACHE ? free_ + 1 + (int64_t)(x >> 8 & 255) : 0;
		int64_t until = !free_ ? INT64_MAX : released ? released : free_;
		c[i] = chunk(0, bytes, alloc, free_, fate, released, 1 + (int64_t)(x % 7));
		bool placed = false;
		for (int tries = 0; tries < 64 && !placed; tries++) {
			uint64_t at = 16 * (rng_next(&seed) % ((off - bytes) / 16));
			placed = true;
			for (size_t j = 0; j < i && placed; j++) {
				const struct rp_chunk *o = &c[j];
				int64_t o_until = !o->free_ns ? INT64_MAX
						  : o->released_ns ? o->released_ns : o->free_ns;
				if (o->backing == HP_BACKING_BRK && o_until > alloc && o->addr < B + at + bytes &&
				    B + at < o->addr + o->bytes)
					placed = false;
			}
			if (placed)
				c[i].addr = B + at;
		}
		(void)until;
		if (!placed || (x >> 56) % 40 == 0) {
			c[i].backing = HP_BACKING_MMAP;
			c[i].addr = 0x7f0000000000ULL + i * 0x100000ULL;
		}
	}
	struct rp_event ev[] = {
		{ .ns = 1, .kind = HP_HEV_BRK, .addr = B, .bytes = B + off + 64 * KB },
	};
	struct rp_input in = { .chunks = c, .nchunks = N, .events = ev, .nevents = 1,
			       .heap_start = B, .started_ns = 0, .ended_ns = 10 * N + 9000 };
	int64_t at[4] = { 700, 2000, 3333, INT64_MAX };
	struct frames_got g = { 0 };
	struct seen seen = { .ordered = true, .first = true };
	struct rp_visit v = { seen_range, seen_mmap, &seen };
	struct rp_options opt = { .top = 1000 };
	rp_frames(&in, &opt, at, 4, got_frame, &g);
	for (int k = 0; k < 4; k++) {
		opt.at = at[k] == INT64_MAX ? RP_AT_EXIT : RP_AT_TIME;
		opt.at_ns = at[k];
		seen = (struct seen){ .ordered = true, .first = true };
		opt.visit = &v;
		struct rp_result *r = rp_analyze(&in, &opt);
		opt.visit = NULL;
		CHECK(g.r[k] && same_result(g.r[k], r),
		      "seed %llu: frame %d (t=%lld) = rp_analyze there (untrimmable %llu vs %llu)",
		      (unsigned long long)seed0, k, (long long)at[k],
		      g.r[k] ? (unsigned long long)g.r[k]->at.untrimmable : 0ULL,
		      (unsigned long long)r->at.untrimmable);
		CHECK(sites_by_brute_force(&in, r, at[k]),
		      "frame %d: the holes' sites are each granule's last occupant", k);
		CHECK(seen.ordered, "frame %d: ranges in address order, not overlapping", k);
		CHECK(seen.bytes[RP_LIVE] == r->at.live && seen.bytes[RP_CACHED] == r->at.cached &&
			      seen.bytes[RP_ALLOCATOR] == r->at.allocator,
		      "frame %d: the ranges add up to live, cached, allocator's (%llu %llu)", k,
		      (unsigned long long)seen.bytes[RP_LIVE], (unsigned long long)r->at.live);
		CHECK(seen.gaps == r->at.untrimmable && seen.ngaps == r->nholes,
		      "frame %d: the gaps between them are the holes (%llu in %llu; %llu in %zu)", k,
		      (unsigned long long)seen.gaps, (unsigned long long)seen.ngaps,
		      (unsigned long long)r->at.untrimmable, r->nholes);
		CHECK(seen.mmap == r->at.mmap && seen.nmmap == r->at.mmap_chunks,
		      "frame %d: the mmap chunks visited are the mmap figure", k);
		rp_free(r);
		rp_free(g.r[k]);
	}
}

/* Peak resident memory so far, bytes. */
static uint64_t
max_rss(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_maxrss * 1024;
}

/* What a recording claims of its heaps does not decide the memory the
 * model takes; a chunk far past every heap is in none. */
static void
far_and_huge(void)
{
	/* a heap of 1 TiB (its bitmap as long as 8 GiB), a chunk at its
	 * bottom and one at its top */
	struct rp_chunk c[3];
	c[0] = chunk(0, 64 * KB, 10, 0, 0, 0, 1);
	c[1] = chunk((1ULL << 40) - 64 * KB, 64 * KB, 11, 0, 0, 0, 2);
	struct rp_event ev[] = {
		{ .ns = 1, .kind = HP_HEV_BRK, .addr = B, .bytes = B + (1ULL << 40) },
	};
	struct rp_input in = { .chunks = c, .nchunks = 2, .events = ev, .nevents = 1,
			       .heap_start = B, .started_ns = 0, .ended_ns = 100 };
	struct rp_options opt = { .at = RP_AT_EXIT, .top = 10 };
	uint64_t before = max_rss();
	struct rp_result *r = rp_analyze(&in, &opt);
	CHECK(r->at.extent == 1ULL << 40 && r->at.live == 128 * KB &&
	      r->at.untrimmable == (1ULL << 40) - 128 * KB,
	      "a 1 TiB heap: its figures (untrimmable %llu)", (unsigned long long)r->at.untrimmable);
	CHECK(r->nholes == 1 && r->npins == 1 && r->pins[0].stack_id == 2,
	      "a 1 TiB heap: one hole below the pin at its top");
	CHECK(max_rss() - before < 64 * KB * KB, "a 1 TiB heap: less than 64 MiB of memory (%llu)",
	      (unsigned long long)(max_rss() - before));
	rp_free(r);

	/* a 1 MiB heap, and a chunk 32 TiB above it (a thread arena's heap
	 * a forked child inherited and never saw mapped) */
	c[0] = chunk(64 * KB, 48, 10, 0, 0, 0, 1);
	c[1] = chunk(1ULL << 45, 64 * KB, 11, 0, 0, 0, 2);
	ev[0].bytes = B + 1024 * KB;
	r = rp_analyze(&in, &opt);
	CHECK(r->at.extent == 1024 * KB && r->at.live == 48 && r->at.untrimmable == 64 * KB,
	      "a chunk far past the heap is in no heap (live %llu, untrimmable %llu)",
	      (unsigned long long)r->at.live, (unsigned long long)r->at.untrimmable);
	CHECK(max_rss() - before < 64 * KB * KB, "nor does it take memory (%llu)",
	      (unsigned long long)(max_rss() - before));
}

/* malloc_trim(0) from a recorded state: fastbins consolidated, only
 * resident pages count, the brk heap's top given back but a page. */
static void
trim_prediction(void)
{
	/* 200 chunks of 112 bytes from the heap's start (t=10..209), a live
	 * 48-byte pin above them (t=300); all 200 freed at t=400..599, the
	 * first 7 into the tcache, the rest into a fastbin. Earlier a 64 KiB
	 * chunk at 512 KiB was used and freed into top (t=5, 6): its pages
	 * are resident, the rest of the top never was. */
	struct rp_chunk c[210];
	size_t n = 0;
	for (int i = 0; i < 200; i++)
		c[n++] = chunk((uint64_t)i * 112, 112, 10 + i, 400 + i,
			       i < 7 ? HP_FATE_TCACHE : HP_FATE_FASTBIN, 0, 1);
	c[n++] = chunk(200 * 112, 48, 300, 0, 0, 0, 2);
	c[n++] = chunk(512 * KB, 64 * KB, 5, 6, HP_FATE_TOP, 0, 3);
	struct rp_event ev[] = {
		{ .ns = 1, .kind = HP_HEV_BRK, .addr = B, .bytes = B + 1024 * KB },
		/* t=700: chunk 100 moves from the fastbin into a tcache */
		{ .ns = 700, .kind = HP_HEV_STATE, .addr = B + 100 * 112, .bytes = 112, .value = 1,
		  .has_value = true },
		/* t=800: malloc_trim madvises the pages of [16 KiB, 20 KiB) */
		{ .ns = 800, .kind = HP_HEV_MADVISE, .addr = B + 16 * KB, .bytes = 4 * KB },
		/* t=900: the break drops to 512 KiB */
		{ .ns = 900, .kind = HP_HEV_BRK, .addr = B + 1024 * KB, .bytes = B + 512 * KB },
	};
	struct rp_input in = { .chunks = c, .nchunks = n, .events = ev, .nevents = 4,
			       .heap_start = B, .started_ns = 0, .ended_ns = 1000 };
	struct rp_options opt = { .at = RP_AT_TIME, .at_ns = 650, .top = 10 };
	struct rp_result *r = rp_analyze(&in, &opt);
	/* the 64 KiB chunk touched pages 128..144 (the header past its end);
	 * the 200 chunks and the pin pages 0..5 */
	uint64_t top = 68 * KB;
	CHECK(r->at.untrimmable == 0 && r->at.cached == 200 * 112 && r->at.fastbin == 193 * 112,
	      "t=650: nothing free below the pin, 193 chunks in a fastbin");
	CHECK(r->at.resident == 6 * 4 * KB + top, "t=650: resident: the chunks' pages (%llu)",
	      (unsigned long long)r->at.resident);
	/* consolidated: [784, 22400) one free chunk: its pages past 48
	 * bytes of header, 4096..20480 */
	CHECK(r->at.trim_reclaimable == 16 * KB + top && r->at.trim_top == top,
	      "t=650: malloc_trim(0) would give back the fastbins' 16 KiB and the top's "
	      "resident 68 KiB (%llu, top %llu)",
	      (unsigned long long)r->at.trim_reclaimable, (unsigned long long)r->at.trim_top);
	rp_free(r);

	opt.at_ns = 750;
	r = rp_analyze(&in, &opt);
	/* chunk 100, in a tcache now, splits the run: [784, 11200) and
	 * [11312, 22400): 4 KiB and 8 KiB of pages */
	CHECK(r->at.fastbin == 192 * 112 && r->at.trim_reclaimable == 12 * KB + top,
	      "t=750: a chunk moved into a tcache stays, splitting the free run (%llu)",
	      (unsigned long long)r->at.trim_reclaimable);
	rp_free(r);

	opt.at_ns = 850;
	r = rp_analyze(&in, &opt);
	CHECK(r->at.resident == 5 * 4 * KB + top && r->at.trim_reclaimable == 8 * KB + top,
	      "t=850: a madvised page is no longer resident, nor given back again");
	rp_free(r);

	opt.at = RP_AT_EXIT;
	r = rp_analyze(&in, &opt);
	CHECK(r->at.extent == 512 * KB && r->at.resident == 5 * 4 * KB &&
		      r->at.trim_reclaimable == 8 * KB,
	      "at the end: the break dropped below the top's resident pages (%llu, %llu)",
	      (unsigned long long)r->at.resident, (unsigned long long)r->at.trim_reclaimable);
	rp_free(r);
}

int
main(int argc, char **argv)
{
	uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
	unsigned steps = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 20000;

	model_vs_brute_force(seed * 0x9e3779b97f4a7c15ULL + 1, steps);
	recordings();
	for (uint64_t k = 0; k < 4; k++)
		frames_against_analyze(seed * 1000 + k);
	far_and_huge();
	trim_prediction();
	return harness_exit();
}
