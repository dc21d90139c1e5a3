/* SPDX-License-Identifier: MIT */
/*
 * tcache.h - glibc 2.36's per-thread cache, and the per-thread state that
 * goes with it.
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
#include "tune.h"

struct hp_tcache_entry {
	struct hp_tcache_entry *next; /* safe-linked (PROTECT_PTR) */
	uintptr_t key;                /* hp_tcache_key while cached */
};

struct hp_tcache {
	uint16_t counts[HP_TCACHE_MAX_BINS];
	struct hp_tcache_entry *entries[HP_TCACHE_MAX_BINS];
};

struct hp_ring;

/* Everything heapprof keeps per thread, in initial-exec TLS. */
struct hp_thread {
	struct hp_tcache *tcache;
	struct hp_mstate *arena;   /* glibc's thread_arena */
	struct hp_ring *ring;      /* the recorder's ring for this thread */
	int tid;                   /* kernel thread id, once the ring exists */
	bool rec_busy;             /* the recorder is writing a record */
	bool tcache_shutting_down; /* thread exit flushed it; never re-create */
	bool registered;           /* linked into the registry */
	uint8_t exit_rounds;       /* pthread key destructor rounds seen */
	unsigned guard;            /* > 0: heapprof's own code is running */
	struct hp_thread *prev, *next; /* registry of threads with a tcache */
};

extern __thread struct hp_thread hp_self __attribute__((tls_model("initial-exec")));
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
 * attaches the thread to one first) unless the thread is exiting. On failure the thread simply
 * runs without a tcache and tries again next time, as glibc.
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
bool hp_tcache_try_free(struct hp_chunk *p, size_t size);

/* Call fn for every chunk cached in any registered thread's tcache.
 * Lock: none (takes the registry lock; fn must not allocate). */
void hp_tcache_each(void (*fn)(struct hp_chunk *p, void *arg), void *arg);

/* Fork: hold the registry lock in the parent; in the child only the
 * calling thread remains registered. */
void hp_tcache_fork_prepare(void);
void hp_tcache_fork_parent(void);
void hp_tcache_fork_child(void);

/* The pthread key destructor that flushes a thread's tcache at exit;
 * installed by init once libc is up. */
void hp_tcache_thread_exit(void *unused);

#endif
