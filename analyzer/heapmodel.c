/* SPDX-License-Identifier: MIT */
/* heapmodel.c - occupied bytes of a process's heaps (see heapmodel.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "heapmodel.h"
#include "util.h"

/* ---- the bitmap: l0 a bit per granule, l1 a bit per non-zero l0 word,
 * l2 a bit per non-zero l1 word ---- */

static void
occ_need(struct hm_occ *o, size_t granules)
{
	size_t words = (granules + 63) / 64;

	if (words <= o->words)
		return;
	size_t n = o->words ? o->words : 64;
	while (n < words)
		n *= 2;
	size_t n1 = (n + 63) / 64, n2 = (n1 + 63) / 64;
	size_t o1 = (o->words + 63) / 64, o2 = (o1 + 63) / 64;
	o->l0 = xrealloc(o->l0, n * sizeof(uint64_t));
	memset(o->l0 + o->words, 0, (n - o->words) * sizeof(uint64_t));
	o->l1 = xrealloc(o->l1, n1 * sizeof(uint64_t));
	memset(o->l1 + o1, 0, (n1 - o1) * sizeof(uint64_t));
	o->l2 = xrealloc(o->l2, n2 * sizeof(uint64_t));
	memset(o->l2 + o2, 0, (n2 - o2) * sizeof(uint64_t));
	o->words = n;
}

static void
occ_set(struct hm_occ *o, size_t g)
{
	occ_need(o, g + 1);
	o->l0[g / 64] |= 1ULL << (g % 64);
	o->l1[g / 4096] |= 1ULL << (g / 64 % 64);
	o->l2[g / 262144] |= 1ULL << (g / 4096 % 64);
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
		if (w % 64 == 0 && o->l1[w / 64] == 0) {
			w += 63; /* 64 empty words */
			continue;
		}
		m = o->l0[w];
	}
	return (long long)(w * 64 + (size_t)__builtin_ctzll(m));
}

/* ---- heaps ---- */

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
		free(m->heaps[i].occ.l0);
		free(m->heaps[i].occ.l1);
		free(m->heaps[i].occ.l2);
	}
	free(m->heaps);
	m->heaps = NULL;
	m->nheaps = 0;
}

static struct hm_heap *add_heap(struct hm *m, uint64_t start, uint64_t end, uint8_t kind);

static void
occ_copy(struct hm_occ *d, const struct hm_occ *o)
{
	size_t n1 = (o->words + 63) / 64, n2 = (n1 + 63) / 64;

	*d = *o;
	if (!o->words)
		return;
	d->l0 = xmalloc(o->words * sizeof(uint64_t));
	d->l1 = xmalloc(n1 * sizeof(uint64_t));
	d->l2 = xmalloc(n2 * sizeof(uint64_t));
	memcpy(d->l0, o->l0, o->words * sizeof(uint64_t));
	memcpy(d->l1, o->l1, n1 * sizeof(uint64_t));
	memcpy(d->l2, o->l2, n2 * sizeof(uint64_t));
}

void
hm_clone(struct hm *d, const struct hm *m, struct chunkmap *map)
{
	*d = *m;
	d->map = map;
	d->heaps = xmalloc((m->nheaps ? m->nheaps : 1) * sizeof(*d->heaps));
	for (size_t i = 0; i < m->nheaps; i++) {
		d->heaps[i] = m->heaps[i];
		occ_copy(&d->heaps[i].occ, &m->heaps[i].occ);
	}
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
	 * (lost events); the closest heap below takes it */
	for (size_t i = 0; i < m->nheaps; i++)
		if (addr >= m->heaps[i].start && (!best || m->heaps[i].start > best->start))
			best = &m->heaps[i];
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

	m->untrim += u - h->untrim;
	h->untrim = u;
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

	if (c->kind == HM_RANGE_OWN) {
		m->own += sign > 0 ? b : -b;
	} else if (c->cached) {
		m->cached += sign > 0 ? b : -b;
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
	occ_set(&h->occ, g);
	h->occupied += c->chunk_bytes;
	if (g + 1 >= h->top) {
		h->top = g + 1;
		h->top_end = c->addr + c->chunk_bytes;
	}
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
hm_to_cached(struct hm *m, struct chunk_entry *c)
{
	if (c->cached || c->kind == HM_RANGE_OWN)
		return;
	count(m, c, -1);
	c->cached = true;
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
hm_start(struct hm *m, int64_t ns)
{
	m->worst_ns = m->peak_extent_ns = ns;
}

void
hm_track(struct hm *m, int64_t ns)
{
	if (m->untrim > m->worst_untrim) {
		m->worst_untrim = m->untrim;
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
	uint64_t held = m->extent + m->mmap, used = m->live + m->mmap;

	return held > used ? held - used : 0;
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
hm_trim_range(uint64_t addr, uint64_t bytes)
{
	/* glibc's mtrim: a free chunk keeps its header and list pointers
	 * (sizeof (struct malloc_chunk), 48 bytes on 64-bit) */
	const uint64_t head = 48, page = 4096;

	if (bytes <= page - 1 + head)
		return 0;
	uint64_t aligned = (addr + head + page - 1) & ~(page - 1);
	uint64_t rest = addr + bytes - aligned;
	return rest > page - 1 ? rest & ~(page - 1) : 0;
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

static void
add_trim(void *arg, uint64_t addr, uint64_t bytes)
{
	*(uint64_t *)arg += hm_trim_range(addr, bytes);
}

uint64_t
hm_trim_reclaimable(struct hm *m)
{
	uint64_t total = 0;

	for (size_t i = 0; i < m->nheaps; i++)
		hm_holes(m, &m->heaps[i], add_trim, &total);
	return total;
}

struct chunk_entry *
hm_top_pin(struct hm *m)
{
	struct hm_heap *best = NULL;

	/* of the heap with the most untrimmable bytes */
	for (size_t i = 0; i < m->nheaps; i++)
		if (m->heaps[i].top && m->heaps[i].untrim &&
		    (!best || m->heaps[i].untrim > best->untrim))
			best = &m->heaps[i];
	if (!best)
		return NULL;
	return chunkmap_slot(m->map, best->start + (uint64_t)(best->top - 1) * HM_GRAIN);
}
