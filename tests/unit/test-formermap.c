/* SPDX-License-Identifier: MIT */
/*
 * test-formermap - analyzer/formermap.c against brute force: a seeded
 * random mix of writes, clears and saves over a few 64 KiB pages (ranges
 * across their boundaries), after each of which every granule's holder,
 * read back with fm_each, must equal an array of one holder per granule;
 * so must a clone's, and an undo record's (fm_save) must hold the first
 * contents it saw, whether each new record is a new map or an old one
 * emptied (fm_empty, its pages kept or not). A read of the whole map
 * must give as many pieces as fm_count says (the budget of an undo
 * record counts them).
 *
 * Usage: test-formermap SEED STEPS
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formermap.h"

#define BASE 0x7f0000ff0000ULL /* 64 KiB before a 64 KiB boundary */
#define GRANULES (5 * 4096)    /* five pages' worth */

struct holder {
	uint32_t stack;
	int64_t ns;
	int set;
};

static uint64_t rng_state;

static uint64_t
rng(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

struct readback {
	struct holder *g;
	int bad;
	uint64_t last_end;
	size_t pieces;
};

static void
read_piece(void *arg, const struct fm_piece *p)
{
	struct readback *r = arg;

	if (p->addr < BASE || p->addr + p->bytes > BASE + GRANULES * 16ULL || p->bytes == 0 ||
	    (p->addr & 15) || (p->bytes & 15) || p->addr < r->last_end)
		r->bad = 1;
	r->last_end = p->addr + p->bytes;
	r->pieces++;
	for (uint64_t a = p->addr; a < p->addr + p->bytes && !r->bad; a += 16) {
		struct holder *h = &r->g[(a - BASE) / 16];
		if (h->set)
			r->bad = 1; /* two pieces over one granule */
		*h = (struct holder){ p->stack_id, p->vacated_ns, 1 };
	}
}

/* The map's contents as one holder per granule, or -1 if malformed; a
 * read of the whole map must find as many pieces as fm_count says. */
static int
read_all(const struct formermap *m, struct holder *g, uint64_t from, uint64_t to)
{
	struct readback r = { g, 0, 0, 0 };

	memset(g, 0, GRANULES * sizeof(*g));
	fm_each(m, BASE + from * 16, (to - from) * 16, read_piece, &r);
	if (from == 0 && to == GRANULES && r.pieces != fm_count(m))
		r.bad = 1;
	return r.bad ? -1 : 0;
}

static int
same(const struct holder *a, const struct holder *b, uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i < to; i++)
		if (a[i].set != b[i].set ||
		    (a[i].set && (a[i].stack != b[i].stack || a[i].ns != b[i].ns)))
			return 0;
	return 1;
}

int
main(int argc, char **argv)
{
	unsigned long seed = argc > 1 ? strtoul(argv[1], NULL, 10) : 1;
	long steps = argc > 2 ? strtol(argv[2], NULL, 10) : 20000;
	struct holder *want = calloc(GRANULES, sizeof(*want));
	struct holder *saved = calloc(GRANULES, sizeof(*saved));
	struct holder *got = calloc(GRANULES, sizeof(*got));
	struct formermap *m = fm_new(), *undo = fm_new();
	size_t max_count = 0;

	rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
	for (long step = 0; step < steps; step++) {
		unsigned op = (unsigned)(rng() % 16);
		/* mostly chunk-sized ranges, sometimes pages long */
		uint64_t len = rng() % 8 == 0 ? 1 + rng() % 9000 : 2 + rng() % 64;
		uint64_t at = rng() % GRANULES;
		if (at + len > GRANULES)
			len = GRANULES - at;
		if (op < 10) {
			uint32_t stack = (uint32_t)(rng() % 50);
			int64_t ns = step + 1;
			fm_save(undo, m, BASE + at * 16, len * 16);
			for (uint64_t i = at; i < at + len; i++)
				if (!saved[i].set)
					saved[i] = want[i].set ? want[i]
							       : (struct holder){ FM_NONE, 0, 1 };
			fm_set(m, BASE + at * 16, len * 16, stack, ns);
			for (uint64_t i = at; i < at + len; i++)
				want[i] = (struct holder){ stack, ns, 1 };
		} else if (op < 12) {
			fm_clear(m, BASE + at * 16, len * 16);
			for (uint64_t i = at; i < at + len; i++)
				want[i].set = 0;
		} else if (op == 12) {
			/* a new undo record: a new map, or the old one emptied
			 * keeping its pages, or too many of them to keep */
			unsigned how = (unsigned)(rng() % 3);
			if (how == 0) {
				fm_free(undo);
				undo = fm_new();
			} else {
				fm_empty(undo, how == 1 ? 64 : 2);
			}
			memset(saved, 0, GRANULES * sizeof(*saved));
		} else if (op == 13) {
			/* a large clear, as when the heap shrinks */
			uint64_t from = rng() % GRANULES;
			fm_clear(m, BASE + from * 16, (GRANULES - from) * 16 + (1ULL << 30));
			for (uint64_t i = from; i < GRANULES; i++)
				want[i].set = 0;
		}
		if (fm_count(m) > max_count)
			max_count = fm_count(m);
		uint64_t from = rng() % GRANULES, to = from + rng() % (GRANULES - from) + 1;
		if (step % 97 == 0) {
			from = 0;
			to = GRANULES;
		}
		if (read_all(m, got, from, to) != 0 || !same(got, want, from, to)) {
			fprintf(stderr, "seed %lu step %ld: the map differs from brute force in "
					"granules %llu..%llu\n",
				seed, step, (unsigned long long)from, (unsigned long long)to);
			return 1;
		}
		if (read_all(undo, got, from, to) != 0 || !same(got, saved, from, to)) {
			fprintf(stderr, "seed %lu step %ld: the undo record differs from the first "
					"contents it saw\n",
				seed, step);
			return 1;
		}
		if (step % 1000 == 999) {
			struct formermap *c = fm_clone(m);
			fm_free(m);
			m = c;
		}
	}
	if (read_all(m, got, 0, GRANULES) != 0 || !same(got, want, 0, GRANULES)) {
		fprintf(stderr, "seed %lu: the final map differs\n", seed);
		return 1;
	}
	printf("%ld steps, at most %zu pieces: the map and its undo record agree with brute "
	       "force\n",
	       steps, max_count);
	fm_free(m);
	fm_free(undo);
	free(want);
	free(saved);
	free(got);
	return 0;
}
