/* SPDX-License-Identifier: MIT */
/*
 * test-addrset - the snapshots' set of chunk addresses against a plain
 * model (a byte per 16-byte address): random adds, removes and look-ups
 * in regions laid out like a brk heap, a thread arena's heap and mmap
 * chunks far apart (enough pages to grow the page table many times);
 * emptying the set, keeping its pages or not; and every address checked
 * after each phase, so a bit set or lost anywhere fails.
 *
 * Usage: test-addrset [seed] [operations]
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "../progs/rng.h"
#include "addrset.h"

#define REGIONS 3
#define REGION_SLOTS (1u << 20) /* 16 MiB of address space each, 256 pages */

static const uint64_t region_base[REGIONS] = {
	0x555555560000ULL, /* brk heap (not page-table aligned: 0x...60000) */
	0x7f0000000000ULL, /* a thread arena's heap */
	0x7ff000000000ULL, /* mmap chunks */
};

static uint8_t *model[REGIONS];

static uint64_t
addr_of(unsigned r, uint32_t slot)
{
	return region_base[r] + (uint64_t)slot * 16;
}

/* Every address of every region against the model; the first few
 * differences are reported. */
static void
check_all(struct addrset *s, const char *when)
{
	unsigned bad = 0;

	for (unsigned r = 0; r < REGIONS; r++)
		for (uint32_t i = 0; i < REGION_SLOTS; i++)
			if (as_has(s, addr_of(r, i)) != (model[r][i] != 0) && bad++ < 5)
				CHECK(0, "%s: 0x%llx member %d, model %d", when,
				      (unsigned long long)addr_of(r, i), !model[r][i], model[r][i]);
	CHECK(bad == 0, "%s: %u addresses differ from the model", when, bad);
}

static void
run(struct addrset *s, uint64_t *rng, unsigned long ops)
{
	for (unsigned long n = 0; n < ops; n++) {
		uint64_t x = rng_next(rng);
		unsigned r = (unsigned)(x % REGIONS);
		/* mmap chunks far apart, heap chunks side by side */
		uint32_t slot = r == 2 ? (uint32_t)(x >> 8) % 4096 * 256 : (uint32_t)(x >> 8) % REGION_SLOTS;
		uint64_t a = addr_of(r, slot);
		switch ((x >> 40) % 4) {
		case 0:
		case 1: {
			bool added = as_add(s, a);
			if (added != !model[r][slot])
				CHECK(0, "add 0x%llx said %d, model %d", (unsigned long long)a, added,
				      model[r][slot]);
			model[r][slot] = 1;
			break;
		}
		case 2:
			as_remove(s, a);
			model[r][slot] = 0;
			break;
		default:
			if (as_has(s, a) != (model[r][slot] != 0))
				CHECK(0, "has 0x%llx, model %d", (unsigned long long)a, model[r][slot]);
		}
	}
}

int
main(int argc, char **argv)
{
	uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
	unsigned long ops = argc > 2 ? strtoul(argv[2], NULL, 0) : 200000;
	uint64_t rng = mix(seed) | 1;
	struct addrset *s = as_new();

	for (unsigned r = 0; r < REGIONS; r++)
		model[r] = calloc(REGION_SLOTS, 1);

	/* a set that never held anything */
	CHECK(!as_has(s, addr_of(0, 7)), "an empty set has nothing");
	as_remove(s, addr_of(1, 9));
	CHECK(as_pages(s) == 0, "a look-up or removal adds no page");

	run(s, &rng, ops);
	check_all(s, "after random operations");
	size_t pages = as_pages(s);
	CHECK(pages > 256, "the operations spread over %zu pages (want more than 256)", pages);

	/* emptied, its pages kept: nothing is a member, and it works on */
	as_clear(s, pages);
	for (unsigned r = 0; r < REGIONS; r++)
		memset(model[r], 0, REGION_SLOTS);
	CHECK(as_pages(s) == pages, "emptied keeping its pages: %zu, was %zu", as_pages(s), pages);
	check_all(s, "emptied, pages kept");
	run(s, &rng, ops / 2);
	check_all(s, "random operations after emptying");

	/* emptied past what it may keep: its pages go */
	as_clear(s, 16);
	for (unsigned r = 0; r < REGIONS; r++)
		memset(model[r], 0, REGION_SLOTS);
	CHECK(as_pages(s) == 0, "emptied keeping 16 of %zu pages: %zu left", pages, as_pages(s));
	check_all(s, "emptied, pages freed");
	run(s, &rng, ops / 2);
	check_all(s, "random operations after freeing");

	/* neighbours: the 16-byte granules on both sides of a page's edge */
	as_clear(s, 0);
	uint64_t edge = 0x7f0000010000ULL;
	CHECK(as_add(s, edge - 16) && as_add(s, edge), "two neighbours across a page edge are added");
	CHECK(!as_add(s, edge) && !as_add(s, edge - 16), "and are members once");
	as_remove(s, edge);
	CHECK(as_has(s, edge - 16) && !as_has(s, edge) && !as_has(s, edge + 16),
	      "removing one leaves the other");

	as_free(s);
	for (unsigned r = 0; r < REGIONS; r++)
		free(model[r]);
	return harness_exit();
}
