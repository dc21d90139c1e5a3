/* SPDX-License-Identifier: MIT */
/*
 * thread.h - heapprof's per-thread state, and a thread's end.
 *
 * One struct hp_thread per thread, in initial-exec TLS (hp_self): the
 * allocator's (the tcache, the attached arena), the recorder's (its ring,
 * the thread id) and heapprof's own guard. A thread's end is a pthread key
 * destructor, armed once the thread has a tcache: at its last round it
 * flushes the tcache (tcache.c), retires the arena (tarena.c) and ends the
 * thread's recording (record.c), in glibc's order.
 *
 * Runs inside malloc and at thread exit: no stdio, no allocation, no lock
 * but those of the modules it calls.
 */
#ifndef HP_THREAD_H
#define HP_THREAD_H

#include <stdbool.h>
#include <stdint.h>

struct hp_tcache;
struct hp_mstate;
struct hp_ring;

/* Everything heapprof keeps per thread. */
struct hp_thread {
	struct hp_tcache *tcache;
	struct hp_mstate *arena;   /* glibc's thread_arena */
	struct hp_ring *ring;      /* the recorder's ring for this thread */
	int tid;                   /* kernel thread id, once the ring exists */
	bool rec_busy;             /* the recorder is writing a record */
	bool tcache_shutting_down; /* thread exit flushed it; never re-create */
	bool registered;           /* linked into the tcache registry */
	uint8_t exit_rounds;       /* pthread key destructor rounds seen */
	unsigned guard;            /* > 0: heapprof's own code is running */
	struct hp_thread *prev, *next; /* registry of threads with a tcache */
};

extern __thread struct hp_thread hp_self __attribute__((tls_model("initial-exec")));

/* Create the thread-exit key: from heapprof's constructor, once libc is
 * up (pthread_key_create may allocate: the caller holds the guard).
 * Lock: none. Allocates: selfmem. AS-safe: no. */
void hp_thread_init(void);

/* Make sure this thread's end runs hp_thread_exit (sets the key once
 * hp_thread_init has created it; until then, nothing). Lock: none.
 * Allocates: selfmem (libc's key storage, under the guard). AS-safe: no. */
void hp_thread_arm_exit(void);

/* The key's destructor: re-arms itself until the last round of pthread
 * key destructors (so other destructors' frees still reach the tcache, as
 * glibc flushes it after them all), then ends the thread as glibc's
 * __malloc_arena_thread_freeres does, and its recording. Lock: none (takes
 * them). Allocates: no. AS-safe: no. */
void hp_thread_exit(void *unused);

#endif
