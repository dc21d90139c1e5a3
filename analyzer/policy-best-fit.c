/* SPDX-License-Identifier: MIT */
/*
 * policy-best-fit.c - best fit: the smallest free block that is large
 * enough (the lowest-addressed of that size), split at its low end
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
	return pol_smallest(p, bytes);
}

const struct pol_ops pol_best_fit = {
	.name = "best fit",
	.what = "the smallest free block that is large enough",
	.unit = POL_PAGE,
	.block = block,
	.find = find,
};
