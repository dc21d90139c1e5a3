/* SPDX-License-Identifier: MIT */
/*
 * exports.c - the only definitions of libc's allocation names (the
 * malloc family and heapprof_mark; exits.c defines _exit and the wait
 * family, progmap.c mmap and munmap).
 *
 * Each entry point is glibc 2.36's public wrapper (__libc_malloc,
 * __libc_free, ...) step for step: the same argument checks, errno values,
 * tcache initialisation points and corruption messages, then the heap
 * (heap.c) or mmap (large.c) layer. Allocations made while heapprof's own
 * code runs on this thread (hp_self.guard) go to heapprof's own memory instead
 * and are never seen by the observer. The argument checks' errno values
 * are set here; ENOMEM where glibc's internals set it is set there too, in
 * heap.c (a request the heap cannot grow for, as glibc's sysmalloc), in
 * dtv.c (a thread vector) and by os.c's injected failures in test builds.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "selfmem.h"
#include "check.h"
#include "dtv.h"
#include "heap.h"
#define HEAPPROF_DEFINE 1 /* heapprof_mark is defined here, not weak */
#include "heapprof.h"
#include "init.h"
#include "large.h"
#include "log.h"
#include "observe.h"
#include "record.h"
#include "stats.h"
#include "tarena.h"
#include "tcache.h"
#include "thread.h"
#include "tune.h"
#include "unwind.h"

#define EXPORT __attribute__((visibility("default")))

static inline bool
guarded(void)
{
	return __builtin_expect(hp_self.guard != 0, 0);
}

static void *
guarded_alloc(size_t n, size_t align, bool zero)
{
	void *p = hp_selfmem_alloc(n, align, zero);

	if (p == NULL)
		errno = ENOMEM;
	return p;
}

static enum hp_backing
backing_of(const struct hp_chunk *p)
{
	return hp_chunk_is_mmapped(p)	 ? HP_BACKING_MMAP
	       : hp_chunk_main_arena(p) ? HP_BACKING_BRK
					: HP_BACKING_ARENA;
}

/* Tell the observer of an allocation, with the call stack walked from the
 * allocation call's own frame (unwind.h): a macro, not a function, so that
 * no frame of a helper is walked (and skipped) for every allocation. The
 * array is sized at run time, so the frame grows only when someone
 * observes. The guard is up: libunwind, on the fallback, may allocate. */
#define REPORT_ALLOC(mem_, size_, call_, align_log2_)                          \
	do {                                                                   \
		const struct hp_observer *o_ = hp_observer;                    \
		void *m_ = (mem_);                                             \
		if (__builtin_expect(o_ != NULL, 0) && m_ && o_->alloc) {      \
			struct hp_chunk *p_ = hp_mem2chunk(m_);                \
			unsigned cap_ = o_->stack_slots;                       \
			void *raw_[cap_ ? cap_ : 1];                           \
			int n_ = 0;                                            \
			if (cap_) {                                            \
				hp_self.guard++;                               \
				n_ = hp_unwind_capture(raw_, (int)cap_);       \
				hp_self.guard--;                               \
			}                                                      \
			o_->alloc(m_, (size_), (uintptr_t)p_, hp_chunksize(p_), \
				  backing_of(p_), (call_), (align_log2_), raw_, n_); \
		}                                                              \
	} while (0)

/* __libc_malloc: everything but the tcache hit. */
static __attribute__((noinline)) void *
do_malloc(size_t bytes, enum hp_call call)
{
	size_t tbytes, tc_idx;
	struct hp_tcache *tc;
	void *mem;

	hp_init();
	tbytes = hp_request2size(bytes);
	if (__builtin_expect(tbytes == 0, 0)) {
		errno = ENOMEM;
		return NULL;
	}
	tc_idx = hp_csize2tidx(tbytes);
	if (__builtin_expect(hp_self.tcache == NULL, 0))
		hp_tcache_init();
	tc = hp_self.tcache;
	if (tc_idx < hp_mp.tcache_bins && tc && tc->counts[tc_idx] > 0) {
		mem = hp_tcache_get(tc, tc_idx);
	} else {
		mem = hp_arena_malloc(bytes);
	}
	/* memalign with an alignment malloc gives anyway: 16 */
	REPORT_ALLOC(mem, bytes, call, call == HP_CALL_MEMALIGN ? 4 : 0);
	HP_CHECK_AFTER_CALL();
	return mem;
}

