/* SPDX-License-Identifier: MIT */
/*
 * check.h - the heap walk and the heap check: every chunk of every arena
 * enumerated, and heap.h's numbered invariants verified.
 *
 * The self-checks of -Ddebug_checks (meson_options.txt):
 *   0  none (the default);
 *   1  HP_ASSERT (log.h): cheap assertions, each naming its invariant;
 *   2  and the check of an arena after each slow path: the heap grown or
 *      trimmed, fastbins consolidated, an arena made, a fork, a thread's
 *      end (HP_CHECK_SLOW_PATH, HP_CHECK_ALL_SLOW);
 *   3  and the check of every arena after every call of the malloc family
 *      (HP_CHECK_AFTER_CALL), with memory poisoned (heap.h, HP_POISON).
 * The unit tests link the walk and the check from the test copy of the
 * allocator, always at level 3; libheapprof.so has them from level 2.
 */
#ifndef HP_CHECK_H
#define HP_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "heap.h"
#include "observe.h"
#include "tcache.h"

/*
 * Walk every chunk of every arena: fn(chunk, bytes, state, is_top, arg)
 * where state is live, cached (any registered thread's tcache), fastbin
 * (an arena's fastbin) or free (bins and top). Fenceposts and glibc's lost slivers are
 * reported live (mallinfo counts them in use). Exact only while no other
 * thread allocates. Returns the number of chunks walked.
 * Lock: none (takes each arena's). Allocates: selfmem (scratch).
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

/* hp_check_heaps() for one arena, whose lock the caller holds: a slow
 * path's check. Lock: av held. Allocates: no. */
void hp_check_arena_locked(struct hp_mstate *av);

#if HP_DEBUG_CHECKS >= 2
#define HP_CHECK_SLOW_PATH(av) hp_check_arena_locked(av)
#define HP_CHECK_ALL_SLOW() hp_check_heaps()
#else
#define HP_CHECK_SLOW_PATH(av) ((void)0)
#define HP_CHECK_ALL_SLOW() ((void)0)
#endif

/* At the end of each call of the malloc family but heapprof's own (made
 * under the guard, perhaps with a lock held). Lock: none held. */
#if HP_DEBUG_CHECKS >= 3
#define HP_CHECK_AFTER_CALL()                                                  \
	do {                                                                   \
		if (hp_self.guard == 0)                                        \
			hp_check_heaps();                                      \
	} while (0)
#else
#define HP_CHECK_AFTER_CALL() ((void)0)
#endif

#endif
