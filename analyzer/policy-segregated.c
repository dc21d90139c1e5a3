/* SPDX-License-Identifier: MIT */
/*
 * policy-segregated.c - segregated fit: a free list per size class (the
 * powers of two: class c holds blocks of 2^c up to 2^(c+1) - 1 bytes,
 * most recently freed first); a request takes the first large-enough
 * block of its own class, else the first block of the next non-empty
 * class up, split; freed blocks coalesce with their neighbours
 * (policy.h).
 */
#include "config.h"

#include "policy.h"

static uint64_t
block(uint64_t bytes)
{
	return bytes;
}

static uint32_t
find(struct pol *p, uint64_t bytes)
{
	unsigned c = pol_class(bytes);

	for (uint32_t n = p->classes[c]; n; n = p->nodes[n].next)
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