EXPORT void *
malloc(size_t bytes)
{
	struct hp_tcache *tc = hp_self.tcache;
	size_t nb, idx;

	/* The tcache hit, with no stack frame: a thread that has a tcache is
	 * past initialisation; heapprof's guard and observer take the slow
	 * path, as does every call at debug level 3 (checked after it). */
	if (__builtin_expect(HP_DEBUG_CHECKS < 3 && tc != NULL && hp_self.guard == 0 &&
				     hp_observer == NULL,
			     1)) {
		nb = hp_request2size(bytes);
		idx = hp_csize2tidx(nb);
		if (__builtin_expect(nb != 0 && idx < hp_mp.tcache_bins && tc->counts[idx] > 0, 1))
			return hp_tcache_get(tc, idx);
	}
	if (guarded())
		return guarded_alloc(bytes, 16, false);
	return do_malloc(bytes, HP_CALL_MALLOC);
}

/* __libc_free for what the tcache fast path does not take. */
static __attribute__((noinline)) void
do_free(void *mem)
{
	struct hp_chunk *p;
	int err;

	err = errno;
	p = hp_mem2chunk(mem);
	if (hp_selfmem_owns_chunk(p)) {
		if (!hp_dtv_free(mem, free))
			hp_selfmem_free(mem);
	} else if (hp_chunk_is_mmapped(p)) {
		size_t bytes = hp_chunksize(p);
		struct hp_ticket t;

		HP_TICKET(&t);
		hp_large_free(p);
		HP_OBSERVE(free, &t, (uintptr_t)p, bytes, HP_FATE_UNMAPPED, false);
	} else {
		enum hp_fate fate;
		size_t bytes = hp_chunksize(p);
		struct hp_ticket t;

		if (__builtin_expect(hp_self.tcache == NULL, 0))
			hp_tcache_init();
		HP_TICKET(&t);
		fate = hp_heap_free(p);
		HP_OBSERVE(free, &t, (uintptr_t)p, bytes, fate, false);
	}
	HP_CHECK_AFTER_CALL();
	errno = err;
}

/* __libc_free, with errno preserved on every path. */
EXPORT void
free(void *mem)
{
	struct hp_tcache *tc = hp_self.tcache;

	if (mem == NULL)
		return;
	/* The tcache put, with no stack frame: a heap chunk (M clear, so not
	 * an mmap chunk nor heapprof's own), room in its bin, no sign of a
	 * double free, nobody observing, not debug level 3. Touches no errno. */
	if (__builtin_expect(HP_DEBUG_CHECKS < 3 && tc != NULL && hp_observer == NULL, 1)) {
		struct hp_chunk *p = hp_mem2chunk(mem);
		size_t size = hp_chunksize(p), idx = hp_csize2tidx(size);
		struct hp_tcache_entry *e = mem;

		if (__builtin_expect(!(p->size & HP_IS_MMAPPED) && idx < hp_mp.tcache_bins &&
					     tc->counts[idx] < hp_mp.tcache_count &&
					     e->key != hp_tcache_key && size >= HP_MINSIZE &&
					     !(size & HP_ALIGN_MASK) && !((uintptr_t)p & HP_ALIGN_MASK) &&
					     (uintptr_t)p <= (uintptr_t)-size,
				     1)) {
			hp_tcache_put(tc, p, idx);
			return;
		}
	}
	do_free(mem);
}

/* __libc_calloc: no tcache lookup (glibc 2.36 goes straight to
 * _int_malloc), and only memory not fresh from the kernel is cleared. */
