/* SPDX-License-Identifier: MIT */
/* addrset.c - a set of chunk addresses, one bit each (see addrset.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "addrset.h"
#include "util.h"

#define PAGE_SHIFT 16 /* 64 KiB of address space a page */
#define GRAIN_SHIFT 4 /* a bit per 16 bytes */
#define WORDS (1u << (PAGE_SHIFT - GRAIN_SHIFT - 6))

struct page {
	uint64_t key; /* address >> PAGE_SHIFT */
	uint64_t bit[WORDS];
};

struct addrset {
	struct page **slot; /* open addressing by key; NULL: empty */
	size_t mask, npages;
	struct page *last;  /* the page of the last look-up */
};

struct addrset *
as_new(void)
{
	struct addrset *s = xcalloc(1, sizeof(*s));

	s->mask = 63;
	s->slot = xcalloc(s->mask + 1, sizeof(*s->slot));
	return s;
}

void
as_free(struct addrset *s)
{
	if (!s)
		return;
	for (size_t i = 0; i <= s->mask; i++)
		free(s->slot[i]);
	free(s->slot);
	free(s);
}

static size_t
home(const struct addrset *s, uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & s->mask;
}

static struct page *
find(struct addrset *s, uint64_t key)
{
	if (s->last && s->last->key == key)
		return s->last;
	for (size_t i = home(s, key);; i = (i + 1) & s->mask) {
		struct page *p = s->slot[i];
		if (!p)
			return NULL;
		if (p->key == key)
			return s->last = p;
	}
}

static void
insert(struct addrset *s, struct page *p)
{
	size_t i = home(s, p->key);

	while (s->slot[i])
		i = (i + 1) & s->mask;
	s->slot[i] = p;
}

static struct page *
get(struct addrset *s, uint64_t key)
{
	struct page *p = find(s, key);

	if (p)
		return p;
	if (2 * (s->npages + 1) > s->mask + 1) {
		struct page **old = s->slot;
		size_t n = s->mask + 1;
		s->mask = 2 * n - 1;
		s->slot = xcalloc(s->mask + 1, sizeof(*s->slot));
		for (size_t i = 0; i < n; i++)
			if (old[i])
				insert(s, old[i]);
		free(old);
	}
	p = xcalloc(1, sizeof(*p));
	p->key = key;
	insert(s, p);
	s->npages++;
	return s->last = p;
}

bool
as_add(struct addrset *s, uint64_t addr)
{
	struct page *p = get(s, addr >> PAGE_SHIFT);
	unsigned g = (unsigned)(addr >> GRAIN_SHIFT) & (WORDS * 64 - 1);
	uint64_t b = 1ULL << (g & 63);

	if (p->bit[g >> 6] & b)
		return false;
	p->bit[g >> 6] |= b;
	return true;
}

bool
as_has(struct addrset *s, uint64_t addr)
{
	struct page *p = find(s, addr >> PAGE_SHIFT);
	unsigned g = (unsigned)(addr >> GRAIN_SHIFT) & (WORDS * 64 - 1);

	return p && (p->bit[g >> 6] >> (g & 63) & 1);
}

void
as_remove(struct addrset *s, uint64_t addr)
{
	struct page *p = find(s, addr >> PAGE_SHIFT);
	unsigned g = (unsigned)(addr >> GRAIN_SHIFT) & (WORDS * 64 - 1);

	if (p)
		p->bit[g >> 6] &= ~(1ULL << (g & 63));
}

void
as_clear(struct addrset *s, size_t keep)
{
	s->last = NULL;
	if (s->npages <= keep) {
		for (size_t i = 0; i <= s->mask; i++)
			if (s->slot[i])
				memset(s->slot[i]->bit, 0, sizeof(s->slot[i]->bit));
		return;
	}
	for (size_t i = 0; i <= s->mask; i++)
		free(s->slot[i]);
	free(s->slot);
	s->mask = 63;
	s->slot = xcalloc(s->mask + 1, sizeof(*s->slot));
	s->npages = 0;
}

size_t
as_pages(const struct addrset *s)
{
	return s->npages;
}
