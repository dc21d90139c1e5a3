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
	int c = __atomic_exchange_n(&m->state, 2, __ATOMIC_ACQUIRE);

	while (c != 0) {
		syscall(SYS_futex, &m->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
		c = __atomic_exchange_n(&m->state, 2, __ATOMIC_ACQUIRE);
	}
	errno = saved;
}

void
hp_mutex_wake(struct hp_mutex *m)
{
	int saved = errno;

	syscall(SYS_futex, &m->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	errno = saved;
}
