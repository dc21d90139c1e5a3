/* SPDX-License-Identifier: MIT */
/*
 * policy-segregated.c - segregated fit: a free list per size class (the
 * powers of two: class c holds blocks of 2^c up to 2^(c+1) - 1 bytes,
 * most recently freed first); a request takes the first large-enough
 * block among the first SCAN of its own class, else the first block of
 * the next non-empty class up (all large enough), split; freed blocks
 * coalesce with their neighbours (policy.h). The bound keeps a request's
 * cost constant: a class can hold a hundred thousand blocks too small for
 * it, and searching them all made a 10-million-chunk replay take minutes.
 */
#include "config.h"

#include "policy.h"

#define SCAN 32

static uint64_t
block(uint64_t bytes)
{
	return bytes;
}

static uint32_t
find(struct pol *p, uint64_t bytes)
{
	unsigned c = pol_class(bytes), k = 0;

	for (uint32_t n = p->classes[c]; n && k < SCAN; n = p->nodes[n].next, k++)
		if (p->nodes[n].size >= bytes)
			return n;
	for (c++; c < POL_NCLASSES; c++)
		if (p->classes[c])
			return p->classes[c];
	return 0;
}

const struct pol_ops pol_segregated = {
	.name = "segregated fit",
	.what = "a free list per power-of-two size class, split and coalesced",
	.unit = POL_PAGE,
	.block = block,
	.find = find,
};
