/* SPDX-License-Identifier: MIT */
/*
 * policy-next-fit.c - next fit: first fit that starts each search where
 * the last one ended (the roving pointer), wrapping to the heap's start
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
	uint32_t n = pol_first_from(p, p->rover, bytes);

	return n ? n : pol_first_from(p, 0, bytes);
}

static uint64_t
take(struct pol *p, uint32_t n, uint64_t bytes)
{
	uint64_t addr = pol_split(p, n, bytes);

	/* the next search starts at what is left of this block */
	p->rover = addr + bytes;
	return addr;
}

const struct pol_ops pol_next_fit = {
	.name = "next fit",
	.what = "first fit from where the last search ended (a roving pointer)",
	.unit = POL_PAGE,
	.block = block,
	.find = find,
	.take = take,
};
