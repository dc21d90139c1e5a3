/* SPDX-License-Identifier: MIT */
/*
 * test-heap - the allocator linked straight into the test (it becomes this
 * process's malloc), with every self-check on.
 *
 * After every step of seeded random workloads it (1) runs hp_check_heaps(),
 * which verifies heap.h's invariants, and (2) replays everything the
 * observer interface reported into a shadow map of 16-byte granules and
 * compares it with a walk of the real heap: the promise of observe.h that
 * the event stream alone says which bytes are live, cached (in a tcache, or
 * in a fastbin: which of the two) or free. Fault injection makes sbrk and
 * mmap fail to reach the brk-fallback and out-of-memory paths.
 *
 * If a check aborts the test (heap_check's hp_fatal, an assertion, glibc's
 * corruption messages), a last line says where: the phase, the seed and
 * the step.
 *
 * Usage: test-heap [SEED] [STEPS] [break-at STEP]
 *   break-at STEP  breaks the heap after that step of the first phase (as
 *                  a bug would), to show that the check stops the test and
 *                  says where (tests/unit/heap-abort.sh).
 */
#define _GNU_SOURCE
#define HP_TEST_HOOKS 1
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "heap.h"
#include "selfmem.h"
#include "check.h"
#include "observe.h"
#include "os.h"
#include "tarena.h"
#include "tcache.h"

#include "../harness.h"

#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

/* ---- the shadow: one byte per 16-byte granule, per region ---- */

enum { OUTSIDE = 0, S_FREE = 1, S_CACHED = 2, S_LIVE = 3, S_FASTBIN = 4 };

#define MAX_REGIONS 32
#define REGION_SPAN ((size_t)256 << 20)

struct region {
	uintptr_t base; /* granule 0 */
	uint8_t *g;     /* REGION_SPAN / 16 granules, mmap'd */
};

static struct region regions[MAX_REGIONS];
static int nregions;
static unsigned long events, shadow_errors;

static struct region *
region_of(uintptr_t a)
{
	for (int i = 0; i < nregions; i++)
		if (a >= regions[i].base && a < regions[i].base + REGION_SPAN)
			return &regions[i];
	return NULL;
}

static uint8_t *
granule(uintptr_t a)
{
	struct region *r = region_of(a);

	return r ? &r->g[(a - r->base) / 16] : NULL;
}

