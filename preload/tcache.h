/* SPDX-License-Identifier: MIT */
/*
 * tcache.h - glibc 2.36's per-thread cache (the thread's own state is
 * thread.h's).
 *
 * The control block (64 counts, 64 list heads: 640 bytes) is a chunk of the
 * heap, allocated on the thread's first malloc or free exactly as glibc
 * does: for the first thread it is the first chunk of the heap, which is why
 * the first user chunk sits at heap start + 0x2a0. Entries are the user
 * area of cached chunks: a safe-linked next pointer and the process-wide
 * key that detects double frees. Cached chunks keep their in-use bit.
 *
 * The fast paths here run without any lock: a tcache belongs to one thread.
 */
#ifndef HP_TCACHE_H
#define HP_TCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "heap.h"
#include "log.h"
#include "thread.h"
#include "tune.h"

struct hp_tcache_entry {
	struct hp_tcache_entry *next; /* safe-linked (PROTECT_PTR) */
	uintptr_t key;                /* hp_tcache_key while cached */
};

struct hp_tcache {
	uint16_t counts[HP_TCACHE_MAX_BINS];
	struct hp_tcache_entry *entries[HP_TCACHE_MAX_BINS];
};

extern uintptr_t hp_tcache_key;

/* glibc's safe-linking (PROTECT_PTR / REVEAL_PTR). */
static inline void *
hp_protect_ptr(const void *pos, const void *ptr)
{
	return (void *)(((uintptr_t)pos >> 12) ^ (uintptr_t)ptr);
}

static inline size_t
hp_csize2tidx(size_t csize)
{
	return (csize - HP_MINSIZE + HP_MALLOC_ALIGNMENT - 1) / HP_MALLOC_ALIGNMENT;
}

/* tcache_put: the caller knows idx is valid and there is room. At debug
 * level 3 the rest of the chunk is poisoned (invariant 11). */
static inline void
hp_tcache_put(struct hp_tcache *tc, struct hp_chunk *p, size_t idx)
{
	struct hp_tcache_entry *e = hp_chunk2mem(p);

	if (HP_POISON)
		memset(e + 1, HP_POISON_FREE, hp_chunksize(p) - HP_CHUNK_HDR_SZ - sizeof(*e));
	e->key = hp_tcache_key;
	e->next = hp_protect_ptr(&e->next, tc->entries[idx]);
	tc->entries[idx] = e;
	++tc->counts[idx];
}

/* tcache_get: the caller knows idx is valid and the list is non-empty. At
 * debug level 3 the chunk's free poison is checked (invariant 11) and it is
 * handed out poisoned. */
static inline void *
hp_tcache_get(struct hp_tcache *tc, size_t idx)
{
	struct hp_tcache_entry *e = tc->entries[idx];

	if (__builtin_expect((uintptr_t)e & HP_ALIGN_MASK, 0))
		hp_corrupt("malloc(): unaligned tcache chunk detected");
	tc->entries[idx] = hp_protect_ptr(&e->next, e->next);
	--tc->counts[idx];
	e->key = 0;
	if (HP_POISON) {
		HP_POISON_CHECK(hp_mem2chunk(e), HP_CHUNK_HDR_SZ + sizeof(*e));
		memset(e, HP_POISON_ALLOC, hp_chunksize(hp_mem2chunk(e)) - HP_CHUNK_HDR_SZ);
	}
	return e;
}

/*
 * tcache_init: allocate this thread's control block from its arena (which
 * attaches the thread to one first) unless the thread is exiting, and arm
 * the thread's end (thread.h). On failure the thread simply runs without
 * a tcache and tries again next time, as glibc.
 * Lock: none (takes it). Allocates: yes (one heap chunk).
 */
void hp_tcache_init(void);

/*
 * tcache_thread_shutdown: free every cached chunk and the control block
 * back to their arenas and never create a tcache for this thread again.
 * Lock: none (takes it). Allocates: no.
 */
void hp_tcache_shutdown(void);

/*
 * _int_free's tcache step for a chunk of `size` being freed: the
 * double-free check, then cache it if there is room. Returns true if cached.
 * Lock: none needed. Allocates: no.
 */
static inline bool
hp_tcache_try_free(struct hp_chunk *p, size_t size)
{
	struct hp_tcache *tc = hp_self.tcache;
	size_t tc_idx = hp_csize2tidx(size);

	if (tc == NULL || tc_idx >= hp_mp.tcache_bins)
		return false;
	struct hp_tcache_entry *e = hp_chunk2mem(p);
	if (__builtin_expect(e->key == hp_tcache_key, 0)) {
		size_t cnt = 0;

		for (struct hp_tcache_entry *tmp = tc->entries[tc_idx]; tmp;
		     tmp = hp_protect_ptr(&tmp->next, tmp->next), ++cnt) {
			if (cnt >= hp_mp.tcache_count)
				hp_corrupt("free(): too many chunks detected in tcache");
			if (hp_misaligned(tmp))
				hp_corrupt("free(): unaligned chunk detected in tcache 2");
			if (tmp == e)
				hp_corrupt("free(): double free detected in tcache 2");
		}
	}
	if (tc->counts[tc_idx] < hp_mp.tcache_count) {
		hp_tcache_put(tc, p, tc_idx);
		return true;
	}
	return false;
}

/* Call fn for every chunk cached in any registered thread's tcache.
 * Lock: none (takes the registry lock; fn must not allocate). */
void hp_tcache_each(void (*fn)(struct hp_chunk *p, void *arg), void *arg);

/* Fork: hold the registry lock in the parent; in the child only the
 * calling thread remains registered. */
void hp_tcache_fork_prepare(void);
void hp_tcache_fork_parent(void);
void hp_tcache_fork_child(void);

#endif
