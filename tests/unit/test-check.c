/* SPDX-License-Identifier: MIT */
/*
 * test-check - every heap check fires, and names its invariant.
 *
 * The allocator is linked straight into the test (tests/meson.build), at
 * debug level 3. Each case runs in a forked child: it builds a heap state,
 * breaks one of heap.h's numbered invariants the way a bug would, and
 * calls hp_check_heaps(); the check, or the assertion the broken rule
 * meets first, must abort with "invariant N" in its message on stderr. A
 * healthy heap of each shape must pass the same check.
 *
 * Usage: test-check
 */
#define _GNU_SOURCE
#define HP_TEST_HOOKS 1
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "heap.h"
#include "tarena.h"
#include "tcache.h"
#include "tune.h"

#include "../harness.h"

/* The cases read and write chunk headers and freed chunks on purpose. */
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wuninitialized"

/* ---- heap shapes ---- */

/* Chunks the cases allocate and keep (a sink the compiler cannot drop). */
static void *volatile keep;

/* A large bin holding chunks of two sizes, the smaller one twice: its skip
 * list has two entries and one chunk outside it. Returns the bin. */
static struct hp_chunk *
large_bin(void)
{
	void *a = malloc(2000), *b, *c;

	keep = malloc(24); /* in use between them: no coalescing */
	b = malloc(2010);
	keep = malloc(24);
	c = malloc(2000);
	keep = malloc(24);
	free(a);
	free(b);
	free(c);
	/* the unsorted scan sorts them into their bin (2016 and 2032 bytes) */
	keep = malloc(4000);
	return hp_bin_at(&hp_main_arena, hp_bin_index(2016));
}

/* The main heap continued after a foreign sbrk: its first segment ends in
 * fenceposts. Returns the last one. */
static struct hp_chunk *
foreign_sbrk(void)
{
	keep = malloc(100);
	if (sbrk(3000) == (void *)-1)
		_exit(99);
	for (int i = 0; i < 100; i++)
		keep = malloc(4000);
	if (hp_main.nsegments < 2)
		_exit(99);
	return (struct hp_chunk *)(hp_main.segments[0].end - HP_CHUNK_HDR_SZ);
}

/* A chunk in the calling thread's tcache; *idx its list. */
static struct hp_tcache_entry *
cached(size_t *idx)
{
	void *p = malloc(40);

	free(p);
	*idx = hp_csize2tidx(hp_chunksize(hp_mem2chunk(p)));
	if (hp_self.tcache == NULL || hp_self.tcache->entries[*idx] != p)
		_exit(99);
	return p;
}

static void *
grow_thread_arena(void *arg)
{
	void *v[80];

	(void)arg;
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	for (int i = 0; i < 80; i++)
		v[i] = malloc(1 << 20);
	return v[79];
}

/* A thread arena over two heaps: the first one ends in fenceposts.
 * Returns the size-0 one. */
static struct hp_chunk *
two_heaps(void)
{
	pthread_t t;
	void *last;

	if (pthread_create(&t, NULL, grow_thread_arena, NULL) != 0 || pthread_join(t, &last) != 0)
		_exit(99);
	struct hp_mapped_heap *h = hp_mapped_heap_of(last)->prev;
	if (h == NULL)
		_exit(99);
	return (struct hp_chunk *)((char *)h + h->size - HP_CHUNK_HDR_SZ);
}

/* ---- the cases: each breaks one invariant ---- */

static void
healthy(void)
{
	size_t idx;

	large_bin();
	foreign_sbrk();
	cached(&idx);
	two_heaps();
}

static void
top_without_p(void)
{
	keep = malloc(100);
	hp_main_arena.top->size &= ~(size_t)HP_PREV_INUSE;
}

static void
skip_list_misses_a_size(void)
{
	struct hp_chunk *b = large_bin();

	/* the first chunk (2032 bytes) links past the 2016-byte ones */
	b->fd->fd_nextsize = b->fd;
}

static void
skip_list_holds_a_duplicate(void)
{
	struct hp_chunk *b = large_bin();
	struct hp_chunk *second_of_its_size = b->fd->fd->fd;

	second_of_its_size->fd_nextsize = second_of_its_size->bk_nextsize = b->fd;
}

