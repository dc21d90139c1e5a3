/* SPDX-License-Identifier: MIT */
/*
 * mt-stress - many threads allocating, sharing and freeing, with every byte
 * of every live object checked. Proves that the allocator never hands out
 * overlapping memory, never scribbles on live objects (including across
 * realloc, calloc and the aligned allocators, in thread arenas and in mmap
 * chunks), accepts frees from any thread, flushes an exiting thread's cache
 * and reuses the arenas of exited threads instead of growing without bound,
 * and that malloc_trim and mallinfo2 stay consistent afterwards.
 *
 * Semantics mirror mimalloc's test-stress (threads re-created every round,
 * a working set of cookie-filled objects, a shared transfer array for
 * cross-thread frees) and glibc's tst-malloc-thread-exit (short-lived
 * threads that allocate and free in their TSD destructors must not leak
 * arenas). The code is our own.
 *
 * Usage: mt-stress [threads=4] [rounds=20] [seed]
 * Runs natively and under LD_PRELOAD=libheapprof.so; both must pass.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "rng.h"

#define LOCAL_SLOTS 512        /* per-thread working set */
#define TRANSFER_SLOTS 1024    /* shared between all threads */
#define OPS_PER_ROUND 20000    /* per thread and round */
#define MAX_OBJECT (1u << 20)  /* largest object size */
#define CHURN_THREADS 200
#define CHURN_BATCH 8
#define CHURN_ALLOCS 100
#define CHURN_HANDOFF 16
#define KIB 1024u
#define MIB (1024u * 1024u)

static const uint64_t default_seed = 0x6d742d7374726573ULL;

/* ---- failures from worker threads (the harness is not thread-safe) ---- */

static atomic_ulong thread_failures;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

