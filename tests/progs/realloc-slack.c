/* SPDX-License-Identifier: MIT */
/*
 * realloc-slack - a chunk larger than its request, then resized in place:
 * the request pattern for which a chunk's bytes do not tell the sizes the
 * program asked for (heapprof advise's self-check must still pass).
 *
 * Three free 160-byte chunks A, B, C wait in their smallbin, oldest first.
 * malloc(130) needs 144 bytes: its own bins are empty, so glibc takes the
 * next bin up (binmap) and hands out A whole, as the 16 bytes left over
 * are too few to split off; realloc(A, 140) keeps it in place (resize),
 * and A's chunk row keeps only the last size. Then two malloc(150): the
 * first takes B from the smallbin and moves C into the tcache, the second
 * gets C. Replayed as malloc(152) (A's bytes - 8), the first request would
 * have taken A from the smallbin itself, moving B and C into the tcache,
 * and the next malloc(150) would get C instead of B.
 *
 *
 * Then a realloc that grows into the chunk after it while that chunk is in
 * a fastbin: realloc(X, 40) needs 48 bytes, X has 32, and the malloc it
 * makes for them takes Y, the 48-byte chunk right after X, from its
 * fastbin; glibc then keeps X in place, grown over Y (and the 32 bytes
 * left over are split off). Y left its fastbin with no allocation of its
 * own: the recording must say so, or Y stays a cached chunk for ever in
 * heapprof's figures (48 bytes of fastbins glibc does not have).
 *
 * Exit 0 when glibc (or heapprof's allocator) did as said, 1 if not.
 * Built with -fno-builtin: every malloc and free here must happen.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

#define BIG 150   /* a 160-byte chunk: no fastbin, in the tcache's range */
#define SMALL 130 /* a 144-byte chunk */

int
main(void)
{
	void *t[7], *guard[3], *p, *q, *r, *large;
	uintptr_t a, b, c; /* where A, B and C are, once they are free */

	for (int i = 0; i < 7; i++)
		t[i] = malloc(BIG);
	p = malloc(BIG);
	guard[0] = malloc(24); /* the guards keep A, B and C from merging */
	q = malloc(BIG);
	guard[1] = malloc(24);
	r = malloc(BIG);
	guard[2] = malloc(24);
	a = (uintptr_t)p;
	b = (uintptr_t)q;
	c = (uintptr_t)r;
	for (int i = 0; i < 7; i++) /* the tcache's bin of 160 is full */
		free(t[i]);
	free(p); /* to the unsorted bin, in this order */
	free(q);
	free(r);
	large = malloc(2000); /* sorts them into the smallbin of 160: A, B, C */
	for (int i = 0; i < 7; i++) /* and empties the tcache's bin */
		t[i] = malloc(BIG);

	p = malloc(SMALL);
	if ((uintptr_t)p != a || malloc_usable_size(p) != 152) {
		fprintf(stderr, "realloc-slack: malloc(%d) got %p (%zu usable), not A %#lx whole\n",
			SMALL, p, malloc_usable_size(p), (unsigned long)a);
		return 1;
	}
	p = realloc(p, 140);
	q = malloc(BIG);
	r = malloc(BIG);
	if ((uintptr_t)p != a || (uintptr_t)q != b || (uintptr_t)r != c) {
		fprintf(stderr, "realloc-slack: got %p %p %p, not A B C %#lx %#lx %#lx\n", p, q, r,
			(unsigned long)a, (unsigned long)b, (unsigned long)c);
		return 1;
	}

	void *x = malloc(24), *y = malloc(40), *u[7], *guard_y = malloc(24);
	for (int i = 0; i < 7; i++) /* fill the tcache's bin of 48 */
		u[i] = malloc(40);
	for (int i = 0; i < 7; i++)
		free(u[i]);
	free(y); /* into its fastbin */
	void *x2 = realloc(x, 40);
	if (x2 != x || malloc_usable_size(x2) != 40) {
		fprintf(stderr,
			"realloc-slack: realloc(X, 40) got %p (%zu usable), not X %p grown\n", x2,
			malloc_usable_size(x2), x);
		return 1;
	}

	free(p);
	free(q);
	free(r);
	free(large);
	for (int i = 0; i < 7; i++)
		free(t[i]);
	for (int i = 0; i < 3; i++)
		free(guard[i]);
	free(x2);
	free(guard_y);
	return 0;
}
