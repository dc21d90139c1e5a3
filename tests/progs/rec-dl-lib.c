/* SPDX-License-Identifier: MIT */
/* A library a test dlopens: its allocations carry its frames. */
#include <stddef.h>

void *rec_dl_alloc(size_t n);
#include <stdlib.h>

__attribute__((noinline)) void *
rec_dl_alloc(size_t n)
{
	return malloc(n); /* SITE_DL */
}
