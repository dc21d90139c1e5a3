/* SPDX-License-Identifier: MIT */
/*
 * rec-dl LIB - dlopen LIB, allocate 30 x 3333 bytes through it (kept),
 * dlclose it, dlopen it again and allocate 20 x 4444 bytes: stacks must
 * name rec_dl_alloc in LIB both times.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static int
round_trip(const char *lib, size_t size, int n)
{
	void *h = dlopen(lib, RTLD_NOW);
	void *(*fn)(size_t);

	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	fn = (void *(*)(size_t))dlsym(h, "rec_dl_alloc");
	if (!fn)
		return 1;
	for (int i = 0; i < n; i++)
		if (!fn(size))
			return 1;
	dlclose(h);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	if (round_trip(argv[1], 3333, 30) || round_trip(argv[1], 4444, 20))
		return 1;
	puts("ok");
	return 0;
}
