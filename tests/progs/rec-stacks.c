/* SPDX-License-Identifier: MIT */
/*
 * rec-stacks - 254 call stacks that share their outer frames in many ways,
 * each allocating one chunk of its own size, all live at exit, so a test
 * can check every stack heapprof stored (most store only their inner frames
 * and name another stack for the rest) against the calls made.
 *
 * For n = 0..6 and each of the 2^n words of n bits, main calls
 * walk(bits, n, leaf), which goes down n levels, one call of step_0 or
 * step_1 (the word's bits, lowest first) and one of walk each, then calls
 * leaf_a or leaf_b, which mallocs 16 * (2^n + bits) + leaf bytes. From the
 * innermost frame, the stack is: leaf_x, walk, then step_<bit n-1>, walk,
 * ..., step_<bit 0>, walk, main. Prints "kept 254".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *keep[256];
static int nkeep;
static volatile int sink;

__attribute__((noinline)) static void *
leaf_a(size_t size)
{
	void *p = malloc(size);
	memset(p, 'a', size);
	sink++; /* no tail call: each function keeps its frame */
	return p;
}

__attribute__((noinline)) static void *
leaf_b(size_t size)
{
	void *p = malloc(size);
	memset(p, 'b', size);
	sink++;
	return p;
}

static void *walk(unsigned bits, int n, int leaf, size_t size);

__attribute__((noinline)) static void *
step_0(unsigned bits, int n, int leaf, size_t size)
{
	void *p = walk(bits, n, leaf, size);
	sink++;
	return p;
}

__attribute__((noinline)) static void *
step_1(unsigned bits, int n, int leaf, size_t size)
{
	void *p = walk(bits, n, leaf, size);
	sink++;
	return p;
}

__attribute__((noinline)) static void *
walk(unsigned bits, int n, int leaf, size_t size)
{
	void *p;

	if (n == 0)
		p = leaf ? leaf_b(size) : leaf_a(size);
	else if (bits & 1)
		p = step_1(bits >> 1, n - 1, leaf, size);
	else
		p = step_0(bits >> 1, n - 1, leaf, size);
	sink++;
	return p;
}

int
main(void)
{
	for (int n = 0; n <= 6; n++)
		for (unsigned bits = 0; bits < 1u << n; bits++)
			for (int leaf = 0; leaf < 2; leaf++)
				keep[nkeep++] = walk(bits, n, leaf, 16 * ((1u << n) + bits) + leaf);
	printf("kept %d\n", nkeep);
	return 0;
}
