/* SPDX-License-Identifier: MIT */
/*
 * observe.h - the one interface through which the allocator tells the
 * profiler what happened to its memory.
 *
 * The promise: from these calls alone an observer can say, at any instant,
 * which byte ranges of the heap are live, cached (freed by the program but
 * held in a tcache or fastbin, so still occupying the heap; which of the two,
 * since malloc_consolidate frees what fastbins hold) or free, where
 * the break is, and which mappings exist. Every range starts free when the
 * heap grows over it; after that each change of state is reported exactly
 * once, either by the user-level call (alloc, free, realloc) or by a
 * `chunk` call for what the allocator does on its own (tcache stashing, from
 * a bin or from a fastbin, fastbin consolidation, remainders freed by
 * realloc and memalign, the tcache of an exiting thread, the tcache control
 * blocks themselves). Coalescing and splitting of free chunks are not
 * reported: free next to free is free.
 *
 * Calls with `_locked` semantics come with the heap lock held (or from the
 * only thread); observers must not allocate from the tracked heap, must not
 * call back into the allocator, and must be quick.
 */
#ifndef HP_OBSERVE_H
#define HP_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codes.h" /* hp_state, hp_fate, hp_backing, hp_call */

/* The place of an event in the process's order: a free or an in-place
 * realloc takes its ticket before the allocator touches the chunk, an
 * allocation after, so the collector sees a chunk's free before its reuse
 * whichever threads do them. */
struct hp_ticket {
	uint64_t seq;
	uint64_t ns;
};

struct hp_observer {
	/* Number an event that is about to happen. Lock: none. */
	void (*ticket)(struct hp_ticket *t);
	/* The break moved (growth, trim). Lock: held. */
	void (*brk)(uintptr_t old_brk, uintptr_t new_brk);
	/* A mapping appeared or went away: mmap chunks (chunk=true) and the
	 * regions the heap falls back to when brk fails (chunk=false). A
	 * remap is an unmap of the old range and a map of the new one.
	 * Lock: any. */
	void (*map)(uintptr_t addr, size_t len, bool chunk);
	void (*unmap)(uintptr_t addr, size_t len, bool chunk);
	/* malloc_trim released the pages [addr, addr+len) of a free chunk. */
	void (*madvise)(uintptr_t addr, size_t len);
	/* The allocator itself moved the chunk [chunk, chunk+bytes) into
	 * `state`. Lock: held. */
	void (*chunk)(uintptr_t chunk, size_t bytes, enum hp_state state);
	/* The program got `mem`, the chunk [chunk, chunk+chunk_bytes), for a
	 * request of `size` bytes (memalign: align_log2 is log2 of the
	 * alignment, as the allocator rounded it up; else 0). stack holds the nstack return addresses
	 * unw_backtrace gave inside the allocation call, innermost first (its
	 * own frame is first): the allocator captures them in that frame, as
	 * each frame walked costs (~8 ns) and a helper would add its own.
	 * Lock: none. */
	void (*alloc)(void *mem, size_t size, uintptr_t chunk, size_t chunk_bytes,
		      enum hp_backing backing, enum hp_call call, unsigned align_log2,
		      void *const *stack, int nstack);
	/* How many return addresses `alloc` wants at most (0: none). */
	unsigned stack_slots;
	/* The program freed the chunk (ticket taken before); it went to
	 * `fate`. realloc is true for the old chunk of a moving realloc.
	 * Lock: none. */
	void (*free)(const struct hp_ticket *t, uintptr_t chunk, size_t chunk_bytes,
		     enum hp_fate fate, bool realloc);
	/* realloc kept the chunk in place with a new size (ticket taken
	 * before; the freed tail is reported through `chunk`). Lock: none. */
	void (*resize)(const struct hp_ticket *t, size_t size, uintptr_t chunk,
		       size_t old_chunk_bytes, size_t new_chunk_bytes);
	/* Not the allocator's: the program itself mapped anonymous memory
	 * with mmap (on; stack as for alloc), or unmapped a range with munmap
	 * (off, no stack), e.g. a small-object allocator's arenas (CPython's
	 * pymalloc). Lock: none. */
	void (*program_map)(uintptr_t addr, size_t len, bool on, void *const *stack, int nstack);
};

/* The observer in force, or NULL (the common case outside profiling).
 * Defined with the allocator (heap.c), so that its unit tests install one
 * of their own without the recorder; the recorder installs its own at
 * start-up (record.c). */
extern const struct hp_observer *hp_observer;

/* Take a ticket if anyone observes (t is left untouched otherwise). */
#define HP_TICKET(t)                                                           \
	do {                                                                   \
		const struct hp_observer *o_ = hp_observer;                    \
		if (__builtin_expect(o_ != NULL, 0) && o_->ticket)             \
			o_->ticket(t);                                         \
	} while (0)

#define HP_OBSERVE(fn, ...)                                                    \
	do {                                                                   \
		const struct hp_observer *o_ = hp_observer;                    \
		if (__builtin_expect(o_ != NULL, 0) && o_->fn)                 \
			o_->fn(__VA_ARGS__);                                   \
	} while (0)

#endif
