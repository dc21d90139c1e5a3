/* SPDX-License-Identifier: MIT */
/*
 * pin-demo - the heap pattern heapprof exists for, in a few lines.
 *
 * Allocate 1000 blocks of 40 KiB (below the mmap threshold, so they come
 * from the brk heap), then one 100-byte "config string", then free the
 * 1000 blocks. Nothing leaks, yet ~40 MiB stay in the heap: the small
 * string sits at the top and pins every free byte below it, and free()
 * can only give memory back from the top. malloc_stats() shows it.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBLOCKS 1000
#define BLOCK (40 * 1024)

int
main(void)
{
	static char *blocks[NBLOCKS];
	char *config;

	for (int i = 0; i < NBLOCKS; i++) {
		blocks[i] = malloc(BLOCK);
		if (!blocks[i])
			return 1;
		memset(blocks[i], i & 0xff, BLOCK);
	}
	config = malloc(100);
	if (!config)
		return 1;
	strcpy(config, "threads=4");
	for (int i = 0; i < NBLOCKS; i++)
		free(blocks[i]);
	printf("freed %d blocks of %d KiB; one %zu-byte chunk still in use\n", NBLOCKS,
	       BLOCK / 1024, malloc_usable_size(config));
	fflush(stdout);
	malloc_stats();
	free(config);
	return 0;
}
