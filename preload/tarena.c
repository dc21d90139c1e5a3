/* SPDX-License-Identifier: MIT */
/*
 * tarena.c - thread arenas and their mapped heaps (see tarena.h), as
 * glibc 2.36's malloc/arena.c with Debian's get_nprocs() patch.
 *
 * Runs inside malloc: no stdio, no allocation from the tracked heaps. Lock
 * order, as glibc: list_lock, then arena locks; free_list_lock last.
 */
#include "config.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "selfmem.h"
#include "check.h"
#include "heap.h"
#include "log.h"
#include "os.h"
#include "tarena.h"
#include "tcache.h"
#include "thread.h"
#include "tune.h"

static struct hp_mutex list_lock = HP_MUTEX_INIT;
static struct hp_mutex free_list_lock = HP_MUTEX_INIT;
static struct hp_mstate *free_list;
static size_t narenas = 1;
static char *aligned_heap_area;

/* Threads that ran their last destructor round but may still allocate (a
 * later key's destructor, libc's own thread clean-up): their arena stays
 * attached until the kernel says the thread is gone (see retire). */
#define MAX_RETIRED 256
static struct {
	pid_t tid;
	struct hp_mstate *arena;
} retired[MAX_RETIRED];
static unsigned nretired; /* under free_list_lock */

size_t
hp_tarena_heap_max_size(void)
{
	return hp_mp.hp_pagesize == 0 ? HP_HEAP_MAX_SIZE : hp_mp.hp_pagesize * 4;
}

static size_t
heap_min_size(void)
{
	return hp_mp.hp_pagesize == 0 ? HP_HEAP_MIN_SIZE : hp_mp.hp_pagesize;
}

size_t
hp_tarena_count(void)
{
	return __atomic_load_n(&narenas, __ATOMIC_RELAXED);
}

static void
report_heap(struct hp_mapped_heap *h, size_t old_size, size_t new_size)
{
	if (new_size > old_size)
		HP_OBSERVE(map, (uintptr_t)h + old_size, new_size - old_size, false);
	else if (new_size < old_size)
		HP_OBSERVE(unmap, (uintptr_t)h + new_size, old_size - new_size, false);
}

/* ---- heaps ---- */

static struct hp_mapped_heap *
alloc_new_heap(size_t size, size_t top_pad, size_t pagesize, int map_flags)
{
	size_t min_size = heap_min_size(), max_size = hp_tarena_heap_max_size();
	char *p1, *p2 = HP_MAP_FAILED;
	struct hp_mapped_heap *h;

	if (size + top_pad < min_size)
		size = min_size;
	else if (size + top_pad <= max_size)
		size += top_pad;
	else if (size > max_size)
		return NULL;
	else
		size = max_size;
	size = (size + pagesize - 1) & ~(pagesize - 1);

	/* A region aligned to max_size: reuse the aligned second half of the
	 * previous double-size reservation if there is one, else reserve
	 * twice the size and trim it to an aligned block. */
	if (aligned_heap_area) {
		p2 = hp_os_reserve(aligned_heap_area, max_size, map_flags);
		aligned_heap_area = NULL;
		if (p2 != HP_MAP_FAILED && ((uintptr_t)p2 & (max_size - 1))) {
			hp_os_unmap(p2, max_size);
			p2 = HP_MAP_FAILED;
		}
	}
	if (p2 == HP_MAP_FAILED) {
		p1 = hp_os_reserve(NULL, max_size << 1, map_flags);
		if (p1 != HP_MAP_FAILED) {
			uintptr_t ul;

			p2 = (char *)(((uintptr_t)p1 + (max_size - 1)) & ~(uintptr_t)(max_size - 1));
			ul = (uintptr_t)(p2 - p1);
			if (ul)
				hp_os_unmap(p1, ul);
			else
				aligned_heap_area = p2 + max_size;
			hp_os_unmap(p2 + max_size, max_size - ul);
		} else {
			p2 = hp_os_reserve(NULL, max_size, map_flags);
			if (p2 == HP_MAP_FAILED)
				return NULL;
			if ((uintptr_t)p2 & (max_size - 1)) {
				hp_os_unmap(p2, max_size);
				return NULL;
			}
		}
	}
	if (hp_os_protect_rw(p2, size) != 0) {
		hp_os_unmap(p2, max_size);
		return NULL;
	}
	hp_tune_madvise_thp(p2, size);
	h = (struct hp_mapped_heap *)p2;
	h->size = size;
	h->mprotect_size = size;
	h->pagesize = pagesize;
	report_heap(h, 0, size);
	return h;
}

