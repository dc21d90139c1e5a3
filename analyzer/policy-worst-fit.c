/* SPDX-License-Identifier: MIT */
/*
 * policy-worst-fit.c - worst fit: carve every block from the largest free
 * block, so that what is left stays large (policy.h).
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
	uint32_t n = pol_largest(p);

	return n && p->nodes[n].size >= bytes ? n : 0;
}

const struct pol_ops pol_worst_fit = {
	.name = "worst fit",
	.what = "the largest free block, so that what is left stays large",
	.unit = POL_PAGE,
	.block = block,
	.find = find,
};
