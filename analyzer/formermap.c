/* SPDX-License-Identifier: MIT */
/* formermap.c - who last held each free byte of a heap (see formermap.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "formermap.h"
#include "util.h"

/* 16 KiB of address space a page, a 16-bit record index per 16-byte
 * granule. Pages of sorted pieces, which every piece put in or taken out
 * moved, were the largest cost of a snapshot recording's collector while a
 * program freed its heap (perf, perl: page_assign 18% of the collector's
 * samples while the program waited for it); writing the index of each
 * granule a range covers costs a store per 16 bytes, and reading the
 * pieces back is a scan of the same. */
#define PAGE_SHIFT 14
#define GRAIN_SHIFT 4 /* 16-byte granules */
#define PAGE_GRAINS (1u << (PAGE_SHIFT - GRAIN_SHIFT))

/* Who held granules: a piece is a run of granules with the same record.
 * A record counts the granules that name it and is reused once none
 * does; free ones are chained through `next`. */
struct rec {
	uint32_t stack_id;
	uint16_t refs;
	uint16_t next; /* free list, while refs is 0 */
	int64_t vacated_ns;
};

struct page {
	uint64_t key;     /* address >> PAGE_SHIFT */
	uint32_t runs;    /* pieces */
	uint16_t nrec, cap;
	uint16_t free;    /* first free record, 0: none (record 0 is "nothing") */
	struct rec *rec;  /* [0] unused */
	uint16_t idx[PAGE_GRAINS];
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
			free(m->slot[i]->rec);
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

static void
page_reset(struct page *p)
{
	p->runs = 0;
	p->nrec = p->cap ? 1 : 0;
	p->free = 0;
	memset(p->idx, 0, sizeof(p->idx));
}

void
fm_empty(struct formermap *m, size_t keep)
{
	m->count = 0;
	if (m->npages <= keep) {
		for (size_t i = 0; i <= m->mask; i++)
			if (m->slot[i])
				page_reset(m->slot[i]);
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
		q->rec = p->cap ? xmalloc(p->cap * sizeof(*q->rec)) : NULL;
		if (p->nrec)
			memcpy(q->rec, p->rec, p->nrec * sizeof(*q->rec));
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

/* A record for (stack_id, vacated_ns) to name `refs` granules. */
static uint16_t
new_rec(struct page *p, uint32_t stack_id, int64_t vacated_ns, unsigned refs)
{
	uint16_t r = p->free;

	if (r) {
		p->free = p->rec[r].next;
	} else {
		if (p->nrec == p->cap) {
			/* at most one record per granule is named, and one
			 * more is being made: PAGE_GRAINS + 2 bound it */
			p->cap = p->cap ? 2 * p->cap : 8;
			if (p->cap > PAGE_GRAINS + 2)
				p->cap = PAGE_GRAINS + 2;
			p->rec = xrealloc(p->rec, p->cap * sizeof(*p->rec));
			if (p->nrec == 0)
				p->nrec = 1; /* record 0 is "nothing" */
		}
		r = p->nrec++;
	}
	p->rec[r] = (struct rec){ stack_id, (uint16_t)refs, 0, vacated_ns };
	return r;
}

/* The first granule in [g, hi) that does not name v, or hi: four at a
 * time while they all do (a free range of 64 KiB is 4096 granules). */
static unsigned
run_end(const uint16_t *idx, unsigned g, unsigned hi, uint16_t v)
{
	const uint64_t four = v * 0x0001000100010001ULL;

	while (g + 4 <= hi) {
		uint64_t w;
		memcpy(&w, idx + g, sizeof(w));
		if (w != four)
			break;
		g += 4;
	}
	while (g < hi && idx[g] == v)
		g++;
	return g;
}

/* Granules [g, hi) name v: four at a time (gcc -O2 stores one by one). */
static void
fill(uint16_t *idx, unsigned g, unsigned hi, uint16_t v)
{
	const uint64_t four = v * 0x0001000100010001ULL;

	for (; g < hi && (g & 3); g++)
		idx[g] = v;
	for (; g + 4 <= hi; g += 4)
		memcpy(idx + g, &four, sizeof(four));
	for (; g < hi; g++)
		idx[g] = v;
}

/* Make granules [lo, hi) of the page name record r (0: nothing), and
 * count the pieces: a piece begins at a granule that names a record its
 * neighbour below does not. */
static void
page_assign(struct formermap *m, struct page *p, unsigned lo, unsigned hi, uint16_t r)
{
	uint16_t below = lo ? p->idx[lo - 1] : 0, prev = below;
	uint16_t above = hi < PAGE_GRAINS ? p->idx[hi] : 0;
	uint32_t before = 0, after;

	for (unsigned g = lo; g < hi;) {
		uint16_t old = p->idx[g];
		unsigned e = run_end(p->idx, g + 1, hi, old);
		if (old) {
			before += old != prev;
			p->rec[old].refs = (uint16_t)(p->rec[old].refs - (e - g));
			if (p->rec[old].refs == 0) {
				p->rec[old].next = p->free;
				p->free = old;
			}
		}
		prev = old;
		g = e;
	}
	before += above && above != prev;
	fill(p->idx, lo, hi, r);
	after = (r && r != below) + (above && above != r);
	p->runs = p->runs - before + after;
	m->count = m->count - before + after;
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
		struct page *p = get_page(m, key);
		page_assign(m, p, (unsigned)lo, (unsigned)hi,
			    new_rec(p, stack_id, vacated_ns, (unsigned)(hi - lo)));
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
			if (!p || p->runs == 0)
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
		if (p && p->runs)
			page_assign(m, p, (unsigned)lo, (unsigned)hi, 0);
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
		for (unsigned g = (unsigned)lo; g < hi;) {
			uint16_t r = p->idx[g];
			unsigned e = run_end(p->idx, g + 1, (unsigned)hi, r);
			if (r) {
				struct fm_piece piece = { base + ((uint64_t)g << GRAIN_SHIFT),
							  (uint64_t)(e - g) << GRAIN_SHIFT,
							  p->rec[r].stack_id, p->rec[r].vacated_ns };
				fn(arg, &piece);
			}
			g = e;
		}
	}
}

/* fm_save, within one page: src's pieces (or FM_NONE) into each gap of
 * dst's page in [lo, hi), a piece for each of src's (or of its gaps) in
 * each of dst's gaps. */
static void
save_page(struct formermap *dst, struct page *d, const struct page *s, unsigned lo, unsigned hi)
{
	for (unsigned g = lo; g < hi;) {
		if (d->idx[g]) {
			g = run_end(d->idx, g + 1, hi, d->idx[g]);
			continue;
		}
		uint16_t r = s ? s->idx[g] : 0;
		unsigned e = run_end(d->idx, g + 1, hi, 0);
		if (s)
			e = run_end(s->idx, g + 1, e, r);
		uint16_t x = r ? new_rec(d, s->rec[r].stack_id, s->rec[r].vacated_ns, e - g)
			       : new_rec(d, FM_NONE, 0, e - g);
		page_assign(dst, d, g, e, x);
		g = e;
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
