/* SPDX-License-Identifier: MIT */
/*
 * thread.c - per-thread state and a thread's end (see thread.h).
 *
 * Runs at thread exit: no stdio, no allocation.
 */
#include "config.h"

#include <limits.h>
#include <pthread.h>

#include "record.h"
#include "tarena.h"
#include "tcache.h"
#include "thread.h"

__thread struct hp_thread hp_self __attribute__((tls_model("initial-exec")));

static pthread_key_t exit_key;
static bool exit_key_ok;

void
hp_thread_init(void)
{
	exit_key_ok = pthread_key_create(&exit_key, hp_thread_exit) == 0;
}

void
hp_thread_arm_exit(void)
{
	if (exit_key_ok && pthread_getspecific(exit_key) == NULL) {
		hp_self.guard++;
		pthread_setspecific(exit_key, (void *)1);
		hp_self.guard--;
	}
}

void
hp_thread_exit(void *unused)
{
	(void)unused;
	/* glibc flushes the tcache after every pthread key destructor has
	 * run (__libc_thread_freeres). Keep re-arming this destructor until
	 * the last round so other destructors' frees still reach the tcache. */
	if (++hp_self.exit_rounds < PTHREAD_DESTRUCTOR_ITERATIONS) {
		hp_thread_arm_exit();
		return;
	}
	/* __malloc_arena_thread_freeres: the tcache first (its chunks may
	 * belong to the arena), then the arena. */
	hp_tcache_shutdown();
	hp_tarena_thread_retire();
	hp_record_thread_exit();
}
