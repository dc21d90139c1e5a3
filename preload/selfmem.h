/* SPDX-License-Identifier: MIT */
/*
 * selfmem.h - heapprof's own memory ("selfmem": glibc's arenas are the
 * heaps of the program, tarena.c's), in its own mappings, never in the
 * tracked heap and never recorded.
 *
 * Used for heapprof's tables and buffers and for whatever libc or libunwind
 * allocate while heapprof's code runs on a thread (hp_self.guard > 0). Its
 * blocks carry a chunk header whose size word has both M and A set, a
 * combination glibc's main arena never produces, so free(), realloc() and
 * malloc_usable_size() recognise them with one test and send them back
 * here whichever thread frees them and whether or not the guard is set.
 */
#ifndef HP_SELFMEM_H
#define HP_SELFMEM_H

#include <stdbool.h>
#include <stddef.h>

#include "heap.h"

#define HP_SELFMEM_BITS (HP_IS_MMAPPED | HP_NON_MAIN_ARENA)

static inline bool
hp_selfmem_owns_chunk(const struct hp_chunk *p)
{
	return (p->size & HP_SELFMEM_BITS) == HP_SELFMEM_BITS;
}

/*
 * n bytes aligned to `align` (a power of two; 16 is the minimum), zeroed
 * when `zero`. NULL on failure (errno untouched).
 * Lock: none (takes selfmem's own lock). Allocates: selfmem. AS-safe: no.
 */
void *hp_selfmem_alloc(size_t n, size_t align, bool zero);

/* Give a block back. Lock: none. Allocates: no. */
void hp_selfmem_free(void *mem);

/* realloc for selfmem blocks; NULL on failure with the block intact. */
void *hp_selfmem_realloc(void *mem, size_t n);

/* Bytes usable in a selfmem block. */
size_t hp_selfmem_usable(const void *mem);

/* Bytes heapprof has mapped for itself (for the profiler's own report). */
size_t hp_selfmem_mapped_bytes(void);

/* Around fork in a multi-threaded parent: hold selfmem's lock so the child
 * inherits consistent free lists; the child then resets it. */
void hp_selfmem_fork_prepare(void);
void hp_selfmem_fork_parent(void);
void hp_selfmem_fork_child(void);

#endif
