/* SPDX-License-Identifier: MIT */
/*
 * tcache.c - creating, flushing and enumerating the per-thread caches (see
 * tcache.h).
 *
 * Runs inside malloc and at thread exit: no stdio, no allocation but the
 * control block itself, which comes from the heap as in glibc.
 */
#include "config.h"

#include <string.h>

#include "check.h"
#include "heap.h"
#include "tarena.h"
#include "tcache.h"
#include "thread.h"

uintptr_t hp_tcache_key;

/* Threads whose tcache exists. */
static struct hp_thread *registry;
static struct hp_mutex registry_lock = HP_MUTEX_INIT;

static void
registry_add_locked(struct hp_thread *t)
{
	HP_ASSERT(hp_mutex_held(&registry_lock), t->tcache, 10);
	t->prev = NULL;
	t->next = registry;
	if (registry)
		registry->prev = t;
	registry = t;
	t->registered = true;
}

static void
registry_remove_locked(struct hp_thread *t)
{
	HP_ASSERT(hp_mutex_held(&registry_lock), t->tcache, 10);
	if (!t->registered)
		return;
	if (t->prev)
		t->prev->next = t->next;
	else
		registry = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
	t->registered = false;
}

void
hp_tcache_init(void)
{
	struct hp_mstate *av;
	void *victim = NULL;
	bool locked;

	if (hp_self.tcache_shutting_down)
		return;
	av = hp_tarena_get(sizeof(struct hp_tcache), &locked);
	if (av)
		victim = hp_heap_malloc_locked(av, sizeof(struct hp_tcache));
	if (!victim && av) {
		av = hp_tarena_get_retry(av, sizeof(struct hp_tcache), &locked);
		if (av)
			victim = hp_heap_malloc_locked(av, sizeof(struct hp_tcache));
	}
	if (victim) {
		struct hp_chunk *c = hp_mem2chunk(victim);
		HP_OBSERVE(chunk, (uintptr_t)c, hp_chunksize(c), HP_STATE_LIVE);
	}
	if (av)
		hp_mstate_unlock(av, locked);
	if (victim) {
		memset(victim, 0, sizeof(struct hp_tcache));
		hp_mutex_lock(&registry_lock);
		registry_add_locked(&hp_self);
		hp_self.tcache = victim;
		hp_mutex_unlock(&registry_lock);
		hp_thread_arm_exit();
	}
}

/* Free one chunk the way tcache_thread_shutdown's __libc_free does, with
 * the thread's tcache already gone, and report where it ended up. */
static void
flush_free(struct hp_chunk *p)
{
	struct hp_mstate *av = hp_heap_arena_for_chunk(p);
	bool locked = hp_mstate_lock(av);

	hp_heap_free_locked(av, p, true);
	hp_mstate_unlock(av, locked);
}

void
hp_tcache_shutdown(void)
{
	struct hp_tcache *tc = hp_self.tcache;

	hp_self.tcache_shutting_down = true;
	if (tc == NULL)
		return;
	hp_mutex_lock(&registry_lock);
	hp_self.tcache = NULL;
	registry_remove_locked(&hp_self);
	hp_mutex_unlock(&registry_lock);
	for (int i = 0; i < HP_TCACHE_MAX_BINS; ++i) {
		while (tc->entries[i]) {
			struct hp_tcache_entry *e = tc->entries[i];

			if ((uintptr_t)e & HP_ALIGN_MASK)
				hp_corrupt("tcache_thread_shutdown(): unaligned tcache chunk detected");
			tc->entries[i] = hp_protect_ptr(&e->next, e->next);
			flush_free(hp_mem2chunk(e));
		}
	}
	flush_free(hp_mem2chunk(tc));
	HP_CHECK_ALL_SLOW();
}

void
hp_tcache_each(void (*fn)(struct hp_chunk *p, void *arg), void *arg)
{
	hp_mutex_lock(&registry_lock);
	for (struct hp_thread *t = registry; t; t = t->next) {
		struct hp_tcache *tc = t->tcache;

		if (tc == NULL)
			continue;
		for (int i = 0; i < HP_TCACHE_MAX_BINS; ++i)
			for (struct hp_tcache_entry *e = tc->entries[i]; e;
			     e = hp_protect_ptr(&e->next, e->next))
				fn(hp_mem2chunk(e), arg);
	}
	hp_mutex_unlock(&registry_lock);
}

void
hp_tcache_fork_prepare(void)
{
	hp_mutex_lock(&registry_lock);
}

void
hp_tcache_fork_parent(void)
{
	hp_mutex_unlock(&registry_lock);
}

void
hp_tcache_fork_child(void)
{
	hp_mutex_reset(&registry_lock);
	registry = NULL;
	if (hp_self.tcache) {
		hp_mutex_lock(&registry_lock);
		registry_add_locked(&hp_self);
		hp_mutex_unlock(&registry_lock);
	} else {
		hp_self.registered = false;
	}
}
