/* SPDX-License-Identifier: MIT */
/*
 * test-chunkmap - the collector's chunks-by-address index against a plain
 * model: random adds and removes at addresses laid out like a heap (chunks
 * of 32 bytes and up, side by side), like mmap chunks (far apart) and like
 * thread arenas, with the model's answer for every lookup; iteration, in
 * no order and in address order.
 *
 * Usage: test-chunkmap [seed] [operations]
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "../progs/rng.h"
#include "chunkmap.h"

/* The model: a slot per possible chunk address (16-byte steps) in each of
 * the regions, holding the model's idea of the entry. */
#define REGIONS 3
#define REGION_SLOTS (1u << 20) /* 16 MiB of address space each */

static const uint64_t region_base[REGIONS] = {
	0x555555560000ULL, /* brk heap */
	0x7f0000000000ULL, /* a thread arena's heap */
	0x7ff000000000ULL, /* mmap chunks */
};

struct model {
	struct chunk_entry *e; /* NULL: no chunk starts here */
	uint64_t size;
};

static struct model *model[REGIONS];

static uint64_t
addr_of(unsigned r, uint32_t slot)
{
	return region_base[r] + (uint64_t)slot * 16;
}

static void
basics(void)
{
	struct chunkmap *m = chunkmap_new();
	struct chunk_entry *a, *b;

	CHECK(chunkmap_slot(m, 0x1000) == NULL, "empty map finds nothing");
	a = chunkmap_add(m, 0x1010);
	CHECK(a && a->addr == 0x1010 && a->size == 0 && !a->cached, "add gives a zeroed entry");
	CHECK(chunkmap_slot(m, 0x1010) == a, "found at its address");
	CHECK(chunkmap_slot(m, 0x1000) == a, "and by an address in the same 32-byte slot");
	CHECK(chunkmap_slot(m, 0x1020) == NULL, "not by the next slot");
	b = chunkmap_add(m, 0x1030);
	CHECK(chunkmap_slot(m, 0x1030) == b && chunkmap_slot(m, 0x1010) == a,
	      "neighbours 32 bytes apart are distinct");
	CHECK(chunkmap_at(m, chunkmap_index(m, b)) == b, "index and back");
	CHECK(chunkmap_at(m, 0) == NULL, "index 0 is none");
	CHECK(chunkmap_count(m) == 2, "count 2");
	chunkmap_remove(m, a);
	CHECK(chunkmap_slot(m, 0x1010) == NULL && chunkmap_count(m) == 1, "removed");
	struct chunk_entry *c = chunkmap_add(m, 0x7fff00000010ULL);
	CHECK(c == a, "the last entry freed is reused first");
	CHECK(c->addr == 0x7fff00000010ULL && c->size == 0, "reused entry is zeroed");
	/* the prefetch hints: anywhere (a page the map has or not, a slot
	 * with an entry or none), and nothing changes */
	for (uint64_t addr = 0; addr < 0x3000; addr += 16) {
		chunkmap_prefetch_slot(m, addr);
		chunkmap_prefetch_entry(m, addr);
	}
	chunkmap_prefetch_slot(m, 0x7fff00000010ULL);
	chunkmap_prefetch_entry(m, 0x7fff00000010ULL);
	chunkmap_prefetch_entry(m, UINT64_MAX);
	CHECK(chunkmap_slot(m, 0x1030) == b && chunkmap_slot(m, 0x7fff00000010ULL) == c &&
		      chunkmap_slot(m, 0x1010) == NULL && chunkmap_count(m) == 2,
	      "prefetching changes nothing");
	chunkmap_free(m);
}

