/* SPDX-License-Identifier: MIT */
/*
 * init.c - lazy start-up, the constructor, and fork handling.
 *
 * hp_init_slow() can run inside ld.so's first call to malloc: no stdio, no
 * getenv, no threads, no atexit there. The constructor runs once libc is
 * up and installs what needs it: the pthread key whose destructor flushes
 * an exiting thread's tcache, and the fork handlers that keep the heap lock
 * consistent across fork().
 */
#include "config.h"

#include <pthread.h>
#include <sys/single_threaded.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "selfmem.h"
#include "check.h"
#include "dtv.h"
#include "heap.h"
#include "init.h"
#include "os.h"
#include "record.h"
#include "tarena.h"
#include "tcache.h"
#include "thread.h"
#include "tune.h"

bool hp_initialized;

static int init_state; /* 0 not started, 1 running, 2 done */
static bool fork_locked;

void
hp_init_slow(void)
{
	int expected = 0;

	if (!__atomic_compare_exchange_n(&init_state, &expected, 1, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		/* Another thread is initialising: wait for it. */
		while (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != 2)
			syscall(SYS_sched_yield);
		return;
	}
	hp_tune_init();
	if (!hp_os_random(&hp_tcache_key, sizeof(hp_tcache_key))) {
		/* glibc falls back to random_bits() (clock based). */
		uintptr_t k = (uintptr_t)&k;
		hp_tcache_key = k * 0x9e3779b97f4a7c15ULL ^ (uintptr_t)__builtin_frame_address(0);
	}
	hp_heap_init_state(&hp_main_arena);
	hp_self.arena = &hp_main_arena;
	__atomic_store_n(&hp_initialized, true, __ATOMIC_RELEASE);
	hp_record_init(hp_initial_envp());
	__atomic_store_n(&init_state, 2, __ATOMIC_RELEASE);
}

static void
fork_prepare(void)
{
	hp_record_fork_prepare();
	/* glibc takes its malloc locks only in a multi-threaded parent (so a
	 * single-threaded fork from a signal handler cannot deadlock), and
	 * after every other prepare handler: ours is registered first, so it
	 * runs last. */
	if (__libc_single_threaded)
		return;
	hp_tarena_fork_prepare();
	hp_tcache_fork_prepare();
	hp_selfmem_fork_prepare();
	fork_locked = true;
}

static void
fork_parent(void)
{
	if (fork_locked) {
		fork_locked = false;
		hp_selfmem_fork_parent();
		hp_tcache_fork_parent();
		hp_tarena_fork_parent();
	}
}

static void
fork_child(void)
{
	/* The parent held every lock: the heaps are whole (a single-threaded
	 * fork may come from a signal handler in the middle of malloc). */
	bool whole = fork_locked;

	fork_locked = false;
	hp_tarena_fork_child();
	hp_selfmem_fork_child();
	hp_tcache_fork_child();
	hp_record_fork_child();
	if (whole)
		HP_CHECK_ALL_SLOW();
}

__attribute__((constructor(101))) static void
hp_constructor(void)
{
	hp_init();
	hp_self.guard++;
	hp_thread_init();
	hp_dtv_init();
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	hp_self.guard--;
	if (hp_self.tcache)
		hp_thread_arm_exit();
	hp_record_constructor();
}
