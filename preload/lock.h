/* SPDX-License-Identifier: MIT */
/*
 * lock.h - the futex mutex heapprof uses inside malloc.
 *
 * Three states (0 free, 1 held, 2 held with waiters), as in Drepper's
 * "Futexes Are Tricky". Unlike pthread_mutex_t it needs no libc
 * initialisation (ld.so calls malloc before libc's early init), and a
 * forked child can reset it by storing 0.
 */
#ifndef HP_LOCK_H
#define HP_LOCK_H

#include <stdbool.h>

struct hp_mutex {
	int state;
};

#define HP_MUTEX_INIT { 0 }

/* Slow paths: block until the lock is ours / wake one waiter. errno is
 * preserved. Lock: none. Allocates: no. AS-safe: yes. */
void hp_mutex_wait(struct hp_mutex *m);
void hp_mutex_wake(struct hp_mutex *m);

static inline void
hp_mutex_lock(struct hp_mutex *m)
{
	int c = 0;

	if (__builtin_expect(__atomic_compare_exchange_n(&m->state, &c, 1, false,
							 __ATOMIC_ACQUIRE,
							 __ATOMIC_RELAXED),
			     1))
		return;
	hp_mutex_wait(m);
}

static inline bool
hp_mutex_trylock(struct hp_mutex *m)
{
	int c = 0;

	return __atomic_compare_exchange_n(&m->state, &c, 1, false, __ATOMIC_ACQUIRE,
					   __ATOMIC_RELAXED);
}

static inline void
hp_mutex_unlock(struct hp_mutex *m)
{
	if (__builtin_expect(__atomic_exchange_n(&m->state, 0, __ATOMIC_RELEASE) == 2, 0))
		hp_mutex_wake(m);
}

/* Whether someone holds m: for assertions (it cannot say who). */
static inline bool
hp_mutex_held(const struct hp_mutex *m)
{
	return __atomic_load_n(&m->state, __ATOMIC_RELAXED) != 0;
}

/* For a forked child: the lock is free whatever the parent's threads did. */
static inline void
hp_mutex_reset(struct hp_mutex *m)
{
	__atomic_store_n(&m->state, 0, __ATOMIC_RELAXED);
}

#endif
