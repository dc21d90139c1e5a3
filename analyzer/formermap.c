/* SPDX-License-Identifier: MIT */
/* formermap.c - who last held each free byte of a heap (see formermap.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "formermap.h"
#include "util.h"

/* 16 KiB of address space a page: a page holds up to 1024 pieces, and
 * every piece put in or taken out moves those after it. With 64 KiB pages
 * (4096 pieces) that move was a third of the collector's time while perl
 * freed its heap in a snapshot recording (perf: page_assign 4.8% of all
 * samples, 1.7% with 16 KiB). */
#define PAGE_SHIFT 14
#define GRAIN_SHIFT 4 /* 16-byte granules */
#define PAGE_GRAINS (1u << (PAGE_SHIFT - GRAIN_SHIFT))
#define FENCE_SHIFT 6 /* a fence per 64 granules (1 KiB) */
#define FENCES (PAGE_GRAINS >> FENCE_SHIFT)

/* A piece: granules [lo, hi) of its page. */
struct ent {
	uint16_t lo, hi;
	uint32_t stack_id;
	int64_t vacated_ns;
};

/* A page of small chunks holds a thousand pieces: a binary search
 * over all of them was a cache miss a step, the largest cost of a snapshot
 * recording's model. fence[b] is the first piece that ends after granule
 * 64 b, so a search looks between two fences, among the pieces of 1 KiB. */
struct page {
	uint64_t key; /* address >> PAGE_SHIFT */
	uint32_t n, cap;
	struct ent *v; /* sorted, disjoint */
	uint16_t fence[FENCES];
};

struct formermap {
	struct page **slot; /* open addressing by key */
	size_t mask, npages, count;
	struct page *last;  /* the page found last (pages stay where they are; a map
			     * is one thread's, so a const lookup may set it) */
};

struct formermap *
fm_new(void)
{
	struct formermap *m = xcalloc(1, sizeof(*m));

	m->mask = 63;
	m->slot = xcalloc(m->mask + 1, sizeof(*m->slot));
	return m;
}

static void
free_pages(struct formermap *m)
{
	for (size_t i = 0; i <= m->mask; i++)
		if (m->slot[i]) {
			free(m->slot[i]->v);
			free(m->slot[i]);
		}
	free(m->slot);
}

void
fm_free(struct formermap *m)
{
	if (!m)
		return;
	free_pages(m);
	free(m);
}

void
fm_empty(struct formermap *m, size_t keep)
{
	m->count = 0;
	if (m->npages <= keep) {
		for (size_t i = 0; i <= m->mask; i++)
			if (m->slot[i]) {
				m->slot[i]->n = 0;
				memset(m->slot[i]->fence, 0, sizeof(m->slot[i]->fence));
			}
		return;
	}
	free_pages(m);
	m->mask = 63;
	m->slot = xcalloc(m->mask + 1, sizeof(*m->slot));
	m->npages = 0;
	m->last = NULL;
}

struct formermap *
fm_clone(const struct formermap *m)
{
	struct formermap *c = xcalloc(1, sizeof(*c));

	*c = *m;
	c->last = NULL;
	c->slot = xcalloc(m->mask + 1, sizeof(*c->slot));
	for (size_t i = 0; i <= m->mask; i++) {
		const struct page *p = m->slot[i];
		if (!p)
			continue;
		struct page *q = xmalloc(sizeof(*q));
		*q = *p;
		q->v = p->cap ? xmalloc(p->cap * sizeof(*q->v)) : NULL;
		if (p->n)
			memcpy(q->v, p->v, p->n * sizeof(*q->v));
		c->slot[i] = q;
	}
	return c;
}

size_t
fm_count(const struct formermap *m)
{
	return m->count;
}

static size_t
home(const struct formermap *m, uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 29) & m->mask;
}

static struct page *
find_page(const struct formermap *m, uint64_t key)
{
	if (m->last && m->last->key == key)
		return m->last;
	for (size_t i = home(m, key);; i = (i + 1) & m->mask) {
		struct page *p = m->slot[i];
		if (!p || p->key == key) {
			if (p)
				((struct formermap *)m)->last = p;
			return p;
		}
	}
}