static struct hp_mapped_heap *
new_heap(size_t size, size_t top_pad)
{
	if (hp_mp.hp_pagesize != 0) {
		struct hp_mapped_heap *h =
			alloc_new_heap(size, top_pad, hp_mp.hp_pagesize, hp_mp.hp_flags);
		if (h)
			return h;
	}
	return alloc_new_heap(size, top_pad, hp_mp.pagesize, MAP_NORESERVE);
}

static int
grow_heap(struct hp_mapped_heap *h, long diff)
{
	size_t pagesize = h->pagesize, old = h->size;
	long new_size;

	diff = (long)(((size_t)diff + pagesize - 1) & ~(pagesize - 1));
	new_size = (long)h->size + diff;
	if ((unsigned long)new_size > hp_tarena_heap_max_size())
		return -1;
	if ((size_t)new_size > h->mprotect_size) {
		if (hp_os_protect_rw((char *)h + h->mprotect_size,
				     (size_t)new_size - h->mprotect_size) != 0)
			return -2;
		h->mprotect_size = (size_t)new_size;
	}
	h->size = (size_t)new_size;
	report_heap(h, old, h->size);
	return 0;
}

/* check_may_shrink_heap: decommit instead of madvise under strict
 * overcommit or in secure mode. */
static bool
may_shrink_heap(void)
{
	static int v = -1;

	if (v < 0) {
		char c = 0;

		v = hp_mp.secure;
		if (!v && hp_os_read_file("/proc/sys/vm/overcommit_memory", &c, 1) > 0)
			v = c == '2';
	}
	return v;
}

static int
shrink_heap(struct hp_mapped_heap *h, long diff)
{
	long new_size = (long)h->size - diff;
	size_t old = h->size;

	if (new_size < (long)sizeof(*h))
		return -1;
	if (may_shrink_heap()) {
		if (hp_os_decommit((char *)h + new_size, (size_t)diff) != 0)
			return -2;
		h->mprotect_size = (size_t)new_size;
	} else {
		hp_os_madvise((char *)h + new_size, (size_t)diff, MADV_DONTNEED);
	}
	h->size = (size_t)new_size;
	report_heap(h, old, h->size);
	return 0;
}

static inline struct hp_chunk *
chunk_at(const void *p, long off)
{
	return (struct hp_chunk *)((char *)p + off);
}

/* The chunk before p (only valid when p's P bit is clear). */
static inline struct hp_chunk *
prev_chunk(const struct hp_chunk *p)
{
	return chunk_at(p, -(long)p->prev_size);
}

int
hp_tarena_heap_trim_locked(struct hp_mapped_heap *heap, size_t pad)
{
	struct hp_mstate *ar_ptr = heap->ar_ptr;
	struct hp_chunk *top_chunk = ar_ptr->top, *p;
	size_t max_size = hp_tarena_heap_max_size();
	long new_size, top_size, top_area, extra, prev_size, misalign;

	HP_ASSERT(hp_mstate_held(ar_ptr), heap, 10);
	/* Can this heap go away completely? */
	while (top_chunk == chunk_at(heap, sizeof(*heap))) {
		struct hp_mapped_heap *prev_heap = heap->prev;

		prev_size = (long)prev_heap->size - (HP_MINSIZE - 2 * HP_SIZE_SZ);
		p = chunk_at(prev_heap, prev_size);
		misalign = (long)((uintptr_t)p & HP_ALIGN_MASK);
		p = chunk_at(prev_heap, prev_size - misalign);
		HP_CHECK(p->size == (0 | HP_PREV_INUSE), "heap_trim: no fencepost", p, 8);
		p = prev_chunk(p);
		new_size = (long)hp_chunksize(p) + (HP_MINSIZE - 2 * HP_SIZE_SZ) + misalign;
		if (!(p->size & HP_PREV_INUSE))
			new_size += (long)p->prev_size;
		if (new_size + (long)(max_size - prev_heap->size) <
		    (long)(pad + HP_MINSIZE + heap->pagesize))
			break;
		ar_ptr->system_mem -= heap->size;
		if ((char *)heap + max_size == aligned_heap_area)
			aligned_heap_area = NULL;
		report_heap(heap, heap->size, 0);
		hp_os_unmap(heap, max_size);
		heap = prev_heap;
		if (!(p->size & HP_PREV_INUSE)) {
			p = prev_chunk(p);
			hp_heap_unlink_chunk(p);
		}
		ar_ptr->top = top_chunk = p;
		top_chunk->size = (size_t)new_size | HP_PREV_INUSE;
		/* the fenceposts and whatever they guarded are top again */
		HP_OBSERVE(chunk, (uintptr_t)p, (size_t)new_size, HP_STATE_FREE);
		HP_CHECK_SLOW_PATH(ar_ptr);
	}

	top_size = (long)hp_chunksize(top_chunk);
	if ((unsigned long)top_size < (unsigned long)hp_mp.trim_threshold)
		return 0;
	top_area = top_size - HP_MINSIZE - 1;
	if (top_area < 0 || (size_t)top_area <= pad)
		return 0;
	extra = (long)(((size_t)top_area - pad) & ~(heap->pagesize - 1));
	if (extra == 0)
		return 0;
	if (shrink_heap(heap, extra) != 0)
		return 0;
	ar_ptr->system_mem -= (size_t)extra;
	top_chunk->size = (size_t)(top_size - extra) | HP_PREV_INUSE;
	HP_CHECK_SLOW_PATH(ar_ptr);
	return 1;
}

