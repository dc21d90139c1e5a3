/* SPDX-License-Identifier: MIT */
/*
 * arena.h - heapprof's own memory, in its own mappings, never in the
 * tracked heap and never recorded.
 *
 * Used for heapprof's tables and buffers and for whatever libc or libunwind
 * allocate while heapprof's code runs on a thread (hp_self.guard > 0). Its
 * blocks carry a chunk header whose size word has both M and A set, a
 * combination glibc's main arena never produces, so free(), realloc() and
 * malloc_usable_size() recognise them with one test and send them back
 * here whichever thread frees them and whether or not the guard is set.
 */
#ifndef HP_ARENA_H
#define HP_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#include "heap.h"

#define HP_ARENA_BITS (HP_IS_MMAPPED | HP_NON_MAIN_ARENA)

static inline bool
hp_arena_owns_chunk(const struct hp_chunk *p)
{
	return (p->size & HP_ARENA_BITS) == HP_ARENA_BITS;
}

/*
 * n bytes aligned to `align` (a power of two; 16 is the minimum), zeroed
 * when `zero`. NULL on failure (errno untouched).
 * Lock: none (takes the arena's own lock). Allocates: arena. AS-safe: no.
 */
void *hp_arena_alloc(size_t n, size_t align, bool zero);

/* Give a block back. Lock: none. Allocates: no. */
void hp_arena_free(void *mem);

/* realloc for arena blocks; NULL on failure with the block intact. */
void *hp_arena_realloc(void *mem, size_t n);

/* Bytes usable in an arena block. */
size_t hp_arena_usable(const void *mem);

/* Bytes heapprof has mapped for itself (for the profiler's own report). */
size_t hp_arena_mapped_bytes(void);

/* Around fork in a multi-threaded parent: hold the arena lock so the child
 * inherits consistent free lists; the child then resets it. */
void hp_arena_fork_prepare(void);
void hp_arena_fork_parent(void);
void hp_arena_fork_child(void);

#endif
