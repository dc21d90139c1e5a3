/* SPDX-License-Identifier: MIT */
/* replay.c - a process's heaps rebuilt from its recording (see replay.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "chunkmap.h"
#include "heapmodel.h"
#include "occupancy.h"
#include "replay.h"
#include "util.h"

/* ---- the engine: a heap model over its own map of chunks ---- */

struct engine {
	struct hm m;
	struct chunkmap *map;
};

static void
engine_init(struct engine *e)
{
	e->map = chunkmap_new();
	hm_init(&e->m, e->map);
}

static void
engine_free(struct engine *e)
{
	hm_free(&e->m);
	chunkmap_free(e->map);
}

static void
occupy(struct engine *e, uint64_t addr, uint64_t bytes, uint8_t kind, uint8_t cached,
       const struct rp_chunk *ref)
{
	struct chunk_entry *c;

	if (chunkmap_slot(e->map, addr))
		return; /* a record that cannot be placed: the first one stays */
	c = chunkmap_add(e->map, addr);
	c->chunk_bytes = bytes;
	c->kind = kind;
	c->cached = cached;
	c->ref = ref;
	if (ref) {
		c->size = ref->size;
		c->alloc_ns = ref->alloc_ns;
		c->stack_id = (uint32_t)ref->stack_id;
	}
	if (!hm_occupy(&e->m, c))
		chunkmap_remove(e->map, c);
}

/* One heap_event row (occupancy.h). */
static void
heap_event(struct engine *e, const struct rp_event *ev)
{
	occ_heap_event(&e->m, ev->kind, ev->addr, ev->bytes, ev->value, NULL);
}

/* ---- events of the chunks, in time order ---- */

enum { E_ALLOC, E_CACHE, E_VACATE, E_MMAP_ON, E_MMAP_OFF };

struct cev {
	int64_t ns;
	uint32_t chunk;
	uint32_t kind;
};

static bool
is_cached_fate(uint8_t fate)
{
	return fate == HP_FATE_TCACHE || fate == HP_FATE_FASTBIN;
}

/* When the chunk stops occupying the heap, or 0 (never, as recorded). */
static int64_t
vacate_ns(const struct rp_chunk *c)
{
	if (c->free_ns == 0)
		return 0;
	return is_cached_fate(c->fate) ? c->released_ns : c->free_ns;
}

/* LSD radix sort by ns: as few passes as the span of times allows, with
 * digits of at most 13 bits (a count table that stays in cache). */
