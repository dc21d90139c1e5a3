/* SPDX-License-Identifier: MIT */
/* chunkmap.c - chunks by address (see chunkmap.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "chunkmap.h"
#include "util.h"

#define PAGE_SHIFT 16                      /* 64 KiB of address space per table */
#define SLOT_SHIFT 5                       /* one slot per 32 bytes */
#define SLOTS (1u << (PAGE_SHIFT - SLOT_SHIFT))
#define BLOCK_SHIFT 16                     /* entries are allocated 65536 at a time */
#define BLOCK (1u << BLOCK_SHIFT)

struct page {
	uint64_t key;          /* address >> PAGE_SHIFT */
	uint32_t slot[SLOTS];  /* entry index, 0: empty */
};

struct chunkmap {
	struct page **pages;   /* open addressing by key; NULL: empty */
	size_t page_mask, npages;
	struct page *last;     /* the page of the last lookup */
	struct chunk_entry **blocks;
	size_t nblocks;
	uint32_t used;         /* entries handed out so far, free or not */
	uint32_t free_head;    /* the entry freed last, 0: none; each free
				* entry's stack_id is the index of the one
				* freed before it (a list in the entries, not
				* an array beside them: perl's 1.4 M frees made
				* that 8 MiB) */
	size_t count;
};

struct chunkmap *
chunkmap_new(void)
{
	struct chunkmap *m = xcalloc(1, sizeof(*m));

	m->page_mask = 255;
	m->pages = xcalloc(m->page_mask + 1, sizeof(*m->pages));
	return m;
}

void
chunkmap_free(struct chunkmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i <= m->page_mask; i++)
		free(m->pages[i]);
	free(m->pages);
	for (size_t i = 0; i < m->nblocks; i++)
		free(m->blocks[i]);
	free(m->blocks);
	free(m);
}

static size_t
page_home(const struct chunkmap *m, uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & m->page_mask;
}

static struct page *
find_page(struct chunkmap *m, uint64_t key)
{
	if (m->last && m->last->key == key)
		return m->last;
	for (size_t i = page_home(m, key);; i = (i + 1) & m->page_mask) {
		struct page *p = m->pages[i];
		if (p == NULL)
			return NULL;
		if (p->key == key)
			return m->last = p;
	}
}

static void
insert_page(struct chunkmap *m, struct page *p)
{
	size_t i = page_home(m, p->key);

	while (m->pages[i])
		i = (i + 1) & m->page_mask;
	m->pages[i] = p;
}

static struct page *
get_page(struct chunkmap *m, uint64_t key)
{
	struct page *p = find_page(m, key);

	if (p)
		return p;
	if ((m->npages + 1) * 2 > m->page_mask + 1) {
		struct page **old = m->pages;
		size_t n = m->page_mask + 1;

		m->page_mask = n * 2 - 1;
		m->pages = xcalloc(n * 2, sizeof(*m->pages));
		for (size_t i = 0; i < n; i++)
			if (old[i])
				insert_page(m, old[i]);
		free(old);
	}
	p = xcalloc(1, sizeof(*p));
	p->key = key;
	insert_page(m, p);
	m->npages++;
	return m->last = p;
}

static uint32_t *
slot_of(struct page *p, uint64_t addr)
{
	return &p->slot[(addr & ((1u << PAGE_SHIFT) - 1)) >> SLOT_SHIFT];
}

struct chunk_entry *
chunkmap_at(struct chunkmap *m, uint32_t index)
{
	if (index == 0 || index > m->used)
		return NULL;
	index--;
	return &m->blocks[index >> BLOCK_SHIFT][index & (BLOCK - 1)];
}

uint32_t
chunkmap_index(const struct chunkmap *m, const struct chunk_entry *e)
{
	for (size_t b = 0; b < m->nblocks; b++)
		if (e >= m->blocks[b] && e < m->blocks[b] + BLOCK)
			return (uint32_t)(b * BLOCK + (size_t)(e - m->blocks[b])) + 1;
	return 0;
}

struct chunk_entry *
chunkmap_slot(struct chunkmap *m, uint64_t addr)
{
	struct page *p = find_page(m, addr >> PAGE_SHIFT);

	return p ? chunkmap_at(m, *slot_of(p, addr)) : NULL;
}

/* find_page without remembering it. */
static const struct page *
peek_page(const struct chunkmap *m, uint64_t key)
{
	for (size_t i = page_home(m, key);; i = (i + 1) & m->page_mask) {
		const struct page *p = m->pages[i];
		if (p == NULL || p->key == key)
			return p;
	}
}

void
chunkmap_prefetch_slot(const struct chunkmap *m, uint64_t addr)
{
	const struct page *p = peek_page(m, addr >> PAGE_SHIFT);

	if (p)
		__builtin_prefetch(&p->slot[(addr & ((1u << PAGE_SHIFT) - 1)) >> SLOT_SHIFT]);
}

