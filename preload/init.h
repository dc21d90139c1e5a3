/* SPDX-License-Identifier: MIT */
/*
 * init.h - start-up of the allocator inside the target process.
 *
 * The first allocation may come from ld.so before libc's own start-up has
 * run (ld.so switches to the interposed malloc before __libc_early_init and
 * before any constructor), so hp_init() only reads parameters and sets up
 * the heap's bins. Everything that needs a working libc (the thread-exit
 * key, fork handlers) waits for heapprof's constructor.
 */
#ifndef HP_INIT_H
#define HP_INIT_H

#include <stdbool.h>

extern bool hp_initialized;

/* ptmalloc_init: parameters, tcache key, bins. Idempotent and safe to call
 * from any thread. Lock: none. Allocates: no. AS-safe: no. */
void hp_init_slow(void);

static inline void
hp_init(void)
{
	if (__builtin_expect(!__atomic_load_n(&hp_initialized, __ATOMIC_ACQUIRE), 0))
		hp_init_slow();
}

#endif