static void
thread_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
thread_fail(const char *fmt, ...)
{
	va_list ap;

	/* Print the first few, count them all; main turns the count into a
	 * CHECK. */
	if (atomic_fetch_add(&thread_failures, 1) < 20) {
		pthread_mutex_lock(&report_lock);
		printf("FAIL (thread) - ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
		pthread_mutex_unlock(&report_lock);
	}
}

/* ---- random numbers: xorshift64*, one generator per thread ---- */

static uint64_t
rng_seed(uint64_t base, uint64_t stream)
{
	uint64_t s = base ^ (stream + 1) * 0x9e3779b97f4a7c15ULL;

	return s ? s : 1;
}

/* ---- cookies ----
 * Word 0 of an object holds its size xor a hash of its address; every other
 * byte is a pattern derived from (address, size). Two live objects that
 * overlap, a write into a live object, or a wrong realloc copy all show up
 * as a mismatch, and any thread can check an object knowing only its
 * address. */

static inline uint64_t
header_key(uintptr_t p)
{
	return mix((uint64_t)p ^ 0x68656170ULL);
}

static inline uint64_t
cookie_base(uintptr_t p, size_t size)
{
	return mix((uint64_t)p * 0x9e3779b97f4a7c15ULL + size);
}

#define COOKIE_STEP 0xd6e8feb86659fd93ULL

static inline unsigned char
expected_byte(uintptr_t p, size_t size, size_t off)
{
	size_t nwords = size / 8;
	uint64_t w;

	if (off < nwords * 8) {
		size_t i = off / 8;

		w = i == 0 ? (uint64_t)size ^ header_key(p)
			   : cookie_base(p, size) + i * COOKIE_STEP;
		return (unsigned char)(w >> (8 * (off % 8)));
	}
	return (unsigned char)(cookie_base(p, size) >> (8 * (off - nwords * 8))) ^ 0xa5;
}

static void
cookie_fill(unsigned char *mem, size_t size)
{
	uintptr_t p = (uintptr_t)mem;
	uint64_t base = cookie_base(p, size), w;
	size_t nwords = size / 8;

	w = (uint64_t)size ^ header_key(p);
	memcpy(mem, &w, 8);
	for (size_t i = 1; i < nwords; i++) {
		w = base + i * COOKIE_STEP;
		memcpy(mem + 8 * i, &w, 8);
	}
	for (size_t off = nwords * 8; off < size; off++)
		mem[off] = expected_byte(p, size, off);
}

/* Compare the first `limit` bytes of mem with the pattern of an object of
 * `size` bytes that lived at address `as`. Returns the offset of the first
 * difference, or SIZE_MAX. */
static size_t
cookie_diff(const unsigned char *mem, uintptr_t as, size_t size, size_t limit)
{
	uint64_t base = cookie_base(as, size), w, got;
	size_t nwords = size / 8, full = limit / 8, off;

	if (full > nwords)
		full = nwords;
	if (full > 0) {
		memcpy(&got, mem, 8);
		if (got != ((uint64_t)size ^ header_key(as)))
			return 0;
	}
	for (size_t i = 1; i < full; i++) {
		w = base + i * COOKIE_STEP;
		memcpy(&got, mem + 8 * i, 8);
		if (got != w)
			return 8 * i;
	}
	for (off = full * 8; off < limit; off++)
		if (mem[off] != expected_byte(as, size, off))
			return off;
	return SIZE_MAX;
}

/* The size an object claims in its header, or 0 if it is implausible. */
static size_t
cookie_size(const unsigned char *mem)
{
	uint64_t w;

	memcpy(&w, mem, 8);
	w ^= header_key((uintptr_t)mem);
	return w >= 8 && w <= MAX_OBJECT ? (size_t)w : 0;
}

/* Check a whole object; `size` 0 means "read it from the header". Returns
 * its size, or 0 after reporting a failure. */
static size_t
cookie_check(const unsigned char *mem, size_t size, const char *what)
{
	size_t claimed = cookie_size(mem), off;

	if (claimed == 0 || (size != 0 && claimed != size)) {
		thread_fail("%s: header of %p is corrupt (claims %zu, expected %zu)", what,
			    (void *)mem, claimed, size);
		return 0;
	}
	off = cookie_diff(mem, (uintptr_t)mem, claimed, claimed);
	if (off != SIZE_MAX) {
		thread_fail("%s: object %p of %zu bytes corrupt at offset %zu", what,
			    (void *)mem, claimed, off);
		return 0;
	}
	if (malloc_usable_size((void *)mem) < claimed) {
		thread_fail("%s: malloc_usable_size(%p) = %zu < %zu", what, (void *)mem,
			    malloc_usable_size((void *)mem), claimed);
		return 0;
	}
	return claimed;
}

/* ---- sizes and allocation methods ---- */

static size_t
pick_size(uint64_t *rng)
{
	uint64_t r = rng_next(rng);
	unsigned m = (unsigned)(r % 1000);

	r >>= 16;
	if (m < 920) /* mostly small, half of them tiny */
		return 8 + (size_t)(r % ((r & 1) ? 120 : 1017));
	if (m < 998)
		return KIB + 1 + (size_t)(r % (64 * KIB - KIB));
	return 200 * KIB + (size_t)(r % (MAX_OBJECT - 200 * KIB + 1));
}

struct counters {
	unsigned long mallocs, callocs, aligned, reallocs, frees, cross_frees, checks;
};

static int
is_aligned(const void *p, size_t a)
{
	return ((uintptr_t)p & (a - 1)) == 0;
}

/* Allocate `size` bytes by a randomly chosen method, check what the method
 * promises, and fill in the cookie. NULL after reporting a failure. */
static unsigned char *
alloc_object(uint64_t *rng, size_t size, struct counters *c)
{
	uint64_t r = rng_next(rng);
	unsigned m = (unsigned)(r % 100);
	unsigned char *p;
	size_t align = 16;

	r >>= 8;
	if (m < 70) {
		p = malloc(size);
		c->mallocs++;
	} else if (m < 85) {
		size_t n = (r & 1) ? 1 : size, each = (r & 1) ? size : 1;

		if ((r & 2) && size % 8 == 0) {
			n = size / 8;
			each = 8;
		}
		p = calloc(n, each);
		c->callocs++;
		if (p) {
			for (size_t i = 0; i < size; i++)
				if (p[i] != 0) {
					thread_fail("calloc(%zu, %zu) = %p: byte %zu is %#x, not 0",
						    n, each, (void *)p, i, p[i]);
					break;
				}
		}
	} else {
		void *v = NULL;
		int err;

		align = (size_t)16 << (r % 9); /* 16 .. 4096 */
		if ((r >> 4) % 64 == 0)
			align = 64 * KIB;
		r >>= 10;
		c->aligned++;
		switch (r % 3) {
		case 0:
			err = posix_memalign(&v, align, size);
			if (err != 0) {
				thread_fail("posix_memalign(%zu, %zu) failed: %d", align, size, err);
				v = NULL;
			}
			break;
		case 1:
			v = aligned_alloc(align, size);
			break;
		default:
			v = memalign(align, size);
			break;
		}
		p = v;
	}
	if (p == NULL) {
		thread_fail("allocation of %zu bytes (method %u) returned NULL: %s", size, m,
			    strerror(errno));
		return NULL;
	}
	if (!is_aligned(p, align))
		thread_fail("%p is not %zu-aligned (size %zu, method %u)", (void *)p, align,
			    size, m);
	if (malloc_usable_size(p) < size)
		thread_fail("malloc_usable_size(%p) = %zu < %zu", (void *)p,
			    malloc_usable_size(p), size);
	cookie_fill(p, size);
	return p;
}

static void
release_object(unsigned char *p, size_t size, struct counters *c, const char *what)
{
	cookie_check(p, size, what);
	free(p);
	c->frees++;
}

/* ---- phase 1: rounds of worker threads ---- */

struct slot {
	unsigned char *p;
	size_t size;
};

struct worker {
	pthread_t tid;
	unsigned id;
	uint64_t seed;
	struct counters c;
};

static _Atomic(uintptr_t) transfer[TRANSFER_SLOTS];

static void
realloc_slot(struct slot *s, uint64_t *rng, struct counters *c)
{
	size_t old_size = s->size, new_size, keep, off;
	uintptr_t old_addr = (uintptr_t)s->p;
	unsigned char *q;

	if (cookie_check(s->p, old_size, "before realloc") == 0) {
		s->p = NULL;
		return;
	}
	/* Shrink, grow a little, or move to a random size. */
	switch (rng_next(rng) % 3) {
	case 0:
		new_size = old_size > 16 ? 8 + old_size / 2 : old_size;
		break;
	case 1:
		new_size = old_size + 1 + rng_next(rng) % 256;
		break;
	default:
		new_size = pick_size(rng);
		break;
	}
	if (new_size > MAX_OBJECT)
		new_size = MAX_OBJECT;
	q = realloc(s->p, new_size);
	c->reallocs++;
	if (q == NULL) {
		/* The old block is still ours. */
		thread_fail("realloc(%#" PRIxPTR ", %zu) returned NULL", old_addr, new_size);
		free((void *)old_addr);
		s->p = NULL;
		return;
	}
	if (!is_aligned(q, 16))
		thread_fail("realloc returned misaligned %p", (void *)q);
	keep = old_size < new_size ? old_size : new_size;
	off = cookie_diff(q, old_addr, old_size, keep);
	if (off != SIZE_MAX)
		thread_fail("realloc(%#" PRIxPTR ", %zu -> %zu) = %p lost the prefix at %zu",
			    old_addr, old_size, new_size, (void *)q, off);
	if (malloc_usable_size(q) < new_size)
		thread_fail("realloc: malloc_usable_size(%p) = %zu < %zu", (void *)q,
			    malloc_usable_size(q), new_size);
	cookie_fill(q, new_size);
	s->p = q;
	s->size = new_size;
}

/* Swap a local object (or nothing) with a random transfer slot. What comes
 * back was most likely allocated by another thread, maybe one that has
 * exited: free it here, or adopt it. */
static void
transfer_slot(struct slot *s, uint64_t *rng, struct counters *c)
{
	uint64_t r = rng_next(rng);
	uintptr_t got = atomic_exchange(&transfer[r % TRANSFER_SLOTS], (uintptr_t)s->p);
	unsigned char *g = (unsigned char *)got;
	size_t size;

	s->p = NULL;
	if (g == NULL)
		return;
	size = cookie_check(g, 0, "transferred");
	if (size == 0)
		return; /* leak it: freeing a corrupt object could crash */
	if ((r >> 32) & 1) {
		free(g);
		c->frees++;
		c->cross_frees++;
	} else {
		s->p = g;
		s->size = size;
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t rng = w->seed;
	struct slot *local = calloc(LOCAL_SLOTS, sizeof(*local));

	if (local == NULL) {
		thread_fail("worker %u: no memory for its slots", w->id);
		return NULL;
	}
	for (unsigned i = 0; i < OPS_PER_ROUND; i++) {
		uint64_t r = rng_next(&rng);
		struct slot *s = &local[r % LOCAL_SLOTS];
		unsigned op = (unsigned)((r >> 32) % 100);

		if (op < 45) {
			if (s->p)
				release_object(s->p, s->size, &w->c, "replace");
			s->size = pick_size(&rng);
			s->p = alloc_object(&rng, s->size, &w->c);
		} else if (op < 60) {
			if (s->p)
				realloc_slot(s, &rng, &w->c);
		} else if (op < 75) {
			transfer_slot(s, &rng, &w->c);
		} else if (s->p) {
			cookie_check(s->p, s->size, "verify");
			w->c.checks++;
		}
	}
	/* Leave about one object in eight to outlive this thread. */
	for (unsigned i = 0; i < LOCAL_SLOTS; i++) {
		struct slot *s = &local[i];

		if (s->p == NULL)
			continue;
		if (rng_next(&rng) % 8 == 0)
			transfer_slot(s, &rng, &w->c);
		if (s->p)
			release_object(s->p, s->size, &w->c, "thread end");
	}
	free(local);
	return NULL;
}

static void
drain_transfer(struct counters *c)
{
	for (unsigned i = 0; i < TRANSFER_SLOTS; i++) {
		unsigned char *g = (unsigned char *)atomic_exchange(&transfer[i], 0);

		if (g && cookie_check(g, 0, "drain") != 0) {
			free(g);
			c->frees++;
		}
	}
}

static void
add_counters(struct counters *sum, const struct counters *c)
{
	sum->mallocs += c->mallocs;
	sum->callocs += c->callocs;
	sum->aligned += c->aligned;
	sum->reallocs += c->reallocs;
	sum->frees += c->frees;
	sum->cross_frees += c->cross_frees;
	sum->checks += c->checks;
}

static void
phase_rounds(unsigned nthreads, unsigned rounds, uint64_t seed)
{
	struct worker *w = calloc(nthreads, sizeof(*w));
	struct counters sum = { 0 };
	unsigned create_failures = 0;

	CHECK(w != NULL, "worker table");
	if (w == NULL)
		return;
	for (unsigned r = 0; r < rounds; r++) {
		/* The second half runs with a fixed mmap threshold, so the
		 * 200 KiB+ objects stay mmap chunks (the dynamic threshold
		 * would soon move them into the heaps). */
		if (r == rounds / 2)
			CHECK(mallopt(M_MMAP_THRESHOLD, 192 * KIB) == 1,
			      "mallopt(M_MMAP_THRESHOLD, 192 KiB)");
		for (unsigned t = 0; t < nthreads; t++) {
			memset(&w[t].c, 0, sizeof(w[t].c));
			w[t].id = t;
			w[t].seed = rng_seed(seed, (uint64_t)r * nthreads + t);
			if (pthread_create(&w[t].tid, NULL, worker_main, &w[t]) != 0) {
				create_failures++;
				w[t].tid = 0;
			}
		}
		for (unsigned t = 0; t < nthreads; t++) {
			if (w[t].tid)
				pthread_join(w[t].tid, NULL);
			add_counters(&sum, &w[t].c);
		}
	}
	CHECK(create_failures == 0, "all %u worker threads created", nthreads * rounds);
	drain_transfer(&sum);
	printf("rounds: %lu malloc, %lu calloc, %lu aligned, %lu realloc, %lu free "
	       "(%lu cross-thread), %lu checks\n",
	       sum.mallocs, sum.callocs, sum.aligned, sum.reallocs, sum.frees, sum.cross_frees,
	       sum.checks);
	CHECK(sum.mallocs + sum.callocs + sum.aligned == sum.frees,
	      "every object allocated was freed (%lu allocated, %lu freed)",
	      sum.mallocs + sum.callocs + sum.aligned, sum.frees);
	CHECK(sum.cross_frees > 0, "some objects were freed by another thread");
	free(w);
}

/* ---- phase 2: thread churn ---- */

static pthread_key_t churn_key;
static _Atomic(uintptr_t) handoff[CHURN_HANDOFF];
static atomic_uint churn_destructor_calls;

/* A TSD destructor that frees the thread's value and, for as long as glibc
 * keeps calling destructors, allocates a new one: malloc and free while the
 * thread is exiting, in every destructor round. */
static void
churn_destructor(void *value)
{
	static __thread unsigned calls;
	unsigned char *p = value;

	atomic_fetch_add(&churn_destructor_calls, 1);
	release_object(p, 0, &(struct counters){ 0 }, "tsd value");
	if (++calls < PTHREAD_DESTRUCTOR_ITERATIONS) {
		unsigned char *q = malloc(40 + 16 * calls);

		if (q) {
			cookie_fill(q, 40 + 16 * calls);
			pthread_setspecific(churn_key, q);
		}
	} else {
		/* The last round: glibc has not released this thread's
		 * tcache or arena yet. */
		unsigned char *volatile q = malloc(200);

		if (q) {
			cookie_fill(q, 200);
			release_object(q, 200, &(struct counters){ 0 }, "last tsd round");
		} else {
			thread_fail("malloc in the last TSD destructor round failed");
		}
	}
}

static void *
churn_main(void *arg)
{
	uint64_t rng = *(uint64_t *)arg;
	struct slot objs[CHURN_ALLOCS];
	struct counters c = { 0 };
	unsigned char *v;
	unsigned n = 0;

	/* Free what an earlier (exited) thread handed over. */
	for (unsigned i = 0; i < 2; i++) {
		unsigned char *g = (unsigned char *)atomic_exchange(
			&handoff[rng_next(&rng) % CHURN_HANDOFF], 0);

		if (g && cookie_check(g, 0, "handoff") != 0)
			free(g);
	}
	for (unsigned i = 0; i < CHURN_ALLOCS; i++) {
		size_t size = 8 + (size_t)(rng_next(&rng) % 1017);
		unsigned char *p = malloc(size);

		if (p == NULL) {
			thread_fail("churn: malloc(%zu) failed", size);
			continue;
		}
		cookie_fill(p, size);
		/* Free about half at once, keep the rest until the end. */
		if (rng_next(&rng) & 1)
			release_object(p, size, &c, "churn");
		else
			objs[n++] = (struct slot){ p, size };
	}
	/* Hand two objects to later threads; the rest go to this thread's
	 * tcache (or its arena once a bin is full) and stay there until the
	 * thread exits. */
	for (unsigned i = 0; i < n; i++) {
		if (i < 2) {
			uintptr_t old = atomic_exchange(&handoff[rng_next(&rng) % CHURN_HANDOFF],
							(uintptr_t)objs[i].p);
			if (old && cookie_check((unsigned char *)old, 0, "handoff") != 0)
				free((void *)old);
		} else {
			release_object(objs[i].p, objs[i].size, &c, "churn end");
		}
	}
	v = malloc(32);
	if (v) {
		cookie_fill(v, 32);
		pthread_setspecific(churn_key, v);
	}
	return NULL;
}

/* How many arenas malloc_info reports ("<heap nr=" elements). */
static int
count_arenas(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int n = 0;

	if (f == NULL)
		return -1;
	if (malloc_info(0, f) != 0)
		n = -1;
	fclose(f);
	for (const char *s = buf; n >= 0 && s && (s = strstr(s, "<heap nr=")) != NULL; s++)
		n++;
	free(buf);
	return n;
}

static void
phase_churn(unsigned nthreads_before, uint64_t seed)
{
	unsigned batches = CHURN_THREADS / CHURN_BATCH, create_failures = 0;
	size_t arena_after2 = 0, uord_after2 = 0;
	struct mallinfo2 mi;
	int arenas, arenas_after2 = 0;
	int max_arenas = (int)(nthreads_before > CHURN_BATCH ? nthreads_before : CHURN_BATCH) + 1;

	CHECK(pthread_key_create(&churn_key, churn_destructor) == 0, "pthread_key_create");
	for (unsigned b = 0; b < batches; b++) {
		pthread_t tid[CHURN_BATCH];
		uint64_t seeds[CHURN_BATCH];

		for (unsigned t = 0; t < CHURN_BATCH; t++) {
			seeds[t] = rng_seed(seed ^ 0x636875726eULL, (uint64_t)b * CHURN_BATCH + t);
			if (pthread_create(&tid[t], NULL, churn_main, &seeds[t]) != 0) {
				create_failures++;
				tid[t] = 0;
			}
		}
		for (unsigned t = 0; t < CHURN_BATCH; t++)
			if (tid[t])
				pthread_join(tid[t], NULL);
		if (b == 1) {
			mi = mallinfo2();
			arena_after2 = mi.arena;
			uord_after2 = mi.uordblks;
			arenas_after2 = count_arenas();
		}
	}
	mi = mallinfo2();
	arenas = count_arenas();
	printf("churn: %u threads; after batch 2: arena %zu, in use %zu, %d arenas; "
	       "after batch %u: arena %zu, in use %zu, %d arenas\n",
	       batches * CHURN_BATCH, arena_after2, uord_after2, arenas_after2, batches, mi.arena,
	       mi.uordblks, arenas);
	CHECK(create_failures == 0, "all churn threads created");
	CHECK(atomic_load(&churn_destructor_calls) ==
		      batches * CHURN_BATCH * PTHREAD_DESTRUCTOR_ITERATIONS,
	      "the TSD destructor ran %d times per thread (%u calls)",
	      PTHREAD_DESTRUCTOR_ITERATIONS, atomic_load(&churn_destructor_calls));
	CHECK(mi.arena < arena_after2 + 4 * MIB,
	      "heap does not grow across churn batches (%zu -> %zu bytes)", arena_after2,
	      mi.arena);
	CHECK(mi.uordblks < uord_after2 + 1 * MIB,
	      "exiting threads do not leak their cached chunks (in use %zu -> %zu bytes)",
	      uord_after2, mi.uordblks);
	CHECK(arenas > 0 && arenas <= max_arenas,
	      "exited threads' arenas are reused: %d arenas, at most %d expected", arenas,
	      max_arenas);
	for (unsigned i = 0; i < CHURN_HANDOFF; i++) {
		unsigned char *g = (unsigned char *)atomic_exchange(&handoff[i], 0);

		if (g && cookie_check(g, 0, "handoff drain") != 0)
			free(g);
	}
	pthread_key_delete(churn_key);
}

/* ---- phase 3: the process is quiet again: mallinfo2, malloc_trim ---- */

static void
check_mallinfo(const char *when, const struct mallinfo2 *base)
{
	struct mallinfo2 mi = mallinfo2();

	printf("mallinfo2 %s: arena %zu, in use %zu, free %zu, mmap %zu in %zu, keepcost %zu\n",
	       when, mi.arena, mi.uordblks, mi.fordblks, mi.hblkhd, mi.hblks, mi.keepcost);
	CHECK(mi.arena >= mi.uordblks, "%s: arena (%zu) >= uordblks (%zu)", when, mi.arena,
	      mi.uordblks);
	CHECK(mi.arena == mi.uordblks + mi.fordblks,
	      "%s: arena (%zu) == uordblks (%zu) + fordblks (%zu)", when, mi.arena, mi.uordblks,
	      mi.fordblks);
	CHECK(mi.keepcost <= mi.fordblks, "%s: keepcost (%zu) <= fordblks (%zu)", when,
	      mi.keepcost, mi.fordblks);
	CHECK(mi.fsmblks <= mi.fordblks, "%s: fsmblks (%zu) <= fordblks (%zu)", when,
	      mi.fsmblks, mi.fordblks);
	CHECK(mi.hblks <= base->hblks && mi.hblkhd <= base->hblkhd,
	      "%s: no mmap chunk left behind (%zu bytes in %zu, at start %zu in %zu)", when,
	      mi.hblkhd, mi.hblks, base->hblkhd, base->hblks);
	CHECK(mi.uordblks < base->uordblks + 2 * MIB,
	      "%s: everything was freed (in use %zu, at start %zu)", when, mi.uordblks,
	      base->uordblks);
}

static void
phase_trim(const struct mallinfo2 *base, uint64_t seed)
{
	enum { N = 32 };
	unsigned char *blocks[N];
	size_t arena_before, arena_after;
	struct counters c = { 0 };
	uint64_t rng = rng_seed(seed, 0x7472696d);
	int r;

	check_mallinfo("after the threads", base);
	arena_before = mallinfo2().arena;
	r = malloc_trim(0);
	arena_after = mallinfo2().arena;
	CHECK(r == 0 || r == 1, "malloc_trim(0) returns 0 or 1 (got %d)", r);
	CHECK(arena_after <= arena_before, "malloc_trim(0) does not grow the heap (%zu -> %zu)",
	      arena_before, arena_after);
	check_mallinfo("after malloc_trim", base);

	/* Free chunks spanning whole pages between live ones: malloc_trim
	 * must give their pages back (and say so) without touching the live
	 * blocks around them. */
	for (unsigned i = 0; i < N; i++) {
		size_t size = 64 * KIB + (size_t)(rng_next(&rng) % 4096);

		blocks[i] = alloc_object(&rng, size, &c);
	}
	for (unsigned i = 0; i < N; i += 2) {
		if (blocks[i])
			release_object(blocks[i], 0, &c, "trim hole");
		blocks[i] = NULL;
	}
	r = malloc_trim(0);
	CHECK(r == 1, "malloc_trim(0) releases the pages of free chunks (got %d)", r);
	for (unsigned i = 1; i < N; i += 2)
		if (blocks[i])
			CHECK(cookie_check(blocks[i], 0, "after trim") != 0,
			      "live block %u intact after malloc_trim", i);
	/* The trimmed pages are usable again. */
	for (unsigned i = 0; i < N; i += 2)
		blocks[i] = alloc_object(&rng, 64 * KIB, &c);
	for (unsigned i = 0; i < N; i++)
		if (blocks[i])
			release_object(blocks[i], 0, &c, "trim end");
	CHECK(malloc_trim(0) >= 0, "malloc_trim(0) once more");
	check_mallinfo("at the end", base);
}

int
main(int argc, char **argv)
{
	unsigned nthreads = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 4;
	unsigned rounds = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 20;
	uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 0) : default_seed;
	struct mallinfo2 base;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (nthreads == 0 || nthreads > 256 || rounds == 0) {
		fprintf(stderr, "usage: %s [threads 1..256] [rounds >= 1] [seed]\n", argv[0]);
		return 99;
	}
	printf("mt-stress: %u threads, %u rounds, seed %#" PRIx64 "\n", nthreads, rounds, seed);
	base = mallinfo2();
	phase_rounds(nthreads, rounds, seed);
	phase_churn(nthreads, seed);
	CHECK(atomic_load(&thread_failures) == 0, "no failure in any thread (%lu)",
	      atomic_load(&thread_failures));
	phase_trim(&base, seed);
	CHECK(atomic_load(&thread_failures) == 0, "no failure at the end (%lu)",
	      atomic_load(&thread_failures));
	return harness_exit();
}
