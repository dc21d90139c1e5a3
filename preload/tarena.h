/* SPDX-License-Identifier: MIT */
/*
 * tarena.h - thread arenas on mapped heaps, as glibc 2.36's malloc/arena.c.
 *
 * The main thread allocates from the main arena (the brk heap). The first
 * allocation of any other thread attaches it to an arena: one from the free
 * list (arenas of exited threads), else a new one while there are fewer
 * than the limit (arena_max, or 8 x the number of CPUs once more than
 * arena_test exist), else an existing one picked round-robin. A thread
 * arena lives in heaps: regions of up to HEAP_MAX_SIZE (64 MiB) reserved
 * PROT_NONE at a 64 MiB-aligned address and made read-write as they grow,
 * each starting with a heap_info; the arena's malloc_state sits right after
 * the first heap's heap_info, exactly where glibc puts its own, so the
 * arena's chunks land at the same offsets. Chunks of thread arenas carry
 * the A bit; heap_for_ptr() finds their heap by masking the address.
 */
#ifndef HP_TARENA_H
#define HP_TARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "heap.h"

#define HP_HEAP_MIN_SIZE ((size_t)32 * 1024)
#define HP_HEAP_MAX_SIZE ((size_t)2 * HP_DEFAULT_MMAP_THRESHOLD_MAX)

/* A mapped heap of a thread arena (glibc's heap_info; "heap" alone is the
 * program's heap memory, heap.c the allocator on it): 48 bytes, so that
 * heap_info + 2 * SIZE_SZ is 16-aligned. */
struct hp_mapped_heap {
	struct hp_mstate *ar_ptr;
	struct hp_mapped_heap *prev;
	size_t size;          /* bytes in use (read-write) from the start */
	size_t mprotect_size; /* bytes ever made read-write */
	size_t pagesize;
	char pad[8];
};

_Static_assert(sizeof(struct hp_mapped_heap) == 48, "glibc 2.36's heap_info size");

/* HEAP_MAX_SIZE, or 4 huge pages with glibc.malloc.hugetlb >= 2. */
size_t hp_tarena_heap_max_size(void);

/* glibc's heap_for_ptr: the mapped heap p is in. */
static inline struct hp_mapped_heap *
hp_mapped_heap_of(const void *p)
{
	uintptr_t mask = ~(uintptr_t)(hp_tarena_heap_max_size() - 1);

	return (struct hp_mapped_heap *)((uintptr_t)p & mask);
}

/*
 * arena_get: the calling thread's arena, locked when the process has
 * threads (*locked says whether). Attaches the thread to an arena first if
 * it has none (arena_get2). NULL if no arena can be had (then mmap is the
 * only source: glibc's av == NULL path).
 * Lock: none (returns with av's lock). Allocates: a heap for a new arena.
 */
struct hp_mstate *hp_tarena_get(size_t size, bool *locked);

/*
 * arena_get_retry: after a failed allocation in av (locked), the arena to
 * try next, locked: the main arena after a thread arena, another arena
 * after the main one.
 */
struct hp_mstate *hp_tarena_get_retry(struct hp_mstate *av, size_t bytes, bool *locked);

/*
 * __libc_malloc's arena step: the main arena while the process has one
 * thread, else the thread's arena, retrying in another on failure. Inline:
 * the preload's malloc (exports.c) and advise's replay of it
 * (analyzer/advise-glibc.c) share it, and it is on malloc's path.
 * Lock: none.
 */
static inline void *
hp_arena_malloc(size_t bytes)
{
	struct hp_mstate *av;
	bool locked;
	void *mem;

	if (__builtin_expect(__libc_single_threaded, 1))
		return hp_heap_malloc_locked(&hp_main_arena, bytes);
	av = hp_tarena_get(bytes, &locked);
	mem = hp_heap_malloc_locked(av, bytes);
	if (mem == NULL && av != NULL) {
		av = hp_tarena_get_retry(av, bytes, &locked);
		mem = hp_heap_malloc_locked(av, bytes);
	}
	if (av != NULL)
		hp_mstate_unlock(av, locked);
	return mem;
}

/* _mid_memalign's arena step, the same for an alignment (a power of two,
 * at least HP_MINSIZE). Lock: none. */
static inline void *
hp_arena_memalign(size_t alignment, size_t bytes)
{
	struct hp_mstate *av;
	bool locked;
	void *mem;

	if (__libc_single_threaded)
		return hp_heap_memalign_locked(&hp_main_arena, alignment, bytes);
	av = hp_tarena_get(bytes + alignment + HP_MINSIZE, &locked);
	mem = hp_heap_memalign_locked(av, alignment, bytes);
	if (mem == NULL && av != NULL) {
		av = hp_tarena_get_retry(av, bytes, &locked);
		mem = hp_heap_memalign_locked(av, alignment, bytes);
	}
	if (av != NULL)
		hp_mstate_unlock(av, locked);
	return mem;
}

/*
 * sysmalloc's branch for thread arenas: grow the top's heap, or start a new
 * heap and fence off the old top. Returns true when top was grown or
 * replaced. Lock: av held.
 */
bool hp_tarena_grow_locked(struct hp_mstate *av, size_t nb);

/* heap_trim: unmap heaps that became empty, shrink the top's heap.
 * Lock: av held. */
int hp_tarena_heap_trim_locked(struct hp_mapped_heap *heap, size_t pad);

/*
 * The thread ran its last pthread key destructor round. glibc detaches a
 * thread from its arena after every destructor and libc's own thread
 * clean-up; heapprof cannot run that late, so the thread keeps its arena
 * (later destructors may still allocate) and is detached when a thread next
 * looks for an arena and finds this one gone (tgkill ESRCH). The arena then
 * goes on the free list if no other thread uses it.
 */
void hp_tarena_thread_retire(void);

/* The number of arenas, and whether the process ever created one. */
size_t hp_tarena_count(void);

/* Fork: lock every arena in the parent; in the child, reset the locks and
 * put every arena but the calling thread's on the free list. */
void hp_tarena_fork_prepare(void);
void hp_tarena_fork_parent(void);
void hp_tarena_fork_child(void);

#endif