bool
hp_tarena_grow_locked(struct hp_mstate *av, size_t nb)
{
	struct hp_chunk *old_top = av->top;
	size_t old_size = hp_chunksize(old_top);
	struct hp_mapped_heap *old_heap = hp_mapped_heap_of(old_top), *heap;
	size_t old_heap_size = old_heap->size;

	HP_ASSERT(hp_mstate_held(av), av, 10);
	if ((long)(HP_MINSIZE + nb - old_size) > 0 &&
	    grow_heap(old_heap, (long)(HP_MINSIZE + nb - old_size)) == 0) {
		av->system_mem += old_heap->size - old_heap_size;
		old_top->size = (size_t)((char *)old_heap + old_heap->size - (char *)old_top) |
				HP_PREV_INUSE;
		HP_ASSERT(hp_chunksize(old_top) >= nb + HP_MINSIZE, old_top, 6);
		return true;
	}
	heap = new_heap(nb + (HP_MINSIZE + sizeof(*heap)), hp_mp.top_pad);
	if (heap == NULL)
		return false;
	heap->ar_ptr = av;
	heap->prev = old_heap;
	av->system_mem += heap->size;
	av->top = chunk_at(heap, sizeof(*heap));
	av->top->size = (heap->size - sizeof(*heap)) | HP_PREV_INUSE;

	/* Fence off the old top (a fencepost of size 0 that may become the
	 * top again, with a 16-byte chunk before it) and free the rest. */
	old_size = (old_size - HP_MINSIZE) & ~(size_t)HP_ALIGN_MASK;
	chunk_at(old_top, (long)(old_size + HP_CHUNK_HDR_SZ))->size = 0 | HP_PREV_INUSE;
	if (old_size >= HP_MINSIZE) {
		struct hp_chunk *fp = chunk_at(old_top, (long)old_size);

		fp->size = HP_CHUNK_HDR_SZ | HP_PREV_INUSE;
		chunk_at(fp, HP_CHUNK_HDR_SZ)->prev_size = HP_CHUNK_HDR_SZ;
		old_top->size = old_size | HP_PREV_INUSE | HP_NON_MAIN_ARENA;
		HP_OBSERVE(chunk, (uintptr_t)fp, 2 * HP_CHUNK_HDR_SZ, HP_STATE_LIVE);
		hp_heap_free_locked(av, old_top, true);
	} else {
		old_top->size = (old_size + HP_CHUNK_HDR_SZ) | HP_PREV_INUSE;
		chunk_at(old_top, (long)(old_size + HP_CHUNK_HDR_SZ))->prev_size =
			old_size + HP_CHUNK_HDR_SZ;
		HP_OBSERVE(chunk, (uintptr_t)old_top, old_size + 2 * HP_CHUNK_HDR_SZ,
			   HP_STATE_LIVE);
	}
	return true;
}

/* ---- arenas ---- */

static void
detach_arena_locked(struct hp_mstate *replaced)
{
	HP_ASSERT(hp_mutex_held(&free_list_lock), replaced, 10);
	if (replaced != NULL)
		--replaced->attached_threads;
}

