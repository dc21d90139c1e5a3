/* SPDX-License-Identifier: MIT */
/* heapmodel.c - occupied bytes of a process's heaps (see heapmodel.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "heapmodel.h"
#include "util.h"

/* ---- the bitmap: l0 a bit per granule, l1 a bit per non-zero l0 word,
 * l2 a bit per non-zero l1 word ---- */

/*
 * The levels are as long as the heap (l0 1/128 of it), but only the pages
 * near chunks are ever written: they are mapped MAP_NORESERVE and grown
 * with mremap, so untouched pages take no memory, and the model's memory
 * follows the chunks, not what the heap's extent claims (a recording can
 * claim anything). False if the address space is not there.
 */
static size_t
level_bytes(size_t words)
{
	return (words * sizeof(uint64_t) + 4095) & ~(size_t)4095;
}

static bool
level_grow(uint64_t **p, size_t *bytes, size_t words)
{
	size_t want = level_bytes(words);
	void *q;

	if (want <= *bytes)
		return true;
	if (*p == NULL)
		q = mmap(NULL, want, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	else
		q = mremap(*p, *bytes, want, MREMAP_MAYMOVE);
	if (q == MAP_FAILED)
		return false;
	*p = q; /* what is new reads zero */
	*bytes = want;
	return true;
}

static void
level_free(uint64_t *p, size_t bytes)
{
	if (p)
		munmap(p, bytes);
}

static bool
occ_need(struct hm_occ *o, size_t granules)
{
	size_t words = (granules + 63) / 64;

	if (words <= o->words)
		return true;
	if (words > SIZE_MAX / 16)
		return false;
	size_t n = o->words ? o->words : 64;
	while (n < words)
		n *= 2;
	size_t n1 = (n + 63) / 64, n2 = (n1 + 63) / 64;
	/* a level that grew before another failed is only longer than it
	 * needs to be */
	if (!level_grow(&o->l2, &o->bytes[2], n2) || !level_grow(&o->l1, &o->bytes[1], n1) ||
	    !level_grow(&o->l0, &o->bytes[0], n))
		return false;
	o->words = n;
	return true;
}

static bool
occ_set(struct hm_occ *o, size_t g)
{
	if (!occ_need(o, g + 1))
		return false;
	o->l0[g / 64] |= 1ULL << (g % 64);
	o->l1[g / 4096] |= 1ULL << (g / 64 % 64);
	o->l2[g / 262144] |= 1ULL << (g / 4096 % 64);
	return true;
}

static void
occ_clear(struct hm_occ *o, size_t g)
{
	if (g / 64 >= o->words)
		return;
	o->l0[g / 64] &= ~(1ULL << (g % 64));
	if (o->l0[g / 64] == 0) {
		o->l1[g / 4096] &= ~(1ULL << (g / 64 % 64));
		if (o->l1[g / 4096] == 0)
			o->l2[g / 262144] &= ~(1ULL << (g / 4096 % 64));
	}
}

static size_t
high_bit(uint64_t m)
{
	return 63 - (size_t)__builtin_clzll(m);
}

long long
hm_prev(const struct hm_heap *h, size_t g)
{
	const struct hm_occ *o = &h->occ;

	if (g == 0 || o->words == 0)
		return -1;
	if (g > o->words * 64)
		g = o->words * 64;
	g--; /* inclusive from here */
	size_t w = g / 64;
	uint64_t m = o->l0[w] & (~0ULL >> (63 - g % 64));
	if (m)
		return (long long)(w * 64 + high_bit(m));
	/* a lower word under the same l1 word, else under a lower one */
	size_t w1 = w / 64;
	uint64_t m1 = w % 64 ? o->l1[w1] & (~0ULL >> (64 - w % 64)) : 0;
	if (!m1) {
		size_t w2 = w1 / 64;
		uint64_t m2 = w1 % 64 ? o->l2[w2] & (~0ULL >> (64 - w1 % 64)) : 0;
		while (!m2) {
			if (w2 == 0)
				return -1;
			m2 = o->l2[--w2];
		}
		w1 = w2 * 64 + high_bit(m2);
		m1 = o->l1[w1];
	}
	w = w1 * 64 + high_bit(m1);
	return (long long)(w * 64 + high_bit(o->l0[w]));
}

long long
hm_next(const struct hm_heap *h, size_t g)
{
	const struct hm_occ *o = &h->occ;
	size_t w = g / 64;

	if (w >= o->words)
		return -1;
	uint64_t m = o->l0[w] & (~0ULL << (g % 64));
	while (!m) {
		if (++w >= o->words)
			return -1;
		if (w % 4096 == 0 && o->l2[w / 4096] == 0) {
			w += 4095; /* 4096 empty words */
			continue;
		}
		if (w % 64 == 0 && o->l1[w / 64] == 0) {
			w += 63; /* 64 empty words */
			continue;
		}
		m = o->l0[w];
	}
	return (long long)(w * 64 + (size_t)__builtin_ctzll(m));
}

/* ---- resident pages: a bit per page, from the page of the heap's start ---- */

static size_t
page_ix(const struct hm_heap *h, uint64_t addr)
{
	return addr > h->start ? (size_t)(addr / HM_PAGE - h->start / HM_PAGE) : 0;
}

static void
res_need(struct hm_heap *h, size_t pages)
{
	size_t words = (pages + 63) / 64;

	if (words <= h->res_words)
		return;
	size_t n = h->res_words ? h->res_words : 16;
	while (n < words)
		n *= 2;
	h->res = xrealloc(h->res, n * sizeof(uint64_t));
	memset(h->res + h->res_words, 0, (n - h->res_words) * sizeof(uint64_t));
	h->res_words = n;
}

static uint64_t
word_mask(size_t b, size_t n)
{
	return (n == 64 ? ~0ULL : (1ULL << n) - 1) << b;
}

/* Pages [p0, p1) resident (on) or not. */
static void
res_mark(struct hm *m, struct hm_heap *h, size_t p0, size_t p1, bool on)
{
	size_t had = h->res_words;

	if (on)
		res_need(h, p1);
	else if (p1 > h->res_words * 64)
		p1 = h->res_words * 64;
	while (p0 < p1) {
		size_t w = p0 / 64, b = p0 % 64, n = 64 - b < p1 - p0 ? 64 - b : p1 - p0;
		uint64_t mask = word_mask(b, n);
		if (m->res_hook && (on ? (mask & ~h->res[w]) : (mask & h->res[w])))
			m->res_hook(m->res_arg, (size_t)(h - m->heaps), w, w < had ? h->res[w] : 0);
		if (on) {
			h->resident += (uint64_t)__builtin_popcountll(mask & ~h->res[w]);
			h->res[w] |= mask;
		} else {
			h->resident -= (uint64_t)__builtin_popcountll(mask & h->res[w]);
			h->res[w] &= ~mask;
		}
		p0 += n;
	}
}

static uint64_t
res_count(const struct hm_heap *h, size_t p0, size_t p1)
{
	uint64_t n = 0;

	if (p1 > h->res_words * 64)
		p1 = h->res_words * 64;
	while (p0 < p1) {
		size_t w = p0 / 64, b = p0 % 64, k = 64 - b < p1 - p0 ? 64 - b : p1 - p0;
		n += (uint64_t)__builtin_popcountll(word_mask(b, k) & h->res[w]);
		p0 += k;
	}
	return n;
}

/* A chunk [addr, addr + bytes) was handed out: its pages are used, and so
 * is the page of the header glibc writes just past it (the next chunk's
 * size, or a remainder's). */
static void
res_touch(struct hm *m, struct hm_heap *h, uint64_t addr, uint64_t bytes)
{
	uint64_t end = addr + bytes + 16;

	if (end > h->end && h->end > addr)
		end = h->end;
	res_mark(m, h, page_ix(h, addr), page_ix(h, end - 1) + 1, true);
}

/* Pages from `addr` (rounded up to a page) to `end` are the kernel's. */
static void
res_drop(struct hm *m, struct hm_heap *h, uint64_t addr, uint64_t end)
{
	size_t p0 = page_ix(h, addr + HM_PAGE - 1), p1 = end == UINT64_MAX ? SIZE_MAX
									   : page_ix(h, end);

	if (addr <= h->start)
		p0 = 0;
	res_mark(m, h, p0, p1, false);
}

/* ---- heaps ---- */

/* How far past a heap's end an address may be and still be taken as the
 * heap's (see hm_heap_of). */
#define HM_FAR (1ULL << 30)

void
hm_init(struct hm *m, struct chunkmap *map)
{
	memset(m, 0, sizeof(*m));
	m->map = map;
}

void
hm_free(struct hm *m)
{
	for (size_t i = 0; i < m->nheaps; i++) {
		level_free(m->heaps[i].occ.l0, m->heaps[i].occ.bytes[0]);
		level_free(m->heaps[i].occ.l1, m->heaps[i].occ.bytes[1]);
		level_free(m->heaps[i].occ.l2, m->heaps[i].occ.bytes[2]);
		free(m->heaps[i].res);
	}
	free(m->heaps);
	m->heaps = NULL;
	m->nheaps = 0;
}

static struct hm_heap *add_heap(struct hm *m, uint64_t start, uint64_t end, uint8_t kind);

static bool
occ_copy(struct hm_occ *d, const struct hm_occ *o)
{
	size_t n1 = (o->words + 63) / 64, n2 = (n1 + 63) / 64;

	memset(d, 0, sizeof(*d));
	if (!o->words)
		return true;
	/* mapped as the original's (sparse): only the words in use are copied */
	if (!level_grow(&d->l2, &d->bytes[2], n2) || !level_grow(&d->l1, &d->bytes[1], n1) ||
	    !level_grow(&d->l0, &d->bytes[0], o->words))
		return false;
	d->words = o->words;
	memcpy(d->l0, o->l0, o->words * sizeof(uint64_t));
	memcpy(d->l1, o->l1, n1 * sizeof(uint64_t));
	memcpy(d->l2, o->l2, n2 * sizeof(uint64_t));
	return true;
}

bool
hm_clone(struct hm *d, const struct hm *m, struct chunkmap *map)
{
	bool ok = true;

	*d = *m;
	d->map = map;
	d->res_hook = NULL;
	d->res_arg = NULL;
	d->heaps = xcalloc(m->nheaps ? m->nheaps : 1, sizeof(*d->heaps));
	for (size_t i = 0; i < m->nheaps; i++) {
		struct hm_heap *h = &d->heaps[i];
		*h = m->heaps[i];
		h->res = NULL;
		ok &= occ_copy(&h->occ, &m->heaps[i].occ);
		if (h->res_words) {
			h->res = xmalloc(h->res_words * sizeof(uint64_t));
			memcpy(h->res, m->heaps[i].res, h->res_words * sizeof(uint64_t));
		}
	}
	return ok;
}

void
hm_restore_heap(struct hm *m, uint64_t start, uint64_t end, uint8_t kind)
{
	if (kind == HM_BRK) {
		hm_brk(m, start, end);
		return;
	}
	add_heap(m, start, end, kind);
}

struct hm_heap *
hm_heap_of(struct hm *m, uint64_t addr)
{
	struct hm_heap *best = NULL;

	if (m->last_heap < m->nheaps) {
		struct hm_heap *h = &m->heaps[m->last_heap];
		if (addr >= h->start && addr < h->end)
			return h;
	}
	for (size_t i = 0; i < m->nheaps; i++)
		if (addr >= m->heaps[i].start && addr < m->heaps[i].end) {
			m->last_heap = i;
			return &m->heaps[i];
		}
	/* past every heap's end: a move of the break that was not recorded
	 * (lost events); the closest heap below takes it, if it is no
	 * farther than the heap is long (or 1 GiB): farther, it is in no heap
	 * we know (a thread arena's heap a forked child inherited) */
	for (size_t i = 0; i < m->nheaps; i++)
		if (addr >= m->heaps[i].start && (!best || m->heaps[i].start > best->start))
			best = &m->heaps[i];
	if (best && addr - best->end >= (best->end - best->start > HM_FAR ? best->end - best->start
									   : HM_FAR))
		return NULL;
	return best;
}

static struct hm_heap *
add_heap(struct hm *m, uint64_t start, uint64_t end, uint8_t kind)
{
	m->heaps = xrealloc(m->heaps, (m->nheaps + 1) * sizeof(*m->heaps));
	struct hm_heap *h = &m->heaps[m->nheaps++];
	memset(h, 0, sizeof(*h));
	h->start = start;
	h->end = end;
	h->kind = kind;
	m->extent += end - start;
	return h;
}

void
hm_brk(struct hm *m, uint64_t old_brk, uint64_t new_brk)
{
	if (!m->has_brk) {
		m->has_brk = true;
		m->brk_heap = m->nheaps;
		add_heap(m, old_brk, old_brk, HM_BRK);
	}
	struct hm_heap *h = &m->heaps[m->brk_heap];
	if (new_brk < h->start)
		new_brk = h->start;
	if (new_brk < h->end)
		res_drop(m, h, new_brk, UINT64_MAX);
	m->extent += new_brk - h->end;
	h->end = new_brk;
}

void
hm_map_heap(struct hm *m, uint64_t addr, uint64_t len)
{
	for (size_t i = 0; i < m->nheaps; i++)
		if (m->heaps[i].end == addr && m->heaps[i].kind != HM_BRK) {
			m->heaps[i].end += len;
			m->extent += len;
			return;
		}
	add_heap(m, addr, addr + len, HM_MAPPED);
}

void
hm_unmap_heap(struct hm *m, uint64_t addr, uint64_t len)
{
	for (size_t i = 0; i < m->nheaps; i++) {
		struct hm_heap *h = &m->heaps[i];
		if (h->kind != HM_BRK && addr >= h->start && addr + len == h->end) {
			m->extent -= len;
			h->end = addr;
			res_drop(m, h, addr, UINT64_MAX);
			return;
		}
	}
}

/* ---- occupancy ---- */

static void
retally(struct hm *m, struct hm_heap *h)
{
	uint64_t span = h->top ? h->top_end - h->start : 0;
	uint64_t u = span > h->occupied ? span - h->occupied : 0;

	m->untrimmable += u - h->untrimmable;
	h->untrimmable = u;
}

uint64_t
hm_entry_end(struct hm *m, struct hm_heap *h, size_t g)
{
	uint64_t addr = h->start + (uint64_t)g * HM_GRAIN;
	struct chunk_entry *c = chunkmap_slot(m->map, addr);

	return addr + (c && c->addr == addr ? c->chunk_bytes : HM_GRAIN);
}

static void
count(struct hm *m, const struct chunk_entry *c, int sign)
{
	uint64_t b = c->chunk_bytes;

	if (c->kind == HM_RANGE_ALLOCATOR) {
		m->allocator += sign > 0 ? b : -b;
	} else if (c->cached) {
		m->cached += sign > 0 ? b : -b;
		if (c->cached == HM_FASTBIN)
			m->fastbin += sign > 0 ? b : -b;
		if (c->kind == HM_CHUNK)
			m->cached_n += sign > 0 ? 1 : -1;
	} else {
		m->live += sign > 0 ? b : -b;
		m->live_n += sign > 0 ? 1 : -1;
	}
}

bool
hm_occupy(struct hm *m, struct chunk_entry *c)
{
	struct hm_heap *h = hm_heap_of(m, c->addr);

	if (!h)
		return false;
	size_t g = (size_t)((c->addr - h->start) / HM_GRAIN);
	if (!occ_set(&h->occ, g))
		return false;
	h->occupied += c->chunk_bytes;
	if (g + 1 >= h->top) {
		h->top = g + 1;
		h->top_end = c->addr + c->chunk_bytes;
	}
	res_touch(m, h, c->addr, c->chunk_bytes);
	count(m, c, 1);
	retally(m, h);
	return true;
}

void
hm_vacate(struct hm *m, struct chunk_entry *c)
{
	struct hm_heap *h = hm_heap_of(m, c->addr);

	count(m, c, -1);
	if (!h)
		return;
	size_t g = (size_t)((c->addr - h->start) / HM_GRAIN);
	occ_clear(&h->occ, g);
	h->occupied -= c->chunk_bytes < h->occupied ? c->chunk_bytes : h->occupied;
	if (g + 1 == h->top) {
		long long p = hm_prev(h, g);
		h->top = p < 0 ? 0 : (size_t)p + 1;
		h->top_end = p < 0 ? h->start : hm_entry_end(m, h, (size_t)p);
	}
	retally(m, h);
}

void
hm_to_cached(struct hm *m, struct chunk_entry *c, uint8_t cache)
{
	if (c->cached == cache || c->kind == HM_RANGE_ALLOCATOR)
		return;
	count(m, c, -1);
	c->cached = cache;
	count(m, c, 1);
}

void
hm_resize(struct hm *m, struct chunk_entry *c, uint64_t new_bytes)
{
	struct hm_heap *h = hm_heap_of(m, c->addr);

	count(m, c, -1);
	if (h) {
		h->occupied += new_bytes - c->chunk_bytes;
		if ((size_t)((c->addr - h->start) / HM_GRAIN) + 1 == h->top)
			h->top_end = c->addr + new_bytes;
		if (new_bytes > c->chunk_bytes)
			res_touch(m, h, c->addr, new_bytes);
	}
	c->chunk_bytes = new_bytes;
	count(m, c, 1);
	if (h)
		retally(m, h);
}

void
hm_mmap(struct hm *m, uint64_t bytes, bool on)
{
	if (on) {
		m->mmap += bytes;
		m->mmap_n++;
	} else {
		m->mmap -= bytes < m->mmap ? bytes : m->mmap;
		m->mmap_n -= m->mmap_n > 0;
	}
}

void
hm_madvise(struct hm *m, uint64_t addr, uint64_t len)
{
	struct hm_heap *h = hm_heap_of(m, addr);

	if (h)
		res_drop(m, h, addr, addr + len);
}

void
hm_start(struct hm *m, int64_t ns)
{
	m->worst_ns = m->peak_extent_ns = ns;
}

void
hm_track(struct hm *m, int64_t ns)
{
	if (m->untrimmable > m->worst_untrimmable) {
		m->worst_untrimmable = m->untrimmable;
		m->worst_ns = ns;
	}
	if (m->extent > m->peak_extent) {
		m->peak_extent = m->extent;
		m->peak_extent_ns = ns;
	}
}

uint64_t
hm_retained(const struct hm *m)
{
	return m->extent > m->live ? m->extent - m->live : 0;
}

uint64_t
hm_top_free(const struct hm *m)
{
	uint64_t t = 0;

	for (size_t i = 0; i < m->nheaps; i++) {
		const struct hm_heap *h = &m->heaps[i];
		uint64_t top = h->top ? h->top_end : h->start;
		t += h->end > top ? h->end - top : 0;
	}
	return t;
}

uint64_t
hm_resident(const struct hm *m)
{
	uint64_t pages = 0;

	for (size_t i = 0; i < m->nheaps; i++)
		pages += m->heaps[i].resident;
	return pages * HM_PAGE;
}

void
hm_res_runs(const struct hm_heap *h, void (*fn)(void *arg, uint64_t addr, uint64_t bytes),
	    void *arg)
{
	uint64_t base = h->start / HM_PAGE * HM_PAGE;
	size_t run = 0, p = 0, n = h->res_words * 64;

	for (;;) {
		bool on = p < n && (h->res[p / 64] >> (p % 64) & 1);
		if (on && run == 0)
			run = p + 1;
		if (!on && run) {
			fn(arg, base + (uint64_t)(run - 1) * HM_PAGE, (uint64_t)(p - run + 1) * HM_PAGE);
			run = 0;
		}
		if (p >= n)
			break;
		/* skip a word with nothing to change */
		if (p % 64 == 0 && (run ? h->res[p / 64] == ~0ULL : h->res[p / 64] == 0))
			p += 64;
		else
			p++;
	}
}

void
hm_res_set(struct hm *m, struct hm_heap *h, uint64_t addr, uint64_t bytes, bool on)
{
	if (bytes == 0 || addr + bytes <= h->start / HM_PAGE * HM_PAGE)
		return;
	res_mark(m, h, page_ix(h, addr), page_ix(h, addr + bytes - 1) + 1, on);
}

void
hm_res_load(struct hm *m, size_t heap, const uint64_t *words, size_t n)
{
	struct hm_heap *h = &m->heaps[heap];

	res_need(h, n * 64);
	if (h->res_words)
		memset(h->res, 0, h->res_words * sizeof(uint64_t));
	if (n)
		memcpy(h->res, words, n * sizeof(uint64_t));
	h->resident = 0;
	for (size_t w = 0; w < h->res_words; w++)
		h->resident += (uint64_t)__builtin_popcountll(h->res[w]);
}

uint64_t
hm_resident_range(const struct hm_heap *h, uint64_t addr, uint64_t bytes)
{
	uint64_t end = addr + bytes, n = 0;
	uint64_t lo = (addr + HM_PAGE - 1) & ~(uint64_t)(HM_PAGE - 1);
	uint64_t hi = end & ~(uint64_t)(HM_PAGE - 1);

	if (bytes == 0)
		return 0;
	if (hi < lo) /* within one page */
		return res_count(h, page_ix(h, addr), page_ix(h, addr) + 1) ? bytes : 0;
	if (hi > lo)
		n = res_count(h, page_ix(h, lo), page_ix(h, hi)) * HM_PAGE;
	/* the partial pages at either end */
	if (addr < lo && res_count(h, page_ix(h, addr), page_ix(h, addr) + 1))
		n += lo - addr;
	if (end > hi && res_count(h, page_ix(h, hi), page_ix(h, hi) + 1))
		n += end - hi;
	return n;
}

uint64_t
hm_trim_pages(uint64_t addr, uint64_t bytes, uint64_t *first)
{
	/* glibc's mtrim: a free chunk keeps its header and list pointers
	 * (sizeof (struct malloc_chunk), 48 bytes on 64-bit) */
	const uint64_t head = 48, page = HM_PAGE;

	if (bytes <= page - 1 + head)
		return 0;
	uint64_t aligned = (addr + head + page - 1) & ~(page - 1);
	uint64_t rest = addr + bytes - aligned;
	*first = aligned;
	return rest > page - 1 ? rest & ~(page - 1) : 0;
}

uint64_t
hm_trim_range(uint64_t addr, uint64_t bytes)
{
	uint64_t first;

	return hm_trim_pages(addr, bytes, &first);
}

uint64_t
hm_hole_trim(const struct hm_heap *h, uint64_t addr, uint64_t bytes)
{
	uint64_t first = 0, n = hm_trim_pages(addr, bytes, &first);

	return n ? hm_resident_range(h, first, n) : 0;
}

void
hm_holes(struct hm *m, struct hm_heap *h, void (*fn)(void *, uint64_t, uint64_t), void *arg)
{
	uint64_t at = h->start;

	if (!h->top)
		return;
	for (long long g = hm_next(h, 0); g >= 0; g = hm_next(h, (size_t)g + 1)) {
		uint64_t addr = h->start + (uint64_t)g * HM_GRAIN;
		if (addr > at)
			fn(arg, at, addr - at);
		uint64_t end = hm_entry_end(m, h, (size_t)g);
		if (end > at)
			at = end;
	}
}

struct res_sum {
	const struct hm_heap *h;
	uint64_t bytes;
};

static void
add_resident(void *arg, uint64_t addr, uint64_t bytes)
{
	struct res_sum *r = arg;

	r->bytes += hm_resident_range(r->h, addr, bytes);
}

uint64_t
hm_holes_resident(struct hm *m)
{
	struct res_sum r = { NULL, 0 };

	for (size_t i = 0; i < m->nheaps; i++) {
		r.h = &m->heaps[i];
		hm_holes(m, &m->heaps[i], add_resident, &r);
	}
	return r.bytes;
}

void
hm_trim(struct hm *m, struct hm_trim *t)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < m->nheaps; i++) {
		struct hm_heap *h = &m->heaps[i];
		uint64_t at = h->start; /* the end of what stays occupied */

		/* malloc_consolidate: what fastbins hold becomes free, merged
		 * with the free space around it (free chunks never touch
		 * each other in glibc: the free runs between what stays are
		 * its free chunks after the consolidation) */
		for (long long g = hm_next(h, 0); g >= 0; g = hm_next(h, (size_t)g + 1)) {
			uint64_t addr = h->start + (uint64_t)g * HM_GRAIN;
			struct chunk_entry *c = chunkmap_slot(m->map, addr);
			if (c && c->addr == addr && c->cached == HM_FASTBIN)
				continue;
			if (addr > at)
				t->holes += hm_hole_trim(h, at, addr - at);
			uint64_t end = hm_entry_end(m, h, (size_t)g);
			if (end > at)
				at = end;
		}
		/* what is left above is the top chunk: systrim(0) gives the
		 * main arena's back to a page (top_area = size - MINSIZE - 1,
		 * rounded down to pages); a thread arena's top stays */
		if (h->kind == HM_BRK && h->end > at && h->end - at > 33) {
			uint64_t extra = (h->end - at - 33) & ~(uint64_t)(HM_PAGE - 1);
			t->top += hm_resident_range(h, h->end - extra, extra);
		}
	}
	t->bytes = t->holes + t->top;
}

