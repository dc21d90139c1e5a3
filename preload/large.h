/* SPDX-License-Identifier: MIT */
/*
 * large.h - mmap chunks: requests at or above the mmap threshold, one
 * private mapping each, as glibc 2.36's sysmalloc_mmap, munmap_chunk and
 * mremap_chunk, with the dynamic threshold raised on free.
 *
 * An mmap chunk's prev_size holds its offset from the start of the mapping
 * (non-zero only after memalign), its size the mapping's remaining length
 * with M set. No lock is needed: the counters are atomic, as glibc's.
 */
#ifndef HP_LARGE_H
#define HP_LARGE_H

#include <stddef.h>

#include "heap.h"

/*
 * sysmalloc_mmap: map ALIGN_UP(nb + 8, pagesize) bytes (extra_flags for
 * MAP_HUGETLB) and return the chunk's mem, or NULL (errno from mmap).
 * Lock: any. Allocates: no.
 */
void *hp_large_alloc(size_t nb, size_t pagesize, int extra_flags);

/*
 * free() of an mmap chunk: raise the dynamic threshold when glibc would,
 * then munmap_chunk. Aborts like glibc on an invalid pointer. errno kept.
 * Lock: none. Allocates: no.
 */
void hp_large_free(struct hp_chunk *p);

/*
 * munmap_chunk alone (realloc's copy path does not touch the threshold).
 * Lock: none. Allocates: no.
 */
void hp_large_unmap(struct hp_chunk *p);

/*
 * mremap_chunk: resize the mapping for a chunk of nb bytes. Returns the
 * (possibly moved) chunk, or NULL if mremap failed (chunk intact).
 * Lock: none. Allocates: no.
 */
struct hp_chunk *hp_large_remap(struct hp_chunk *p, size_t nb);

#endif
