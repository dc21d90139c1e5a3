/* SPDX-License-Identifier: MIT */
/*
 * memalign-mix - aligned requests whose addresses are often more aligned
 * than asked (a 32-aligned request that lands on a 64 or 4096 boundary),
 * mixed with mallocs and frees: a replay that took each alignment from the
 * address would ask glibc for more than the program did and put later
 * chunks elsewhere. heapprof records the alignment asked for; advise's
 * self-check must pass on this program (tests/advise/reality.py).
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 3000

int
main(void)
{
	static void *p[N];
	size_t aligned = 0;

	for (int i = 0; i < N; i++) {
		size_t size = 24 + (size_t)(i * 37 % 400);
		size_t align = (size_t)32 << (i % 3); /* 32, 64, 128 */

		switch (i % 5) {
		case 0:
			p[i] = memalign(align, size);
			break;
		case 1:
			if (posix_memalign(&p[i], align, size) != 0)
				p[i] = NULL;
			break;
		case 2:
			p[i] = aligned_alloc(align, size);
			break;
		default:
			p[i] = malloc(size);
			break;
		}
		if (p[i] == NULL)
			return 1;
		memset(p[i], 1, size);
		if (i % 5 < 3 && ((size_t)p[i] & (2 * align - 1)) == 0)
			aligned++; /* more aligned than asked */
		if (i >= 7 && i % 2 == 0) {
			free(p[i - 7]);
			p[i - 7] = NULL;
		}
	}
	for (int i = 0; i < N; i += 3) {
		free(p[i]);
		p[i] = NULL;
	}
	printf("memalign-mix: %zu of %d aligned chunks more aligned than asked\n", aligned,
	       N * 3 / 5);
	return aligned ? 0 : 1;
}