uint64_t
hm_trim_reclaimable(struct hm *m)
{
	struct hm_trim t;

	hm_trim(m, &t);
	return t.bytes;
}

/* A top chunk [at, h->end): the resident bytes trimming it to a page
 * gives back (systrim(0)'s rule). */
static uint64_t
top_trim(const struct hm_heap *h, uint64_t at)
{
	if (h->end <= at || h->end - at <= 33)
		return 0;
	uint64_t extra = (h->end - at - 33) & ~(uint64_t)(HM_PAGE - 1);
	return hm_resident_range(h, h->end - extra, extra);
}

struct blocker {
	uint64_t addr, end, gap; /* gap: start of the free run below it */
	int64_t key, stack_id;   /* key INT64_MIN: no live chunk of the program's */
	uint64_t bytes;
};

struct holder_set {
	struct hm_holder *v;
	size_t n, cap;
	size_t *slot; /* index + 1 by hash of the key */
	size_t slots;
};

static struct hm_holder *
holder_of(struct holder_set *s, int64_t key, int64_t stack_id)
{
	if (s->n * 2 >= s->slots) {
		size_t slots = s->slots ? s->slots * 2 : 256;
		size_t *slot = xcalloc(slots, sizeof(size_t));
		for (size_t i = 0; i < s->n; i++) {
			size_t j = (size_t)((uint64_t)s->v[i].key * 0x9e3779b97f4a7c15ULL) & (slots - 1);
			while (slot[j])
				j = (j + 1) & (slots - 1);
			slot[j] = i + 1;
		}
		free(s->slot);
		s->slot = slot;
		s->slots = slots;
	}
	size_t j = (size_t)((uint64_t)key * 0x9e3779b97f4a7c15ULL) & (s->slots - 1);
	for (; s->slot[j]; j = (j + 1) & (s->slots - 1))
		if (s->v[s->slot[j] - 1].key == key)
			return &s->v[s->slot[j] - 1];
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n] = (struct hm_holder){ key, stack_id, 0, 0, 0 };
	s->slot[j] = ++s->n;
	return &s->v[s->n - 1];
}