static void
sort_events(struct cev *v, size_t n)
{
	if (n < 2)
		return;
	int64_t lo = v[0].ns, hi = v[0].ns;
	for (size_t i = 1; i < n; i++) {
		if (v[i].ns < lo)
			lo = v[i].ns;
		if (v[i].ns > hi)
			hi = v[i].ns;
	}
	uint64_t span = (uint64_t)(hi - lo);
	unsigned bits = span ? 64 - (unsigned)__builtin_clzll(span) : 1;
	unsigned passes = (bits + 12) / 13, digit = (bits + passes - 1) / passes;
	size_t buckets = (size_t)1 << digit, mask = buckets - 1;
	struct cev *tmp = xmalloc(n * sizeof(*tmp)), *src = v, *dst = tmp;
	size_t *count = xmalloc(buckets * sizeof(size_t));
	for (unsigned p = 0; p < passes; p++) {
		unsigned shift = p * digit;
		memset(count, 0, buckets * sizeof(size_t));
		for (size_t i = 0; i < n; i++)
			count[((uint64_t)(src[i].ns - lo) >> shift) & mask]++;
		size_t sum = 0;
		for (size_t d = 0; d < buckets; d++) {
			size_t c = count[d];
			count[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[count[((uint64_t)(src[i].ns - lo) >> shift) & mask]++] = src[i];
		struct cev *t = src;
		src = dst;
		dst = t;
	}
	if (src != v)
		memcpy(v, src, n * sizeof(*v));
	free(count);
	free(tmp);
}

/* Sort by time, cheaply when nearly sorted (the common case: rows are
 * written in the order chunks end): the longest greedy run stays, the
 * rest is sorted and merged in. */
static void
sort_adaptive(struct cev *v, size_t n)
{
	size_t m = 0, k = 0;
	struct cev *exc;
	int64_t last = INT64_MIN;

	for (size_t i = 1; i < n; i++)
		if (v[i].ns < v[i - 1].ns)
			goto unsorted;
	return;
unsorted:
	exc = xmalloc(n * sizeof(*exc));
	for (size_t i = 0; i < n; i++) {
		if (v[i].ns >= last) {
			last = v[i].ns;
			v[m++] = v[i];
		} else {
			exc[k++] = v[i];
		}
	}
	if (k > n / 8) {
		memcpy(v + m, exc, k * sizeof(*exc));
		free(exc);
		sort_events(v, n);
		return;
	}
	sort_events(exc, k);
	/* merge from the back: v[0..m) and exc[0..k) into v[0..n) */
	size_t i = m, j = k, o = n;
	while (j > 0) {
		if (i > 0 && v[i - 1].ns > exc[j - 1].ns)
			v[--o] = v[--i];
		else
			v[--o] = exc[--j];
	}
	free(exc);
}

/* The chunks' events in three streams, each in time order; at the same
 * time a chunk vacates before another is cached before one is allocated
 * (reuse at the same address). */
enum { S_VACATE, S_CACHE, S_ALLOC, S_N };

struct stream {
	const struct rp_input *in;
	struct cev *v[S_N];
	size_t n[S_N], i[S_N];
	size_t hi;
	uint64_t *bytes;      /* by chunk: its bytes when allocated (NULL: c->bytes) */
};

static int
by_addr_ns(const void *a, const void *b)
{
	const struct rp_event *x = *(const struct rp_event *const *)a;
	const struct rp_event *y = *(const struct rp_event *const *)b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->ns < y->ns ? -1 : x->ns > y->ns;
}

/* The bytes each chunk had when it was allocated: its row has them as they
 * were at its end, and a chunk grows or shrinks in place (realloc, mremap)
 * by resize events, whose value is the bytes before. NULL if there is no
 * resize: then they are the rows'. */
static uint64_t *
first_bytes(const struct rp_input *in)
{
	const struct rp_event **rs = NULL;
	size_t n = 0;

	for (size_t k = 0; k < in->nevents; k++)
		if (in->events[k].kind == HP_HEV_RESIZE) {
			if (!rs)
				rs = xmalloc((in->nevents - k) * sizeof(*rs));
			rs[n++] = &in->events[k];
		}
	if (n == 0)
		return NULL;
	qsort(rs, n, sizeof(*rs), by_addr_ns);
	uint64_t *first = xmalloc((in->nchunks + 1) * sizeof(*first));
	for (size_t i = 0; i < in->nchunks; i++) {
		const struct rp_chunk *c = &in->chunks[i];
		size_t lo = 0, hi = n;
		first[i] = c->bytes;
		while (lo < hi) { /* the first resize at its address from its allocation */
			size_t mid = lo + (hi - lo) / 2;
			if (rs[mid]->addr < c->addr ||
			    (rs[mid]->addr == c->addr && rs[mid]->ns <= c->alloc_ns))
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < n && rs[lo]->addr == c->addr && (!c->free_ns || rs[lo]->ns < c->free_ns))
			first[i] = (uint64_t)rs[lo]->value;
	}
	free(rs);
	return first;
}

static void
stream_open(struct stream *s, const struct rp_input *in)
{
	memset(s, 0, sizeof(*s));
	s->in = in;
	for (int k = 0; k < S_N; k++)
		s->v[k] = xmalloc((in->nchunks + 1) * sizeof(struct cev));
	for (size_t i = 0; i < in->nchunks; i++) {
		const struct rp_chunk *c = &in->chunks[i];
		uint32_t k = (uint32_t)i;
		if (c->backing == HP_BACKING_MMAP) {
			s->v[S_ALLOC][s->n[S_ALLOC]++] = (struct cev){ c->alloc_ns, k, E_MMAP_ON };
			if (c->free_ns)
				s->v[S_VACATE][s->n[S_VACATE]++] =
					(struct cev){ c->free_ns, k, E_MMAP_OFF };
			continue;
		}
		s->v[S_ALLOC][s->n[S_ALLOC]++] = (struct cev){ c->alloc_ns, k, E_ALLOC };
		if (c->free_ns && is_cached_fate(c->fate))
			s->v[S_CACHE][s->n[S_CACHE]++] = (struct cev){ c->free_ns, k, E_CACHE };
		int64_t v = vacate_ns(c);
		if (v)
			s->v[S_VACATE][s->n[S_VACATE]++] = (struct cev){ v, k, E_VACATE };
	}
	for (int k = 0; k < S_N; k++)
		sort_adaptive(s->v[k], s->n[k]);
	s->bytes = first_bytes(in);
}

static void
stream_close(struct stream *s)
{
	for (int k = 0; k < S_N; k++)
		free(s->v[k]);
	free(s->bytes);
}

static void
apply_chunk_event(struct engine *e, const struct stream *s, const struct cev *v)
{
	const struct rp_chunk *c = &s->in->chunks[v->chunk];
	uint64_t bytes = s->bytes ? s->bytes[v->chunk] : c->bytes;
	struct chunk_entry *x;

	switch (v->kind) {
	case E_ALLOC:
		/* a cached chunk reused, or a cached range handed out, ends; a
		 * live one there (not in a file the collector wrote) stays */
		if (!occ_reuse(&e->m, c->addr, NULL))
			occupy(e, c->addr, bytes, HM_CHUNK, 0, c);
		break;
	case E_CACHE:
		x = chunkmap_slot(e->map, c->addr);
		if (x && x->ref == c)
			occ_cache(&e->m, x, occ_fate_cache(c->fate));
		break;
	case E_VACATE:
		x = chunkmap_slot(e->map, c->addr);
		if (x && x->ref == c)
			occ_end(&e->m, x, NULL);
		break;
	case E_MMAP_ON:
		/* in the map too, so that a resize in place finds it */
		x = chunkmap_slot(e->map, c->addr) ? NULL : chunkmap_add(e->map, c->addr);
		if (x) {
			x->chunk_bytes = bytes;
			x->backing = HP_BACKING_MMAP;
			x->ref = c;
		}
		hm_mmap(&e->m, bytes, true);
		break;
	case E_MMAP_OFF:
		x = chunkmap_slot(e->map, c->addr);
		if (x && x->ref == c) {
			hm_mmap(&e->m, x->chunk_bytes, false);
			chunkmap_remove(e->map, x);
		} else {
			hm_mmap(&e->m, c->bytes, false);
		}
		break;
	}
}

/* Apply everything up to and including `until`. `after` sees the state
 * once all that happened at an instant is applied: one recorded event may
 * end a chunk and begin another at the same time (reuse at its address),
 * and the state between the two was never the heap's. */
static void
stream_run(struct engine *e, struct stream *s, int64_t until, void (*after)(void *, int64_t),
	   void *arg)
{
	const struct rp_input *in = s->in;
	bool pending = false;
	int64_t last = 0;

	for (;;) {
		int best = -1;
		int64_t t = INT64_MAX;
		/* on a tie the first stream wins (a vacate before an alloc) */
		for (int k = 0; k < S_N; k++)
			if (s->i[k] < s->n[k] && s->v[k][s->i[k]].ns < t) {
				t = s->v[k][s->i[k]].ns;
				best = k;
			}
		if (s->hi < in->nevents && in->events[s->hi].ns < t) {
			t = in->events[s->hi].ns;
			best = -1;
		}
		if (pending && t != last) {
			after(arg, last);
			pending = false;
		}
		if (t == INT64_MAX || t > until)
			return;
		if (best >= 0)
			apply_chunk_event(e, s, &s->v[best][s->i[best]++]);
		else
			heap_event(e, &in->events[s->hi++]);
		pending = after != NULL;
		last = t;
	}
}

/* Bring the engine to the state of `in` at `until` (its own time), the
 * parent's heap at the fork first. `s`: the events of `in`, opened by the
 * caller (and rewound here), or NULL. */
static void
engine_run_to(struct engine *e, const struct rp_input *in, int64_t until,
	      void (*after)(void *, int64_t), void *arg, struct stream *s)
{
	struct stream own;

	if (in->parent)
		engine_run_to(e, in->parent, in->fork_ns, NULL, NULL, NULL);
	/* a forked child's break starts where its parent's was */
	if (!e->m.has_brk && in->heap_start)
		hm_brk(&e->m, in->heap_start, in->heap_start);
	/* a forked child's start is an instant of its own: its heap is its
	 * parent's, which may be its peak (as the collector sees it) */
	if (in->parent && after && in->started_ns <= until)
		after(arg, in->started_ns);
	if (!s) {
		stream_open(&own, in);
		s = &own;
	}
	memset(s->i, 0, sizeof(s->i));
	s->hi = 0;
	stream_run(e, s, until, after, arg);
	if (s == &own)
		stream_close(&own);
}

static void
figures(struct hm *m, struct rp_figures *f, int64_t at_ns)
{
	struct hm_trim t;

	memset(f, 0, sizeof(*f));
	f->at_ns = at_ns;
	f->extent = m->extent;
	f->resident = hm_resident(m);
	f->live = m->live;
	f->cached = m->cached;
	f->fastbin = m->fastbin;
	f->allocator = m->allocator;
	f->untrimmable = m->untrimmable;
	f->untrimmable_resident = hm_holes_resident(m);
	f->top_free = hm_top_free(m);
	hm_trim(m, &t);
	f->trim_reclaimable = t.bytes;
	f->trim_top = t.top;
	f->mmap = m->mmap;
	f->live_chunks = m->live_n;
	f->cached_chunks = m->cached_n;
	f->mmap_chunks = m->mmap_n;
	f->retained = hm_retained(m);
}

/* The program's own mappings at `at` (INT64_MAX: the end). */
static void
program_maps(const struct rp_input *in, struct rp_figures *f, int64_t at)
{
	for (size_t i = 0; i < in->npmaps; i++) {
		const struct rp_pmap *m = &in->pmaps[i];
		if (m->mapped_ns > at || (m->unmapped_ns && m->unmapped_ns <= at))
			continue;
		if (m->pymalloc) {
			f->pymalloc += m->bytes;
			f->pymalloc_arenas++;
		} else {
			f->program_mmap += m->bytes;
			f->program_mmaps++;
		}
	}
}

/* ---- the first pass: the whole run ---- */

struct pass1 {
	struct engine *e;
	struct rp_result *r;
	int64_t start, step, next_point, last_ns;
	size_t cap;
	uint64_t last_extent, last_live, last_cached, last_untrim;
	bool dirty;
};

static void
add_point(struct pass1 *p, int64_t ns)
{
	struct rp_result *r = p->r;

	if (r->npoints == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 256;
		r->timeline = xrealloc(r->timeline, p->cap * sizeof(*r->timeline));
	}
	const struct hm *m = &p->e->m;
	r->timeline[r->npoints++] = (struct rp_point){ ns, m->extent, m->live + m->mmap, m->cached,
						       m->untrimmable };
}

static void
after_event(void *arg, int64_t ns)
{
	struct pass1 *p = arg;
	struct hm *m = &p->e->m;
	struct rp_result *r = p->r;
	uint64_t live = m->live + m->mmap;

	p->last_ns = ns;

	if (live > r->peak_live) {
		r->peak_live = live;
		r->peak_live_ns = ns;
	}
	hm_track(m, ns);
	if (p->step && ns >= p->next_point) {
		add_point(p, ns);
		p->next_point = ns + p->step;
	}
}

/* ---- the report's instant: pins, holes, sites ---- */

static int
by_bytes_desc(const void *a, const void *b)
{
	const struct rp_hole *x = a, *y = b;

	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

struct hole_list {
	struct rp_result *r;
	size_t cap;
	unsigned heap;
	const struct hm_heap *h;
};

static void
add_hole(void *arg, uint64_t addr, uint64_t bytes)
{
	struct hole_list *l = arg;
	struct rp_result *r = l->r;

	if (r->nholes == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		r->holes = xrealloc(r->holes, l->cap * sizeof(*r->holes));
	}
	r->holes[r->nholes++] =
		(struct rp_hole){ addr, bytes, hm_hole_trim(l->h, addr, bytes), l->heap, NULL, 0 };
}

/* Holes of every heap (all of them: the trim figure needs each), and the
 * pins of the chain down from each heap's top. */
static void
walk_heaps(struct hm *m, struct rp_result *r, size_t top)
{
	struct hole_list holes = { r, 0, 0, NULL };
	size_t pcap = 0;

	for (size_t hi = 0; hi < m->nheaps; hi++) {
		struct hm_heap *h = &m->heaps[hi];

		if (!h->top)
			continue;
		holes.heap = (unsigned)hi;
		holes.h = h;
		hm_holes(m, h, add_hole, &holes);
		/* the chain: from the top down while holes remain below */
		size_t g = h->top;
		uint64_t free_below = h->untrimmable;
		while (free_below > 0 && top > 0) {
			long long p = hm_prev(h, g);
			if (p < 0)
				break;
			uint64_t addr = h->start + (uint64_t)p * HM_GRAIN;
			struct chunk_entry *c = chunkmap_slot(m->map, addr);
			long long below = hm_prev(h, (size_t)p);
			uint64_t floor = below < 0 ? h->start : hm_entry_end(m, h, (size_t)below);
			uint64_t bytes = c ? c->chunk_bytes : HM_GRAIN;
			uint64_t gap = addr > floor ? addr - floor : 0;
			if (r->npins == pcap) {
				pcap = pcap ? pcap * 2 : 16;
				r->pins = xrealloc(r->pins, pcap * sizeof(*r->pins));
			}
			const struct rp_chunk *rc = c ? c->ref : NULL;
			r->pins[r->npins++] = (struct rp_pin){
				.addr = addr,
				.bytes = bytes,
				.weight = bytes + gap,
				.alloc_ns = rc ? rc->alloc_ns : 0,
				.chunk_id = rc ? rc->chunk_id : 0,
				.stack_id = rc ? rc->stack_id : 0,
				.state = !c || c->kind == HM_RANGE_ALLOCATOR ? RP_ALLOCATOR
					 : c->kind == HM_RANGE_CACHED  ? RP_STASHED
					 : c->cached		       ? RP_CACHED
								       : RP_LIVE,
				.cache = !c ? 0
					 : c->cached == HM_FASTBIN ? HP_FATE_FASTBIN
					 : c->cached		   ? HP_FATE_TCACHE
								   : 0,
				.heap = (unsigned)hi,
			};
			top--;
			free_below -= gap < free_below ? gap : free_below;
			g = (size_t)p;
		}
	}
	qsort(r->holes, r->nholes, sizeof(*r->holes), by_bytes_desc);
}

struct cand {
	int64_t vacated;
	const struct rp_chunk *c;
};

static int
by_vacated_desc(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return x->vacated > y->vacated ? -1 : x->vacated < y->vacated;
}

/* What a hole's sites are being built from. */
struct hole_work {
	struct rp_hole *h;
	uint64_t *claimed;         /* a bit per granule: its last occupant is known
				    * (NULL: a hole too large to map one, no sites) */
	size_t claimed_bytes;
	int64_t *keys;             /* the group key of each site */
	uint64_t left;             /* bytes whose last occupant is not known yet */
};

/* Chunk c, vacated at v, was the last occupant of whatever of hole w it
 * covers that no chunk vacated later covers. Returns the bytes it took. */
static uint64_t
take(struct hole_work *w, const struct rp_chunk *c, const struct rp_options *opt)
{
	struct rp_hole *h = w->h;
	uint64_t lo = c->addr > h->addr ? c->addr : h->addr;
	uint64_t hi = c->addr + c->bytes < h->addr + h->bytes ? c->addr + c->bytes : h->addr + h->bytes;
	uint64_t got = 0;

	if (!w->claimed)
		return 0;
	for (size_t g = (size_t)((lo - h->addr) / HM_GRAIN); g < (hi - h->addr) / HM_GRAIN; g++)
		if (!(w->claimed[g / 64] >> (g % 64) & 1)) {
			w->claimed[g / 64] |= 1ULL << (g % 64);
			got += HM_GRAIN;
		}
	if (!got)
		return 0;
	int64_t key = opt->group ? opt->group(opt->group_arg, c->stack_id) : c->stack_id;
	size_t s;
	for (s = 0; s < h->nsites && w->keys[s] != key; s++)
		;
	if (s == h->nsites) {
		h->sites = xrealloc(h->sites, (h->nsites + 1) * sizeof(*h->sites));
		w->keys = xrealloc(w->keys, (h->nsites + 1) * sizeof(*w->keys));
		w->keys[h->nsites] = key;
		h->sites[h->nsites++] = (struct rp_site){ c->stack_id, 0, 0 };
	}
	h->sites[s].bytes += got;
	h->sites[s].chunks++;
	w->left -= got < w->left ? got : w->left;
	return got;
}

/* The first of the n holes (by address) that ends after addr. */
static size_t
first_hole_after(struct hole_work *w, size_t n, uint64_t addr)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (w[mid].h->addr + w[mid].h->bytes <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
by_work_addr(const void *a, const void *b)
{
	const struct hole_work *x = a, *y = b;

	return x->h->addr < y->h->addr ? -1 : x->h->addr > y->h->addr;
}

/* The chunks that last occupied each of the first `top` holes, as sites:
 * a byte's last occupant is the chunk that vacated it last before the
 * instant (occupants of one byte never overlap in time). The process's own
 * chunks are taken latest vacated first from the replay's sorted stream
 * `s`, until every byte of every hole is known (usually long before the
 * first chunk); then, for what is left, an ancestor's chunks up to the
 * fork that made the next generation, all of which it vacated before. */
static void
hole_sites(struct rp_result *r, const struct rp_input *in, int64_t at, size_t top,
	   const struct rp_options *opt, const struct stream *s)
{
	size_t n = r->nholes < top ? r->nholes : top;
	struct hole_work *w;
	uint64_t left = 0;

	if (n == 0)
		return;
	w = xcalloc(n, sizeof(*w));
	for (size_t k = 0; k < n; k++) {
		size_t grains = (size_t)(r->holes[k].bytes / HM_GRAIN);
		w[k].h = &r->holes[k];
		/* a bit per granule of the hole, mapped MAP_NORESERVE: only the
		 * pages under former chunks take memory, however large a hole a
		 * file claims (too large for the address space: no sites) */
		w[k].claimed_bytes = ((grains + 63) / 64 * sizeof(uint64_t) + 4095) & ~(size_t)4095;
		w[k].claimed = mmap(NULL, w[k].claimed_bytes, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (w[k].claimed == MAP_FAILED) {
			w[k].claimed = NULL;
			continue;
		}
		w[k].left = r->holes[k].bytes;
		left += r->holes[k].bytes;
	}
	qsort(w, n, sizeof(*w), by_work_addr);

	/* the process's own chunks, latest vacated first */
	const struct cev *v = s->v[S_VACATE];
	size_t lo = 0, hi = s->n[S_VACATE];
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v[mid].ns <= at)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i-- > 0 && left;) {
		const struct rp_chunk *c = &in->chunks[v[i].chunk];
		for (size_t k = first_hole_after(w, n, c->addr); k < n && w[k].h->addr < c->addr + c->bytes;
		     k++) {
			uint64_t got = take(&w[k], c, opt);
			left -= got < left ? got : left;
		}
	}

	/* then the ancestors' (each vacated before its child started) */
	struct cand **cand = xcalloc(n, sizeof(*cand));
	size_t *nc = xcalloc(n, sizeof(size_t)), *cc = xcalloc(n, sizeof(size_t));
	for (const struct rp_input *i = in->parent, *child = in; i && left;
	     child = i, i = i->parent) {
		int64_t limit = child->fork_ns;
		for (size_t j = 0; j < i->nchunks; j++) {
			const struct rp_chunk *c = &i->chunks[j];
			int64_t vn = vacate_ns(c);
			if (c->backing == HP_BACKING_MMAP || vn == 0 || vn > limit)
				continue;
			for (size_t k = first_hole_after(w, n, c->addr);
			     k < n && w[k].h->addr < c->addr + c->bytes; k++) {
				if (!w[k].left)
					continue;
				if (nc[k] == cc[k]) {
					cc[k] = cc[k] ? cc[k] * 2 : 64;
					cand[k] = xrealloc(cand[k], cc[k] * sizeof(**cand));
				}
				cand[k][nc[k]++] = (struct cand){ vn, c };
			}
		}
		for (size_t k = 0; k < n; k++) {
			qsort(cand[k], nc[k], sizeof(**cand), by_vacated_desc);
			for (size_t j = 0; j < nc[k] && w[k].left; j++) {
				uint64_t got = take(&w[k], cand[k][j].c, opt);
				left -= got < left ? got : left;
			}
			nc[k] = 0;
		}
	}
	for (size_t k = 0; k < n; k++) {
		struct rp_hole *h = w[k].h;
		free(cand[k]);
		free(w[k].keys);
		if (w[k].claimed)
			munmap(w[k].claimed, w[k].claimed_bytes);
		/* largest first */
		for (size_t a = 1; a < h->nsites; a++)
			for (size_t b = a; b > 0 && h->sites[b].bytes > h->sites[b - 1].bytes; b--) {
				struct rp_site t = h->sites[b];
				h->sites[b] = h->sites[b - 1];
				h->sites[b - 1] = t;
			}
	}
	free(cand);
	free(nc);
	free(cc);
	free(w);
}

static void
set_heaps(const struct engine *e, struct rp_result *r)
{
	r->nheaps = e->m.nheaps;
	r->heaps = xcalloc(e->m.nheaps + 1, sizeof(*r->heaps));
	for (size_t i = 0; i < e->m.nheaps; i++) {
		const struct hm_heap *h = &e->m.heaps[i];
		r->heaps[i] = (struct rp_heap){ h->start, h->end, h->kind, h->occupied, h->top_end,
						h->resident * HM_PAGE };
	}
}

/* Each occupied range of each heap, lowest first (opt->visit). */
static void
visit_heaps(struct engine *e, const struct rp_result *r, const struct rp_visit *v)
{
	struct hm *m = &e->m;

	for (size_t hi = 0; v->range && hi < m->nheaps; hi++) {
		struct hm_heap *h = &m->heaps[hi];
		for (long long g = hm_next(h, 0); g >= 0; g = hm_next(h, (size_t)g + 1)) {
			uint64_t addr = h->start + (uint64_t)g * HM_GRAIN;
			struct chunk_entry *c = chunkmap_slot(m->map, addr);
			if (c && c->addr != addr)
				c = NULL;
			const struct rp_chunk *rc = c ? c->ref : NULL;
			struct rp_range x = {
				.addr = addr,
				.bytes = c ? c->chunk_bytes : HM_GRAIN,
				.stack_id = rc ? rc->stack_id : 0,
				.chunk_id = rc ? rc->chunk_id : 0,
				.alloc_ns = rc ? rc->alloc_ns : 0,
				.state = !c || c->kind == HM_RANGE_ALLOCATOR ? RP_ALLOCATOR
					 : c->kind == HM_RANGE_CACHED  ? RP_STASHED
					 : c->cached		       ? RP_CACHED
								       : RP_LIVE,
				.heap = (unsigned)hi,
			};
			v->range(v->arg, r, &x);
		}
	}
}

static void
visit_mmap(const struct rp_result *r, const struct rp_chunk *c, const struct rp_visit *v)
{
	struct rp_range x = {
		.addr = c->addr,
		.bytes = c->bytes,
		.stack_id = c->stack_id,
		.chunk_id = c->chunk_id,
		.alloc_ns = c->alloc_ns,
		.state = RP_LIVE,
	};
	v->mmap(v->arg, r, &x);
}

/* The result at the engine's instant `at` (INT64_MAX: the end), shown as
 * at_ns: figures, pins, holes and their sites, heaps; then the visit. */
static void
describe(struct engine *e, struct rp_result *r, const struct rp_input *in,
	 const struct stream *s, int64_t at, int64_t at_ns, const struct rp_options *opt)
{
	figures(&e->m, &r->at, at_ns);
	program_maps(in, &r->at, at);
	walk_heaps(&e->m, r, opt->top);
	hole_sites(r, in, at, opt->top, opt, s);
	r->holders = hm_holders(&e->m, opt->group, opt->group_arg, &r->nholders);
	set_heaps(e, r);
	if (!opt->visit)
		return;
	visit_heaps(e, r, opt->visit);
	for (size_t j = 0; opt->visit->mmap && j < in->nchunks; j++) {
		const struct rp_chunk *c = &in->chunks[j];
		if (c->backing == HP_BACKING_MMAP && c->alloc_ns <= at && (!c->free_ns || c->free_ns > at))
			visit_mmap(r, c, opt->visit);
	}
}

static void
leaks(struct rp_result *r, const struct rp_input *in)
{
	for (size_t j = 0; j < in->nchunks; j++)
		if (in->chunks[j].free_ns == 0) {
			r->leaked_bytes += in->chunks[j].size;
			r->leaked_chunks++;
		}
}

struct rp_result *
rp_analyze(const struct rp_input *in, const struct rp_options *opt)
{
	struct rp_result *r = xcalloc(1, sizeof(*r));
	struct engine e;
	struct pass1 p = { 0 };
	int64_t end = in->ended_ns > 0 ? in->ended_ns : INT64_MAX;

	/* pass 1: the whole run, for the peaks, the worst instant and the
	 * timeline */
	engine_init(&e);
	p.e = &e;
	p.r = r;
	if (opt->timeline_points && in->ended_ns > in->started_ns) {
		p.step = (in->ended_ns - in->started_ns) / (int64_t)opt->timeline_points;
		if (p.step < 1)
			p.step = 1;
		p.next_point = in->started_ns;
	}
	struct stream events;
	stream_open(&events, in);
	hm_start(&e.m, in->started_ns);
	r->peak_live_ns = in->started_ns;
	engine_run_to(&e, in, INT64_MAX, after_event, &p, &events);
	r->peak_extent = e.m.peak_extent;
	r->peak_extent_ns = e.m.peak_extent_ns;
	r->worst_untrimmable = e.m.worst_untrimmable;
	r->worst_ns = e.m.worst_ns;
	if (p.step)
		add_point(&p, end == INT64_MAX ? r->peak_live_ns : end);
	leaks(r, in);

	int64_t at;
	r->what = opt->at;
	switch (opt->at) {
	case RP_AT_WORST:
		at = r->worst_ns;
		break;
	case RP_AT_PEAK:
		at = r->peak_extent_ns;
		break;
	case RP_AT_TIME:
		at = in->started_ns + opt->at_ns;
		if (at >= (in->ended_ns > p.last_ns ? in->ended_ns : p.last_ns)) {
			at = INT64_MAX; /* past its end: at its end */
			r->past_end = true;
		}
		break;
	default:
		at = INT64_MAX;
		break;
	}
	if (at != INT64_MAX) {
		/* pass 2: again, up to the instant */
		engine_free(&e);
		engine_init(&e);
		engine_run_to(&e, in, at, NULL, NULL, &events);
	}
	/* the end: when the process ended, or its last event if that is not
	 * known (a recording whose collector died) */
	int64_t last = in->ended_ns > p.last_ns ? in->ended_ns : p.last_ns;
	describe(&e, r, in, &events, at, at == INT64_MAX ? last : at, opt);
	stream_close(&events);
	engine_free(&e);
	return r;
}

static void
note_last(void *arg, int64_t ns)
{
	*(int64_t *)arg = ns;
}

void
rp_frames(const struct rp_input *in, const struct rp_options *opt, const int64_t *at, size_t n,
	  void (*fn)(void *arg, size_t k, struct rp_result *r), void *arg)
{
	struct engine e;
	struct stream events;
	int64_t last = in->started_ns;

	engine_init(&e);
	stream_open(&events, in);
	for (size_t k = 0; k < n; k++) {
		/* the first instant from the start (and the parent's heap at
		 * the fork), every later one from where the last stopped */
		if (k == 0)
			engine_run_to(&e, in, at[k], note_last, &last, &events);
		else
			stream_run(&e, &events, at[k], note_last, &last);
		struct rp_result *r = xcalloc(1, sizeof(*r));
		int64_t end = in->ended_ns > last ? in->ended_ns : last;
		r->what = at[k] == INT64_MAX ? RP_AT_EXIT : RP_AT_TIME;
		describe(&e, r, in, &events, at[k], at[k] == INT64_MAX ? end : at[k], opt);
		fn(arg, k, r);
	}
	stream_close(&events);
	engine_free(&e);
}

/* ---- a stored snapshot ---- */

static int
by_former_addr(const void *a, const void *b)
{
	const struct rp_former *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

struct fgroup {
	int64_t key, stack_id, last_vacated;
	uint64_t bytes, chunks;
};

static int
by_last_vacated_desc(const void *a, const void *b)
{
	const struct fgroup *x = a, *y = b;

	return (x->last_vacated < y->last_vacated) - (x->last_vacated > y->last_vacated);
}

/* The former sites of the first `top` holes from the formers (sorted by
 * address; each is one stack's share of the hole at its address), as
 * hole_sites finds them from the chunks: per group, the bytes its chunks
 * last held there and how many chunks; the group whose latest chunk left
 * last first among equal bytes. */
static void
former_sites(struct rp_result *r, const struct rp_former *f, size_t nf, size_t top,
	     const struct rp_options *opt)
{
	size_t n = r->nholes < top ? r->nholes : top;

	for (size_t k = 0; k < n; k++) {
		struct rp_hole *h = &r->holes[k];
		size_t lo = 0, hi = nf;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (f[mid].addr < h->addr)
				lo = mid + 1;
			else
				hi = mid;
		}
		struct fgroup *g = NULL;
		size_t ng = 0;
		for (size_t j = lo; j < nf && f[j].addr < h->addr + h->bytes; j++) {
			int64_t key = opt->group ? opt->group(opt->group_arg, f[j].stack_id)
						 : f[j].stack_id;
			size_t i;
			for (i = 0; i < ng && g[i].key != key; i++)
				;
			if (i == ng) {
				g = xrealloc(g, (ng + 1) * sizeof(*g));
				g[ng++] = (struct fgroup){ key, f[j].stack_id, f[j].vacated_ns, 0, 0 };
			}
			/* no more than the hole has, whatever the file says */
			g[i].bytes += f[j].bytes < h->bytes ? f[j].bytes : h->bytes;
			g[i].chunks += f[j].chunks;
			if (f[j].vacated_ns > g[i].last_vacated) {
				g[i].last_vacated = f[j].vacated_ns;
				g[i].stack_id = f[j].stack_id;
			}
		}
		qsort(g, ng, sizeof(*g), by_last_vacated_desc);
		h->sites = ng ? xcalloc(ng, sizeof(*h->sites)) : NULL;
		h->nsites = ng;
		for (size_t i = 0; i < ng; i++)
			h->sites[i] = (struct rp_site){ g[i].stack_id, g[i].bytes, g[i].chunks };
		/* largest first, stable */
		for (size_t a = 1; a < h->nsites; a++)
			for (size_t b = a; b > 0 && h->sites[b].bytes > h->sites[b - 1].bytes; b--) {
				struct rp_site t = h->sites[b];
				h->sites[b] = h->sites[b - 1];
				h->sites[b - 1] = t;
			}
		free(g);
	}
}

struct rp_result *
rp_snapshot(const struct rp_snapshot *s, const struct rp_input *in,
	    const struct rp_options *opt)
{
	struct rp_result *r = xcalloc(1, sizeof(*r));
	struct engine e;

	engine_init(&e);
	for (size_t i = 0; i < s->nheaps; i++)
		hm_restore_heap(&e.m, s->heaps[i].start, s->heaps[i].end,
				s->heaps[i].kind == HP_BACKING_BRK ? HM_BRK : HM_MAPPED);
	for (size_t i = 0; i < s->nentries; i++) {
		const struct rp_snap_entry *x = &s->entries[i];
		uint8_t cache = x->c.fate == HP_FATE_FASTBIN ? HM_FASTBIN : HM_TCACHE;
		switch (x->occupant) {
		case HP_OCC_LIVE:
		case HP_OCC_CACHED:
			if (x->c.backing == HP_BACKING_MMAP)
				hm_mmap(&e.m, x->c.bytes, true);
			else
				occupy(&e, x->c.addr, x->c.bytes, HM_CHUNK,
				       x->occupant == HP_OCC_CACHED ? cache : 0, &x->c);
			break;
		case HP_OCC_CACHED_FREE:
			occupy(&e, x->c.addr, x->c.bytes, HM_RANGE_CACHED, cache, NULL);
			break;
		case HP_OCC_ALLOCATOR:
			occupy(&e, x->c.addr, x->c.bytes, HM_RANGE_ALLOCATOR, 0, NULL);
			break;
		default:
			break;
		}
	}
	/* resident: the stored pages, not what placing the chunks made */
	for (size_t i = 0; i < e.m.nheaps; i++)
		hm_res_load(&e.m, i, NULL, 0);
	for (size_t i = 0; i < s->nresident; i++) {
		struct hm_heap *h = hm_heap_of(&e.m, s->resident[i].addr);
		if (h && s->resident[i].addr < h->end)
			hm_res_set(&e.m, h, s->resident[i].addr,
				   s->resident[i].addr + s->resident[i].bytes <= h->end
					   ? s->resident[i].bytes
					   : h->end - s->resident[i].addr,
				   true);
	}
	r->what = opt->at;
	figures(&e.m, &r->at, s->ns);
	if (in)
		program_maps(in, &r->at, s->ns);
	walk_heaps(&e.m, r, opt->top);
	struct rp_former *f = xmalloc((s->nformers ? s->nformers : 1) * sizeof(*f));
	memcpy(f, s->formers, s->nformers * sizeof(*f));
	qsort(f, s->nformers, sizeof(*f), by_former_addr);
	former_sites(r, f, s->nformers, opt->top, opt);
	free(f);
	r->holders = hm_holders(&e.m, opt->group, opt->group_arg, &r->nholders);
	set_heaps(&e, r);
	if (opt->visit) {
		visit_heaps(&e, r, opt->visit);
		for (size_t i = 0; opt->visit->mmap && i < s->nentries; i++)
			if (s->entries[i].occupant == HP_OCC_LIVE && s->entries[i].c.backing == HP_BACKING_MMAP)
				visit_mmap(r, &s->entries[i].c, opt->visit);
	}
	engine_free(&e);
	return r;
}

int64_t
rp_end_ns(const struct rp_input *in)
{
	int64_t t = in->ended_ns;

	for (size_t i = 0; i < in->nchunks; i++) {
		const struct rp_chunk *c = &in->chunks[i];
		int64_t last = c->released_ns > c->free_ns ? c->released_ns : c->free_ns;
		if (c->alloc_ns > last)
			last = c->alloc_ns;
		if (last > t)
			t = last;
	}
	if (in->nevents && in->events[in->nevents - 1].ns > t)
		t = in->events[in->nevents - 1].ns;
	return t;
}

void
rp_free(struct rp_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nholes; i++)
		free(r->holes[i].sites);
	free(r->holes);
	free(r->holders);
	free(r->pins);
	free(r->heaps);
	free(r->timeline);
	free(r);
}
