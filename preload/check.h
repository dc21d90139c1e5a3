/* SPDX-License-Identifier: MIT */
/*
 * check.h - the heap walk and the heap check: every chunk of every arena
 * enumerated, and heap.h's numbered invariants verified.
 *
 * Used by the unit tests (tests/unit/test-heap.c links them from the test
 * copy of the allocator).
 */
#ifndef HP_CHECK_H
#define HP_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "heap.h"
#include "observe.h"

/*
 * Walk every chunk of every arena: fn(chunk, bytes, state, is_top, arg)
 * where state is live, cached (any registered thread's tcache, or a
 * fastbin) or free (bins and top). Fenceposts and glibc's lost slivers are
 * reported live (mallinfo counts them in use). Exact only while no other
 * thread allocates. Returns the number of chunks walked.
 * Lock: none (takes each arena's). Allocates: arena (scratch).
 */
typedef void (*hp_walk_fn)(uintptr_t chunk, size_t bytes, enum hp_state state, bool is_top,
			   void *arg);
size_t hp_check_walk(hp_walk_fn fn, void *arg);

/*
 * Verify heap.h's invariants 1-9 in every arena and in the calling
 * thread's tcache; on a violation call hp_fatal with the invariant number.
 * Lock: none (takes each arena's). Allocates: no.
 */
void hp_check_heaps(void);

#endif
