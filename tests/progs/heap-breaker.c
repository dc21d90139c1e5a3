/* SPDX-License-Identifier: MIT */
/*
 * heap-breaker - a program with a heap bug, for the self-checks of
 * -Ddebug_checks=3 to catch.
 *
 * Usage: heap-breaker write-after-free|header
 *   write-after-free  writes into a chunk it freed (it sits in the
 *                     tcache), then allocates that size again;
 *   header            grows a live chunk's size word by 16 bytes (as an
 *                     overflow from the chunk before would), then frees
 *                     and allocates something else.
 * Under a level-3 libheapprof.so the library aborts at the call after the
 * bug, naming the invariant (11 and 1); glibc and a level-0 library notice
 * nothing and the program exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	char *volatile a, *volatile b;

	setvbuf(stdout, NULL, _IONBF, 0);
	a = malloc(200);
	b = malloc(200);
	if (a == NULL || b == NULL)
		return 99;
	memset(a, 1, 200);
	memset(b, 2, 200);
	if (strcmp(mode, "write-after-free") == 0) {
		free(a);
		a[100] = 3; /* the bug */
		puts("wrote after free");
		a = malloc(200);
	} else if (strcmp(mode, "header") == 0) {
		((size_t *)b)[-1] += 16; /* the bug */
		puts("grew a size word");
		free(malloc(50));
	} else {
		fprintf(stderr, "usage: %s write-after-free|header\n", argv[0]);
		return 2;
	}
	puts("not caught");
	return 0;
}
