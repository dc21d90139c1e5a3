/* SPDX-License-Identifier: MIT */
/*
 * policy-first-fit.c - first fit: the lowest-addressed free block that is
 * large enough, split at its low end (policy.h).
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
	return pol_first_from(p, 0, bytes);
}

const struct pol_ops pol_first_fit = {
	.name = "first fit",
	.what = "the lowest-addressed free block that is large enough",
	.unit = POL_PAGE,
	.block = block,
	.find = find,
};