static void
unsorted_in_skip_list(void)
{
	void *a = malloc(3000);

	keep = malloc(24);
	free(a);
	hp_mem2chunk(a)->fd_nextsize = hp_mem2chunk(a);
}

static void
system_mem_off(void)
{
	keep = malloc(100);
	hp_main_arena.system_mem += 4096;
}

static void
system_mem_off_with_segments(void)
{
	foreign_sbrk();
	hp_main_arena.system_mem -= 16;
}

static void
fencepost_lost(void)
{
	struct hp_chunk *fp = foreign_sbrk();

	fp->size = HP_PREV_INUSE; /* a size-0 chunk where the 16-byte one was */
}

static void
thread_fencepost_lost(void)
{
	struct hp_chunk *fp = two_heaps();

	fp->size |= HP_NON_MAIN_ARENA; /* a stray bit */
}

static void
tcache_count_off(void)
{
	size_t idx;

	cached(&idx);
	hp_self.tcache->counts[idx]++;
}

static void
tcache_key_lost(void)
{
	size_t idx;

	cached(&idx)->key = 0;
}

static void
tcache_entry_of_another_size(void)
{
	size_t idx;
	struct hp_tcache_entry *e = cached(&idx);

	/* move it to the next list */
	hp_self.tcache->entries[idx] = hp_protect_ptr(&e->next, e->next);
	hp_self.tcache->counts[idx]--;
	e->next = hp_protect_ptr(&e->next, hp_self.tcache->entries[idx + 1]);
	hp_self.tcache->entries[idx + 1] = e;
	hp_self.tcache->counts[idx + 1]++;
}

static void *
nothing(void *arg)
{
	return arg;
}

/* The process has had a second thread: arena locks are taken from now on. */
static void
threaded(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, nothing, NULL) != 0 || pthread_join(t, NULL) != 0)
		_exit(99);
}

static void
arena_unlocked(void)
{
	threaded();
	keep = hp_heap_malloc_locked(&hp_main_arena, 100);
}

static void
mallopt_unlocked(void)
{
	threaded();
	hp_tune_mallopt_locked(M_TOP_PAD, 4096);
}

static void
arena_locked(void)
{
	threaded();
	bool locked = hp_mstate_lock(&hp_main_arena);
	keep = hp_heap_malloc_locked(&hp_main_arena, 100);
	hp_mstate_unlock(&hp_main_arena, locked);
}

/* ---- the levels: each of these exits 0 unless a check stops it ---- */

static void
caught_after_the_call(void)
{
	hp_main_arena.system_mem += 4096;
	free(malloc(10)); /* level 3: checked after it */
	_exit(0);
}

static void
caught_on_a_slow_path(void)
{
	keep = malloc(10);
	hp_main_arena.system_mem += 4096;
	hp_heap_consolidate_locked(&hp_main_arena); /* level 2: checked after it */
	_exit(0);
}

static void
written_after_free_tcache(void)
{
	char *p = malloc(100);

	free(p);
	p[50] = 1;
	keep = malloc(100); /* the same chunk, out of the tcache */
	_exit(0);
}

static void
written_after_free_fastbin(void)
{
	char *p[8];

	for (int i = 0; i < 8; i++)
		p[i] = malloc(24);
	for (int i = 0; i < 8; i++)
		free(p[i]); /* seven into the tcache, the last into a fastbin */
	p[7][10] = 1;
	for (int i = 0; i < 8; i++)
		keep = malloc(24); /* the last one out of the fastbin */
	_exit(0);
}

/* Whether calloc(1, n) gives n zero bytes. */
static bool
calloc_clears(size_t n)
{
	unsigned char *z = calloc(1, n);
	size_t bad = 0;

	for (size_t i = 0; z && i < n; i++)
		bad += z[i] != 0;
	free(z);
	return z && bad == 0;
}

/* Level 3 fills fresh memory with HP_POISON_ALLOC and freed memory past
 * its links with HP_POISON_FREE, whatever MALLOC_PERTURB_ says; calloc
 * still clears, where the kernel's zero pages would have done too. */