void
chunkmap_prefetch_entry(const struct chunkmap *m, uint64_t addr)
{
	const struct page *p = peek_page(m, addr >> PAGE_SHIFT);
	uint32_t index = p ? p->slot[(addr & ((1u << PAGE_SHIFT) - 1)) >> SLOT_SHIFT] : 0;

	if (index != 0 && index <= m->used) {
		index--;
		__builtin_prefetch(&m->blocks[index >> BLOCK_SHIFT][index & (BLOCK - 1)], 1);
	}
}

struct chunk_entry *
chunkmap_add(struct chunkmap *m, uint64_t addr)
{
	uint32_t *slot = slot_of(get_page(m, addr >> PAGE_SHIFT), addr);
	uint32_t index;

	if (m->free_head) {
		index = m->free_head;
		m->free_head = chunkmap_at(m, index)->stack_id;
		/* the next add's entry, freed who knows how long ago: on its
		 * way while this one is filled in */
		if (m->free_head) {
			uint32_t next = m->free_head - 1;
			__builtin_prefetch(&m->blocks[next >> BLOCK_SHIFT][next & (BLOCK - 1)], 1);
		}
	} else {
		if (m->used % BLOCK == 0) {
			m->blocks = xrealloc(m->blocks, (m->nblocks + 1) * sizeof(*m->blocks));
			/* entries on cache-line boundaries: one line each */
			m->blocks[m->nblocks++] = xaligned(64, BLOCK * sizeof(struct chunk_entry));
		}
		index = ++m->used;
	}
	struct chunk_entry *e = &m->blocks[(index - 1) >> BLOCK_SHIFT][(index - 1) & (BLOCK - 1)];
	*e = (struct chunk_entry){ 0 };
	e->addr = addr;
	*slot = index;
	m->count++;
	return e;
}

void
chunkmap_remove(struct chunkmap *m, struct chunk_entry *e)
{
	struct page *p = find_page(m, e->addr >> PAGE_SHIFT);
	uint32_t *slot = p ? slot_of(p, e->addr) : NULL;
	uint32_t index;

	if (slot && chunkmap_at(m, *slot) == e) {
		index = *slot;
		*slot = 0;
	} else {
		index = chunkmap_index(m, e);
	}
	e->addr = 0;
	e->stack_id = m->free_head;
	m->free_head = index;
	m->count--;
}

struct chunkmap *
chunkmap_clone(const struct chunkmap *m)
{
	struct chunkmap *c = xcalloc(1, sizeof(*c));

	*c = *m;
	c->last = NULL;
	c->pages = xcalloc(m->page_mask + 1, sizeof(*c->pages));
	for (size_t i = 0; i <= m->page_mask; i++)
		if (m->pages[i]) {
			c->pages[i] = xmalloc(sizeof(struct page));
			memcpy(c->pages[i], m->pages[i], sizeof(struct page));
		}
	c->blocks = xmalloc((m->nblocks ? m->nblocks : 1) * sizeof(*c->blocks));
	for (size_t b = 0; b < m->nblocks; b++) {
		c->blocks[b] = xaligned(64, BLOCK * sizeof(struct chunk_entry));
		memcpy(c->blocks[b], m->blocks[b], BLOCK * sizeof(struct chunk_entry));
	}
	return c;
}

size_t
chunkmap_count(const struct chunkmap *m)
{
	return m->count;
}

static int
by_key(const void *a, const void *b)
{
	uint64_t x = (*(struct page *const *)a)->key, y = (*(struct page *const *)b)->key;

	return x < y ? -1 : x > y;
}

/* An entry is in the slot of its own address only, so the slots of the
 * pages in key order are the entries in address order: a pass over the
 * slots, where sorting the entries read one at random per comparison. */
size_t
chunkmap_by_addr(const struct chunkmap *m, struct chunk_entry **v)
{
	struct page **pages = xmalloc((m->npages ? m->npages : 1) * sizeof(*pages));
	size_t np = 0, n = 0;

	for (size_t i = 0; i <= m->page_mask; i++)
		if (m->pages[i])
			pages[np++] = m->pages[i];
	qsort(pages, np, sizeof(*pages), by_key);
	for (size_t i = 0; i < np; i++)
		for (unsigned s = 0; s < SLOTS; s++)
			if (pages[i]->slot[s] && n < m->count) {
				uint32_t index = pages[i]->slot[s] - 1;
				v[n++] = &m->blocks[index >> BLOCK_SHIFT][index & (BLOCK - 1)];
			}
	free(pages);
	return n;
}

struct chunk_entry *
chunkmap_next(struct chunkmap *m, uint32_t *cursor)
{
	while (*cursor < m->used) {
		struct chunk_entry *e = chunkmap_at(m, ++*cursor);
		if (e->addr)
			return e;
	}
	return NULL;
}