static struct hp_mstate *
int_new_arena(size_t size)
{
	struct hp_mapped_heap *h;
	struct hp_mstate *a, *replaced;
	char *ptr;
	uintptr_t misalign;

	h = new_heap(size + (sizeof(*h) + sizeof(*a) + HP_MALLOC_ALIGNMENT), hp_mp.top_pad);
	if (!h) {
		/* Maybe size is too large for one heap: a minimal arena, and
		 * let _int_malloc use mmap for the request. */
		h = new_heap(sizeof(*h) + sizeof(*a) + HP_MALLOC_ALIGNMENT, hp_mp.top_pad);
		if (!h)
			return NULL;
	}
	a = h->ar_ptr = (struct hp_mstate *)(h + 1);
	hp_heap_init_state(a);
	a->attached_threads = 1;
	a->system_mem = a->max_system_mem = h->size;

	ptr = (char *)(a + 1);
	misalign = (uintptr_t)(ptr + HP_CHUNK_HDR_SZ) & HP_ALIGN_MASK;
	if (misalign > 0)
		ptr += HP_MALLOC_ALIGNMENT - misalign;
	a->top = (struct hp_chunk *)ptr;
	a->top->size = (size_t)((char *)h + h->size - ptr) | HP_PREV_INUSE;
	/* heap_info, the malloc_state and the alignment gap: bookkeeping in
	 * the arena's own memory, not free space */
	HP_OBSERVE(chunk, (uintptr_t)h, (size_t)(ptr - (char *)h), HP_STATE_LIVE);

	replaced = hp_self.arena;
	hp_self.arena = a;
	hp_mutex_reset(&a->lock);

	hp_mutex_lock(&list_lock);
	a->next = hp_main_arena.next;
	__atomic_store_n(&hp_main_arena.next, a, __ATOMIC_RELEASE);
	hp_mutex_unlock(&list_lock);

	hp_mutex_lock(&free_list_lock);
	detach_arena_locked(replaced);
	hp_mutex_unlock(&free_list_lock);

	hp_mutex_lock(&a->lock);
	HP_CHECK_SLOW_PATH(a);
	return a;
}

static void
detach_locked(struct hp_mstate *a)
{
	HP_ASSERT(hp_mutex_held(&free_list_lock), a, 10);
	if (--a->attached_threads == 0) {
		a->next_free = free_list;
		free_list = a;
	}
}

/* Detach the arenas of retired threads that have exited since. */
static void
reap_retired(void)
{
	pid_t pid;

	if (__atomic_load_n(&nretired, __ATOMIC_RELAXED) == 0)
		return;
	pid = getpid();
	hp_mutex_lock(&free_list_lock);
	/* In retirement order, so that the free list (LIFO) ends up as if
	 * each thread had detached when it exited, as in glibc. */
	unsigned kept = 0;
	for (unsigned i = 0; i < nretired; i++) {
		int saved = errno;
		long r = syscall(SYS_tgkill, pid, retired[i].tid, 0);
		bool gone = r != 0 && errno == ESRCH;

		errno = saved;
		if (gone)
			detach_locked(retired[i].arena);
		else
			retired[kept++] = retired[i];
	}
	nretired = kept;
	hp_mutex_unlock(&free_list_lock);
}

static struct hp_mstate *
get_free_list(void)
{
	struct hp_mstate *replaced = hp_self.arena, *result = free_list;

	if (result != NULL) {
		hp_mutex_lock(&free_list_lock);
		result = free_list;
		if (result != NULL) {
			free_list = result->next_free;
			result->attached_threads = 1;
			detach_arena_locked(replaced);
		}
		hp_mutex_unlock(&free_list_lock);
		if (result != NULL) {
			hp_mutex_lock(&result->lock);
			hp_self.arena = result;
		}
	}
	return result;
}

static void
remove_from_free_list_locked(struct hp_mstate *arena)
{
	struct hp_mstate **previous = &free_list;

	HP_ASSERT(hp_mutex_held(&free_list_lock), arena, 10);
	for (struct hp_mstate *p = free_list; p != NULL; p = p->next_free) {
		if (p == arena) {
			*previous = p->next_free;
			break;
		}
		previous = &p->next_free;
	}
}

static struct hp_mstate *
reused_arena(struct hp_mstate *avoid_arena)
{
	static struct hp_mstate *next_to_use;
	struct hp_mstate *result, *replaced;

	if (next_to_use == NULL)
		next_to_use = &hp_main_arena;
	result = next_to_use;
	do {
		if (hp_mutex_trylock(&result->lock))
			goto out;
		result = __atomic_load_n(&result->next, __ATOMIC_ACQUIRE);
	} while (result != next_to_use);
	if (result == avoid_arena)
		result = result->next;
	hp_mutex_lock(&result->lock);
out:
	replaced = hp_self.arena;
	hp_mutex_lock(&free_list_lock);
	detach_arena_locked(replaced);
	remove_from_free_list_locked(result);
	++result->attached_threads;
	hp_mutex_unlock(&free_list_lock);
	hp_self.arena = result;
	next_to_use = result->next;
	return result;
}