static void *
do_calloc(size_t n, size_t elem_size)
{
	ptrdiff_t bytes;
	struct hp_mstate *av;
	struct hp_chunk *oldtop, *p;
	size_t oldtopsize, csz;
	void *mem;
	bool locked;

	if (__builtin_mul_overflow(n, elem_size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	if (guarded())
		return guarded_alloc((size_t)bytes, 16, true);
	hp_init();
	if (__builtin_expect(hp_self.tcache == NULL, 0))
		hp_tcache_init();
	if (__libc_single_threaded) {
		av = &hp_main_arena;
		locked = false;
	} else {
		av = hp_tarena_get((size_t)bytes, &locked);
	}
	if (av) {
		oldtop = av->top;
		oldtopsize = hp_chunksize(oldtop);
		/* Only memory newly obtained from the kernel is known to be
		 * zero: below the main heap's high-water mark, or below what
		 * a thread heap ever made read-write, it may be dirty. */
		if (av == &hp_main_arena) {
			size_t fresh_from = (uintptr_t)hp_main.sbrk_base + av->max_system_mem -
					    (uintptr_t)oldtop;
			if (oldtopsize < fresh_from)
				oldtopsize = fresh_from;
		} else {
			struct hp_mapped_heap *h = hp_mapped_heap_of(oldtop);
			size_t rw = (uintptr_t)h + h->mprotect_size - (uintptr_t)oldtop;
			if (oldtopsize < rw)
				oldtopsize = rw;
		}
	} else {
		oldtop = NULL;
		oldtopsize = 0;
	}
	mem = hp_heap_malloc_locked(av, (size_t)bytes);
	if (!__libc_single_threaded) {
		if (mem == NULL && av != NULL) {
			av = hp_tarena_get_retry(av, (size_t)bytes, &locked);
			mem = hp_heap_malloc_locked(av, (size_t)bytes);
		}
		if (av != NULL)
			hp_mstate_unlock(av, locked);
	}
	if (mem == NULL)
		return NULL;
	p = hp_mem2chunk(mem);
	csz = hp_chunksize(p);
	/* Fresh memory from the kernel is zero unless perturbed or poisoned. */
	if (hp_chunk_is_mmapped(p)) {
		if (__builtin_expect(HP_POISON || hp_mp.perturb_byte, 0))
			memset(mem, 0, (size_t)bytes);
	} else {
		if (!HP_POISON && hp_mp.perturb_byte == 0 && p == oldtop && csz > oldtopsize)
			csz = oldtopsize;
		memset(mem, 0, csz - HP_SIZE_SZ);
	}
	REPORT_ALLOC(mem, (size_t)bytes, HP_CALL_CALLOC, 0);
	HP_CHECK_AFTER_CALL();
	return mem;
}

EXPORT void *
calloc(size_t n, size_t elem_size)
{
	/* A new thread's DTV, asked for by ld.so: sized by TLS modules that
	 * only heapprof brought in; keep the heap's view native (dtv.h). */
	if (__builtin_expect(hp_dtv_is_vector(n, elem_size, __builtin_return_address(0)), 0) &&
	    !guarded())
		return hp_dtv_alloc(n, do_calloc);
	return do_calloc(n, elem_size);
}

/* realloc of a block heapprof's own memory owns (made under the guard). */
static void *
arena_realloc(void *oldmem, size_t bytes)
{
	void *p = hp_dtv_realloc(oldmem, bytes, realloc);

	if (p != HP_DTV_NOT_MINE)
		return p;
	p = hp_selfmem_realloc(oldmem, bytes);

	if (p == NULL)
		errno = ENOMEM;
	return p;
}

/* __libc_realloc. */
EXPORT void *
realloc(void *oldmem, size_t bytes)
{
	struct hp_chunk *oldp, *newp;
	struct hp_mstate *av;
	struct hp_ticket t;
	size_t oldsize, nb;
	enum hp_fate old_fate;
	void *newmem;
	bool locked;

	if (oldmem == NULL && guarded())
		return guarded_alloc(bytes, 16, false);
	hp_init();
	if (bytes == 0 && oldmem != NULL) {
		free(oldmem);
		return NULL;
	}
	if (oldmem == NULL)
		return do_malloc(bytes, HP_CALL_REALLOC);

	oldp = hp_mem2chunk(oldmem);
	if (hp_selfmem_owns_chunk(oldp))
		return arena_realloc(oldmem, bytes);
	oldsize = hp_chunksize(oldp);
	if (!hp_chunk_is_mmapped(oldp) && __builtin_expect(hp_self.tcache == NULL, 0))
		hp_tcache_init();
	if ((uintptr_t)oldp > (uintptr_t)-oldsize || ((uintptr_t)oldp & HP_ALIGN_MASK))
		hp_corrupt("realloc(): invalid pointer");
	nb = hp_request2size(bytes);
	if (nb == 0) {
		errno = ENOMEM;
		return NULL;
	}
	/* One ticket before anything moves: it numbers the old chunk's free
	 * (or its resize in place); the new chunk, if any, gets its own. */
	HP_TICKET(&t);

	if (hp_chunk_is_mmapped(oldp)) {
		newp = hp_large_remap(oldp, nb);
		if (newp) {
			newmem = hp_chunk2mem(newp);
			if (newp == oldp) {
				HP_OBSERVE(resize, &t, bytes, (uintptr_t)newp, oldsize,
					   hp_chunksize(newp));
			} else {
				HP_OBSERVE(free, &t, (uintptr_t)oldp, oldsize, HP_FATE_UNMAPPED, true);
				REPORT_ALLOC(newmem, bytes, HP_CALL_REALLOC, 0);
			}
			return newmem;
		}
		if (oldsize - HP_SIZE_SZ >= nb)
			return oldmem;
		newmem = do_malloc(bytes, HP_CALL_REALLOC);
		if (newmem == NULL)
			return NULL;
		memcpy(newmem, oldmem, oldsize - HP_CHUNK_HDR_SZ);
		hp_large_unmap(oldp);
		HP_OBSERVE(free, &t, (uintptr_t)oldp, oldsize, HP_FATE_UNMAPPED, true);
		return newmem;
	}

	av = hp_heap_arena_for_chunk(oldp);
	locked = hp_mstate_lock(av);
	newmem = hp_heap_realloc_locked(av, oldp, oldsize, nb, &old_fate);
	hp_mstate_unlock(av, locked);
	HP_CHECK_AFTER_CALL();
	if (newmem == NULL && !__libc_single_threaded) {
		/* Try harder, in other arenas (glibc does the same). */
		newmem = do_malloc(bytes, HP_CALL_REALLOC);
		if (newmem != NULL) {
			memcpy(newmem, oldmem, hp_usable(oldp));
			HP_TICKET(&t);
			old_fate = hp_heap_free(oldp);
			HP_OBSERVE(free, &t, (uintptr_t)oldp, oldsize, old_fate, true);
			HP_CHECK_AFTER_CALL();
		}
		return newmem;
	}
	if (newmem && __builtin_expect(hp_observer != NULL, 0)) {
		newp = hp_mem2chunk(newmem);
		if (newp == oldp) {
			HP_OBSERVE(resize, &t, bytes, (uintptr_t)newp, oldsize, hp_chunksize(newp));
		} else {
			HP_OBSERVE(free, &t, (uintptr_t)oldp, oldsize, old_fate, true);
			REPORT_ALLOC(newmem, bytes, HP_CALL_REALLOC, 0);
		}
	}
	return newmem;
}

/* glibc's reallocarray (malloc/reallocarray.c). */
EXPORT void *
reallocarray(void *ptr, size_t nmemb, size_t elem_size)
{
	size_t bytes;

	if (__builtin_mul_overflow(nmemb, elem_size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(ptr, bytes);
}

/* _mid_memalign. Unlike malloc, it does not create the tcache. */
static void *
mid_memalign(size_t alignment, size_t bytes)
{
	void *mem;

	if (alignment <= HP_MALLOC_ALIGNMENT)
		return do_malloc(bytes, HP_CALL_MEMALIGN);
	if (alignment < HP_MINSIZE)
		alignment = HP_MINSIZE;
	if (alignment > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return NULL;
	}
	if (alignment & (alignment - 1)) {
		size_t a = HP_MALLOC_ALIGNMENT * 2;
		while (a < alignment)
			a <<= 1;
		alignment = a;
	}
	mem = hp_arena_memalign(alignment, bytes);
	REPORT_ALLOC(mem, bytes, HP_CALL_MEMALIGN, (unsigned)__builtin_ctzl(alignment));
	HP_CHECK_AFTER_CALL();
	return mem;
}

EXPORT void *
memalign(size_t alignment, size_t bytes)
{
	if (guarded()) {
		if (alignment > SIZE_MAX / 2 + 1) {
			errno = EINVAL;
			return NULL;
		}
		return guarded_alloc(bytes, alignment, false);
	}
	hp_init();
	return mid_memalign(alignment, bytes);
}

/* glibc 2.36: aligned_alloc is memalign (no C17 EINVAL checks before 2.38). */
EXPORT void *aligned_alloc(size_t alignment, size_t bytes) __attribute__((alias("memalign"), copy(memalign)));

EXPORT void *
valloc(size_t bytes)
{
	hp_init();
	if (guarded())
		return guarded_alloc(bytes, hp_mp.pagesize, false);
	return mid_memalign(hp_mp.pagesize, bytes);
}

EXPORT void *
pvalloc(size_t bytes)
{
	size_t ps, rounded;

	hp_init();
	ps = hp_mp.pagesize;
	if (__builtin_add_overflow(bytes, ps - 1, &rounded)) {
		errno = ENOMEM;
		return NULL;
	}
	/* 2.36 masks with -(pagesize - 1), keeping bit 0 (fixed in 2.42). */
	rounded &= -(ps - 1);
	if (guarded())
		return guarded_alloc(rounded, ps, false);
	return mid_memalign(ps, rounded);
}

EXPORT int
posix_memalign(void **memptr, size_t alignment, size_t size)
{
	void *mem;

	hp_init();
	if (alignment % sizeof(void *) != 0 ||
	    ((alignment / sizeof(void *)) & (alignment / sizeof(void *) - 1)) != 0 ||
	    alignment == 0)
		return EINVAL;
	if (guarded())
		mem = hp_selfmem_alloc(size, alignment, false);
	else
		mem = mid_memalign(alignment, size);
	if (mem != NULL) {
		*memptr = mem;
		return 0;
	}
	return ENOMEM;
}

EXPORT size_t
malloc_usable_size(void *mem)
{
	struct hp_chunk *p;

	if (mem == NULL)
		return 0;
	p = hp_mem2chunk(mem);
	if (hp_selfmem_owns_chunk(p))
		return hp_selfmem_usable(mem);
	return hp_usable(p);
}

EXPORT int
malloc_trim(size_t pad)
{
	struct hp_mstate *av;
	int r;
	bool locked;

	hp_init();
	r = 0;
	av = &hp_main_arena;
	do {
		locked = hp_mstate_lock(av);
		r |= hp_heap_trim_locked(av, pad);
		hp_mstate_unlock(av, locked);
		av = av->next;
	} while (av != &hp_main_arena);
	HP_CHECK_AFTER_CALL();
	return r;
}

EXPORT int
mallopt(int param, int value)
{
	int r;
	bool locked;

	hp_init();
	locked = hp_mstate_lock(&hp_main_arena);
	hp_heap_consolidate_locked(&hp_main_arena);
	r = hp_tune_mallopt_locked(param, value);
	hp_record_mallopt(param, value);
	hp_mstate_unlock(&hp_main_arena, locked);
	HP_CHECK_AFTER_CALL();
	return r;
}

EXPORT struct mallinfo2
mallinfo2(void)
{
	struct hp_mstate *av;
	struct mallinfo2 m;
	bool locked;

	hp_init();
	memset(&m, 0, sizeof(m));
	av = &hp_main_arena;
	do {
		locked = hp_mstate_lock(av);
		hp_heap_mallinfo_locked(av, &m);
		hp_mstate_unlock(av, locked);
		av = av->next;
	} while (av != &hp_main_arena);
	return m;
}

EXPORT struct mallinfo
mallinfo(void)
{
	struct mallinfo2 m2 = mallinfo2();
	struct mallinfo m;

	m.arena = (int)m2.arena;
	m.ordblks = (int)m2.ordblks;
	m.smblks = (int)m2.smblks;
	m.hblks = (int)m2.hblks;
	m.hblkhd = (int)m2.hblkhd;
	m.usmblks = (int)m2.usmblks;
	m.fsmblks = (int)m2.fsmblks;
	m.uordblks = (int)m2.uordblks;
	m.fordblks = (int)m2.fordblks;
	m.keepcost = (int)m2.keepcost;
	return m;
}

EXPORT void
malloc_stats(void)
{
	hp_init();
	hp_stats_print(stderr);
}

EXPORT int
malloc_info(int options, FILE *fp)
{
	if (options != 0)
		return EINVAL;
	hp_init();
	return hp_stats_info(fp);
}

/* Old names glibc still exports. */
EXPORT void cfree(void *mem) __attribute__((alias("free"), copy(free)));
EXPORT void *__libc_malloc(size_t) __attribute__((alias("malloc"), copy(malloc)));
EXPORT void __libc_free(void *) __attribute__((alias("free"), copy(free)));
EXPORT void *__libc_calloc(size_t, size_t) __attribute__((alias("calloc"), copy(calloc)));
EXPORT void *__libc_realloc(void *, size_t) __attribute__((alias("realloc"), copy(realloc)));
EXPORT void *__libc_memalign(size_t, size_t) __attribute__((alias("memalign"), copy(memalign)));
EXPORT void *__libc_valloc(size_t) __attribute__((alias("valloc"), copy(valloc)));
EXPORT void *__libc_pvalloc(size_t) __attribute__((alias("pvalloc"), copy(pvalloc)));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
EXPORT struct mallinfo __libc_mallinfo(void) __attribute__((alias("mallinfo"), copy(mallinfo)));
#pragma GCC diagnostic pop
EXPORT int __libc_mallopt(int, int) __attribute__((alias("mallopt"), copy(mallopt)));
EXPORT int __posix_memalign(void **, size_t, size_t) __attribute__((alias("posix_memalign"), copy(posix_memalign)));

/* ---- heapprof's own (heapprof.h) ---- */

EXPORT void
heapprof_mark(const char *name)
{
	int saved = errno;

	hp_init();
	hp_record_mark(name);
	errno = saved;
}