static struct page *
get_page(struct formermap *m, uint64_t key)
{
	struct page *p = find_page(m, key);

	if (p)
		return p;
	if (2 * (m->npages + 1) > m->mask + 1) {
		struct page **old = m->slot;
		size_t n = m->mask + 1;
		m->mask = 2 * n - 1;
		m->slot = xcalloc(2 * n, sizeof(*m->slot));
		for (size_t i = 0; i < n; i++)
			if (old[i]) {
				size_t j = home(m, old[i]->key);
				while (m->slot[j])
					j = (j + 1) & m->mask;
				m->slot[j] = old[i];
			}
		free(old);
	}
	p = xcalloc(1, sizeof(*p));
	p->key = key;
	size_t j = home(m, key);
	while (m->slot[j])
		j = (j + 1) & m->mask;
	m->slot[j] = p;
	m->npages++;
	return p;
}

/* The first piece that ends after granule g. */
static uint32_t
first_after(const struct page *p, unsigned g)
{
	unsigned b = g >> FENCE_SHIFT;
	uint32_t lo = p->fence[b], hi = b + 1 < FENCES ? p->fence[b + 1] : p->n;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (p->v[mid].hi <= g)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Make granules [lo, hi) of the page hold `e` (or nothing, with e NULL). */
static void
page_assign(struct formermap *m, struct page *p, unsigned lo, unsigned hi, const struct ent *e)
{
	uint32_t i = first_after(p, lo), j = i;
	struct ent put[3];
	unsigned k = 0;

	while (j < p->n && p->v[j].lo < hi)
		j++;
	if (i < j && p->v[i].lo < lo) {
		put[k] = p->v[i];
		put[k++].hi = (uint16_t)lo;
	}
	if (e)
		put[k++] = *e;
	if (i < j && p->v[j - 1].hi > hi) {
		put[k] = p->v[j - 1];
		put[k++].lo = (uint16_t)hi;
	}
	size_t n = p->n - (j - i) + k;
	if (n > p->cap) {
		p->cap = p->cap ? 2 * p->cap : 8;
		while (p->cap < n)
			p->cap *= 2;
		p->v = xrealloc(p->v, p->cap * sizeof(*p->v));
	}
	/* The fences: those before piece i stand. Those past the end of the
	 * pieces replaced and put (`end`) point at the same piece as before,
	 * moved by the change in count. Those between point at the first
	 * piece put that ends after them, else at the piece that followed the
	 * ones replaced (they end in order: one replaced that ended after the
	 * fence means the next one does too) or the same as before. */
	unsigned end = k ? put[k - 1].hi : 0, b;
	if (i < j && p->v[j - 1].hi > end)
		end = p->v[j - 1].hi;
	for (b = i ? (p->v[i - 1].hi + (1u << FENCE_SHIFT) - 1) >> FENCE_SHIFT : 0;
	     b < FENCES && b << FENCE_SHIFT < end; b++) {
		unsigned g = b << FENCE_SHIFT, x = 0;
		while (x < k && put[x].hi <= g)
			x++;
		if (x < k)
			p->fence[b] = (uint16_t)(i + x);
		else if (p->fence[b] >= j)
			p->fence[b] = (uint16_t)(p->fence[b] + k - (j - i));
		else
			p->fence[b] = (uint16_t)(i + k);
	}
	if (k != j - i) {
		/* over all the fences, a loop the compiler makes vector code of */
		uint16_t from = (uint16_t)b, d = (uint16_t)(k - (j - i));
		for (unsigned f = 0; f < FENCES; f++)
			p->fence[f] = (uint16_t)(p->fence[f] + (f >= from ? d : 0));
	}
	if (i + k != j)
		memmove(p->v + i + k, p->v + j, (p->n - j) * sizeof(*p->v));
	memcpy(p->v + i, put, k * sizeof(*put));
	m->count = m->count - p->n + n;
	p->n = (uint32_t)n;
}

/* Calls fn for each page-sized part of [addr, addr + bytes), in granules
 * of its page. Ranges are rounded out to whole granules. */
#define EACH_PART(addr, bytes, key, lo, hi)                                                        \
	for (uint64_t a_ = (addr) & ~15ULL, e_ = ((addr) + (bytes) + 15) & ~15ULL, key, lo, hi;     \
	     a_ < e_ && ((key = a_ >> PAGE_SHIFT), (lo = (a_ >> GRAIN_SHIFT) & (PAGE_GRAINS - 1)),  \
			 (hi = (e_ >> PAGE_SHIFT) > key ? PAGE_GRAINS                                \
							: (e_ >> GRAIN_SHIFT) & (PAGE_GRAINS - 1)), \
			 1);                                                                         \
	     a_ = (key + 1) << PAGE_SHIFT)

void
fm_set(struct formermap *m, uint64_t addr, uint64_t bytes, uint32_t stack_id, int64_t vacated_ns)
{
	EACH_PART(addr, bytes, key, lo, hi)
	{
		struct ent e = { (uint16_t)lo, (uint16_t)hi, stack_id, vacated_ns };
		page_assign(m, get_page(m, key), (unsigned)lo, (unsigned)hi, &e);
	}
}

void
fm_clear(struct formermap *m, uint64_t addr, uint64_t bytes)
{
	if (bytes >> PAGE_SHIFT > m->npages) {
		/* a large range: visit the pages there are, not the addresses */
		uint64_t end = addr + bytes;
		for (size_t i = 0; i <= m->mask; i++) {
			struct page *p = m->slot[i];
			if (!p || p->n == 0)
				continue;
			uint64_t base = p->key << PAGE_SHIFT;
			if (base + (1u << PAGE_SHIFT) <= addr || base >= end)
				continue;
			uint64_t a = addr > base ? addr : base;
			uint64_t b = end < base + (1u << PAGE_SHIFT) ? end : base + (1u << PAGE_SHIFT);
			fm_clear(m, a, b - a);
		}
		return;
	}
	EACH_PART(addr, bytes, key, lo, hi)
	{
		struct page *p = find_page(m, key);
		if (p && p->n)
			page_assign(m, p, (unsigned)lo, (unsigned)hi, NULL);
	}
}

void
fm_each(const struct formermap *m, uint64_t addr, uint64_t bytes,
	void (*fn)(void *arg, const struct fm_piece *p), void *arg)
{
	EACH_PART(addr, bytes, key, lo, hi)
	{
		const struct page *p = find_page(m, key);
		if (!p)
			continue;
		uint64_t base = key << PAGE_SHIFT;
		for (uint32_t i = first_after(p, (unsigned)lo); i < p->n && p->v[i].lo < hi; i++) {
			const struct ent *e = &p->v[i];
			unsigned a = e->lo > lo ? e->lo : (unsigned)lo;
			unsigned b = e->hi < hi ? e->hi : (unsigned)hi;
			struct fm_piece piece = { base + ((uint64_t)a << GRAIN_SHIFT),
						  (uint64_t)(b - a) << GRAIN_SHIFT, e->stack_id,
						  e->vacated_ns };
			fn(arg, &piece);
		}
	}
}

/* fm_save, within one page: src's pieces (or FM_NONE) into each gap of
 * dst's page in [lo, hi). */
static void
save_page(struct formermap *dst, struct page *d, const struct page *s, unsigned lo, unsigned hi)
{
	unsigned at = lo;

	while (at < hi) {
		/* the next gap of d at or after `at` */
		uint32_t i = first_after(d, at);
		if (i < d->n && d->v[i].lo <= at) {
			at = d->v[i].hi;
			continue;
		}
		unsigned gap_end = i < d->n && d->v[i].lo < hi ? d->v[i].lo : hi;
		/* fill [at, gap_end) from s */
		unsigned g = at;
		if (s)
			for (uint32_t k = first_after(s, g); k < s->n && s->v[k].lo < gap_end; k++) {
				const struct ent *e = &s->v[k];
				unsigned a = e->lo > g ? e->lo : g;
				unsigned b = e->hi < gap_end ? e->hi : gap_end;
				if (a > g) {
					struct ent none = { (uint16_t)g, (uint16_t)a, FM_NONE, 0 };
					page_assign(dst, d, g, a, &none);
				}
				struct ent copy = { (uint16_t)a, (uint16_t)b, e->stack_id, e->vacated_ns };
				page_assign(dst, d, a, b, &copy);
				g = b;
			}
		if (g < gap_end) {
			struct ent none = { (uint16_t)g, (uint16_t)gap_end, FM_NONE, 0 };
			page_assign(dst, d, g, gap_end, &none);
		}
		at = gap_end;
	}
}

void
fm_save(struct formermap *dst, const struct formermap *src, uint64_t addr, uint64_t bytes)
{
	EACH_PART(addr, bytes, key, lo, hi)
	{
		save_page(dst, get_page(dst, key), find_page(src, key), (unsigned)lo, (unsigned)hi);
	}
}