static int
nprocs(void)
{
	int n;

	/* get_nprocs reads sysfs with a stack buffer; keep anything it might
	 * allocate out of the tracked heap anyway. */
	hp_self.guard++;
	n = get_nprocs();
	hp_self.guard--;
	return n;
}

static struct hp_mstate *
arena_get2(size_t size, struct hp_mstate *avoid_arena)
{
	static size_t narenas_limit;
	struct hp_mstate *a;

	reap_retired();
	a = get_free_list();

	if (a != NULL)
		return a;
	if (narenas_limit == 0) {
		if (hp_mp.arena_max != 0) {
			narenas_limit = hp_mp.arena_max;
		} else if (narenas > hp_mp.arena_test) {
			int n = nprocs();
			narenas_limit = (size_t)(n >= 1 ? n : 2) * 8;
		}
	}
	for (;;) {
		size_t n = __atomic_load_n(&narenas, __ATOMIC_RELAXED);

		/* (size_t)0 - 1 is huge: no limit while narenas_limit is 0. */
		if (n <= narenas_limit - 1) {
			if (!__atomic_compare_exchange_n(&narenas, &n, n + 1, false,
							 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				continue;
			a = int_new_arena(size);
			if (a == NULL)
				__atomic_sub_fetch(&narenas, 1, __ATOMIC_RELAXED);
		} else {
			a = reused_arena(avoid_arena);
		}
		return a;
	}
}

struct hp_mstate *
hp_tarena_get(size_t size, bool *locked)
{
	struct hp_mstate *a = hp_self.arena;

	if (a != NULL) {
		*locked = hp_mstate_lock(a);
		return a;
	}
	a = arena_get2(size, NULL);
	*locked = a != NULL;
	return a;
}

struct hp_mstate *
hp_tarena_get_retry(struct hp_mstate *av, size_t bytes, bool *locked)
{
	hp_mstate_unlock(av, *locked);
	if (av != &hp_main_arena) {
		av = &hp_main_arena;
		*locked = hp_mstate_lock(av);
		return av;
	}
	av = arena_get2(bytes, av);
	*locked = av != NULL;
	return av;
}

void
hp_tarena_thread_retire(void)
{
	struct hp_mstate *a = hp_self.arena;
	pid_t tid = (pid_t)syscall(SYS_gettid);

	if (a == NULL)
		return;
	hp_mutex_lock(&free_list_lock);
	/* heapprof advise's replay (os-sim.h): a replayed thread ends at its
	 * recorded exit, with nothing of it left running, so it detaches now,
	 * as glibc's thread exit does. */
	if (!HP_OS_SIM && nretired < MAX_RETIRED) {
		retired[nretired].tid = tid;
		retired[nretired].arena = a;
		nretired++;
		a = NULL;
	}
	hp_mutex_unlock(&free_list_lock);
	if (a != NULL) {
		/* No room to wait: detach now, as if the thread were gone. */
		hp_self.arena = NULL;
		hp_mutex_lock(&free_list_lock);
		detach_locked(a);
		hp_mutex_unlock(&free_list_lock);
	}
}

void
hp_tarena_fork_prepare(void)
{
	hp_mutex_lock(&list_lock);
	struct hp_mstate *a = &hp_main_arena;
	do {
		hp_mutex_lock(&a->lock);
		a = a->next;
	} while (a != &hp_main_arena);
}

void
hp_tarena_fork_parent(void)
{
	struct hp_mstate *a = &hp_main_arena;

	do {
		hp_mutex_unlock(&a->lock);
		a = a->next;
	} while (a != &hp_main_arena);
	hp_mutex_unlock(&list_lock);
}

void
hp_tarena_fork_child(void)
{
	struct hp_mstate *a = &hp_main_arena;

	hp_mutex_reset(&free_list_lock);
	if (hp_self.arena != NULL)
		hp_self.arena->attached_threads = 1;
	free_list = NULL;
	nretired = 0;
	do {
		hp_mutex_reset(&a->lock);
		if (a != hp_self.arena) {
			a->attached_threads = 0;
			a->next_free = free_list;
			free_list = a;
		}
		a = a->next;
	} while (a != &hp_main_arena);
	hp_mutex_reset(&list_lock);
}
