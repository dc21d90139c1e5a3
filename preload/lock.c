/* SPDX-License-Identifier: MIT */
/*
 * lock.c - slow paths of the futex mutex (see lock.h).
 *
 * Runs inside malloc: no allocation; errno is saved around the futex call
 * because a failed FUTEX_WAIT (EAGAIN) must not leak into the program.
 */
#include "config.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lock.h"

void
hp_mutex_wait(struct hp_mutex *m)
{
	int saved = errno;
	int c;

	/* Spin briefly first: the heap lock is held for short stretches, and
	 * sleeping in the kernel costs far more than the wait. */
	for (int i = 0; i < 200; i++) {
		c = 0;
		if (__atomic_load_n(&m->state, __ATOMIC_RELAXED) == 0 &&
		    __atomic_compare_exchange_n(&m->state, &c, 1, false, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			goto out;
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	}
	c = __atomic_exchange_n(&m->state, 2, __ATOMIC_ACQUIRE);

	while (c != 0) {
		syscall(SYS_futex, &m->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
		c = __atomic_exchange_n(&m->state, 2, __ATOMIC_ACQUIRE);
	}
out:
	errno = saved;
}

void
hp_mutex_wake(struct hp_mutex *m)
{
	int saved = errno;

	syscall(SYS_futex, &m->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	errno = saved;
}