static void
test_poison(void)
{
	unsigned char *p;
	size_t n, bad = 0;

	mallopt(M_PERTURB, 0);
	p = malloc(100);
	n = hp_chunksize(hp_mem2chunk(p));

	for (size_t i = 0; i < 100; i++)
		bad += p[i] != HP_POISON_ALLOC;
	CHECK(bad == 0, "fresh memory is poisoned with %#x (%zu bytes not)", HP_POISON_ALLOC, bad);
	free(p);
	bad = 0;
	for (size_t i = 16; i < n - HP_CHUNK_HDR_SZ; i++)
		bad += p[i] != HP_POISON_FREE;
	CHECK(bad == 0, "freed memory past its links is poisoned with %#x (%zu bytes not)",
	      HP_POISON_FREE, bad);
	CHECK(calloc_clears(1 << 20), "calloc clears a fresh mmap chunk");
	mallopt(M_MMAP_THRESHOLD, 1 << 30);
	CHECK(calloc_clears(8 << 20), "calloc clears a chunk the heap grew for");
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

/* ---- running a case ---- */

/* Run setup (and the check) in a child; its status and stderr. */
static int
run_child(void (*setup)(void), char *err, size_t cap)
{
	int fds[2], status;
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	if (pipe(fds) != 0)
		exit(99);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		exit(99);
	if (pid == 0) {
		dup2(fds[1], 2);
		close(fds[0]);
		setup();
		hp_check_heaps();
		_exit(0);
	}
	close(fds[1]);
	while (n + 1 < cap && (r = read(fds[0], err + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	err[n] = '\0';
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid)
		exit(99);
	return status;
}

static void
expect_pass(const char *name, void (*setup)(void))
{
	char err[1024];
	int status = run_child(setup, err, sizeof(err));

	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: the check passes (%s)", name,
	      err);
}

static void
expect_fatal(const char *name, int invariant, void (*setup)(void))
{
	char err[1024], want[32];
	int status = run_child(setup, err, sizeof(err));

	snprintf(want, sizeof(want), "invariant %d)", invariant);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "%s: the check aborts", name);
	CHECK(strstr(err, "fatal: ") && strstr(err, want),
	      "%s: its message names invariant %d (stderr: %s)", name, invariant, err);
}

int
main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	expect_pass("a heap of every shape", healthy);
	expect_fatal("top without P", 6, top_without_p);
	expect_fatal("a skip list that misses a size", 4, skip_list_misses_a_size);
	expect_fatal("a skip list with two chunks of one size", 4, skip_list_holds_a_duplicate);
	expect_fatal("an unsorted chunk in a skip list", 4, unsorted_in_skip_list);
	expect_fatal("system_mem above the memory obtained", 7, system_mem_off);
	expect_fatal("system_mem below the memory obtained (two segments)", 7,
		     system_mem_off_with_segments);
	expect_fatal("a segment's fencepost lost", 8, fencepost_lost);
	expect_fatal("a thread heap's fencepost lost", 8, thread_fencepost_lost);
	expect_fatal("a tcache count above its list", 9, tcache_count_off);
	expect_fatal("a tcache entry without the key", 9, tcache_key_lost);
	expect_fatal("a tcache entry in another size's list", 9, tcache_entry_of_another_size);
	expect_pass("an arena function with the arena locked", arena_locked);
	expect_fatal("an arena function without the arena's lock", 10, arena_unlocked);
	expect_fatal("mallopt's work without the main arena's lock", 10, mallopt_unlocked);
	expect_fatal("level 3: a broken heap, caught after the next call", 7,
		     caught_after_the_call);
	expect_fatal("level 2: a broken heap, caught after a slow path", 7, caught_on_a_slow_path);
	expect_fatal("level 3: written after free, caught leaving the tcache", 11,
		     written_after_free_tcache);
	expect_fatal("level 3: written after free, caught leaving a fastbin", 11,
		     written_after_free_fastbin);
	test_poison();
	return harness_exit();
}