static int
by_keeps(const void *a, const void *b)
{
	const struct hm_holder *x = a, *y = b;

	if (x->keeps != y->keeps)
		return x->keeps > y->keeps ? -1 : 1;
	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

struct hm_holder *
hm_holders(struct hm *m, int64_t (*group)(void *, int64_t), void *arg, size_t *n)
{
	struct holder_set set = { 0 };
	struct blocker *b = NULL;
	size_t cap = 0;

	for (size_t hi = 0; hi < m->nheaps; hi++) {
		struct hm_heap *h = &m->heaps[hi];
		size_t nb = 0, first = SIZE_MAX;
		uint64_t at = h->start;

		if (!h->top || !h->untrimmable)
			continue;
		/* what stays occupied once the fastbins are consolidated (as
		 * hm_trim), in address order */
		for (long long g = hm_next(h, 0); g >= 0; g = hm_next(h, (size_t)g + 1)) {
			uint64_t addr = h->start + (uint64_t)g * HM_GRAIN;
			struct chunk_entry *c = chunkmap_slot(m->map, addr);
			if (c && c->addr == addr && c->cached == HM_FASTBIN)
				continue;
			if (nb == cap) {
				cap = cap ? cap * 2 : 1024;
				b = xrealloc(b, cap * sizeof(*b));
			}
			bool live = c && c->addr == addr && c->kind == HM_CHUNK && !c->cached;
			int64_t stack = live ? (int64_t)c->stack_id : 0;
			b[nb] = (struct blocker){
				.addr = addr,
				.end = hm_entry_end(m, h, (size_t)g),
				.gap = at,
				.key = !live ? INT64_MIN : group ? group(arg, stack) : stack,
				.stack_id = stack,
				.bytes = live ? c->chunk_bytes : 0,
			};
			if (first == SIZE_MAX && addr > at)
				first = nb ? nb - 1 : 0; /* from the one below the lowest hole */
			if (b[nb].end > at)
				at = b[nb].end;
			nb++;
		}
		if (first == SIZE_MAX)
			continue;
		/* a run of one group's chunks with only free space between them:
		 * freed, the free runs around them merge */
		for (size_t i = first; i < nb;) {
			size_t j = i;
			if (b[i].key == INT64_MIN) {
				i++;
				continue;
			}
			struct hm_holder *x = holder_of(&set, b[i].key, b[i].stack_id);
			uint64_t before = 0;
			for (; j < nb && b[j].key == b[i].key; j++) {
				x->chunks++;
				x->bytes += b[j].bytes;
				before += hm_hole_trim(h, b[j].gap, b[j].addr - b[j].gap);
			}
			uint64_t start = b[i].gap, after;
			if (j < nb) {
				before += hm_hole_trim(h, b[j].gap, b[j].addr - b[j].gap);
				after = hm_hole_trim(h, start, b[j].addr - start);
			} else {
				/* the top falls to the run's start */
				before += top_trim(h, b[j - 1].end);
				after = top_trim(h, start);
			}
			x->keeps += after > before ? after - before : 0;
			i = j;
		}
	}
	free(b);
	free(set.slot);
	if (set.n)
		qsort(set.v, set.n, sizeof(*set.v), by_keeps);
	*n = set.n;
	return set.v;
}

struct chunk_entry *
hm_top_pin(struct hm *m)
{
	struct hm_heap *best = NULL;

	/* of the heap with the most untrimmable bytes */
	for (size_t i = 0; i < m->nheaps; i++)
		if (m->heaps[i].top && m->heaps[i].untrimmable &&
		    (!best || m->heaps[i].untrimmable > best->untrimmable))
			best = &m->heaps[i];
	if (!best)
		return NULL;
	return chunkmap_slot(m->map, best->start + (uint64_t)(best->top - 1) * HM_GRAIN);
}