static void
random_ops(uint64_t seed, unsigned ops)
{
	struct chunkmap *m = chunkmap_new();
	size_t live = 0, peak = 0;
	unsigned bad_find = 0, bad_empty = 0;

	for (unsigned r = 0; r < REGIONS; r++)
		model[r] = calloc(REGION_SLOTS, sizeof(struct model));
	for (unsigned i = 0; i < ops; i++) {
		uint64_t x = rng_next(&seed);
		unsigned r = (unsigned)(x % 10 < 7 ? 0 : x % 10 < 9 ? 1 : 2);
		/* heaps are dense near their start; mmap chunks spread out */
		uint32_t span = r == 2 ? REGION_SLOTS : REGION_SLOTS / 16;
		/* 32-byte aligned: chunks at least 32 bytes apart (they may
		 * overlap here, which the map does not know or care about) */
		uint32_t slot = (uint32_t)((x >> 8) % span) & ~1u;
		uint64_t size = r == 2 ? 4096 * (1 + (x >> 40) % 8) : 32 + 16 * ((x >> 40) % 12);
		struct model *mo = &model[r][slot];

		if (mo->e) {
			/* remove it; the entry must be the one the map gives */
			struct chunk_entry *e = chunkmap_slot(m, addr_of(r, slot));
			bad_find += e != mo->e || e->addr != addr_of(r, slot) ||
				    e->size != mo->size;
			chunkmap_remove(m, mo->e);
			mo->e = NULL;
			live--;
		} else {
			bad_empty += chunkmap_slot(m, addr_of(r, slot)) != NULL;
			struct chunk_entry *e = chunkmap_add(m, addr_of(r, slot));
			e->size = size;
			e->alloc_ns = (int64_t)i;
			mo->e = e;
			mo->size = size;
			if (++live > peak)
				peak = live;
		}
	}
	CHECK(bad_find == 0, "every lookup of a chunk finds its own entry (%u wrong)", bad_find);
	CHECK(bad_empty == 0, "no entry where the model has none (%u wrong)", bad_empty);
	CHECK(chunkmap_count(m) == live, "count %zu is the model's %zu", chunkmap_count(m), live);
	CHECK(peak > 65536, "the test grew past one block of entries (peak %zu)", peak);

	/* iteration visits each entry once, and only entries in use */
	uint32_t cursor = 0;
	size_t seen = 0;
	unsigned strays = 0;
	for (struct chunk_entry *e; (e = chunkmap_next(m, &cursor));) {
		seen++;
		unsigned r = e->addr >= region_base[2] ? 2 : e->addr >= region_base[1] ? 1 : 0;
		uint32_t slot = (uint32_t)((e->addr - region_base[r]) / 16);
		strays += model[r][slot].e != e;
	}
	CHECK(seen == live && strays == 0, "iteration saw %zu of %zu entries, %u strays", seen,
	      live, strays);

	/* in address order: the model's entries, region by region, slot by
	 * slot, each once */
	struct chunk_entry **v = malloc((live ? live : 1) * sizeof(*v));
	size_t n = chunkmap_by_addr(m, v), k = 0;
	unsigned misplaced = 0;
	for (unsigned r = 0; r < REGIONS; r++)
		for (uint32_t s = 0; s < REGION_SLOTS; s++)
			if (model[r][s].e)
				misplaced += k >= n || v[k++] != model[r][s].e;
	CHECK(n == live && k == n && misplaced == 0,
	      "in address order: %zu of %zu entries, %u out of place", n, live, misplaced);
	free(v);

	/* entries keep their contents while others come and go */
	unsigned changed = 0;
	for (unsigned r = 0; r < REGIONS; r++)
		for (uint32_t s = 0; s < REGION_SLOTS; s++)
			if (model[r][s].e)
				changed += model[r][s].e->size != model[r][s].size;
	CHECK(changed == 0, "no entry changed under another's add or remove (%u)", changed);
	chunkmap_free(m);
	for (unsigned r = 0; r < REGIONS; r++)
		free(model[r]);
}

int
main(int argc, char **argv)
{
	uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
	unsigned ops = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 2000000;

	basics();
	random_ops(seed * 0x9e3779b97f4a7c15ULL + 1, ops);
	return harness_exit();
}