static void
region_add(uintptr_t base)
{
	if (granule(base) || nregions == MAX_REGIONS)
		return;
	void *g = mmap(NULL, REGION_SPAN / 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (g == MAP_FAILED)
		abort();
	regions[nregions++] = (struct region){ base & ~(uintptr_t)15, g };
}

static void
set_range(uintptr_t a, size_t len, uint8_t st)
{
	for (uintptr_t x = a; x < a + len;) {
		struct region *r = region_of(x);

		if (!r) {
			region_add(x);
			r = region_of(x);
		}
		/* the granules of x.. that lie in r, at once */
		uintptr_t end = a + len < r->base + REGION_SPAN ? a + len : r->base + REGION_SPAN;
		size_t first = (x - r->base) / 16, n = (end - x + 15) / 16;
		memset(&r->g[first], st, n);
		x += n * 16;
	}
}

static uint8_t
of_state(enum hp_state s)
{
	return s == HP_STATE_LIVE      ? S_LIVE
	       : s == HP_STATE_CACHED  ? S_CACHED
	       : s == HP_STATE_FASTBIN ? S_FASTBIN
				       : S_FREE;
}

static void
ob_brk(uintptr_t old_brk, uintptr_t new_brk)
{
	events++;
	if (new_brk > old_brk)
		set_range(old_brk & ~(uintptr_t)15, new_brk - (old_brk & ~(uintptr_t)15), S_FREE);
	else
		set_range(new_brk, old_brk - new_brk, OUTSIDE);
}

static void
ob_map(uintptr_t addr, size_t len, bool chunk)
{
	events++;
	if (!chunk)
		set_range(addr, len, S_FREE);
}

static void
ob_unmap(uintptr_t addr, size_t len, bool chunk)
{
	events++;
	if (!chunk)
		set_range(addr, len, OUTSIDE);
}

static void
ob_madvise(uintptr_t addr, size_t len)
{
	(void)addr;
	(void)len;
	events++;
}

static void
ob_chunk(uintptr_t chunk, size_t bytes, enum hp_state state)
{
	events++;
	set_range(chunk, bytes, of_state(state));
}

static void
ob_alloc(void *mem, size_t size, uintptr_t chunk, size_t chunk_bytes, enum hp_backing backing,
	 enum hp_call call, unsigned align_log2, void *const *stack, int nstack)
{
	(void)mem;
	(void)size;
	(void)call;
	(void)align_log2;
	(void)stack;
	(void)nstack;
	events++;
	if (backing != HP_BACKING_MMAP)
		set_range(chunk, chunk_bytes, S_LIVE);
}

static void
ob_free(const struct hp_ticket *t, uintptr_t chunk, size_t chunk_bytes, enum hp_fate fate,
	bool realloc)
{
	(void)t;
	(void)realloc;
	events++;
	if (fate == HP_FATE_UNMAPPED)
		return;
	set_range(chunk, chunk_bytes,
		  fate == HP_FATE_TCACHE    ? S_CACHED
		  : fate == HP_FATE_FASTBIN ? S_FASTBIN
					    : S_FREE);
}

static void
ob_resize(const struct hp_ticket *t, size_t size, uintptr_t chunk, size_t old_bytes,
	  size_t new_bytes)
{
	(void)t;
	(void)size;
	(void)old_bytes;
	events++;
	if (!(((struct hp_chunk *)chunk)->size & HP_IS_MMAPPED))
		set_range(chunk, new_bytes, S_LIVE);
}

static const struct hp_observer test_observer = {
	.brk = ob_brk,
	.map = ob_map,
	.unmap = ob_unmap,
	.madvise = ob_madvise,
	.chunk = ob_chunk,
	.alloc = ob_alloc,
	.free = ob_free,
	.resize = ob_resize,
};

static void
seed_shadow(uintptr_t chunk, size_t bytes, enum hp_state state, bool is_top, void *arg)
{
	(void)is_top;
	(void)arg;
	set_range(chunk, bytes, of_state(state));
}

/* Installed before main: whatever libc allocated earlier is taken from a
 * walk, everything after that only from events. */
__attribute__((constructor(200))) static void
install(void)
{
	hp_check_walk(seed_shadow, NULL);
	hp_observer = &test_observer;
}

struct cmp_ctx {
	unsigned long chunks, mismatches;
};

static void
compare(uintptr_t chunk, size_t bytes, enum hp_state state, bool is_top, void *arg)
{
	struct cmp_ctx *c = arg;
	uint8_t want = of_state(state);

	(void)is_top;
	c->chunks++;
	for (uintptr_t x = chunk; x < chunk + bytes;) {
		struct region *r = region_of(x);
		uintptr_t end = !r ? x + 16
			    : chunk + bytes < r->base + REGION_SPAN ? chunk + bytes
								    : r->base + REGION_SPAN;
		const uint8_t *g = r ? &r->g[(x - r->base) / 16] : NULL;

		/* the granules of x.. that lie in r, without looking r up again */
		for (; x < end; x += 16, g++) {
			if (!g || *g != want) {
				if (c->mismatches++ < 5)
					printf("  shadow says %d, heap says %d at %#lx (chunk %#lx+%zu)\n",
					       g ? *g : -1, want, (unsigned long)x,
					       (unsigned long)chunk, bytes);
				return;
			}
		}
	}
}

static bool
verify(const char *when)
{
	struct cmp_ctx c = { 0 };

	hp_check_heaps();
	hp_check_walk(compare, &c);
	if (c.mismatches) {
		shadow_errors++;
		printf("  after %s: %lu of %lu chunks disagree with the event stream\n", when,
		       c.mismatches, c.chunks);
		return false;
	}
	return true;
}

/* ---- where the test is, for the report of an abort ---- */

static const char *volatile at_phase = "start";
static const char *volatile at_op = "";
static volatile unsigned long at_seed, at_step;
static unsigned long break_at; /* 0: never */

static void
on_abort(int sig)
{
	char buf[256];
	int n;

	(void)sig;
	fflush(stdout);
	n = snprintf(buf, sizeof(buf), "test-heap: aborted in %s: seed %lu, step %lu (%s)\n",
		     at_phase, at_seed, at_step, at_op);
	if (n > 0 && write(1, buf, (size_t)n) < 0)
		return;
	/* returning lets abort() go on: SA_RESETHAND restored the default */
}

/* ---- workloads ---- */

#define NSLOTS 512
static void *slot[NSLOTS];
static unsigned long rng;

static unsigned long
rnd(void)
{
	rng = rng * 6364136223846793005UL + 1442695040888963407UL;
	return rng >> 33;
}

static size_t
rsize(void)
{
	unsigned long r = rnd() % 100;

	if (r < 45)
		return rnd() % 160;
	if (r < 75)
		return 160 + rnd() % 1200;
	if (r < 92)
		return 1024 + rnd() % 30000;
	if (r < 98)
		return 30000 + rnd() % 120000;
	return 130000 + rnd() % 300000;
}

static const char *
step(void)
{
	unsigned s = (unsigned)(rnd() % NSLOTS);
	unsigned long r = rnd() % 100;

	if (r < 35) {
		free(slot[s]);
		slot[s] = NULL;
		return "free";
	}
	if (r < 60) {
		free(slot[s]);
		slot[s] = malloc(rsize());
		return "malloc";
	}
	if (r < 75) {
		size_t n = rsize();
		void *p = realloc(slot[s], n);
		if (p || n == 0) /* realloc(p, 0) frees p */
			slot[s] = p;
		return "realloc";
	}
	if (r < 82) {
		free(slot[s]);
		slot[s] = calloc(1 + rnd() % 4, rsize() / 4);
		return "calloc";
	}
	if (r < 88) {
		free(slot[s]);
		slot[s] = memalign((size_t)16 << (rnd() % 10), rsize());
		return "memalign";
	}
	if (r < 89) {
		malloc_trim(rnd() % 2 ? 0 : 8192);
		return "malloc_trim";
	}
	if (r < 90) {
		mallopt(M_MXFAST, (int)(rnd() % 161));
		return "mallopt";
	}
	for (unsigned k = 0; k < 12; k++) {
		free(slot[(s + k) % NSLOTS]);
		slot[(s + k) % NSLOTS] = NULL;
	}
	return "free-run";
}

static void
free_all(void)
{
	for (unsigned s = 0; s < NSLOTS; s++) {
		free(slot[s]);
		slot[s] = NULL;
	}
}

static void
run(const char *name, unsigned long seed, unsigned long steps)
{
	unsigned long bad = 0;

	rng = seed;
	at_phase = name;
	at_seed = seed;
	for (unsigned long i = 0; i < steps; i++) {
		at_step = i;
		at_op = "";
		const char *what = step();
		at_op = what;
		if (break_at && i == break_at && strcmp(name, "random") == 0)
			hp_main_arena.system_mem += 4096; /* the deliberate bug */
		if (!verify(what) && ++bad > 3)
			break;
	}
	at_op = "";
	CHECK(bad == 0, "%s: seed %lu, %lu steps: heap_check and the event shadow agree", name, seed,
	      steps);
}

static void
test_oom(void)
{
	void *p;

	at_phase = "brk and mmap failures";
	at_op = "";
	at_step = 0;

	/* brk fails: the next growth falls back to a mapped region. The
	 * request is larger than anything free and below the (frozen) mmap
	 * threshold, so it must grow the heap. */
	mallopt(M_MMAP_THRESHOLD, 1 << 30);
	hp_os_fail_sbrk_in = 1;
	p = malloc(48 << 20);
	CHECK(p != NULL && !(hp_mem2chunk(p)->size & HP_IS_MMAPPED),
	      "brk failure: served from a fallback region");
	CHECK((hp_main_arena.flags & HP_NONCONTIGUOUS), "brk failure: the heap is non-contiguous from now on");
	CHECK(verify("brk fallback"), "brk fallback: shadow agrees");
	free(p);
	/* brk and mmap both fail: ENOMEM, nothing broken */
	hp_os_fail_sbrk_in = -1;
	hp_os_fail_map_in = -1;
	errno = 0;
	p = malloc(64 << 20);
	CHECK(p == NULL && errno == ENOMEM, "brk and mmap failing: NULL/ENOMEM");
	hp_os_fail_sbrk_in = 0;
	hp_os_fail_map_in = 0;
	CHECK(verify("ENOMEM"), "after ENOMEM: heap intact, shadow agrees");
	p = malloc(1000);
	CHECK(p != NULL, "allocating again after ENOMEM");
	free(p);
	/* mmap failure for a large chunk: served from the heap instead */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	hp_os_fail_map_in = 1;
	p = malloc(300000);
	hp_os_fail_map_in = 0;
	CHECK(p != NULL && !(hp_mem2chunk(p)->size & HP_IS_MMAPPED),
	      "mmap failing for a large request: it comes from the heap");
	free(p);
	CHECK(verify("mmap failure"), "after mmap failure: shadow agrees");
}

struct find_ctx {
	uintptr_t chunk;
	bool found;
};

static void
find_chunk(uintptr_t chunk, size_t bytes, enum hp_state state, bool is_top, void *arg)
{
	struct find_ctx *f = arg;

	(void)state;
	(void)is_top;
	if (f->chunk >= chunk && f->chunk < chunk + bytes)
		f->found = true;
}

/* heapprof's own allocations (made while the guard is up, e.g. by libunwind
 * inside the recorder) come from selfmem: never in the heap, never seen
 * by the observer, and free/realloc/usable_size recognise them later from
 * any context. */
static void
test_guard(void)
{
	unsigned long before = events;
	struct mallinfo2 m0 = mallinfo2(), m1;
	struct find_ctx f = { 0 };
	char *a, *b, *c, *d;

	at_phase = "allocations under the guard";
	at_op = "";
	at_step = 0;

	hp_self.guard++;
	a = malloc(100);
	b = calloc(10, 100);
	c = memalign(4096, 5000);
	d = realloc(NULL, 300000);
	hp_self.guard--;
	CHECK(a && b && c && d, "guarded allocations succeed");
	CHECK(hp_selfmem_owns_chunk(hp_mem2chunk(a)) && hp_selfmem_owns_chunk(hp_mem2chunk(b)) &&
		      hp_selfmem_owns_chunk(hp_mem2chunk(c)) && hp_selfmem_owns_chunk(hp_mem2chunk(d)),
	      "guarded allocations are selfmem blocks");
	CHECK(((uintptr_t)c & 4095) == 0, "guarded memalign is aligned");
	bool zero = true;
	for (int i = 0; i < 1000; i++)
		zero &= b[i] == 0;
	CHECK(zero, "guarded calloc is zeroed");
	f.chunk = (uintptr_t)hp_mem2chunk(a);
	hp_check_walk(find_chunk, &f);
	CHECK(!f.found, "a guarded block is not in any heap");
	m1 = mallinfo2();
	CHECK(m0.uordblks == m1.uordblks && m0.arena == m1.arena && m0.hblkhd == m1.hblkhd,
	      "guarded allocations leave mallinfo2 unchanged");
	CHECK(malloc_usable_size(a) >= 100, "usable size of a guarded block");
	memset(a, 1, 100);
	a = realloc(a, 5000); /* outside the guard: stays in the arena */
	CHECK(a && hp_selfmem_owns_chunk(hp_mem2chunk(a)) && a[99] == 1,
	      "realloc of a guarded block keeps it in the arena");
	free(a);
	free(b);
	free(c);
	free(d);
	CHECK(events == before, "no observer event for heapprof's own memory (%lu)",
	      events - before);
	CHECK(verify("guard"), "heap intact after guarded allocations");
}

static void
test_foreign_sbrk(void)
{
	void *a, *r, *b, *c;

	at_phase = "a foreign sbrk";
	at_op = "";
	at_step = 0;
	a = malloc(100);
	r = sbrk(3000);
	b = malloc(300000);
	c = malloc(200);
	CHECK(r != (void *)-1 && b && c, "allocations across a foreign sbrk");
	CHECK(verify("foreign sbrk"), "foreign sbrk: fenceposts, shadow agrees");
	free(a);
	free(b);
	free(c);
}

/* A fastbin hit moves more chunks of its size from the fastbin into the
 * tcache (glibc's stashing): they stay cached, but in another cache, one
 * malloc_consolidate does not empty. */
static void
test_fastbin_stash(void)
{
	void *v[24];

	for (int i = 0; i < 24; i++)
		v[i] = malloc(100);
	for (int i = 0; i < 24; i++)
		free(v[i]); /* 7 into the tcache, 17 into a fastbin */
	CHECK(verify("fastbin fill"), "24 chunks freed: tcache and fastbin, shadow agrees");
	for (int i = 0; i < 8; i++)
		v[i] = malloc(100); /* the 8th hits the fastbin, which refills the tcache */
	CHECK(verify("fastbin stash"), "a fastbin hit stashed chunks into the tcache: shadow agrees");
	malloc_trim(0);
	CHECK(verify("consolidate"), "malloc_trim consolidated the fastbin: shadow agrees");
	for (int i = 0; i < 8; i++)
		free(v[i]);
}

/* ---- thread arenas ---- */

struct thread_job {
	unsigned long seed, steps;
	bool big; /* grow the arena past one 64 MiB heap, then shrink it */
};

static void *
thread_main(void *arg)
{
	struct thread_job *job = arg;

	if (job->big) {
		void *v[100];
		unsigned bad = 0;

		at_phase = "a thread arena over two heaps";
		at_op = "";
		mallopt(M_MMAP_THRESHOLD, 32 << 20);
		for (int i = 0; i < 100; i++) {
			at_step = (unsigned long)i;
			v[i] = malloc(1 << 20);
			bad += !verify("thread heap growth");
		}
		CHECK(v[99] && hp_mapped_heap_of(v[99]) != hp_mapped_heap_of(v[0]),
		      "100 MiB in a thread arena span a second heap");
		for (int i = 99; i >= 0; i--) {
			at_step = 200 - (unsigned long)i;
			free(v[i]);
			bad += !verify("thread heap shrink");
		}
		CHECK(bad == 0, "heaps chained and deleted: shadow agrees at every step");
		mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	} else {
		run("random in a thread arena", job->seed, job->steps);
	}
	return NULL;
}

/* One thread at a time, so the observer's shadow needs no lock; the
 * chunks they leave in the slots are freed later by other threads and by
 * main (frees into other arenas), and exited threads' arenas are reused. */
static void
test_threads(unsigned long seed, unsigned long steps)
{
	for (int k = 0; k < 4; k++) {
		struct thread_job job = { seed + 10 + (unsigned long)k, steps, k == 1 };
		pthread_t t;

		CHECK(pthread_create(&t, NULL, thread_main, &job) == 0, "pthread_create");
		pthread_join(t, NULL);
		CHECK(verify("thread exit"), "thread %d gone: tcache flushed, shadow agrees", k);
	}
	CHECK(hp_main_arena.next != &hp_main_arena, "threads got arenas of their own");
}

int
main(int argc, char **argv)
{
	unsigned long seed = argc > 1 ? strtoul(argv[1], NULL, 0) : 1;
	unsigned long steps = argc > 2 ? strtoul(argv[2], NULL, 0) : 4000;
	struct sigaction sa;

	if (argc > 4 && strcmp(argv[3], "break-at") == 0)
		break_at = strtoul(argv[4], NULL, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_abort;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGABRT, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("seed %lu steps %lu\n", seed, steps);
	CHECK(verify("start"), "initial heap agrees with the walk");
	run("random", seed, steps);
	free_all();
	CHECK(verify("free all"), "after freeing everything");
	test_guard();
	test_fastbin_stash();
	test_foreign_sbrk();
	run("random after foreign sbrk", seed + 1, steps / 2);
	free_all();
	test_oom();
	run("random in a non-contiguous heap", seed + 2, steps / 2);
	test_threads(seed, steps / 4);
	free_all();
	CHECK(verify("end"), "everything freed from main");
	CHECK(events > 1000, "the observer saw %lu events", events);
	return harness_exit();
}
