/* SPDX-License-Identifier: MIT */
/*
 * policy-buddy.c - a binary buddy allocator: blocks are powers of two from
 * 32 bytes to 256 KiB, each at a multiple of its size from the heap's
 * start; a request takes the smallest free block of at least its size,
 * halving it until it is the request's power of two, and a freed block
 * merges with its buddy (the other half of the block it was split from)
 * while that is free and whole (policy.h). The heap grows and is trimmed
 * in 256 KiB blocks.
 */
#include "config.h"

#include "policy.h"

#define MAX_ORDER 18

static uint64_t
block(uint64_t bytes)
{
	uint64_t b = 32;

	while (b < bytes)
		b <<= 1;
	return b;
}

static uint32_t
find(struct pol *p, uint64_t bytes)
{
	for (unsigned c = pol_class(bytes); c <= MAX_ORDER; c++)
		if (p->classes[c])
			return p->classes[c];
	return 0;
}

static uint64_t
take(struct pol *p, uint32_t n, uint64_t bytes)
{
	uint64_t addr = p->nodes[n].addr, size = p->nodes[n].size;

	pol_remove(p, n);
	/* halve it, keeping the low half, until it is the request's size */
	while (size > bytes) {
		size /= 2;
		pol_insert(p, addr + size, size);
	}
	return addr;
}

static void
put(struct pol *p, uint64_t addr, uint64_t bytes)
{
	while (bytes < (uint64_t)1 << MAX_ORDER) {
		uint64_t buddy = p->base + ((addr - p->base) ^ bytes);
		uint32_t b = pol_at(p, buddy);
		if (!b || p->nodes[b].size != bytes)
			break;
		pol_remove(p, b);
		if (buddy < addr)
			addr = buddy;
		bytes *= 2;
	}
	pol_insert(p, addr, bytes);
}

const struct pol_ops pol_buddy = {
	.name = "buddy",
	.what = "power-of-two blocks split in halves and merged with their buddies",
	.unit = (uint64_t)1 << MAX_ORDER,
	.block = block,
	.find = find,
	.take = take,
	.put = put,
};
